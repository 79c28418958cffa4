"""Ground truth per fault: each response lists every fault in force with whether it fired and what it did."""

from __future__ import annotations

import json
import logging

import httpx2
import pytest
from _fault_helpers import anthropic_cassette, raw_request, run

from streamreel import Replayer
from streamreel.fault_injection import FaultOutcome
from streamreel.replayer import FAULTS_HEADER


def test_an_outcome_is_frozen_json_friendly_data_with_a_readable_form() -> None:
    fired = FaultOutcome("drop:event=ping", True, "dropped event 2 (ping) of 9")
    assert json.loads(json.dumps(fired.as_dict())) == {"spec": "drop:event=ping", "fired": True, "detail": "dropped event 2 (ping) of 9"}
    assert str(fired) == "drop:event=ping fired: dropped event 2 (ping) of 9"
    assert repr(fired) == "FaultOutcome(spec='drop:event=ping', fired=True, detail='dropped event 2 (ping) of 9')"
    with pytest.raises(AttributeError):
        fired.fired = False  # type: ignore[misc]


def test_the_plan_says_what_each_fault_did_in_the_order_given() -> None:
    p, _ = run(anthropic_cassette(), "drop:event=message_stop; error:after=3,type=api_error; fragment:size=5; disconnect:after=2,how=close", speed=0)
    assert [(o.spec, o.fired, o.detail) for o in p.outcomes] == [
        ("drop:event=message_stop", True, "dropped event 8 (message_stop) of 9"),
        ("error:after=3,type=api_error", True, "api_error after event 3 of 8"),
        ("fragment:size=5", True, "split into pieces of 5 bytes"),
        ("disconnect:after=2,how=close", True, "close after event 2 of 4"),
    ]
    assert p.unfit == ()


def test_a_header_fault_that_cannot_apply_is_answered_normally_marked_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="streamreel.faults")
    with Replayer(anthropic_cassette(), speed=0) as r:
        plain = raw_request(r.url)
        reply = raw_request(r.url, headers={FAULTS_HEADER: "drop:event=message-stop; disconnect:after=2,how=close"})
        clean, faulted = r.settle(requests=2)
    assert reply.ended_by == "eof" and faulted.events_done == 2
    typo, cut = faulted.faults
    assert not typo.fired and "event=message-stop picks no event" in typo.detail and "message_stop" in typo.detail
    assert cut.fired and faulted.fired == ("disconnect:after=2,how=close",)
    assert plain.body.startswith(faulted.data) and clean.faults == ()
    lines = [r.getMessage() for r in caplog.records if r.name == "streamreel.faults"]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert lines[0].startswith("request 1 (POST /v1/messages): drop:event=message-stop did not fire: event=message-stop picks no event")


def test_an_http_answer_leaves_the_stream_faults_unfired_and_says_why() -> None:
    with Replayer(anthropic_cassette(), speed=0, faults="http:529; truncate:event=4") as r, httpx2.Client() as client:
        assert client.post(f"{r.url}/v1/messages", json={}).status_code == 529
        assert client.post(f"{r.url}/v1/messages", json={}).status_code == 200
        answered, streamed = r.settle(requests=2)
    assert [(o.spec, o.fired) for o in answered.faults] == [("http:status=529", True), ("truncate:event=4", False)]
    assert answered.faults[0].detail == "answered HTTP 529 instead of the stream (1 of 1)"
    assert answered.faults[1].detail == "not applied: http:status=529 answered instead of the recording"
    assert [(o.spec, o.fired) for o in streamed.faults] == [("http:status=529", False), ("truncate:event=4", True)]
    assert streamed.faults[0].detail.startswith("spent: applied to 1 response(s) already")


def test_a_fault_on_a_plain_body_does_not_fire_and_says_it_is_not_a_stream() -> None:
    from streamreel import Cassette
    from streamreel.cassette import Interaction, Request, Response

    cas = Cassette(interactions=(Interaction(Request(method="POST", path="/v1/messages"), Response(status=529, body={"type": "error"})),))
    p, _ = run(cas, "drop:event=ping")
    assert not p.outcomes[0].fired and p.outcomes[0].detail == "the response is not a stream (HTTP 529 with a plain body)"
