"""OpenAI Chat Completions and Responses: error bodies as the API sends them."""

from __future__ import annotations

import hashlib
import json
from typing import Sequence

from ..sse import Event

__all__ = ["ERROR_TYPES", "error_body", "error_headers", "chat_events"]

ERROR_TYPES: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Country, region, or territory not supported"),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def error_body(status: int, *, message: str | None = None, error_type: str | None = None) -> dict:
    kind, code, default = ERROR_TYPES.get(status, ("server_error" if status >= 500 else "invalid_request_error", None, "Error"))
    return {"error": {"message": message or default, "type": error_type or kind, "param": None, "code": code}}


def error_headers(status: int, *, retry_after_s: float | None = None) -> dict[str, str]:
    headers = {"content-type": "application/json", "x-should-retry": "true" if status in (408, 409, 429) or status >= 500 else "false"}
    if retry_after_s is not None:
        headers["retry-after"] = f"{retry_after_s:g}"
        headers["retry-after-ms"] = f"{retry_after_s * 1000:g}"
    return headers


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
