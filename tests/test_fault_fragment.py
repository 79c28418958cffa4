"""``fragment``: tiny writes, across line ends and inside UTF-8 characters, each flushed to the socket."""

from __future__ import annotations

import json

from _fault_helpers import anthropic_cassette, raw_request, run, wire

from streamreel import Cassette, Event, Replayer


def _unicode_cassette() -> Cassette:
    text = "héllo wörld — 你好 🎉"
    return Cassette.from_events(
        [Event(t=0, event="content_block_delta", data=json.dumps({"type": "content_block_delta", "delta": {"type": "text_delta", "text": text}}, ensure_ascii=False)), Event(t=0, event="message_stop", data='{"type":"message_stop"}')]
    )


def test_size_one_writes_every_byte_alone_and_the_bytes_are_unchanged() -> None:
    _, plain = run(_unicode_cassette(), ())
    _, chunks = run(_unicode_cassette(), "fragment:size=1")
    assert all(len(c.data) == 1 for c in chunks)
    assert wire(chunks) == wire(plain)
    assert any(c.data[0] >= 0x80 for c in chunks)


def test_a_piece_completes_an_event_only_when_it_carries_the_events_last_byte() -> None:
    for spec in ("fragment:size=1", "fragment:size=7", "fragment:random,max=40,seed=5"):
        _, chunks = run(anthropic_cassette(), spec, speed=0)
        sent = b""
        for c in chunks:
            sent += c.data
            assert c.events_done == sent.count(b"\n\n")
        assert chunks[-1].events_done == 9


def test_random_sizes_are_seeded_bounded_and_may_span_events_due_together() -> None:
    _, a = run(anthropic_cassette(), "fragment:random,max=24,seed=3", speed=0)
    _, b = run(anthropic_cassette(), "fragment:random,max=24,seed=3", speed=0)
    _, c = run(anthropic_cassette(), "fragment:random,max=24,seed=4", speed=0)
    assert [x.data for x in a] == [x.data for x in b] != [x.data for x in c]
    assert all(1 <= len(x.data) <= 24 for x in a)
    assert any(b"\n\nevent:" in x.data for x in a)


def test_events_due_at_different_times_are_never_merged() -> None:
    _, chunks = run(anthropic_cassette(gap_ms=10), "fragment:random,max=64,seed=1")
    boundaries = {c.at_ms for c in run(anthropic_cassette(gap_ms=10), ())[1]}
    for c in chunks:
        assert c.at_ms in boundaries


def test_a_gap_spaces_the_pieces_out() -> None:
    _, chunks = run(anthropic_cassette(), "fragment:size=100,gap=2ms", speed=0)
    assert [c.at_ms for c in chunks] == [2.0 * i for i in range(len(chunks))]


def test_each_piece_reaches_the_socket_as_its_own_write_and_a_reader_gets_them_apart() -> None:
    cas = Cassette.from_events([Event(t=0, data="abcdefghij")])
    with Replayer(cas, speed=0, faults="fragment:size=1,gap=5ms") as r:
        reply = raw_request(r.url)
        (sent,) = r.settle()
    assert reply.body == b"data: abcdefghij\n\n" == sent.data
    assert len(sent.data) == 18
    assert reply.reads >= 18 // 2
