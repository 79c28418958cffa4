"""``disconnect``: a real RST, a FIN without the chunk terminator, or a clean EOF, after event N or byte B."""

from __future__ import annotations

import json

import pytest
from _fault_helpers import anthropic_cassette, raw_request, run, wire

from streamreel import Cassette, Event, Replayer
from streamreel.cassette import End
from streamreel.pipeline import Ending


@pytest.mark.parametrize(("how", "ending"), [("reset", "reset"), ("close", "close"), ("eof", "end")])
def test_a_cut_after_n_events_keeps_n_events_and_ends_as_asked(how: str, ending: str) -> None:
    p, chunks = run(anthropic_cassette(), f"disconnect:after=4,how={how}", speed=0)
    assert [c.events_done for c in chunks] == [1, 2, 3, 4]
    assert p.ending == Ending(ending, None)


def test_a_cut_after_bytes_splits_the_event_it_falls_in() -> None:
    _, plain = run(anthropic_cassette(), (), speed=0)
    p, chunks = run(anthropic_cassette(), "disconnect:after_bytes=600", speed=0)
    assert wire(chunks) == wire(plain)[:600]
    assert chunks[-1].events_done == 4 and p.ending.how == "reset"


def test_a_cut_past_the_end_does_not_fire_and_says_what_the_stream_holds() -> None:
    for spec in ("disconnect:after=50,how=close", "disconnect:after_bytes=99999", "disconnect:inside=10"):
        p, chunks = run(anthropic_cassette(), spec, speed=0)
        assert len(chunks) == 9 and p.ending.how == "end"
        assert not p.outcomes[0].fired and p.unfit == (0,)
        assert "past the end" in p.outcomes[0].detail and "9 events" in p.outcomes[0].detail
    hung = Cassette.from_events([Event(t=0, data="x")], end=End(t=5, reason="timeout"))
    p, _ = run(hung, "disconnect:after=50,how=close")
    assert p.ending.how == "hang" and not p.outcomes[0].fired


def test_a_cut_at_the_end_fires_only_when_it_changes_how_the_stream_ends() -> None:
    p, chunks = run(anthropic_cassette(), "disconnect:after=9,how=reset", speed=0)
    assert len(chunks) == 9 and p.ending.how == "reset" and p.outcomes[0].fired
    p, chunks = run(anthropic_cassette(), "disconnect:after=9,how=eof", speed=0)
    assert not p.outcomes[0].fired and "already ends this way (eof)" in p.outcomes[0].detail


def test_a_cut_inside_an_event_sends_keep_bytes_of_it() -> None:
    _, plain = run(anthropic_cassette(), (), speed=0)
    sizes = [len(c.data) for c in plain]
    p, chunks = run(anthropic_cassette(), "disconnect:inside=4,keep=7,how=close", speed=0)
    assert wire(chunks) == wire(plain)[: sum(sizes[:3]) + 7]
    assert chunks[-1].events_done == 3 and p.ending == Ending("close", None)
    assert p.outcomes[0].detail == f"close inside event 4 of 9 (content_block_delta), 7 of its {sizes[3]} bytes in"
    p, chunks = run(anthropic_cassette(), "disconnect:inside=4", speed=0)
    assert len(wire(chunks)) == sum(sizes[:3]) + sizes[3] // 2
    p, _ = run(anthropic_cassette(), f"disconnect:inside=4,keep={sizes[3]}", speed=0)
    assert not p.outcomes[0].fired and f"which is {sizes[3]} bytes; keep must be 1..{sizes[3] - 1}" in p.outcomes[0].detail


def test_on_the_wire_reset_is_an_rst_close_a_fin_without_terminator_eof_a_clean_end() -> None:
    cas = anthropic_cassette()
    seen = {}
    for how in ("reset", "close", "eof"):
        with Replayer(cas, speed=0, faults=f"disconnect:after=4,how={how}") as r:
            reply = raw_request(r.url)
            (sent,) = r.settle()
        seen[how] = (reply.ended_by, reply.terminated, sent.ending)
        assert reply.body == sent.data and sent.events_done == 4 and not sent.client_hung_up
    assert seen == {"reset": ("reset", False, "reset"), "close": ("eof", False, "close"), "eof": ("terminator", True, "end")}


def test_everything_written_before_a_reset_reaches_a_reading_client_even_when_kernel_buffers_fill() -> None:
    delta = json.dumps({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x" * 1000}})
    cas = Cassette.from_events([Event(t=0, event="content_block_delta", data=delta) for _ in range(3000)])
    with Replayer(cas, speed=0, faults="disconnect:after=2500,how=reset") as r:
        reply = raw_request(r.url)
        (sent,) = r.settle()
    assert reply.ended_by == "reset" and sent.ending == "reset"
    assert sent.events_done == 2500 and len(reply.body) == len(sent.data) and reply.body == sent.data


def test_bytes_a_stalled_reader_never_acknowledged_are_left_out_of_the_ground_truth(monkeypatch: pytest.MonkeyPatch) -> None:
    import streamreel.replayer as replayer

    monkeypatch.setattr(replayer, "UNACKED_WAIT_S", 0.2)
    cas = Cassette.from_events([Event(t=0, event="content_block_delta", data="y" * 1000) for _ in range(100)])
    with Replayer(cas, speed=0, faults="disconnect:after=100,how=reset") as r:
        reply = raw_request(r.url, rcvbuf=4096, before_reading=lambda: r.settle(requests=1))
        (sent,) = r.responses
    assert sent.ending == "reset" and reply.ended_by == "reset"
    assert 0 < len(sent.data) < 100 * 1010
    assert reply.body == sent.data
    assert sent.events_done == sent.data.count(b"\n\n")
