"""``pings``: keep-alives at a fixed interval, shaped as the provider sends them."""

from __future__ import annotations

from _fault_helpers import anthropic_cassette, events_of, interaction, openai_cassette, run

from streamreel.fault_injection.pings import PING_DATA


def test_pings_fill_the_recorded_gaps_at_the_interval_in_time_order() -> None:
    cas = anthropic_cassette(gap_ms=20, first_ms=0)
    original = interaction(cas).response.events
    p = run(cas, "pings:every=5ms")[0]
    ids = {id(e) for e in original}
    pings = [e for e in p.events if id(e) not in ids]
    span = original[-1].t - original[0].t
    assert len(pings) == len([k for k in range(1, int(span // 5) + 1) if k * 5 < span])
    assert [e.t for e in p.events] == sorted(e.t for e in p.events)
    assert [e for e in p.events if id(e) in ids] == list(original)
    assert all(e.event == "ping" for e in pings)


def test_anthropic_gets_event_ping_with_the_apis_spaced_payload() -> None:
    got = events_of(run(anthropic_cassette(), "pings:every=10ms", speed=0)[1])
    added = [e for e in got if e.event == "ping"]
    assert len(added) > 1 and all(e.data == PING_DATA == '{"type": "ping"}' for e in added)


def test_other_streams_get_comment_keep_alives_unless_a_style_is_asked() -> None:
    got = events_of(run(openai_cassette(), "pings:every=10ms", speed=0)[1])
    assert any(e.is_comment and e.comment == "ping" for e in got)
    forced = events_of(run(openai_cassette(), "pings:every=10ms,style=event", speed=0)[1])
    assert any(e.event == "ping" for e in forced)
