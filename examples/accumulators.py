"""Example: rebuild the final message from a stream's events, as a chat UI or an agent loop does.

Code that streams a reply keeps its own copy of the message as events arrive: the text so
far, each tool call's arguments, the stop reason. :class:`MessageAccumulator` does it for
the Anthropic Messages stream (the raw events of ``client.messages.create(stream=True)``),
:class:`CompletionAccumulator` for OpenAI Chat Completions chunks. Both end with the final
object in the API's own shape, so a property test can compare them with the ``.message``
every stream drawn by :func:`streamreel.strategies.anthropic_messages` and
:func:`~streamreel.strategies.openai_chat_streams` carries.

The subclasses at the end are accumulators as they are often written, each with a bug that
only the richer protocol shows (``examples/test_accumulators.py`` finds every one):

- :class:`ToolInputsByName`: a second call to the same tool overwrites the first's input;
- :class:`DropsCitations`: ``citations_delta`` s are ignored, so sources vanish;
- :class:`ParsesJsonAtTheEnd`: ``json.loads`` on each tool's input once the message ends,
  which raises when ``max_tokens`` cut the JSON;
- :class:`CallsByPosition`: OpenAI tool-call pieces keyed by their place in the chunk's
  list instead of their ``index``, so interleaved parallel calls get mixed up.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from jiter import from_json

__all__ = ["MessageAccumulator", "CompletionAccumulator", "ToolInputsByName", "DropsCitations", "ParsesJsonAtTheEnd", "CallsByPosition", "BUGS"]


def _payload(event: Any) -> dict[str, Any]:
    """An SDK event object (or an already decoded event) as the API's JSON."""
    return event.to_dict(mode="json") if hasattr(event, "to_dict") else dict(event)


def read_partial_json(text: str) -> Any:
    """A tool input from JSON that may stop anywhere (``max_tokens``): what its complete part
    says, as the SDKs read it (with jiter, which they depend on)."""
    return from_json(text.encode(), partial_mode=True) if text else {}


class MessageAccumulator:
    """The Anthropic ``Message`` a stream of Messages events builds, one event at a time."""

    def __init__(self) -> None:
        self.message: dict[str, Any] | None = None
        self.tool_json: dict[int, str] = {}

    def feed(self, event: Any) -> None:
        payload = _payload(event)
        kind = payload["type"]
        if kind == "message_start":
            self.message = copy.deepcopy(payload["message"])
            return
        message = self.message
        if message is None:
            raise ValueError(f"{kind} before message_start")
        if kind == "content_block_start":
            self.start_block(payload["index"], copy.deepcopy(payload["content_block"]))
        elif kind == "content_block_delta":
            self.delta(payload["index"], payload["delta"])
        elif kind == "content_block_stop":
            self.stop_block(payload["index"])
        elif kind == "message_delta":
            message["stop_reason"] = payload["delta"]["stop_reason"]
            message["stop_sequence"] = payload["delta"].get("stop_sequence")
            if payload["delta"].get("container") is not None:  # after server-side code execution
                message["container"] = payload["delta"]["container"]
            message["usage"].update(payload.get("usage") or {})  # cumulative totals: they replace
        elif kind == "message_stop":
            self.finish()

    def start_block(self, index: int, block: dict[str, Any]) -> None:
        assert self.message is not None
        self.message["content"].append(block)
        if block["type"] in ("tool_use", "server_tool_use"):
            self.tool_json[index] = ""

    def delta(self, index: int, delta: dict[str, Any]) -> None:
        assert self.message is not None
        block = self.message["content"][index]
        kind = delta["type"]
        if kind == "text_delta":
            block["text"] += delta["text"]
        elif kind == "citations_delta":
            block.setdefault("citations", []).append(delta["citation"])
        elif kind == "thinking_delta":
            block["thinking"] += delta["thinking"]
        elif kind == "signature_delta":
            block["signature"] = delta["signature"]
        elif kind == "input_json_delta":
            self.tool_json[index] += delta["partial_json"]

    def stop_block(self, index: int) -> None:
        assert self.message is not None
        if index in self.tool_json:
            text = self.tool_json.pop(index)
            self.message["content"][index]["input"] = json.loads(text) if text else {}

    def finish(self) -> None:
        """Blocks still open (``max_tokens`` cut them) keep what their JSON says so far."""
        assert self.message is not None
        for index, text in self.tool_json.items():
            self.message["content"][index]["input"] = read_partial_json(text)
        self.tool_json.clear()


class CompletionAccumulator:
    """The ``chat.completion`` a stream of Chat Completions chunks builds, one chunk at a time."""

    def __init__(self) -> None:
        self.completion: dict[str, Any] | None = None
        self.choices: dict[int, dict[str, Any]] = {}
        self.calls: dict[int, dict[int, dict[str, Any]]] = {}

    def feed(self, chunk: Any) -> None:
        payload = _payload(chunk)
        if self.completion is None:
            self.completion = {key: payload.get(key) for key in ("id", "created", "model", "system_fingerprint")}
            self.completion.update(object="chat.completion", usage=None)
        if payload.get("usage"):
            self.completion["usage"] = payload["usage"]
        for choice in payload["choices"]:
            index = choice["index"]
            state = self.choices.setdefault(index, {"index": index, "message": {"role": "assistant", "content": None, "refusal": None}, "finish_reason": None, "logprobs": None})
            delta = choice["delta"]
            message = state["message"]
            for field in ("content", "refusal"):
                if delta.get(field) is not None:
                    message[field] = (message[field] or "") + delta[field]
            calls = self.calls.setdefault(index, {})
            for position, call in enumerate(delta.get("tool_calls") or ()):
                slot = calls.setdefault(self.call_key(position, call), {"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
                if call.get("id"):
                    slot["id"] = call["id"]
                function = call.get("function") or {}
                slot["function"]["name"] += function.get("name") or ""
                slot["function"]["arguments"] += function.get("arguments") or ""
            if choice.get("finish_reason"):
                state["finish_reason"] = choice["finish_reason"]

    def call_key(self, position: int, call: dict[str, Any]) -> int:
        """Which call a piece belongs to: its ``index`` (not its place in the chunk's list)."""
        return call["index"]

    def result(self) -> dict[str, Any]:
        assert self.completion is not None
        choices = []
        for index in sorted(self.choices):
            choice = copy.deepcopy(self.choices[index])
            calls = self.calls.get(index) or {}
            if calls:
                choice["message"]["tool_calls"] = [calls[k] for k in sorted(calls)]
            choices.append(choice)
        return {**self.completion, "choices": choices}


# ---------------------------------------------------------------- as often written


class ToolInputsByName(MessageAccumulator):
    """Keeps each tool's input in a dict by tool name (handy for a UI): a second call to the
    same tool overwrites the first call's input."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: dict[str, Any] = {}

    def stop_block(self, index: int) -> None:
        super().stop_block(index)
        assert self.message is not None
        block = self.message["content"][index]
        if block["type"] == "tool_use":
            self.inputs[block["name"]] = block["input"]

    def finish(self) -> None:
        super().finish()
        assert self.message is not None
        for block in self.message["content"]:
            if block["type"] == "tool_use" and block["name"] in self.inputs:
                block["input"] = self.inputs[block["name"]]


class DropsCitations(MessageAccumulator):
    """Handles the deltas it knows and ignores the rest, citations among them."""

    def delta(self, index: int, delta: dict[str, Any]) -> None:
        if delta["type"] != "citations_delta":
            super().delta(index, delta)


class ParsesJsonAtTheEnd(MessageAccumulator):
    """Parses every tool's input with ``json.loads`` once the message ends."""

    def finish(self) -> None:
        assert self.message is not None
        for index, text in self.tool_json.items():
            self.message["content"][index]["input"] = json.loads(text) if text else {}
        self.tool_json.clear()


class CallsByPosition(CompletionAccumulator):
    """Keys tool-call pieces by their place in the chunk's ``tool_calls`` list."""

    def call_key(self, position: int, call: dict[str, Any]) -> int:
        return position


BUGS = {
    "a second tool call overwrites the first": ToolInputsByName,
    "citations dropped": DropsCitations,
    "JSON parsed at max_tokens": ParsesJsonAtTheEnd,
    "tool calls keyed by position instead of index": CallsByPosition,
}
"""Each buggy accumulator, by what goes wrong."""
