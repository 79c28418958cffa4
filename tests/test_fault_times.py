"""``times=N`` on every fault: the first N responses it could apply to, then clean; counts restart on load, clear and a new serve."""

from __future__ import annotations

import dataclasses

import anthropic
import pytest
from _fault_helpers import anthropic_cassette, raw_request
from test_fault_fit import CASSETTES

from streamreel import Replayer
from streamreel.pipeline import plan
from streamreel.replayer import FAULTS_HEADER

REQUEST = {"model": "claude-test", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
WHOLE_TEXT = "Hello there!"


def _text_with_app_retry(client: anthropic.Anthropic, attempts: int) -> tuple[str, list[str]]:
    """What an app that retries a failed stream itself gets (the SDK never retries mid-stream)."""
    failures: list[str] = []
    for _ in range(attempts):
        text = ""
        try:
            for event in client.messages.create(**REQUEST, stream=True):
                if event.type == "content_block_delta":
                    text += event.delta.text
            return text, failures
        except anthropic.APIStatusError as e:
            failures.append(f"{e.status_code} {getattr(e, 'type', None) or e.body}")
    return "", failures


def test_overloaded_once_then_fine_is_one_spec() -> None:
    cassette = anthropic_cassette()
    with Replayer(cassette, speed=0, faults="error:after=3,type=overloaded_error,times=1") as r:
        client = anthropic.Anthropic(base_url=r.url, api_key="k", max_retries=0)
        text, failures = _text_with_app_retry(client, attempts=3)
        first, second = r.settle(requests=2)
    assert text == WHOLE_TEXT and len(failures) == 1 and failures[0].startswith("200")
    assert first.faults[0].fired and first.faults[0].detail == "overloaded_error after event 3 of 9"
    assert not second.faults[0].fired and second.faults[0].detail == "spent: applied to 1 response(s) already (times=1)"
    assert second.data == b"".join(e.wire for e in cassette.interactions[0].response.events or ())


@pytest.mark.parametrize("restart", ["none", "clear", "load", "serve"])
def test_the_count_restarts_on_clear_load_and_a_new_serve(restart: str) -> None:
    cassette = anthropic_cassette()
    spec = "disconnect:after=2,how=close,times=2"
    r = Replayer(cassette, speed=0, faults=spec)

    def three() -> list[str | None]:
        for _ in range(3):
            raw_request(r.url)
        return [s.ending for s in r.settle(requests=3)[-3:]]

    with r:
        first = three()
        if restart == "clear":
            r.clear()
        elif restart == "load":
            r.load(cassette, faults=spec)
        if restart != "serve":
            second = three()
    if restart == "serve":
        with r:
            second = three()
    assert first == ["close", "close", "end"]
    assert second == (["end", "end", "end"] if restart == "none" else ["close", "close", "end"])


def test_only_responses_the_fault_could_apply_to_count() -> None:
    pair = CASSETTES["retry-pair"]  # a 4-event cut attempt, then the whole 9-event stream
    with Replayer(pair, speed=0, faults="disconnect:after=6,how=reset,times=1") as r:
        for _ in range(3):
            raw_request(r.url)
        cut, faulted, clean = r.settle(requests=3)
    assert (cut.interaction, cut.events_done, cut.ending, cut.faults[0].fired) == (0, 4, "close", False)
    assert "after=6 is past the end; the stream holds 4 events" in cut.faults[0].detail
    assert (faulted.interaction, faulted.events_done, faulted.ending, faulted.faults[0].fired) == (1, 6, "reset", True)
    assert (clean.interaction, clean.events_done, clean.ending, clean.faults[0].fired) == (1, 9, "end", False)


def test_a_header_fault_with_times_counts_across_the_requests_that_carry_it() -> None:
    with Replayer(anthropic_cassette(), speed=0) as r:
        for _ in range(3):
            raw_request(r.url, headers={FAULTS_HEADER: "drop:event=message_stop,times=2"})
        sent = r.settle(requests=3)
    assert [s.events_done for s in sent] == [8, 8, 9]
    assert [s.faults[0].fired for s in sent] == [True, True, False]


def test_every_fault_takes_times_and_prints_it_last() -> None:
    from streamreel.fault_injection import REGISTRY, parse_one

    for name in sorted(REGISTRY):
        field = next(f for f in dataclasses.fields(REGISTRY[name]) if f.name == "times")
        assert field.metadata["key"] == "times"
    assert str(parse_one("error:times=1,after=3")) == "error:after=3,times=1"
    assert str(parse_one("speed:0,times=1")) == "speed:0,times=1"
    assert str(parse_one("http:429,times=3")) == "http:status=429,times=3"
    p = plan(anthropic_cassette().interactions[0], "speed:0,times=1", attempts={0: 1})
    assert next(iter(p.chunks)).at_ms == 20.0 and not p.outcomes[0].fired  # spent: the recorded pace again


@pytest.mark.parametrize(("how", "ended_by", "ending"), [("reset", "reset", "reset"), ("close", "eof", "close"), ("eof", "terminator", "end")])
def test_a_cut_inside_an_event_sends_the_first_keep_bytes_of_it(how: str, ended_by: str, ending: str) -> None:
    cassette = anthropic_cassette()
    events = cassette.interactions[0].response.events or ()
    whole = b"".join(e.wire for e in events)
    start = sum(len(e.wire) for e in events[:4])
    with Replayer(cassette, speed=0, faults=f"disconnect:inside=5,keep=11,how={how}") as r:
        reply = raw_request(r.url)
        (sent,) = r.settle(requests=1)
    assert reply.body == whole[: start + 11] == sent.data
    assert (reply.ended_by, sent.ending, sent.events_done) == (ended_by, ending, 4)
    assert sent.faults[0].detail.startswith(f"{how} inside event 5 of 9 (content_block_delta), 11 of its")
