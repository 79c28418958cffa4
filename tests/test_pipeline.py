"""plan(): the unfaulted stream is a view over the events; byte faults turn it into counted chunks."""

from __future__ import annotations

from streamreel import Cassette, Event
from streamreel.pipeline import Chunk, EventChunks, plan, timed_chunks


def _cassette() -> Cassette:
    return Cassette.from_events([Event(t=10.0 * (i + 1), event="e", data=f'{{"i":{i}}}') for i in range(6)], headers_at=5.0)


def test_an_unfaulted_stream_is_a_view_over_the_events_at_the_speed() -> None:
    interaction = _cassette().interactions[0]
    events = interaction.response.events or ()
    for speed, scale in [(1.0, 1.0), (2.0, 0.5), (0.0, 0.0)]:
        p = plan(interaction, speed=speed)
        assert isinstance(p.chunks, EventChunks)
        assert p.chunks.events is events
        assert list(p.chunks) == [Chunk(ev.t * scale, ev.wire, i) for i, ev in enumerate(events, 1)]
        assert len(p.chunks) == len(events)


def test_event_faults_keep_the_view_and_byte_faults_replace_it_with_counted_chunks() -> None:
    interaction = _cassette().interactions[0]
    dropped = plan(interaction, "drop:event=2")
    assert isinstance(dropped.chunks, EventChunks) and len(dropped.chunks) == 5
    fragmented = plan(interaction, "fragment:size=7")
    assert not isinstance(fragmented.chunks, EventChunks)
    chunks = list(fragmented.chunks)
    assert b"".join(c.data for c in chunks) == b"".join(ev.wire for ev in interaction.response.events or ())
    assert all(len(c.data) <= 7 for c in chunks)
    assert [c.events_done for c in chunks] == sorted(c.events_done for c in chunks)
    assert chunks[-1].events_done == 6


def test_timed_chunks_iterates_the_same_plan_without_a_socket() -> None:
    cas = _cassette()
    assert list(timed_chunks(cas, speed=2.0)) == list(plan(cas.interactions[0], speed=2.0).chunks)
