"""``stall``: silence with the connection open, for a while or until the client's read timeout."""

from __future__ import annotations

import time

import httpx2
import pytest
from _fault_helpers import anthropic_cassette, run, wire

from streamreel import Cassette, Event, Replayer
from streamreel.cassette import End


def test_a_stall_without_seconds_sends_n_events_then_hangs() -> None:
    cas = anthropic_cassette()
    p, chunks = run(cas, "stall:after=3", speed=0)
    assert [c.events_done for c in chunks] == [1, 2, 3]
    assert p.ending.how == "hang"


def test_a_stall_after_bytes_can_stop_inside_an_event() -> None:
    p, chunks = run(anthropic_cassette(), "stall:after_bytes=300", speed=0)
    assert len(wire(chunks)) == 300 and chunks[-1].events_done == 1
    assert p.ending.how == "hang"


def test_a_timed_stall_inserts_silence_and_the_rest_follows() -> None:
    cas = anthropic_cassette(gap_ms=10, first_ms=10)
    _, plain = run(cas, ())
    p, chunks = run(cas, "stall:after=3,seconds=2")
    assert [c.data for c in chunks] == [c.data for c in plain]
    assert [c.at_ms for c in chunks[:3]] == [c.at_ms for c in plain[:3]]
    assert [c.at_ms for c in chunks[3:]] == [c.at_ms + 2000 for c in plain[3:]]
    assert p.ending.how == "end"


def test_a_stall_point_past_the_end_does_not_fire_and_says_what_the_stream_holds() -> None:
    for spec in ("stall:after=50", "stall:after=50,seconds=1", "stall:after_bytes=99999"):
        p, chunks = run(anthropic_cassette(), spec, speed=0)
        assert len(chunks) == 9 and p.ending.how == "end"
        (outcome,) = p.outcomes
        assert not outcome.fired and p.unfit == (0,)
        assert "past the end" in outcome.detail and "9 events: message_start" in outcome.detail


def test_a_stall_at_the_very_end_holds_the_end_back() -> None:
    p, chunks = run(anthropic_cassette(), "stall:after=9", speed=0)
    assert len(chunks) == 9 and p.ending.how == "hang" and p.outcomes[0].fired
    p, _ = run(anthropic_cassette(), "stall:after=9,seconds=1", speed=0)
    assert p.ending.how == "end" and p.ending.at_ms == 1000 and p.outcomes[0].fired
    hung = Cassette.from_events([Event(t=0, data="x")], end=End(t=5, reason="timeout"))
    p, _ = run(hung, "stall:after=1")
    assert not p.outcomes[0].fired and "already ends in silence" in p.outcomes[0].detail


def test_a_client_read_timeout_hits_the_stall_and_the_ground_truth_says_so() -> None:
    with Replayer(anthropic_cassette(), speed=0, faults="stall:after=4") as r, httpx2.Client(timeout=0.2) as client:
        got = bytearray()
        with pytest.raises(httpx2.ReadTimeout), client.stream("POST", r.url + "/v1/messages", content=b"{}") as resp:
            for piece in resp.iter_raw():
                got += piece
        (sent,) = r.settle()
    assert sent.ending == "hang" and sent.client_hung_up
    assert sent.events_done == 4 and bytes(got) == sent.data


def test_a_timed_stall_is_a_gap_the_client_measures() -> None:
    with Replayer(anthropic_cassette(), speed=0, faults="stall:after=4,seconds=0.3") as r, httpx2.Client() as client:
        arrivals = []
        with client.stream("POST", r.url + "/v1/messages", content=b"{}") as resp:
            for line in resp.iter_lines():
                if line.startswith("event:"):
                    arrivals.append((line, time.perf_counter()))
        (sent,) = r.settle()
    gaps = [b[1] - a[1] for a, b in zip(arrivals, arrivals[1:])]
    assert len(arrivals) == 9 and sent.ending == "end"
    assert gaps[3] >= 0.25 and gaps[3] == max(gaps)
