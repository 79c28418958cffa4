"""Bug: a connection cut inside a tool call's ``input_json_delta`` runs the tool with truncated arguments.

Production: the HAR saved from devtools (``artifacts/cut-tool-call.har``) holds a tool call
whose connection dropped in the middle of the event carrying its arguments (at
``"temperature": 5``), and the client's retry. The SDK only hands over whole events, so
none of that event arrived; the app kept what it had (nothing), "repaired" it by closing
open strings and brackets, and ran the tool with empty arguments.

Reproduce (one fixture line): ``reel.load(import_file("artifacts/cut-tool-call.har"))``.
The import keeps each event-stream entry as an interaction, and since the first stops in
the middle of an event it adds the fault that replays those same bytes and then cuts
(``disconnect:inside=10,keep=192,how=close,times=1``); the retry gets the whole stream.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import anthropic
import httpx2
import pytest

from streamreel.importer import import_file

ARTIFACT = Path(__file__).parent / "artifacts" / "cut-tool-call.har"
REQUEST: dict[str, Any] = {
    "model": "claude-haiku-4-5",
    "max_tokens": 1024,
    "tools": [{"name": "json", "input_schema": {"type": "object"}}],
    "messages": [{"role": "user", "content": "Weather in San Francisco as JSON"}],
}
ARGUMENTS = {"elements": [{"location": "San Francisco", "temperature": 58, "condition": "sunny"}]}
CUT = (httpx2.HTTPError, anthropic.APIConnectionError)
"""What a cut mid-stream raises (the anthropic SDK lets the transport error out raw)."""


def close_brackets(partial: str) -> Any:
    """The "repair" the buggy handler trusts: close an open string and every open bracket; nothing is ``{}``."""
    stack: list[str] = []
    in_string = escaped = False
    for ch in partial:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            stack.append("]" if ch == "[" else "}")
        elif ch in "]}":
            stack.pop()
    return json.loads(partial + ('"' if in_string else "") + "".join(reversed(stack))) if partial.strip() else {}


def run_tool_buggy(client: anthropic.Anthropic, tool: Callable[[Any], None]) -> None:
    """Streams the tool call and, if the stream breaks, runs the tool with what arrived."""
    arguments = ""
    try:
        for event in client.messages.create(**REQUEST, stream=True):
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                arguments += event.delta.partial_json
    except CUT:
        pass  # "keep what we got"
    tool(close_brackets(arguments))


def run_tool_fixed(client: anthropic.Anthropic, tool: Callable[[Any], None]) -> None:
    """Runs the tool only once its block is complete (content_block_stop); a cut before that is retried."""
    for attempt in range(3):
        arguments, complete = "", False
        try:
            for event in client.messages.create(**REQUEST, stream=True):
                if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                    arguments += event.delta.partial_json
                elif event.type == "content_block_stop" and arguments:
                    complete = True
        except CUT:
            if attempt == 2:
                raise
            continue
        if complete:
            tool(json.loads(arguments))
            return
    raise RuntimeError("the tool call never completed")


def check_the_tool_runs_once_with_the_models_arguments(reel: Any, run: Callable[..., None]) -> None:
    """The test a user writes from the artifact."""
    reel.load(import_file(ARTIFACT))
    calls: list[Any] = []
    run(anthropic.Anthropic(base_url=reel.url, api_key="test", max_retries=0), calls.append)
    assert calls == [ARGUMENTS]


def test_the_fixed_handler_retries_and_runs_the_tool_with_the_whole_arguments(reel: Any) -> None:
    check_the_tool_runs_once_with_the_models_arguments(reel, run_tool_fixed)
    cut, whole = reel.settle()
    assert (cut.ending, whole.ending) == ("close", "end")
    assert cut.faults[0].fired and cut.faults[0].spec.startswith("disconnect:inside=10,")


def test_the_buggy_handler_runs_the_tool_with_empty_arguments(reel: Any) -> None:
    with pytest.raises(AssertionError) as failed:
        check_the_tool_runs_once_with_the_models_arguments(reel, run_tool_buggy)
    assert "assert [{}] ==" in str(failed.value)
    assert len(reel.requests) == 1


def test_the_repair_the_buggy_handler_trusts_closes_what_is_open() -> None:
    assert close_brackets('{"elements": [{"location": "San Fr') == {"elements": [{"location": "San Fr"}]}
    assert close_brackets('{"a": "x\\"y", "b": [1, {') == {"a": 'x"y', "b": [1, {}]}
