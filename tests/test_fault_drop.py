"""``drop``: events removed by index or by name, including OpenAI's ``[DONE]``."""

from __future__ import annotations

from _fault_helpers import anthropic_cassette, events_of, interaction, openai_cassette, run, shape


def test_dropping_message_stop_by_name_removes_only_it() -> None:
    original = interaction(anthropic_cassette()).response.events
    got = events_of(run(anthropic_cassette(), "drop:event=message_stop", speed=0)[1])
    assert shape(got) == shape(e for e in original if e.event != "message_stop")


def test_several_selectors_join_with_a_bar_and_indices_may_count_from_the_end() -> None:
    original = interaction(anthropic_cassette()).response.events
    got = events_of(run(anthropic_cassette(), "drop:event=0|-1|ping", speed=0)[1])
    assert shape(got) == shape(e for i, e in enumerate(original) if i not in (0, len(original) - 1) and e.event != "ping")


def test_openai_streams_match_done_and_the_payload_object_type() -> None:
    original = interaction(openai_cassette()).response.events
    got = events_of(run(openai_cassette(), "drop:event=[DONE]", speed=0)[1])
    assert shape(got) == shape(original[:-1])
    assert shape(events_of(run(openai_cassette(), "drop:event=chat.completion.chunk", speed=0)[1])) == shape([original[-1]])


def test_the_chunks_count_the_events_that_remain() -> None:
    _, chunks = run(anthropic_cassette(), "drop:event=ping|message_stop", speed=0)
    assert [c.events_done for c in chunks] == list(range(1, 8))
