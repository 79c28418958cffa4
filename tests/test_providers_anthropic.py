"""Messages stream synthesis: every block kind, the final message, and partial tool JSON read
as the SDKs read it."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jiter import from_json

from streamreel.providers.anthropic import (
    Citation,
    RedactedThinkingBlock,
    ServerToolResultBlock,
    ServerToolUseBlock,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    insert_pings,
    message_events,
    message_stream,
    tool_input,
)
from streamreel.strategies import _json_text, tool_inputs


@settings(max_examples=500, derandomize=True, database=None)
@given(st.data())
def test_unfinished_tool_json_reads_as_the_sdks_partial_json_parser_reads_it(data: st.DataObject) -> None:
    """Every prefix of every kind of tool input: what ``max_tokens`` leaves of a tool's JSON."""
    spelled = data.draw(tool_inputs(max_bytes=64).flatmap(_json_text))
    prefix = spelled[: data.draw(st.integers(0, len(spelled)))]
    expected = from_json(prefix.encode(), partial_mode=True) if prefix else {}
    assert tool_input(prefix) == expected


@pytest.mark.parametrize(
    ("spelled", "value"),
    [
        ("", {}),
        ('{"a": 12', {"a": 12}),
        ('{"a": 1.', {}),
        ('{"a": "unfinished', {}),
        ('{"a": [1, {"b": tr', {"a": [1, {}]}),
        ('{"a": true, "b"', {"a": True}),
        ('{"a": "x\\', {}),
    ],
)
def test_unfinished_json_keeps_what_is_complete(spelled: str, value: object) -> None:
    assert tool_input(spelled) == value


def test_every_block_kind_streams_in_the_apis_shape() -> None:
    blocks = [
        ThinkingBlock(("I think", "")),
        RedactedThinkingBlock("Eo=="),
        ServerToolUseBlock("web_search", ('{"query": "x"}',)),
        ServerToolResultBlock([{"type": "web_search_result", "title": "T", "url": "https://e/", "encrypted_content": "E", "page_age": None}]),
        TextBlock(("Said", " so"), citations=(Citation("so", url="https://e/", title="T"), Citation("doc", kind="char_location", start_char_index=3))),
        ToolUseBlock("f", ('{"a"', ": 1}")),
    ]
    made = message_stream(blocks, pings=(1, 1), delta_usage=True, delta_input_tokens=40)
    kinds = [(e.event, (e.json().get("content_block") or e.json().get("delta") or {}).get("type")) for e in made.events]
    assert kinds[:3] == [("message_start", None), ("ping", None), ("ping", None)]
    assert ("content_block_delta", "signature_delta") in kinds and ("content_block_delta", "citations_delta") in kinds
    result = next(e.json() for e in made.events if e.event == "content_block_start" and e.json()["content_block"]["type"] == "web_search_tool_result")
    server = next(e.json() for e in made.events if e.event == "content_block_start" and e.json()["content_block"]["type"] == "server_tool_use")
    assert result["content_block"]["tool_use_id"] == server["content_block"]["id"]
    text = made.message["content"][4]
    assert text["text"] == "Said so" and [c["type"] for c in text["citations"]] == ["web_search_result_location", "char_location"]
    assert text["citations"][1]["end_char_index"] == 6
    assert made.message["content"][5]["input"] == {"a": 1}
    assert made.message["stop_reason"] == "tool_use"
    usage = made.message["usage"]
    counted = {"web_search_requests": 1, "web_fetch_requests": 0}  # newer API versions (delta_usage) count fetches too
    assert (usage["input_tokens"], usage["server_tool_use"]) == (40, counted)
    delta = next(e.json() for e in made.events if e.event == "message_delta")
    assert delta["usage"]["input_tokens"] == 40 and delta["usage"]["server_tool_use"] == counted
    older = message_stream(blocks).message["usage"]["server_tool_use"]
    assert older == {"web_search_requests": 1}


def test_max_tokens_leaves_the_last_block_open_with_what_its_json_says_so_far() -> None:
    made = message_stream([TextBlock(("a",)), ToolUseBlock("f", ('{"path": "/tmp", "lines": ["one", "tw',))], stop_reason="max_tokens", open_last=True)
    stops = [e.json()["index"] for e in made.events if e.event == "content_block_stop"]
    assert stops == [0]
    assert made.message["content"][1]["input"] == {"path": "/tmp", "lines": ["one"]}


def test_message_events_keeps_its_old_shape() -> None:
    """One ping after the first block's start, the stop reason from the last block."""
    events = message_events([TextBlock(("hi",)), ToolUseBlock("f", ("{}",))])
    assert [e.event for e in events][:3] == ["message_start", "content_block_start", "ping"]
    assert json.loads(events[-2].data)["delta"]["stop_reason"] == "tool_use"


def test_pings_go_only_between_events() -> None:
    events = message_events([TextBlock(("hi",))], ping=False)
    assert [e.event for e in insert_pings(events, (len(events) - 1,))][-2:] == ["ping", "message_stop"]
    with pytest.raises(ValueError, match="ping positions must be between 1 and"):
        insert_pings(events, (0,))
    with pytest.raises(ValueError, match="citation kind must be"):
        Citation("x", kind="page_location").payload()
