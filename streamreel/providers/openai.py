"""OpenAI Chat Completions: error bodies, headers and mid-stream errors as the API sends them, and synthesis.

The Responses API shares the error bodies and headers; its stream is its own dialect
(:mod:`streamreel.providers.openai_responses`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping, Sequence

from ..sse import Event
from . import Dialect, Synth, register, retry_headers

__all__ = ["ERROR_TYPES", "error_body", "error_headers", "request_id", "stream_error_events", "is_responses_stream", "chat_events", "OpenAIChat", "DIALECT"]

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
    """The data-only events of one streamed chat completion, ending with ``data: [DONE]``.

    ``tool_calls`` is a list of (function name, argument JSON pieces). Ids are derived from
    the content, so the same input always gives the same bytes. With ``usage`` a final
    usage chunk follows, counting ``completion_tokens`` (default: an estimate from the text).
    """
    fingerprint = repr((tuple(text_deltas), tuple((n, tuple(a)) for n, a in tool_calls)))
    cid = completion_id or "chatcmpl-" + hashlib.sha256(fingerprint.encode()).hexdigest()[:29]
    base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model, "system_fingerprint": "fp_streamreel"}

    def chunk(delta: dict, finish: str | None = None) -> Event:
        payload = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        return Event(data=json.dumps(payload, ensure_ascii=False, separators=(",", ":")))

    out = [chunk({"role": "assistant", "content": "", "refusal": None})]
    out.extend(chunk({"content": d}) for d in text_deltas)
    for i, (name, pieces) in enumerate(tool_calls):
        call_id = "call_" + hashlib.sha256(f"{fingerprint}{i}".encode()).hexdigest()[:24]
        out.append(chunk({"tool_calls": [{"index": i, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}]}))
        out.extend(chunk({"tool_calls": [{"index": i, "function": {"arguments": p}}]}) for p in pieces)
    reason = finish_reason or ("tool_calls" if tool_calls else "stop")
    out.append(chunk({}, reason))
    if usage:
        produced = "".join(text_deltas) + "".join("".join(p) for _, p in tool_calls)
        tokens = completion_tokens if completion_tokens is not None else max(1, (len(produced) + 3) // 4) if produced else 0
        payload = {**base, "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": tokens, "total_tokens": 12 + tokens}}
        out.append(Event(data=json.dumps(payload, separators=(",", ":"))))
    out.append(Event(data="[DONE]"))
    return tuple(out)


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
