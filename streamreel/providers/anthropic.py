"""Anthropic Messages API: error types, bodies, headers and the mid-stream ``event: error`` as
the API sends them, and protocol-valid stream synthesis.

:func:`message_events` builds the event sequence the API sends for a message made of
thinking, text and tool-use blocks, each given as the deltas it streams in: message_start
first, block indices in order, a ping after the first block start, cumulative usage, then
message_delta and message_stop. Strategies, ``streamreel synth`` and tests all build on it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence, Union

from ..sse import Event
from . import Dialect, Synth, register, retry_headers

__all__ = [
    "ERROR_TYPES",
    "error_type_for",
    "status_for",
    "error_body",
    "error_headers",
    "error_event_data",
    "error_event",
    "request_id",
    "TextBlock",
    "ThinkingBlock",
    "ToolUseBlock",
    "Block",
    "message_events",
    "estimate_tokens",
    "Anthropic",
    "DIALECT",
]

ERROR_TYPES: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "There was an issue with the format or content of your request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}
"""HTTP status -> (error type, the API's usual message)."""

_BY_TYPE = {kind: (status, message) for status, (kind, message) in ERROR_TYPES.items()}


def status_for(error_type: str) -> int:
    """The HTTP status the API pairs with an error type (500 for a type it does not know)."""
    return _BY_TYPE.get(error_type, (500, ""))[0]


def error_type_for(status: int) -> str:
    if status in ERROR_TYPES:
        return ERROR_TYPES[status][0]
    return "api_error" if status >= 500 else "invalid_request_error"


def request_id(*parts: object) -> str:
    """A deterministic request id in the API's shape (``req_011C...``), derived from ``parts``."""
    digest = hashlib.sha256(repr(parts).encode()).hexdigest()
    return "req_011C" + digest[:20]


def error_body(status: int, *, message: str | None = None, error_type: str | None = None, request_id: str | None = None) -> dict:
    kind = error_type or error_type_for(status)
    default = ERROR_TYPES.get(status, ("", "Internal server error" if status >= 500 else "Bad request"))[1]
    if error_type and error_type in _BY_TYPE:
        default = _BY_TYPE[error_type][1]
    body: dict = {"type": "error", "error": {"type": kind, "message": message or default}}
    if request_id:
        body["request_id"] = request_id
    return body


def error_headers(status: int, *, retry_after_s: float | None = None, request_id: str | None = None, should_retry: bool | None = None) -> dict[str, str]:
    """Headers the API sends with an error, with its request id as ``request-id``."""
    headers = retry_headers(status, retry_after_s=retry_after_s, should_retry=should_retry)
    if request_id:
        headers["request-id"] = request_id
    return headers


def error_event_data(error_type: str = "overloaded_error", message: str | None = None) -> str:
    """The ``data`` of a mid-stream ``event: error``, spaced as the API writes it (like its pings)."""
    default = _BY_TYPE.get(error_type, (500, "Internal server error"))[1]
    return json.dumps({"type": "error", "error": {"type": error_type, "message": message or default}})


def error_event(t: float, error_type: str = "overloaded_error", message: str | None = None) -> Event:
    """A mid-stream ``event: error`` at ``t`` ms."""
    return Event(t=t, event="error", data=error_event_data(error_type, message))


# ---------------------------------------------------------------- synthesis


@dataclass(frozen=True)
class TextBlock:
    deltas: tuple[str, ...]


@dataclass(frozen=True)
class ThinkingBlock:
    deltas: tuple[str, ...]
    signature: str = "EqQBCkYIBxgCKkDsynthesizedsignaturebystreamreel=="


@dataclass(frozen=True)
class ToolUseBlock:
    """A tool call whose input JSON streams as ``input_json_delta`` pieces (joined, they parse)."""

    name: str
    json_deltas: tuple[str, ...]
    id: str = ""


Block = Union[TextBlock, ThinkingBlock, ToolUseBlock]


def estimate_tokens(text: str) -> int:
    """A rough token count (about four characters a token), for synthetic usage figures."""
    return max(1, (len(text) + 3) // 4) if text else 0


def _dumps(payload: dict) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def _ev(name: str, payload: dict) -> Event:
    return Event(event=name, data=_dumps(payload))


def _stable_id(prefix: str, seed: str) -> str:
    return prefix + hashlib.sha256(seed.encode()).hexdigest()[:24]


def message_events(
    blocks: Sequence[Block],
    *,
    model: str = "claude-sonnet-4-6",
    message_id: str | None = None,
    input_tokens: int = 12,
    stop_reason: str | None = None,
    stop_sequence: str | None = None,
    ping: bool = True,
    output_tokens: int | None = None,
) -> tuple[Event, ...]:
    """The events of one streamed message (``t`` = 0; give them times with a timing function).

    ``stop_reason`` defaults to ``tool_use`` when the last block is a tool call, else ``end_turn``.
    ``output_tokens`` (the final usage) defaults to an estimate from the streamed text.
    Ids are derived from the content, so the same input always gives the same bytes.
    """
    fingerprint = repr(blocks)
    mid = message_id or _stable_id("msg_01", fingerprint)
    out: list[Event] = [
        _ev(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": mid,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": input_tokens, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1},
                },
            },
        )
    ]
    produced = ""
    for index, block in enumerate(blocks):
        start: dict[str, object]
        deltas: list[dict[str, str]]
        if isinstance(block, TextBlock):
            start = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": d} for d in block.deltas]
            produced += "".join(block.deltas)
        elif isinstance(block, ThinkingBlock):
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": d} for d in block.deltas]
            deltas.append({"type": "signature_delta", "signature": block.signature})
            produced += "".join(block.deltas)
        elif isinstance(block, ToolUseBlock):
            tid = block.id or _stable_id("toolu_01", f"{fingerprint}{index}")
            start = {"type": "tool_use", "id": tid, "name": block.name, "input": {}}
            pieces = block.json_deltas if block.json_deltas and block.json_deltas[0] == "" else ("", *block.json_deltas)
            deltas = [{"type": "input_json_delta", "partial_json": d} for d in pieces]
            produced += "".join(block.json_deltas)
        else:
            raise TypeError(f"not a content block: {block!r}")
        out.append(_ev("content_block_start", {"type": "content_block_start", "index": index, "content_block": start}))
        if ping and index == 0:
            out.append(Event(event="ping", data='{"type": "ping"}'))
        out.extend(_ev("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}) for d in deltas)
        out.append(_ev("content_block_stop", {"type": "content_block_stop", "index": index}))
    if stop_reason is None:
        stop_reason = "tool_use" if blocks and isinstance(blocks[-1], ToolUseBlock) else "end_turn"
    out.append(
        _ev(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                "usage": {"output_tokens": estimate_tokens(produced) if output_tokens is None else output_tokens},
            },
        )
    )
    out.append(_ev("message_stop", {"type": "message_stop"}))
    return tuple(out)


# ---------------------------------------------------------------- the dialect


_EVENT_NAMES = frozenset({"message_start", "content_block_start", "content_block_delta", "message_stop"})
PING_DATA = '{"type": "ping"}'
"""The ping payload, with the space after the colon that the API really sends."""


class Anthropic(Dialect):
    """The Messages API (``POST /v1/messages``): named SSE events from ``message_start`` to ``message_stop``."""

    name = "anthropic"
    label = "Anthropic Messages"
    delta_tokens = (1, 5)
    has_thinking = True

    def claims(self, route: str, headers: Mapping[str, str]) -> bool:
        return route.endswith("/messages")

    def claims_events(self, events: Sequence[Event]) -> bool:
        for ev in events:
            if ev.event in _EVENT_NAMES:
                return True
            if ev.event is None and ev.type in _EVENT_NAMES:
                return True
        return False

    def path(self, model: str | None = None) -> str:
        return "/v1/messages"

    def is_complete(self, events: Sequence[Event]) -> bool:
        last = _last_data_event(events)
        return last is not None and (last.type in ("message_stop", "error") or last.event == "error")

    def keepalive(self, t: float) -> Event:
        return Event(t=t, event="ping", data=PING_DATA)

    def error_body(self, status: int, *, message: str | None = None, error_type: str | None = None, request_id: str | None = None) -> Any:
        return error_body(status, message=message, error_type=error_type, request_id=request_id)

    def error_headers(self, status: int, *, retry_after_s: float | None = None, request_id: str | None = None, should_retry: bool | None = None) -> dict[str, str]:
        return error_headers(status, retry_after_s=retry_after_s, request_id=request_id, should_retry=should_retry)

    def request_id(self, *parts: object) -> str:
        return request_id(*parts)

    def stream_error(self, before: Sequence[Event], t: float, error_type: str, message: str | None = None) -> tuple[Event, ...]:
        return (error_event(t, error_type, message),)

    def delta_text(self, payload: Any) -> str:
        if not isinstance(payload, dict) or payload.get("type") != "content_block_delta":
            return ""
        delta = payload.get("delta")
        if isinstance(delta, dict):
            for key in ("text", "thinking", "partial_json"):
                value = delta.get(key)
                if isinstance(value, str):
                    return value
        return ""

    def usage_tokens(self, payload: Any) -> int | None:
        if isinstance(payload, dict) and payload.get("type") == "message_delta":
            usage = payload.get("usage")
            return _int(usage.get("output_tokens")) if isinstance(usage, dict) else None
        return None

    def stop_reason(self, payload: Any, name: str | None = None) -> str | None:
        if not isinstance(payload, dict):
            return None
        kind = payload.get("type")
        if kind == "message_delta":
            delta = payload.get("delta")
            return delta.get("stop_reason") if isinstance(delta, dict) else None
        if kind == "error":
            err = payload.get("error")
            detail = err.get("type") if isinstance(err, dict) else None
            return f"error: {detail}" if detail else "error"
        return None

    def synth(self, reply: Synth) -> tuple[Event, ...]:
        blocks: list[Block] = []
        if reply.thinking:
            blocks.append(ThinkingBlock(reply.thinking))
        if reply.text:
            blocks.append(TextBlock(reply.text))
        if reply.tool is not None:
            blocks.append(ToolUseBlock(reply.tool[0], reply.tool[1]))
        named = {"model": reply.model} if reply.model else {}
        return message_events(blocks, output_tokens=reply.output_tokens, **named)


def _last_data_event(events: Sequence[Event]) -> Event | None:
    for ev in reversed(events):
        if not ev.is_comment:
            return ev
    return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


DIALECT = register(Anthropic())
