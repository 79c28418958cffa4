"""OpenAI Chat Completions and Responses: error bodies, headers and mid-stream errors as the
API sends them, and chat-completion stream synthesis (:func:`chat_events`)."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Sequence

from ..sse import Event

__all__ = ["ERROR_TYPES", "error_body", "error_headers", "request_id", "stream_error_events", "is_responses_stream", "chat_events"]

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
    if should_retry is None:
        should_retry = status in (408, 409, 429) or status >= 500
    headers = {"content-type": "application/json", "x-should-retry": "true" if should_retry else "false"}
    if retry_after_s is not None:
        headers["retry-after"] = str(math.ceil(retry_after_s))
        headers["retry-after-ms"] = f"{retry_after_s * 1000:g}"
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
    stops; the openai SDK raises ``APIError`` at the error chunk). Responses: an
    ``event: error`` and, when the stream has announced its response, ``response.failed``.
    """
    err = error_body(status, message=message)["error"]
    if not is_responses_stream(events_before):
        return (Event(t=t, data=json.dumps({"error": err}, separators=(",", ":"))), Event(t=t, data="[DONE]"))
    seq = sum(1 for ev in events_before if ev.event is not None)
    code = err["code"] or err["type"]
    out = [Event(t=t, event="error", data=json.dumps({"type": "error", "code": code, "message": err["message"], "param": None, "sequence_number": seq}, separators=(",", ":")))]
    response = next((p["response"] for p in (ev.json(default=None) for ev in events_before) if isinstance(p, dict) and isinstance(p.get("response"), dict)), None)
    if response is not None:
        failed = {**response, "status": "failed", "error": {"code": code, "message": err["message"]}}
        out.append(Event(t=t, event="response.failed", data=json.dumps({"type": "response.failed", "response": failed, "sequence_number": seq + 1}, separators=(",", ":"))))
    return tuple(out)


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
