"""Matching: scrubbed values as wildcards, and playback that does not repeat (for new_episodes)."""

from __future__ import annotations

import pytest

from streamreel.cassette import Interaction, Request
from streamreel.errors import NoMatchError
from streamreel.matching import Matcher, ReceivedRequest
from streamreel.scrub import SCRUBBED


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
    m = Matcher([recorded(body={"q": 1}), recorded(body={"q": 1})], repeat_last=False)
    assert [m.find(received(b'{"q":1}')) for _ in range(2)] == [0, 1]
    with pytest.raises(NoMatchError, match="already played"):
        m.find(received(b'{"q":1}'))


def test_by_default_the_last_match_repeats() -> None:
    m = Matcher([recorded(body={"q": 1}), recorded(body={"q": 1})])
    assert [m.find(received(b'{"q":1}')) for _ in range(3)] == [0, 1, 1]
