"""Every fault against the real anthropic and openai SDKs, sync and async: what user code sees.

Each cell of the matrix in ``tests/_faults_matrix.py`` runs one real SDK call against a
real replayer and is checked three ways: against the server's ground truth (the text
the caller accumulated is what the events the server reports sending spell), against
the replayer's contract (how the response ended, how many requests came), and against
the table committed in docs/faults.md, so that table is always what the SDKs really do.
"""

from __future__ import annotations

import functools

import pytest
from _faults_matrix import ROW, ROWS, STYLE, STYLES, Row, Seen, Style, committed_cells, observe

from streamreel.fault_injection import Http, parse
from streamreel.sse import Event

ENDING = {"reset": "reset", "reset-mid-event": "reset", "close": "close", "eof": "end", "stall": "hang"}
"""How the server must have ended the (last) response for each row; every other row ends cleanly."""

ABANDONED = {"truncate"}
"""Rows where the SDK raises while events are still coming: whether the server wrote the rest
before the client hung up is a race, so either ending is the truth (the events it reports
sending still spell what the caller saw)."""


@functools.lru_cache(maxsize=None)
def seen_in(row_key: str, style_key: str) -> Seen:
    return observe(ROW[row_key], STYLE[style_key])


def model(provider: str, events: list[Event]) -> tuple[str, str | None]:
    """The text and stop reason a caller can have accumulated from ``events`` before any failure.

    A plain reading of the stream: deltas add text; an error event, JSON that does not
    parse or (OpenAI) an error chunk or ``[DONE]`` stops it.
    """
    text, stop = "", None
    for ev in events:
        if ev.is_comment or ev.event == "ping":
            continue
        if ev.event == "error" or ev.data == "[DONE]":
            break
        payload = ev.json(default=None)
        if not isinstance(payload, dict) or "error" in payload:
            break
        if provider == "anthropic":
            if payload.get("type") == "content_block_delta" and payload["delta"].get("type") == "text_delta":
                text += payload["delta"]["text"]
            elif payload.get("type") == "message_delta":
                stop = payload["delta"].get("stop_reason")
        else:
            for choice in payload.get("choices", []):
                text += choice["delta"].get("content") or ""
                stop = choice.get("finish_reason") or stop
    return text, stop


CELLS = [(row, style) for row in ROWS for style in STYLES]


@pytest.fixture(scope="module")
def committed() -> dict[tuple[str, str], str]:
    return committed_cells()


@pytest.mark.parametrize(("row", "style"), CELLS, ids=[f"{r.key}-{s.key}" for r, s in CELLS])
def test_what_your_code_sees(row: Row, style: Style, committed: dict[tuple[str, str], str]) -> None:
    seen = seen_in(row.key, style.key)
    spec = row.anthropic if style.provider == "anthropic" else row.openai
    fault = parse(spec)[0]

    assert seen.requests == len(seen.responses)
    last = seen.responses[-1]
    if isinstance(fault, Http):
        answered = [r for r in seen.responses if r.answered_by]
        attempts = row.max_retries + 1
        assert len(answered) == min(fault.times, attempts)
        retried = fault.should_retry if fault.should_retry is not None else fault.status in (408, 409, 429) or fault.status >= 500
        assert seen.requests == (min(fault.times + 1, attempts) if retried else 1)
        assert all(r.status == fault.status for r in answered)
    if last.status == 200:
        assert (seen.text, seen.stop) == model(style.provider, last.events)
        if row.key in ABANDONED:
            assert (last.ending, last.client_hung_up) in (("end", False), ("client_hung_up", True))
        else:
            assert last.ending == ENDING.get(row.key, "end")
            assert last.client_hung_up == (row.key == "stall")
    else:
        assert seen.text == "" and seen.error is not None
    if row.first_event_ms is not None:
        assert row.first_event_ms <= seen.first_item_ms < row.first_event_ms + 3000

    assert seen.cell(row) == committed[(row.key, style.key)], (
        f"docs/faults.md says {committed[(row.key, style.key)]!r} for {row.key} / {style.key}, "
        f"the SDK did {seen.cell(row)!r}; re-measure with `python tests/_faults_matrix.py` and review the diff"
    )


def test_the_committed_table_has_a_cell_for_every_fault_and_call_style() -> None:
    assert set(committed_cells()) == {(r.key, s.key) for r, s in CELLS}


# ---------------------------------------------------------------- the headline behaviours, pinned by name
# FIELD-NOTES.md says a mid-stream reset surfaces as httpx2.RemoteProtocolError; measured here, a
# true RST (SO_LINGER 0) gives httpx2.ReadError ("connection reset by peer"), and RemoteProtocolError
# is what a FIN without the chunked terminator (how=close, or asyncio's plain abort) gives.


def test_a_mid_stream_reset_raises_a_raw_httpx2_read_error_from_the_anthropic_sdk() -> None:
    for style in ("anthropic-create", "anthropic-create-async", "anthropic-stream", "anthropic-stream-async"):
        assert seen_in("reset", style).error == "httpx2.ReadError"


def test_a_connection_closed_without_the_chunk_terminator_raises_httpx2_remote_protocol_error() -> None:
    assert seen_in("close", "anthropic-create").error == "httpx2.RemoteProtocolError"


def test_the_openai_sdk_wraps_the_same_failures_in_its_own_exceptions() -> None:
    assert seen_in("reset", "openai-create").error == "openai.APIConnectionError from httpx2.ReadError"
    assert seen_in("stall", "openai-create").error == "openai.APITimeoutError from httpx2.ReadTimeout"


def test_a_mid_stream_read_timeout_raises_a_raw_httpx2_read_timeout_not_api_timeout_error() -> None:
    assert seen_in("stall", "anthropic-create").error == "httpx2.ReadTimeout"
    assert seen_in("stall", "anthropic-create").text == "Hello"


def test_an_overloaded_error_event_raises_a_bare_api_status_error_with_status_200() -> None:
    assert seen_in("error", "anthropic-create").error == "anthropic.APIStatusError (status 200)"


def test_a_clean_eof_without_message_stop_raises_nothing_and_leaves_stop_reason_none() -> None:
    seen = seen_in("eof", "anthropic-stream")
    assert seen.error is None and seen.stop is None and seen.text == "Hello"


def test_http_errors_are_retried_by_the_sdk_policy_and_counted_across_retries() -> None:
    retried = seen_in("http-429-retried", "anthropic-create")
    assert retried.error is None and retried.requests == 3 and retried.text == "Hello there!"
    exhausted = seen_in("http-529-exhausted", "anthropic-create")
    assert exhausted.error == "anthropic.OverloadedError (status 529)" and exhausted.requests == 3
    not_retried = seen_in("http-400", "anthropic-create")
    assert not_retried.requests == 1 and not_retried.responses[0].headers["x-should-retry"] == "false"


def test_every_http_error_carries_retry_after_and_the_stream_follows_them() -> None:
    seen = seen_in("http-429-retried", "openai-create")
    assert [r.status for r in seen.responses] == [429, 429, 200]
    assert seen.responses[0].headers["retry-after-ms"] == "10"
