"""Gemini (``POST /v1beta/models/{model}:streamGenerateContent?alt=sse``, ``/v1/...`` too): its stream and Google's errors.

The stream is data-only SSE with CRLF line ends, one ``GenerateContentResponse`` per event,
its JSON written with a space after each colon and none after commas
(``{"candidates": [{"content": {"parts": [{"text": "The"}],"role": "model"}}],...}``).
Text arrives in ``candidates[0].content.parts[].text`` (``thought: true`` parts are thinking),
a function call arrives whole as a ``functionCall`` part, the last chunk carries
``finishReason`` and every chunk ``usageMetadata`` (output = ``candidatesTokenCount`` plus
``thoughtsTokenCount``). Errors, before the stream and in the middle of it, are Google's JSON
shape ``{"error": {"code": 429, "message": ..., "status": "RESOURCE_EXHAUSTED"}}``; a stream
that fails sends that object as its last ``data:`` and ends (the google-genai SDK raises
``ClientError``/``ServerError`` from it). The same API on Vertex AI
(``/v1/projects/{p}/locations/{l}/publishers/google/models/{m}:streamGenerateContent``)
speaks the same dialect.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields, replace
from typing import Any, Mapping, Sequence

from ..sse import Event
from . import Dialect, Synth, register

__all__ = ["STATUS", "error_body", "error_bytes", "error_headers", "chunk_data", "content_events", "Gemini", "DIALECT"]

STATUS: dict[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential."),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    500: ("INTERNAL", "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}
"""HTTP status -> (Google RPC status, the API's usual message)."""


def _entry(status: int) -> tuple[str, str]:
    if status in STATUS:
        return STATUS[status]
    if status == 529:  # Anthropic's "overloaded"; Google says it with UNAVAILABLE
        return STATUS[503]
    return STATUS[500] if status >= 500 else STATUS[400]


def error_body(status: int, *, message: str | None = None, error_type: str | None = None, retry_after_s: float | None = None) -> dict:
    """Google's error object; ``error_type`` overrides the RPC status name, ``retry_after_s`` adds a ``RetryInfo`` detail."""
    rpc, default = _entry(status)
    err: dict[str, Any] = {"code": status, "message": message or default, "status": error_type or rpc}
    if retry_after_s is not None:
        err["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after_s:g}s"}]
    return {"error": err}


def error_bytes(body: Any) -> bytes:
    """Google writes its error bodies indented by two spaces, ending with a newline."""
    return (json.dumps(body, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def error_headers(status: int, *, retry_after_s: float | None = None, request_id: str | None = None, should_retry: bool | None = None) -> dict[str, str]:
    """What Google sends with an error: JSON, ``vary``; no retry hint of its own unless one is asked for."""
    headers = {"content-type": "application/json; charset=UTF-8", "vary": "Origin, X-Origin, Referer"}
    if retry_after_s is not None:
        headers["retry-after"] = str(max(0, round(retry_after_s)))
    if should_retry is not None:
        headers["x-should-retry"] = "true" if should_retry else "false"
    return headers


def chunk_data(payload: Any) -> str:
    """JSON spaced as the Gemini API writes it: ``": "`` after keys, ``","`` between items."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ": "))


def content_events(
    text_deltas: Sequence[str] = (),
    *,
    thought_deltas: Sequence[str] = (),
    function_call: tuple[str, Any] | None = None,
    model: str = "gemini-2.5-flash",
    response_id: str | None = None,
    prompt_tokens: int = 9,
    output_tokens: int | None = None,
    thoughts_tokens: int | None = None,
    finish_reason: str = "STOP",
) -> tuple[Event, ...]:
    """The data-only events of one streamed ``generateContent`` (``t`` = 0).

    Thinking (``thought: true`` parts) streams first, then the text, then ``function_call``
    (name, args) as one whole part; the last chunk carries ``finish_reason`` and the final
    usage (``output_tokens`` defaults to an estimate from the text).
    """
    fingerprint = repr((tuple(text_deltas), tuple(thought_deltas), function_call))
    rid = response_id or hashlib.sha256(fingerprint.encode()).hexdigest()[:23]
    parts: list[dict[str, Any]] = [{"text": d, "thought": True} for d in thought_deltas]
    parts += [{"text": d} for d in text_deltas]
    if function_call is not None:
        parts.append({"functionCall": {"name": function_call[0], "args": function_call[1]}})
    if not parts:
        parts = [{"text": ""}]
    produced = "".join(text_deltas) + (json.dumps(function_call[1]) if function_call is not None else "")
    thoughts = _tokens("".join(thought_deltas)) if thoughts_tokens is None else thoughts_tokens
    out_tokens = _tokens(produced) if output_tokens is None else max(0, output_tokens - thoughts)
    events = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        candidate: dict[str, Any] = {"content": {"parts": [part], "role": "model"}}
        if last:
            candidate["finishReason"] = finish_reason
        candidate["index"] = 0
        usage: dict[str, Any] = {"promptTokenCount": prompt_tokens}
        if last:
            usage["candidatesTokenCount"] = out_tokens
        usage["totalTokenCount"] = prompt_tokens + (out_tokens if last else 0) + (thoughts if thoughts else 0)
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt_tokens}]
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        events.append(Event(data=chunk_data({"candidates": [candidate], "usageMetadata": usage, "modelVersion": model, "responseId": rid}), **CRLF))
    return tuple(events)


CRLF: dict[str, Any] = {"line_ending": "\r\n"} if "line_ending" in {f.name for f in fields(Event)} else {}
"""The Gemini API ends every SSE line with CRLF; events carry their line ending where streamreel keeps them."""


def _tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4) if text else 0


def _candidates(payload: Any) -> list[dict[str, Any]]:
    items = payload.get("candidates") if isinstance(payload, dict) else None
    return [c for c in items if isinstance(c, dict)] if isinstance(items, list) else []


class Gemini(Dialect):
    """``streamGenerateContent?alt=sse`` on the Gemini API or Vertex AI."""

    name = "gemini"
    label = "Gemini streamGenerateContent"
    has_thinking = True
    streams_tool_input = False
    delta_tokens = (1, 8)

    def claims(self, route: str, headers: Mapping[str, str]) -> bool:
        return route.endswith((":streamGenerateContent", ":generateContent"))

    def claims_events(self, events: Sequence[Event]) -> bool:
        for ev in events:
            payload = ev.json(default=None) if ev.event is None else None
            if isinstance(payload, dict) and ("candidates" in payload or ("usageMetadata" in payload and "modelVersion" in payload)):
                return True
        return False

    def path(self, model: str | None = None) -> str:
        return f"/v1/models/{model or 'gemini-2.5-flash'}:streamGenerateContent?alt=sse"  # the google-genai SDK's default API version

    def is_complete(self, events: Sequence[Event]) -> bool:
        data = [e for e in events if not e.is_comment]
        if not data:
            return False
        payload = data[-1].json(default=None)
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            return True
        return any(c.get("finishReason") for c in _candidates(payload))

    def error_body(self, status: int, *, message: str | None = None, error_type: str | None = None, request_id: str | None = None) -> Any:
        return error_body(status, message=message, error_type=error_type if error_type and error_type.isupper() else None)

    def error_bytes(self, status: int, body: Any) -> bytes:
        return error_bytes(body)

    def error_headers(self, status: int, *, retry_after_s: float | None = None, request_id: str | None = None, should_retry: bool | None = None) -> dict[str, str]:
        return error_headers(status, retry_after_s=retry_after_s, should_retry=should_retry)

    def request_id(self, *parts: object) -> str:
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:23]

    def unframed(self, events: Sequence[Event]) -> Sequence[Event]:
        return [replace(e, **CRLF) for e in events] if CRLF else events

    def stream_error(self, before: Sequence[Event], t: float, error_type: str, message: str | None = None) -> tuple[Event, ...]:
        from .anthropic import status_for

        status = status_for(error_type)
        return (Event(t=t, data=chunk_data(error_body(503 if status == 529 else status, message=message)), **CRLF),)

    def delta_text(self, payload: Any) -> str:
        parts_out: list[str] = []
        for cand in _candidates(payload):
            content = cand.get("content")
            if not isinstance(content, dict):
                continue
            for part in content.get("parts") or ():
                if not isinstance(part, dict):
                    continue
                if isinstance(part.get("text"), str):
                    parts_out.append(part["text"])
                call = part.get("functionCall")
                if isinstance(call, dict) and call.get("args") is not None:
                    parts_out.append(json.dumps(call["args"], ensure_ascii=False))
        return "".join(parts_out)

    def usage_tokens(self, payload: Any) -> int | None:
        meta = payload.get("usageMetadata") if isinstance(payload, dict) else None
        if isinstance(meta, dict) and "candidatesTokenCount" in meta:
            return _count(meta.get("candidatesTokenCount")) + _count(meta.get("thoughtsTokenCount"))
        return None

    def stop_reason(self, payload: Any, name: str | None = None) -> str | None:
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            return f"error: {payload['error'].get('status') or payload['error'].get('code') or ''}".rstrip(": ")
        for cand in _candidates(payload):
            if cand.get("finishReason"):
                return str(cand["finishReason"])
        return None

    def synth(self, reply: Synth) -> tuple[Event, ...]:
        call = None
        if reply.tool is not None:
            call = (reply.tool[0], json.loads("".join(reply.tool[1])))
        named = {"model": reply.model} if reply.model else {}
        return content_events(reply.text, thought_deltas=reply.thinking, function_call=call, output_tokens=reply.output_tokens, **named)

    def response_headers(self) -> dict[str, str]:
        return {"content-type": "text/event-stream", "content-disposition": "attachment", "vary": "Origin, X-Origin, Referer"}


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


DIALECT = register(Gemini())
