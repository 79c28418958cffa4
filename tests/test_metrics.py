"""Metrics pinned against streams whose timing is known exactly."""

from __future__ import annotations

import json

import pytest

from streamreel.cassette import Cassette, End, Interaction, Request, Response, loads
from streamreel.importer import Timing, import_file
from streamreel.metrics import (
    cassette_metrics,
    cumulative_tokens,
    delta_text,
    interaction_metrics,
    percentile,
    summarize,
)
from streamreel.sse import Event


def _anthropic(name: str, payload: dict, t: float) -> Event:
    return Event(t=t, event=name, data=json.dumps(payload))


def _text(t: float, text: str) -> Event:
    return _anthropic("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}, t)


def known_stream(end: End | None = None, *, usage: bool = True) -> Interaction:
    events = [
        _anthropic("message_start", {"type": "message_start", "message": {"usage": {"output_tokens": 1}}}, 120),
        _anthropic("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}, 121),
        Event(t=125, event="ping", data='{"type": "ping"}'),
        _text(300, "Hello"),
        _text(340, " world"),
        Event(t=400, comment="keep-alive"),
        _text(1400, "!"),
        _anthropic("content_block_stop", {"type": "content_block_stop", "index": 0}, 1410),
    ]
    if usage:
        events += [
            _anthropic("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 11}}, 1420),
            _anthropic("message_stop", {"type": "message_stop"}, 1430),
        ]
    res = Response(headers_at=100, events=tuple(events), end=end or End(t=events[-1].t, reason="complete"))
    return Interaction(request=Request(method="POST", path="/v1/messages"), response=res)


def test_known_timing_gives_exact_ttft_tps_gaps_and_stall():
    m = interaction_metrics(known_stream())
    assert m.headers_ms == 100
    assert m.first_event_ms == 120
    assert m.ttft_ms == 300
    assert m.last_token_ms == 1400
    assert (m.output_tokens, m.tokens_from) == (11, "usage")
    assert m.tps == pytest.approx(11 / 1.1)
    # gaps once tokens flow: 40, 60, 1000, 10, 10, 10
    assert m.gap_p50_ms == pytest.approx(25.0)
    assert m.gap_p95_ms == pytest.approx(60 + (1000 - 60) * 0.75)
    assert m.gap_max_ms == 1000
    assert (m.longest_stall_ms, m.longest_stall_at_ms) == (1000, 400)
    assert m.stalls == ((400, 1400),)
    assert m.events == {
        "message_start": 1,
        "content_block_start": 1,
        "ping": 1,
        "content_block_delta": 3,
        "comment": 1,
        "content_block_stop": 1,
        "message_delta": 1,
        "message_stop": 1,
    }
    assert m.event_count == 10
    assert (m.end_reason, m.stop_reason) == ("complete", "end_turn")


def test_the_wait_for_the_first_token_is_not_a_gap_or_a_stall():
    m = interaction_metrics(known_stream(), stall_ms=150)
    assert m.gap_max_ms == 1000
    assert all(start >= 300 for start, _ in m.stalls)


def test_a_cut_stream_counts_the_silence_before_the_cut_and_estimates_tokens():
    m = interaction_metrics(known_stream(End(t=4410, reason="upstream_disconnect"), usage=False))
    assert m.end_reason == "upstream_disconnect"
    assert m.stop_reason is None
    assert (m.longest_stall_ms, m.longest_stall_at_ms) == (3000, 1410)
    assert m.stalls == ((400, 1400), (1410, 4410))
    assert m.gap_max_ms == 1000
    assert m.tokens_from == "estimate"
    assert m.output_tokens == 3  # "Hello world!" is 12 characters, about 3 tokens
    assert m.tps == pytest.approx(3 / 1.1)


def test_stall_threshold_is_configurable():
    assert interaction_metrics(known_stream(), stall_ms=1001).stalls == ()
    assert len(interaction_metrics(known_stream(), stall_ms=50).stalls) == 2


def _chunk(t: float, delta: dict, finish: str | None = None, **extra: object) -> Event:
    payload = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    return Event(t=t, data=json.dumps(payload))


def test_openai_ttft_is_the_first_chunk_with_content_or_tool_arguments():
    events = (
        _chunk(50, {"role": "assistant", "content": ""}),
        _chunk(60, {"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": ""}}]}),
        _chunk(250, {"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
        _chunk(450, {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        _chunk(460, {}, "tool_calls"),
        Event(t=470, data=json.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [], "usage": {"completion_tokens": 8}})),
        Event(t=480, data="[DONE]"),
    )
    m = interaction_metrics(Cassette.from_events(events, path="/v1/chat/completions").interactions[0])
    assert m.ttft_ms == 250
    assert m.tps == pytest.approx(8 / 0.2)
    assert m.events == {"chat.completion.chunk": 6, "[DONE]": 1}
    assert m.stop_reason == "tool_calls"
    assert m.gap_max_ms == 200


def test_openai_responses_deltas_and_final_usage():
    events = (
        Event(t=10, event="response.created", data=json.dumps({"type": "response.created"})),
        Event(t=90, event="response.output_text.delta", data=json.dumps({"type": "response.output_text.delta", "delta": "Hi"})),
        Event(t=190, event="response.output_text.delta", data=json.dumps({"type": "response.output_text.delta", "delta": " you"})),
        Event(
            t=200,
            event="response.completed",
            data=json.dumps({"type": "response.completed", "response": {"status": "completed", "usage": {"output_tokens": 5}}}),
        ),
    )
    m = interaction_metrics(Cassette.from_events(events, path="/v1/responses").interactions[0])
    assert (m.ttft_ms, m.output_tokens, m.stop_reason) == (90, 5, "completed")
    assert m.tps == pytest.approx(50.0)


def test_a_mid_stream_error_is_the_stop_reason_even_if_more_follows():
    error = Event(t=30, event="error", data=json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
    events = (_text(10, "a"), error, _text(40, "b"))
    m = interaction_metrics(Cassette.from_events(events).interactions[0])
    assert m.stop_reason == "error: overloaded_error"


def test_a_plain_body_has_no_stream_figures():
    item = Interaction(request=Request(method="POST", path="/v1/messages"), response=Response(status=529, body={"type": "error"}))
    m = interaction_metrics(item)
    assert (m.stream, m.status, m.ttft_ms, m.tps, m.event_count, m.end_reason) == (False, 529, None, None, 0, None)
    json.dumps(m.as_dict())


def test_as_dict_has_the_documented_keys_and_is_json():
    d = interaction_metrics(known_stream()).as_dict()
    for key in ("ttft_ms", "headers_ms", "tps", "output_tokens", "gap_p50_ms", "gap_p95_ms", "gap_max_ms", "longest_stall_ms", "events", "end_reason"):
        assert key in d
    assert json.loads(json.dumps(d)) == d
    assert d["tps"] == 10.0


def test_percentile_interpolates_linearly_between_ranks():
    assert percentile([4, 1, 3, 2], 50) == 2.5
    assert percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)
    assert percentile([7], 95) == 7
    assert percentile([], 50) is None
    with pytest.raises(ValueError, match="0..100"):
        percentile([1], 101)


def test_summary_over_interactions():
    def stream(ttft: float, rate_gap: float) -> Interaction:
        return Cassette.from_events((_text(ttft, "abcd"), _text(ttft + rate_gap, "efgh"))).interactions[0]

    items = [stream(100, 100), stream(200, 200), stream(300, 400), Interaction(response=Response(body="x"))]
    cas = Cassette(interactions=tuple(items))
    s = summarize(cassette_metrics(cas))
    assert (s.interactions, s.streams) == (4, 3)
    assert s.ttft_p50_ms == 200
    assert s.ttft_p95_ms == pytest.approx(290)
    # two estimated tokens over 0.1, 0.2 and 0.4 s
    assert s.tps_p50 == pytest.approx(10.0)
    assert s.tps_p95 == pytest.approx(19.0)


def test_cumulative_tokens_end_at_the_reported_usage():
    points = cumulative_tokens(known_stream())
    assert [t for t, _ in points] == [300, 340, 1400]
    assert points[-1][1] == pytest.approx(11)
    assert points[0][1] < points[1][1] < points[2][1]


def test_delta_text_reads_every_provider_shape():
    assert delta_text(_text(0, "x")) == "x"
    assert delta_text(_chunk(0, {"content": "y"})) == "y"
    assert delta_text(_chunk(0, {"reasoning_content": "r"})) == "r"
    assert delta_text(Event(data=json.dumps({"candidates": [{"content": {"parts": [{"text": "g"}]}}]}))) == "g"
    assert delta_text(Event(data="[DONE]")) == ""
    assert delta_text(Event(comment="x")) == ""


def test_metrics_of_a_real_capture_match_its_events(data_dir):
    cas = import_file(data_dir / "anthropic-sdk-python" / "stream-b-fallback.sse", timing=Timing(gap_ms=10, first_ms=50))
    m = cassette_metrics(cas)[0]
    events = cas.interactions[0].response.events
    first_delta = next(e for e in events if e.event == "content_block_delta")
    assert m.ttft_ms == first_delta.t
    assert m.tokens_from == "usage"
    assert m.stop_reason == "end_turn"
    assert m.gap_p50_ms == pytest.approx(10)


def test_metrics_of_a_loaded_cassette_file():
    text = """
streamreel: 1
interactions:
- request: {method: POST, path: /v1/messages}
  response:
    headers_at: 20
    events:
    - {t: 25, event: message_start, data: {type: message_start}}
    - {t: 75, event: content_block_delta, data: {type: content_block_delta, index: 0, delta: {type: text_delta, text: hi}}}
    - {t: 125, event: content_block_delta, data: {type: content_block_delta, index: 0, delta: {type: text_delta, text: there}}}
    - {t: 130, event: message_delta, data: {type: message_delta, delta: {stop_reason: end_turn}, usage: {output_tokens: 4}}}
    end: {t: 900, reason: timeout}
"""
    m = cassette_metrics(loads(text))[0]
    assert (m.headers_ms, m.ttft_ms, m.tps) == (20, 75, 80.0)
    assert (m.longest_stall_ms, m.end_reason) == (770, "timeout")
