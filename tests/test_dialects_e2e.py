"""Every dialect against its official SDK, sync and async, under every fault: what user code sees.

Each cell of ``tests/_dialects_matrix.py`` runs one real SDK call (openai Responses,
google-genai, ``AnthropicVertex``, ``AnthropicBedrock``) against a real replayer serving a real
capture, and is checked against the server's ground truth (the text the caller got is what
the events sent spell; the right number of requests; how the response ended) and against
the tables committed in docs/providers.md.
"""

from __future__ import annotations

import functools
import json

import pytest
from _dialects_matrix import TABLE, TABLES, Row, Seen, Style, Table, committed_cells, observe

from streamreel.fault_injection import Http, parse
from streamreel.sse import Event

ENDING = {"reset": "reset", "close": "close", "stall": "hang"}
ABANDONED = {"truncate", "error"}
"""Rows where the SDK may raise while events are still coming, so whether the server wrote the
rest before the client hung up is a race; the events it reports sending still spell the text."""

CELLS = [(t, r, s) for t in TABLES for r in t.rows for s in t.styles]


@functools.lru_cache(maxsize=None)
def seen_in(dialect: str, row_key: str, style_key: str) -> Seen:
    table = TABLE[dialect]
    row = next(r for r in table.rows if r.key == row_key)
    style = next(s for s in table.styles if s.key == style_key)
    return observe(table, row, style)


@functools.lru_cache(maxsize=None)
def committed(dialect: str) -> dict[tuple[str, str], str]:
    return committed_cells(TABLE[dialect])


def spelled(dialect: str, events: list[Event]) -> str:
    """The text the events a server sent spell, up to the first one a client cannot read."""
    text = ""
    for ev in events:
        payload = ev.json(default=None)
        if not isinstance(payload, dict) or "error" in payload or (ev.event or "").endswith("Exception") or ev.event == "error":
            break
        if dialect == "openai-responses":
            text += payload.get("delta", "") if payload.get("type") == "response.output_text.delta" else ""
        elif dialect == "gemini":
            text += "".join(p.get("text", "") for c in payload.get("candidates", []) for p in c.get("content", {}).get("parts", []))
        elif payload.get("type") == "content_block_delta":
            text += payload["delta"].get("text", "")
    return text


@pytest.mark.parametrize(("table", "row", "style"), CELLS, ids=[f"{t.dialect}-{r.key}-{s.key}" for t, r, s in CELLS])
def test_what_your_code_sees(table: Table, row: Row, style: Style) -> None:
    seen = seen_in(table.dialect, row.key, style.key)
    fault = parse(row.spec)[0]
    assert seen.requests == len(seen.responses)
    last = seen.responses[-1]
    if isinstance(fault, Http):
        answered = [r for r in seen.responses if r.answered_by]
        assert answered and all(r.status == fault.status for r in answered)
        assert json.loads(answered[0].data)  # the dialect's own JSON error body
    if last.status == 200:
        assert seen.text == spelled(table.dialect, last.events)
        if row.key in ABANDONED:
            assert last.ending in ("end", "client_hung_up")
        else:
            assert last.ending == ENDING.get(row.key, "end")
    else:
        assert seen.text == "" and seen.error is not None
    assert seen.cell(row) == committed(table.dialect)[(row.key, style.key)], (  # type: ignore[arg-type]
        f"docs/providers.md says {committed(table.dialect)[(row.key, style.key)]!r} for {table.dialect} / {row.key} / {style.key}, "
        f"the SDK did {seen.cell(row)!r}; re-measure with `python tests/_dialects_matrix.py {table.dialect}` and review the diff"  # type: ignore[arg-type]
    )


def test_each_table_has_a_cell_for_every_fault_and_call_style() -> None:
    for table in TABLES:
        assert set(committed(table.dialect)) == {(r.key, s.key) for r in table.rows for s in table.styles}


def test_every_capture_replays_with_its_text_and_stop_reason_in_every_call_style() -> None:
    for table in TABLES:
        for style in table.styles:
            seen = seen_in(table.dialect, "none", style.key)
            assert seen.error is None and seen.text and seen.stop in ("completed", "STOP", "end_turn"), (table.dialect, style.key, seen)


def test_each_dialect_fails_mid_stream_in_its_own_form() -> None:
    assert seen_in("openai-responses", "error", "create").error == "openai.APIError"
    assert seen_in("gemini", "error", "stream").error == "google.genai.errors.ServerError (code 503)"
    assert seen_in("anthropic-vertex", "error", "create").error == "anthropic.APIStatusError (status 200)"
    bedrock = seen_in("anthropic-bedrock", "error", "create")
    assert bedrock.error == "anthropic.APIStatusError (status 200)"
    assert bedrock.responses[-1].events[-1].event == "modelStreamErrorException"
    assert seen_in("anthropic-bedrock", "truncate", "stream").error == "botocore.ChecksumMismatch"


def test_http_errors_carry_each_platforms_body() -> None:
    vertex = json.loads(seen_in("anthropic-vertex", "http-429", "create").responses[0].data)
    assert vertex["error"]["status"] == "RESOURCE_EXHAUSTED"
    gemini = seen_in("gemini", "http-5xx", "stream").responses[0]
    assert json.loads(gemini.data) == {"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}
    bedrock = seen_in("anthropic-bedrock", "http-429", "create").responses[0]
    assert set(json.loads(bedrock.data)) == {"message"} and bedrock.headers["x-amzn-errortype"].startswith("ThrottlingException:")
