"""Anthropic Messages API: error types, bodies, headers and the mid-stream ``event: error`` as
the API sends them, and protocol-valid stream synthesis.

:func:`message_stream` builds the event sequence the API sends for a message made of
content blocks (text with citations, thinking with its signature, redacted thinking, tool
calls, server tool calls and their results, MCP tool calls and their results, a compaction
summary), each given as the deltas it streams in, and
the final ``Message`` those events encode. :func:`message_events` gives the events alone.
Strategies, ``streamreel synth`` and tests all build on them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
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
    "Citation",
    "TextBlock",
    "ThinkingBlock",
    "RedactedThinkingBlock",
    "ToolUseBlock",
    "ServerToolUseBlock",
    "ServerToolResultBlock",
    "McpToolUseBlock",
    "McpToolResultBlock",
    "CompactionBlock",
    "Block",
    "CODE_EXECUTION_TOOLS",
    "STOP_REASONS",
    "MessageStream",
    "message_events",
    "message_stream",
    "tool_input",
    "insert_pings",
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
class Citation:
    """A citation a text block streams as its own ``citations_delta``.

    ``kind`` is ``web_search_result_location`` (a web search result: ``url``, ``title``) or
    ``char_location`` (a passage of a document from the request: ``document_index``,
    ``title`` as the document title, and the passage's character offsets).
    """

    cited_text: str
    url: str = "https://example.com/"
    title: str = "Example"
    kind: str = "web_search_result_location"
    document_index: int = 0
    start_char_index: int = 0

    def payload(self) -> dict[str, Any]:
        """The citation as the API writes it in the delta and in the final text block."""
        if self.kind == "char_location":
            return {
                "type": "char_location",
                "cited_text": self.cited_text,
                "document_index": self.document_index,
                "document_title": self.title,
                "start_char_index": self.start_char_index,
                "end_char_index": self.start_char_index + len(self.cited_text),
            }
        if self.kind != "web_search_result_location":
            raise ValueError(f"citation kind must be web_search_result_location or char_location, got {self.kind!r}")
        token = base64.b64encode(hashlib.sha256(f"{self.url}{self.cited_text}".encode()).digest()).decode()
        return {"type": "web_search_result_location", "cited_text": self.cited_text, "url": self.url, "title": self.title, "encrypted_index": "Eo8B" + token}


@dataclass(frozen=True)
class TextBlock:
    """Text streamed as ``text_delta`` s; each of ``citations`` comes first as a ``citations_delta``
    (the API starts a cited passage with its citation, and the block's start then carries
    ``"citations": []``)."""

    deltas: tuple[str, ...]
    citations: tuple[Citation, ...] = ()


SYNTHETIC_SIGNATURE = "EqQBCkYIBxgCKkDsynthesizedsignaturebystreamreel=="


@dataclass(frozen=True)
class ThinkingBlock:
    """Thinking streamed as ``thinking_delta`` s, then its ``signature_delta`` (None: no signature,
    as when ``max_tokens`` cuts the block)."""

    deltas: tuple[str, ...]
    signature: str | None = SYNTHETIC_SIGNATURE


@dataclass(frozen=True)
class RedactedThinkingBlock:
    """Encrypted thinking: arrives whole in its ``content_block_start``, with no deltas."""

    data: str = "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpPkNRj2YfWXGmKDxH4mPnZ5sQ7vB5URj"


@dataclass(frozen=True)
class ToolUseBlock:
    """A tool call whose input JSON streams as ``input_json_delta`` pieces (joined, they parse)."""

    name: str
    json_deltas: tuple[str, ...]
    id: str = ""


@dataclass(frozen=True)
class ServerToolUseBlock:
    """A server tool call (``web_search``, ``web_fetch``, ``bash_code_execution``,
    ``tool_search_tool_regex``...): the API runs it itself; its input streams like a tool
    call's, and a :class:`ServerToolResultBlock` follows (after the other calls of a parallel
    run; in the next message when the turn paused first)."""

    name: str = "web_search"
    json_deltas: tuple[str, ...] = ()
    id: str = ""


@dataclass(frozen=True)
class ServerToolResultBlock:
    """A server tool's result (``web_search_tool_result``, ``web_fetch_tool_result``,
    ``bash_code_execution_tool_result``...), whole in its ``content_block_start``.

    ``content`` is the JSON the API puts there (a list of ``web_search_result`` s, a result or
    an error object); ``tool_use_id`` defaults to the id of the earliest server-side call of
    the message still without a result (results follow a parallel run of calls in order), or,
    when there is none (a message that resumes a paused turn starts with the result), an id
    derived from the content.
    """

    content: Any = ()
    kind: str = "web_search_tool_result"
    tool_use_id: str = ""


@dataclass(frozen=True)
class McpToolUseBlock:
    """A call to a tool of a remote MCP server (the MCP connector, a beta): its input streams
    like a tool call's, and a :class:`McpToolResultBlock` follows."""

    name: str
    json_deltas: tuple[str, ...] = ()
    server_name: str = "deepwiki"
    id: str = ""


@dataclass(frozen=True)
class McpToolResultBlock:
    """An MCP tool's result, whole in its ``content_block_start``: ``content`` is a list of text
    blocks (or a string); ``tool_use_id`` pairs as :class:`ServerToolResultBlock`'s does."""

    content: Any = ()
    is_error: bool = False
    tool_use_id: str = ""


@dataclass(frozen=True)
class CompactionBlock:
    """A summary of the conversation so far (server-side compaction, a beta): the block starts
    with ``"content": null`` and one ``compaction_delta`` carries the whole summary. A message
    with one also reports ``usage.iterations`` (the compaction's and the message's) and
    ``context_management`` in its ``message_delta``."""

    content: str = "## Summary\nThe user asked about the weather in Paris."


Block = Union[
    TextBlock,
    ThinkingBlock,
    RedactedThinkingBlock,
    ToolUseBlock,
    ServerToolUseBlock,
    ServerToolResultBlock,
    McpToolUseBlock,
    McpToolResultBlock,
    CompactionBlock,
]

STOP_REASONS = ("end_turn", "tool_use", "max_tokens", "stop_sequence", "pause_turn", "refusal", "model_context_window_exceeded", "compaction")
"""Every ``stop_reason`` the Messages API ends a stream with (``compaction``: a beta, when
compaction is set to pause after its summary)."""

CODE_EXECUTION_TOOLS = frozenset({"code_execution", "bash_code_execution", "text_editor_code_execution"})
"""Server tools that run in a container: a message calling one reports its ``container``."""


@dataclass(frozen=True)
class MessageStream:
    """A synthesized message: the ``events`` the API streams and the ``message`` they encode
    (the final ``Message`` in the API's JSON shape, which a correct accumulator rebuilds)."""

    events: tuple[Event, ...]
    message: dict[str, Any]


def estimate_tokens(text: str) -> int:
    """A rough token count (about four characters a token), for synthetic usage figures."""
    return max(1, (len(text) + 3) // 4) if text else 0


def _dumps(payload: dict) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def _ev(name: str, payload: dict) -> Event:
    return Event(event=name, data=_dumps(payload))


def _stable_id(prefix: str, seed: str) -> str:
    return prefix + hashlib.sha256(seed.encode()).hexdigest()[:24]


_PING = Event(event="ping", data='{"type": "ping"}')


def message_events(blocks: Sequence[Block], **options: Any) -> tuple[Event, ...]:
    """The events of one streamed message (``t`` = 0; give them times with a timing function).

    Takes the options of :func:`message_stream`, which also gives the message they encode.
    """
    return message_stream(blocks, **options).events


def message_stream(
    blocks: Sequence[Block],
    *,
    model: str = "claude-sonnet-4-6",
    message_id: str | None = None,
    input_tokens: int = 12,
    output_tokens: int | None = None,
    cache_creation_input_tokens: int = 0,
    cache_read_input_tokens: int = 0,
    stop_reason: str | None = None,
    stop_sequence: str | None = None,
    ping: bool = True,
    pings: Sequence[int] | None = None,
    open_last: bool = False,
    delta_usage: bool = False,
    delta_input_tokens: int | None = None,
) -> MessageStream:
    """One streamed message: its events in the API's order and the ``Message`` they encode.

    ``message_start`` first, each block's start, deltas and stop with its index, then
    ``message_delta`` (stop reason and usage) and ``message_stop``. ``stop_reason`` defaults
    to ``tool_use`` when the last block is a tool call, else ``end_turn``; ``open_last``
    leaves the last block without its ``content_block_stop``, as ``max_tokens`` does when it
    cuts a block (a tool's input then holds what its unfinished JSON parses to, as the SDKs
    read partial JSON). ``pings`` puts a ping before each listed position among the other
    events (1 = right after ``message_start``; repeats give several); without it, ``ping``
    puts one after the first block's start, as the API usually does. ``output_tokens`` (the
    final usage) defaults to an estimate from the streamed text; with ``delta_usage`` the
    ``message_delta`` repeats the input and cache totals too (``delta_input_tokens`` if given),
    as newer API versions do. What the blocks imply comes too: ``usage.server_tool_use`` when
    a server-side tool ran, the ``container`` after code execution, ``usage.iterations`` and
    ``context_management`` after a compaction. Ids are derived from the content, so the same
    input always gives the same bytes.
    """
    fingerprint = repr(blocks)
    mid = message_id or _stable_id("msg_01", fingerprint)
    start_usage: dict[str, Any] = {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": cache_creation_input_tokens,
        "cache_read_input_tokens": cache_read_input_tokens,
        "output_tokens": 1,
    }
    out: list[Event] = [
        _ev(
            "message_start",
            {
                "type": "message_start",
                "message": {"id": mid, "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage},
            },
        )
    ]
    content: list[dict[str, Any]] = []
    produced: list[str] = []
    pending: list[str] = []  # server-side calls still without their result, oldest first
    searches = {"web_search": 0, "web_fetch": 0}
    server_side = code_execution = compaction = fetching = False
    last = len(blocks) - 1
    for index, block in enumerate(blocks):
        start: dict[str, Any]
        deltas: list[dict[str, Any]] = []
        if isinstance(block, TextBlock):
            start = {"citations": [], "type": "text", "text": ""} if block.citations else {"type": "text", "text": ""}
            cited = [c.payload() for c in block.citations]
            deltas = [{"type": "citations_delta", "citation": c} for c in cited]
            deltas += [{"type": "text_delta", "text": d} for d in block.deltas]
            text = "".join(block.deltas)
            produced.append(text)
            final: dict[str, Any] = {"citations": cited, "type": "text", "text": text} if cited else {"type": "text", "text": text}
        elif isinstance(block, ThinkingBlock):
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": d} for d in block.deltas]
            if block.signature is not None:
                deltas.append({"type": "signature_delta", "signature": block.signature})
            thinking = "".join(block.deltas)
            produced.append(thinking)
            final = {"type": "thinking", "thinking": thinking, "signature": block.signature or ""}
        elif isinstance(block, RedactedThinkingBlock):
            start = {"type": "redacted_thinking", "data": block.data}
            final = dict(start)
        elif isinstance(block, (ToolUseBlock, ServerToolUseBlock, McpToolUseBlock)):
            kind, prefix = _CALLS[type(block)]
            tid = block.id or _stable_id(prefix, f"{fingerprint}{index}")
            start = {"type": kind, "id": tid, "name": block.name, "input": {}}
            if isinstance(block, McpToolUseBlock):
                start["server_name"] = block.server_name
            pieces = block.json_deltas if block.json_deltas and block.json_deltas[0] == "" else ("", *block.json_deltas)
            deltas = [{"type": "input_json_delta", "partial_json": d} for d in pieces]
            spelled = "".join(block.json_deltas)
            produced.append(spelled)
            final = {**start, "input": tool_input(spelled)}
            if kind != "tool_use":
                pending.append(tid)
                server_side = True
                code_execution |= block.name in CODE_EXECUTION_TOOLS and kind == "server_tool_use"
                fetching |= block.name == "web_fetch"
        elif isinstance(block, (ServerToolResultBlock, McpToolResultBlock)):
            content_json = list(block.content) if isinstance(block.content, tuple) else block.content
            tool_use_id = block.tool_use_id or (pending.pop(0) if pending else _stable_id("srvtoolu_01", f"{fingerprint}{index}"))
            if block.tool_use_id in pending:
                pending.remove(block.tool_use_id)
            if isinstance(block, McpToolResultBlock):
                start = {"type": "mcp_tool_result", "tool_use_id": tool_use_id, "is_error": block.is_error, "content": content_json}
            else:
                start = {"type": block.kind, "tool_use_id": tool_use_id, "content": content_json}
                searched = _REQUESTS.get(block.kind)
                if searched is not None:
                    searches[searched] += 1
            server_side = True
            final = dict(start)
        elif isinstance(block, CompactionBlock):
            start = {"type": "compaction", "content": None}
            deltas = [{"type": "compaction_delta", "content": block.content}]
            final = {"type": "compaction", "content": block.content}
            compaction = server_side = True
        else:
            raise TypeError(f"not a content block: {block!r}")
        out.append(_ev("content_block_start", {"type": "content_block_start", "index": index, "content_block": start}))
        out.extend(_ev("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}) for d in deltas)
        if not (open_last and index == last):
            out.append(_ev("content_block_stop", {"type": "content_block_stop", "index": index}))
        content.append(final)
    if stop_reason is None:
        stop_reason = "tool_use" if blocks and isinstance(blocks[-1], ToolUseBlock) else "end_turn"
    final_usage = dict(start_usage)
    final_usage["output_tokens"] = estimate_tokens("".join(produced)) if output_tokens is None else output_tokens
    delta_usage_payload: dict[str, Any] = {"output_tokens": final_usage["output_tokens"]}
    if delta_usage or compaction:
        if delta_input_tokens is None and compaction:
            delta_input_tokens = estimate_tokens("".join(b.content for b in blocks if isinstance(b, CompactionBlock))) + 12
        final_usage["input_tokens"] = input_tokens if delta_input_tokens is None else delta_input_tokens
        delta_usage_payload = {k: final_usage[k] for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")}
    if server_side:
        used = {"web_search_requests": searches["web_search"]}
        if delta_usage or fetching or searches["web_fetch"]:
            used["web_fetch_requests"] = searches["web_fetch"]
        final_usage["server_tool_use"] = delta_usage_payload["server_tool_use"] = used
    delta: dict[str, Any] = {"stop_reason": stop_reason, "stop_sequence": stop_sequence}
    extra: dict[str, Any] = {}
    if code_execution:
        delta["container"] = extra["container"] = {"id": _stable_id("container_011C", fingerprint), "expires_at": "2025-10-14T10:02:00.044495Z"}
    delta_event: dict[str, Any] = {"type": "message_delta", "delta": delta, "usage": delta_usage_payload}
    if compaction:
        final_usage["iterations"] = delta_usage_payload["iterations"] = [
            {"input_tokens": input_tokens, "output_tokens": estimate_tokens("".join(b.content for b in blocks if isinstance(b, CompactionBlock))), **_cache(start_usage), "type": "compaction"},
            {"input_tokens": final_usage["input_tokens"], "output_tokens": final_usage["output_tokens"], **_cache(start_usage), "type": "message"},
        ]
        delta_event["context_management"] = extra["context_management"] = {"applied_edits": []}
    out.append(_ev("message_delta", delta_event))
    out.append(_ev("message_stop", {"type": "message_stop"}))
    if pings is None:
        pings = (2,) if ping and blocks else ()
    events = insert_pings(out, pings)
    message = {"id": mid, "type": "message", "role": "assistant", "model": model, "content": content, "stop_reason": stop_reason, "stop_sequence": stop_sequence, "usage": final_usage, **extra}
    return MessageStream(events, message)


def _cache(usage: Mapping[str, Any]) -> dict[str, Any]:
    return {"cache_read_input_tokens": usage["cache_read_input_tokens"], "cache_creation_input_tokens": usage["cache_creation_input_tokens"]}


_CALLS: dict[type, tuple[str, str]] = {ToolUseBlock: ("tool_use", "toolu_01"), ServerToolUseBlock: ("server_tool_use", "srvtoolu_01"), McpToolUseBlock: ("mcp_tool_use", "mcptoolu_01")}
_REQUESTS = {"web_search_tool_result": "web_search", "web_fetch_tool_result": "web_fetch"}
"""Result kinds counted in ``usage.server_tool_use``."""


def insert_pings(events: Sequence[Event], positions: Sequence[int]) -> tuple[Event, ...]:
    """``events`` with a ping before each listed position (1 = before the second event)."""
    if not positions:
        return tuple(events)
    bad = [p for p in positions if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p < len(events)]
    if bad:
        raise ValueError(f"ping positions must be between 1 and {len(events) - 1} (pings go between events), got {bad}")
    out: list[Event] = []
    at = sorted(positions)
    k = 0
    for i, ev in enumerate(events):
        while k < len(at) and at[k] == i:
            out.append(_PING)
            k += 1
        out.append(ev)
    return tuple(out)


# ---------------------------------------------------------------- partial JSON


def tool_input(spelled: str) -> Any:
    """The input a tool call's streamed JSON gives: the parsed value, ``{}`` before any JSON
    arrived, and for JSON cut short (``max_tokens``) what its complete part says, as the
    SDKs read it: open objects and lists kept, an unfinished string, number or literal
    (and a key left without its value) dropped."""
    if not spelled:
        return {}
    try:
        return json.loads(spelled)
    except ValueError:
        pass
    value, _ = _Partial(spelled).value()
    return {} if value is _DROP else value


_DROP: Any = object()
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_NUMBER_CHARS = frozenset("-+.eE0123456789")
_LITERALS = {"true": True, "false": False, "null": None}


class _Partial:
    """A reader for a JSON text that may stop anywhere; each method returns (value, finished)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def _ws(self) -> bool:
        """Skip whitespace; False at the end of the text."""
        text, i = self.text, self.i
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        self.i = i
        return i < len(text)

    def value(self) -> tuple[Any, bool]:
        if not self._ws():
            return _DROP, False
        ch = self.text[self.i]
        if ch == "{":
            return self._object()
        if ch == "[":
            return self._array()
        if ch == '"':
            return self._string()
        if ch in "-0123456789":
            end = self.i
            while end < len(self.text) and self.text[end] in _NUMBER_CHARS:
                end += 1
            token, self.i = self.text[self.i : end], end
            if end < len(self.text):
                return json.loads(token), True
            return (json.loads(token) if _NUMBER.fullmatch(token) else _DROP), False
        for word, literal in _LITERALS.items():
            if self.text.startswith(word, self.i):
                self.i += len(word)
                return literal, True
        self.i = len(self.text)
        return _DROP, False

    def _string(self) -> tuple[Any, bool]:
        text, i = self.text, self.i + 1
        while i < len(text):
            if text[i] == "\\":
                i += 2
                continue
            if text[i] == '"':
                value = json.loads(text[self.i : i + 1])
                self.i = i + 1
                return value, True
            i += 1
        self.i = len(text)
        return _DROP, False

    def _object(self) -> tuple[Any, bool]:
        out: dict[str, Any] = {}
        self.i += 1
        while True:
            if not self._ws():
                return out, False
            if self.text[self.i] == "}":
                self.i += 1
                return out, True
            if self.text[self.i] == ",":
                self.i += 1
                continue
            key, done = self._string()
            if not done or not self._ws():
                return out, False
            self.i += 1  # the colon
            value, done = self.value()
            if value is not _DROP:
                out[key] = value
            if not done:
                return out, False

    def _array(self) -> tuple[Any, bool]:
        out: list[Any] = []
        self.i += 1
        while True:
            if not self._ws():
                return out, False
            if self.text[self.i] == "]":
                self.i += 1
                return out, True
            if self.text[self.i] == ",":
                self.i += 1
                continue
            value, done = self.value()
            if value is not _DROP:
                out.append(value)
            if not done:
                return out, False

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
