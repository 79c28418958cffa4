"""``truncate``: broken JSON in one event's data; the event and the stream go on around it."""

from __future__ import annotations

from _fault_helpers import anthropic_cassette, events_of, interaction, run

from streamreel import Cassette, Event


def test_the_chosen_event_keeps_the_first_fraction_of_its_data_and_nothing_else_changes() -> None:
    original = interaction(anthropic_cassette()).response.events
    _, chunks = run(anthropic_cassette(), "truncate:event=4,keep=0.5", speed=0)
    got = events_of(chunks)
    assert len(got) == len(original)
    assert got[4].event == original[4].event and got[4].data == original[4].data[: len(original[4].data) // 2]
    assert [e.data for i, e in enumerate(got) if i != 4] == [e.data for i, e in enumerate(original) if i != 4]
    assert got[4].json(default="broken") == "broken"


def test_negative_indices_count_from_the_end_and_names_pick_every_event_of_that_type() -> None:
    original = interaction(anthropic_cassette()).response.events
    last = events_of(run(anthropic_cassette(), "truncate:event=-1,keep=0", speed=0)[1])
    assert last[-1].data == "" and last[-2].data == original[-2].data
    named = events_of(run(anthropic_cassette(), "truncate:event=content_block_delta,keep=0.25", speed=0)[1])
    cut = [i for i, (a, b) in enumerate(zip(named, original)) if a.data != b.data]
    assert cut == [i for i, e in enumerate(original) if e.event == "content_block_delta"]


def test_comments_and_events_without_data_are_left_alone() -> None:
    cas = Cassette.from_events([Event(t=0, comment="keep-alive"), Event(t=0, event="ping"), Event(t=0, data='{"a":1}')])
    got = events_of(run(cas, "truncate:event=0|1|2,keep=0.5", speed=0)[1])
    assert got[0].comment == "keep-alive" and got[1].event == "ping" and got[1].data is None
    assert got[2].data == '{"a'
