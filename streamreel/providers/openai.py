"""OpenAI Chat Completions: error bodies, headers and mid-stream errors as the API sends them, and synthesis.

The Responses API shares the error bodies and headers; its stream is its own dialect
(:mod:`streamreel.providers.openai_responses`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..sse import Event
from . import Dialect, Synth, register, retry_headers

__all__ = [
    "ERROR_TYPES",
    "error_body",
    "error_headers",
    "request_id",
    "stream_error_events",
    "is_responses_stream",
    "ToolCall",
    "Choice",
    "FINISH_REASONS",
    "ChatStream",
    "sequential_schedule",
    "chunk_count",
    "chat_stream",
    "chat_events",
    "OpenAIChat",
    "DIALECT",
]

ERROR_TYPES: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Country, region, or territory not supported"),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def _entry(status: int) -> tuple[str, str | None, str]:
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    if status == 529:  # Anthropic's "overloaded"; OpenAI says it with a 503
        return ERROR_TYPES[503]
    if status >= 500:
        return ERROR_TYPES[500]
    return ("invalid_request_error", None, "Invalid request.")


def error_body(status: int, *, message: str | None = None, error_type: str | None = None) -> dict:
    kind, code, default = _entry(status)
    return {"error": {"message": message or default, "type": error_type or kind, "param": None, "code": code}}


def request_id(*parts: object) -> str:
    """A deterministic ``x-request-id`` in the API's shape (``req_`` and 32 hex digits)."""
    return "req_" + hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def error_headers(status: int, *, retry_after_s: float | None = None, request_id: str | None = None, should_retry: bool | None = None) -> dict[str, str]:
    """Headers the API sends with an error, with its request id as ``x-request-id``."""
    headers = retry_headers(status, retry_after_s=retry_after_s, should_retry=should_retry)
    if request_id:
        headers["x-request-id"] = request_id
    return headers


def is_responses_stream(events: Sequence[Event]) -> bool:
    """Whether events come from the Responses API (``event: response.*``) rather than Chat Completions."""
    return any(ev.event is not None and ev.event.startswith("response.") for ev in events[:5])


def stream_error_events(events_before: Sequence[Event], t: float, status: int, message: str | None = None) -> tuple[Event, ...]:
    """What the API sends when a stream fails after ``events_before``.

    Chat Completions: a data-only chunk ``{"error": {...}}`` followed by ``data: [DONE]``
    (as proxies such as OpenRouter send it, so a parser that waits for ``[DONE]`` still
    stops; the openai SDK raises ``APIError`` at the error chunk). Responses: see
    :func:`streamreel.providers.openai_responses.stream_error_events`.
    """
    if is_responses_stream(events_before):
        from .openai_responses import stream_error_events as responses_error

        return responses_error(events_before, t, status, message)
    err = error_body(status, message=message)["error"]
    return (Event(t=t, data=json.dumps({"error": err}, separators=(",", ":"))), Event(t=t, data="[DONE]"))


# ---------------------------------------------------------------- synthesis


@dataclass(frozen=True)
class ToolCall:
    """A function call whose ``arguments`` JSON streams in pieces."""

    name: str
    arguments: tuple[str, ...]
    id: str = ""


@dataclass(frozen=True)
class Choice:
    """One choice of a streamed completion: ``content`` and ``refusal`` pieces (None: no such
    field), then ``tool_calls``. ``schedule`` says which calls' next piece each chunk carries
    (a call's first mention is its header: id, type, name); None streams the calls one after
    another, one piece a chunk. ``finish_reason`` defaults to ``tool_calls`` when there are
    calls, else ``stop``."""

    content: tuple[str, ...] | None = None
    refusal: tuple[str, ...] | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    schedule: tuple[tuple[int, ...], ...] | None = None


FINISH_REASONS = ("stop", "tool_calls", "length", "content_filter")
"""Every ``finish_reason`` a Chat Completions stream ends a choice with."""


@dataclass(frozen=True)
class ChatStream:
    """A synthesized chat completion: the ``events`` the API streams and the ``completion``
    they encode (the ``chat.completion`` object in the API's JSON shape)."""

    events: tuple[Event, ...]
    completion: dict[str, Any]


def sequential_schedule(calls: Sequence[ToolCall]) -> tuple[tuple[int, ...], ...]:
    """The schedule that streams calls one after another, one piece a chunk."""
    return tuple((i,) for i, call in enumerate(calls) for _ in range(1 + len(call.arguments)))


def _choice_deltas(choice: Choice, fingerprint: str, index: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The deltas one choice streams (the last carries its finish reason) and its final message."""
    calls = choice.tool_calls
    ids = [c.id or "call_" + hashlib.sha256(f"{fingerprint}{index}.{i}".encode()).hexdigest()[:24] for i, c in enumerate(calls)]
    schedule = sequential_schedule(calls) if choice.schedule is None else choice.schedule
    mentioned = [0] * len(calls)
    tool_chunks: list[list[dict[str, Any]]] = []
    for at, chunk in enumerate(schedule):
        entries = []
        for i in chunk:
            if not 0 <= i < len(calls):
                raise ValueError(f"schedule chunk {at} names tool call {i}; there are {len(calls)}")
            n = mentioned[i]
            if n == 0:
                entries.append({"index": i, "id": ids[i], "type": "function", "function": {"name": calls[i].name, "arguments": ""}})
            elif n <= len(calls[i].arguments):
                entries.append({"index": i, "function": {"arguments": calls[i].arguments[n - 1]}})
            else:
                raise ValueError(f"schedule chunk {at} asks tool call {i} for piece {n}; it has {len(calls[i].arguments)}")
            mentioned[i] = n + 1
        tool_chunks.append(entries)
    missing = [i for i, call in enumerate(calls) if mentioned[i] != 1 + len(call.arguments)]
    if missing:
        raise ValueError(f"the schedule leaves tool calls {missing} unfinished")
    first: dict[str, Any] = {"role": "assistant", "content": "" if choice.content is not None else None, "refusal": "" if choice.refusal is not None else None}
    deltas: list[dict[str, Any]] = [first]
    deltas.extend({"content": d} for d in choice.content or ())
    deltas.extend({"refusal": d} for d in choice.refusal or ())
    if tool_chunks and choice.content is None and choice.refusal is None:
        first = {"role": "assistant", "content": None, "tool_calls": tool_chunks.pop(0), "refusal": None}
        deltas[0] = first
    deltas.extend({"tool_calls": entries} for entries in tool_chunks)
    reason = choice.finish_reason or ("tool_calls" if calls else "stop")
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(choice.content) if choice.content is not None else None,
        "refusal": "".join(choice.refusal) if choice.refusal is not None else None,
    }
    if calls:
        message["tool_calls"] = [{"id": ids[i], "type": "function", "function": {"name": c.name, "arguments": "".join(c.arguments)}} for i, c in enumerate(calls)]
    return deltas + [{"finish_reason": reason}], {"index": index, "message": message, "finish_reason": reason, "logprobs": None}


def chunk_count(choice: Choice) -> int:
    """How many chunks a choice streams (what :func:`chat_stream`'s ``order`` names it by)."""
    return len(_choice_deltas(choice, "", 0)[0])


def chat_stream(
    choices: Sequence[Choice],
    *,
    model: str = "gpt-4o-2024-08-06",
    completion_id: str | None = None,
    created: int = 1727346173,
    order: Sequence[int] | None = None,
    usage: bool = False,
    prompt_tokens: int = 12,
    completion_tokens: int | None = None,
) -> ChatStream:
    """One streamed chat completion: its data-only chunks ending in ``data: [DONE]``, and the
    ``chat.completion`` they encode.

    Each choice streams a role chunk, its content or refusal pieces, its tool-call chunks
    (keyed by ``index``; a tool-only choice's first call rides on the role chunk, as the API
    sends it) and a chunk with its finish reason. ``order`` interleaves choices: each entry
    names the choice whose next chunk goes out (default: one choice after another). With
    ``usage``, a final chunk with ``"choices": []`` carries the token counts
    (``completion_tokens`` defaults to an estimate from what streamed). Ids are derived from
    the content, so the same input always gives the same bytes.
    """
    fingerprint = repr(tuple(choices))
    cid = completion_id or "chatcmpl-" + hashlib.sha256(fingerprint.encode()).hexdigest()[:29]
    base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model, "system_fingerprint": "fp_streamreel"}
    per_choice = [_choice_deltas(c, fingerprint, i) for i, c in enumerate(choices)]
    if order is None:
        order = [i for i, (deltas, _) in enumerate(per_choice) for _ in deltas]
    taken = [0] * len(per_choice)
    out: list[Event] = []
    for i in order:
        deltas = per_choice[i][0]
        if taken[i] >= len(deltas):
            raise ValueError(f"order names choice {i} more often than its {len(deltas)} chunks")
        delta = deltas[taken[i]]
        taken[i] += 1
        finish = delta.get("finish_reason") if len(delta) == 1 and "finish_reason" in delta else None
        entry = {"index": i, "delta": {} if finish else delta, "logprobs": None, "finish_reason": finish}
        out.append(Event(data=json.dumps({**base, "choices": [entry]}, ensure_ascii=False, separators=(",", ":"))))
    short = [i for i, (deltas, _) in enumerate(per_choice) if taken[i] != len(deltas)]
    if short:
        raise ValueError(f"order leaves choices {short} unfinished")
    completion: dict[str, Any] = {**base, "object": "chat.completion", "choices": [final for _, final in per_choice], "usage": None}
    if usage:
        produced = "".join("".join(c.content or ()) + "".join(c.refusal or ()) + "".join("".join(t.arguments) for t in c.tool_calls) for c in choices)
        tokens = completion_tokens if completion_tokens is not None else max(1, (len(produced) + 3) // 4) if produced else 0
        counts = {"prompt_tokens": prompt_tokens, "completion_tokens": tokens, "total_tokens": prompt_tokens + tokens}
        out.append(Event(data=json.dumps({**base, "choices": [], "usage": counts}, separators=(",", ":"))))
        completion["usage"] = counts
    out.append(Event(data="[DONE]"))
    return ChatStream(tuple(out), completion)


def chat_events(
    text_deltas: Sequence[str] = (),
    *,
    tool_calls: Sequence[tuple[str, Sequence[str]]] = (),
    model: str = "gpt-4o-2024-08-06",
    completion_id: str | None = None,
    created: int = 1727346173,
    finish_reason: str | None = None,
    usage: bool = False,
    completion_tokens: int | None = None,
) -> tuple[Event, ...]:
    """The data-only events of one streamed chat completion with one choice, ending with ``data: [DONE]``.

    ``tool_calls`` is a list of (function name, argument JSON pieces); see :func:`chat_stream`
    for several choices, refusals, interleaved calls and the completion they encode.
    """
    calls = tuple(ToolCall(name, tuple(pieces)) for name, pieces in tool_calls)
    content = tuple(text_deltas) if text_deltas or not calls else None
    choice = Choice(content=content, tool_calls=calls, finish_reason=finish_reason)
    return chat_stream([choice], model=model, completion_id=completion_id, created=created, usage=usage, completion_tokens=completion_tokens).events


# ---------------------------------------------------------------- the dialect


class OpenAIChat(Dialect):
    """Chat Completions (``POST /v1/chat/completions``) and legacy completions: data-only chunks, then ``data: [DONE]``."""

    name = "openai"
    label = "OpenAI Chat Completions"

    def claims(self, route: str, headers: Mapping[str, str]) -> bool:
        return route.endswith(("/chat/completions", "/completions"))

    def claims_events(self, events: Sequence[Event]) -> bool:
        for ev in events:
            if ev.data == "[DONE]":
                return True
            payload = ev.json(default=None) if ev.event is None else None
            if isinstance(payload, dict) and payload.get("object") in ("chat.completion.chunk", "text_completion"):
                return True
        return False

    def path(self, model: str | None = None) -> str:
        return "/v1/chat/completions"

    def is_complete(self, events: Sequence[Event]) -> bool:
        data = [e for e in events if not e.is_comment]
        return bool(data) and (data[-1].data == "[DONE]" or data[-1].event == "error" or data[-1].type == "error")

    def error_body(self, status: int, *, message: str | None = None, error_type: str | None = None, request_id: str | None = None) -> Any:
        return error_body(status, message=message, error_type=error_type)

    def error_headers(self, status: int, *, retry_after_s: float | None = None, request_id: str | None = None, should_retry: bool | None = None) -> dict[str, str]:
        return error_headers(status, retry_after_s=retry_after_s, request_id=request_id, should_retry=should_retry)

    def request_id(self, *parts: object) -> str:
        return request_id(*parts)

    def stream_error(self, before: Sequence[Event], t: float, error_type: str, message: str | None = None) -> tuple[Event, ...]:
        from .anthropic import status_for

        return stream_error_events(before, t, status_for(error_type), message)

    def delta_text(self, payload: Any) -> str:
        choices = payload.get("choices") if isinstance(payload, dict) else None
        if not isinstance(choices, list):
            return ""
        parts: list[str] = []
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            if isinstance(choice.get("text"), str):
                parts.append(choice["text"])
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            for key in ("content", "reasoning_content", "reasoning", "refusal"):
                value = delta.get(key)
                if isinstance(value, str):
                    parts.append(value)
            for call in delta.get("tool_calls") or ():
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                    parts.append(fn["arguments"])
        return "".join(parts)

    def usage_tokens(self, payload: Any) -> int | None:
        usage = payload.get("usage") if isinstance(payload, dict) else None
        if isinstance(usage, dict) and "completion_tokens" in usage:
            value = usage.get("completion_tokens")
            return value if isinstance(value, int) and not isinstance(value, bool) else None
        return None

    def stop_reason(self, payload: Any, name: str | None = None) -> str | None:
        if not isinstance(payload, dict):
            return None
        err = payload.get("error")
        if isinstance(err, dict) and "choices" not in payload:
            detail = err.get("type") or err.get("code")
            return f"error: {detail}" if detail else "error"
        choices = payload.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if isinstance(choice, dict) and choice.get("finish_reason"):
                    return str(choice["finish_reason"])
            if isinstance(err, dict):
                return f"error: {err.get('code') or err.get('type') or ''}".rstrip(": ")
        return None

    def synth(self, reply: Synth) -> tuple[Event, ...]:
        if reply.thinking:
            raise ValueError("thinking blocks exist only in Anthropic streams; leave thinking out for provider='openai'")
        calls = [(reply.tool[0], list(reply.tool[1]))] if reply.tool is not None else []
        named = {"model": reply.model} if reply.model else {}
        return chat_events(list(reply.text), tool_calls=calls, usage=True, completion_tokens=reply.output_tokens, **named)


DIALECT = register(OpenAIChat())
