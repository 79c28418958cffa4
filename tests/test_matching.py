from __future__ import annotations

import json

import anthropic
import pytest

from streamreel import Cassette, Event, Interaction, Replayer, Request, Response
from streamreel.errors import NoMatchError
from streamreel.matching import Matcher, ReceivedRequest
from streamreel.scrub import SCRUBBED


def interaction(method: str | None = "POST", path: str | None = "/v1/messages", body: object = None, tag: str = "") -> Interaction:
    return Interaction(request=Request(method=method, path=path, body=body), response=Response(body=tag or "{}"))


def req(method: str = "POST", path: str = "/v1/messages", query: str = "", body: object = None) -> ReceivedRequest:
    return ReceivedRequest(method=method, path=path, query=query, body=b"" if body is None else json.dumps(body).encode())


BODY = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [{"role": "user", "content": "Hi"}]}


def test_matches_method_path_and_json_body() -> None:
    m = Matcher([interaction(body=BODY)])
    assert m.find(req(body=BODY)) == 0
    with pytest.raises(NoMatchError):
        m.find(req(method="GET", body=BODY))
    with pytest.raises(NoMatchError):
        m.find(req(path="/v1/complete", body=BODY))
    with pytest.raises(NoMatchError):
        m.find(req(body={**BODY, "max_tokens": 11}))


def test_json_body_matches_regardless_of_key_order_and_spacing() -> None:
    m = Matcher([interaction(body=BODY)])
    raw = json.dumps(dict(reversed(list(BODY.items()))), indent=2).encode()
    assert m.find(ReceivedRequest(method="POST", path="/v1/messages", body=raw)) == 0


def test_sdk_query_parameters_are_ignored_but_user_query_matters() -> None:
    m = Matcher([interaction(body=BODY), interaction(method="GET", path="/stream?q=cats")])
    assert m.find(req(query="beta=true", body=BODY)) == 0
    assert m.find(req(method="GET", path="/stream", query="q=cats")) == 1
    with pytest.raises(NoMatchError, match="query: recorded q=cats, asked q=dogs"):
        m.find(req(method="GET", path="/stream", query="q=dogs"))


def test_fields_left_out_of_the_recorded_request_match_anything() -> None:
    m = Matcher([interaction(method=None, path=None, body=None)])
    assert m.find(req(method="GET", path="/anything", body={"x": 1})) == 0
    m = Matcher([interaction(body=None)])
    assert m.find(req(body={"whatever": True})) == 0


def test_repeats_play_in_order_then_the_last_one_repeats() -> None:
    m = Matcher([interaction(body=BODY, tag="a"), interaction(body=BODY, tag="b"), interaction(body={"other": 1}, tag="c")])
    assert [m.find(req(body=BODY)) for _ in range(4)] == [0, 1, 1, 1]
    m.reset()
    assert m.find(req(body=BODY)) == 0


def test_bool_and_number_are_not_confused() -> None:
    m = Matcher([interaction(body={"stream": True})])
    with pytest.raises(NoMatchError, match=r"body\.stream: recorded true, asked 1"):
        m.find(req(body={"stream": 1}))


def test_mismatch_names_the_request_the_closest_recording_and_the_difference() -> None:
    recorded = {**BODY, "messages": [{"role": "user", "content": "Hello"}]}
    m = Matcher([interaction(method="GET", path="/v1/models"), interaction(body=recorded)])
    with pytest.raises(NoMatchError) as info:
        m.find(req(query="beta=true", body=BODY))
    message = str(info.value)
    assert message.startswith("no recorded interaction matches POST /v1/messages?beta=true (model='claude-sonnet-4-6', 1 message(s), last 'Hi')")
    closest = message.splitlines()[1]
    assert closest.strip() == "#1 POST /v1/messages: body.messages[0].content: recorded 'Hello', asked 'Hi'"


def test_ignore_body_keys() -> None:
    m = Matcher([interaction(body={**BODY, "metadata": {"user_id": "a"}})], ignore_body_keys=["metadata"])
    assert m.find(req(body={**BODY, "metadata": {"user_id": "b"}})) == 0


def test_unknown_matcher_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown matcher"):
        Matcher([], match_on=["method", "headers"])


def test_sdk_gets_a_not_found_error_it_does_not_retry() -> None:
    cas = Cassette.from_events([Event(t=0, event="message_stop", data='{"type":"message_stop"}')], body={"model": "recorded-model"})
    with Replayer(cas, speed=0) as reel:
        client = anthropic.Anthropic(base_url=reel.url, api_key="k", max_retries=3)
        with pytest.raises(anthropic.NotFoundError) as info:
            client.messages.create(model="other-model", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
        assert len(reel.requests) == 1
    body = info.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "not_found_error"
    assert "body.model: recorded 'recorded-model', asked 'other-model'" in body["error"]["message"]


# ---------------------------------------------------------------- scrubbed values, playback without repeats (recorder)


def received(body: bytes = b"", path: str = "/v1/messages", query: str = "", method: str = "POST") -> ReceivedRequest:
    return ReceivedRequest(method=method, path=path, query=query, body=body)


def recorded(**request: object) -> Interaction:
    return Interaction(request=Request(method=request.pop("method", "POST"), path=request.pop("path", "/v1/messages"), body=request.pop("body", None)))  # type: ignore[arg-type]


def test_scrubbed_text_in_a_recorded_json_body_matches_whatever_was_there() -> None:
    m = Matcher([recorded(body={"messages": [{"content": f"my key is {SCRUBBED}, thanks"}]})])
    assert m.find(received(b'{"messages":[{"content":"my key is sk-live-123, thanks"}]}')) == 0
    with pytest.raises(NoMatchError, match=r"body.messages\[0\].content"):
        m.find(received(b'{"messages":[{"content":"my password is sk-live-123, thanks"}]}'))


def test_scrubbed_text_in_a_string_body_query_and_path_matches() -> None:
    m = Matcher(
        [
            recorded(body=f"token={SCRUBBED}&x=1"),
            recorded(method="GET", path=f"/stream?key={SCRUBBED}&q=eclipse"),
            recorded(method="GET", path=f"/bot{SCRUBBED}/updates"),
        ]
    )
    assert m.find(received(b"token=abc.def&x=1")) == 0
    assert m.find(received(method="GET", path="/stream", query="key=AIzaXYZ&q=eclipse")) == 1
    assert m.find(received(method="GET", path="/bot123:ABC/updates")) == 2
    with pytest.raises(NoMatchError):
        m.find(received(method="GET", path="/stream", query="key=AIzaXYZ&q=tides"))


def test_a_literal_recorded_value_is_not_a_pattern() -> None:
    m = Matcher([recorded(body={"q": "a.c"})])
    with pytest.raises(NoMatchError):
        m.find(received(b'{"q":"abc"}'))


def test_without_repeat_last_an_exhausted_request_no_longer_matches() -> None:
    m = Matcher([recorded(body={"q": 1}), recorded(body={"q": 1})])
    m.repeat_last = False
    assert [m.find(received(b'{"q":1}')) for _ in range(2)] == [0, 1]
    with pytest.raises(NoMatchError, match="already played"):
        m.find(received(b'{"q":1}'))
