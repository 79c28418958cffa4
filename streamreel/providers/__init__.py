"""Provider knowledge: which API a recording speaks, its real error bodies, event synthesis."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

from ..sse import Event

if TYPE_CHECKING:
    from ..cassette import Interaction

__all__ = ["detect_provider", "provider_of_events", "is_complete", "error_body", "error_headers", "retry_headers", "request_id"]


def detect_provider(interaction: Interaction) -> str:
    """``anthropic``, ``openai`` or ``sse`` (any other event stream), from the path, else the events."""
    path = (interaction.request.route or "").rstrip("/")
    if path.endswith("/messages"):
        return "anthropic"
    if path.endswith(("/chat/completions", "/completions", "/responses")):
        return "openai"
    kind = provider_of_events((interaction.response.events or ())[:5])
    return "openai" if kind == "openai-responses" else kind


def provider_of_events(events: Sequence[Event]) -> str:
    """``anthropic``, ``openai``, ``openai-responses`` or ``sse``, from what the events hold."""
    for ev in events:
        if ev.is_comment:
            continue
        if ev.event in ("message_start", "content_block_start", "content_block_delta", "message_stop"):
            return "anthropic"
        if ev.event is not None and ev.event.startswith("response."):
            return "openai-responses"
        if ev.data == "[DONE]":
            return "openai"
        payload = ev.json(default=None)
        if isinstance(payload, dict):
            kind = payload.get("type")
            if kind in ("message_start", "content_block_start", "content_block_delta"):
                return "anthropic"
            if isinstance(kind, str) and kind.startswith("response."):
                return "openai-responses"
            if payload.get("object") in ("chat.completion.chunk", "text_completion"):
                return "openai"
    return "sse"


def is_complete(events: Sequence[Event], provider: str) -> bool:
    """Whether a stream reached its provider's final event (or an error event, after which a server
    ends the stream on purpose); a stream of any other provider counts as complete."""
    data_events = [e for e in events if not e.is_comment]
    if not data_events:
        return provider == "sse"
    last = data_events[-1]
    if last.event == "error" or last.type == "error":
        return True
    if provider == "anthropic":
        return last.event == "message_stop" or last.type == "message_stop"
    if provider == "openai":
        return last.data == "[DONE]"
    if provider == "openai-responses":
        return last.type in ("response.completed", "response.failed", "response.incomplete") or last.data == "[DONE]"
    return True


def error_body(provider: str, status: int, message: str | None = None, error_type: str | None = None) -> dict:
    """The JSON error body the provider's API sends for ``status``."""
    if provider == "openai":
        from .openai import error_body as make
    else:
        from .anthropic import error_body as make
    return make(status, message=message, error_type=error_type)


def error_headers(provider: str, status: int, *, retry_after_s: float | None = None, request_id: str | None = None, should_retry: bool | None = None) -> dict[str, str]:
    """The headers the provider's API sends with an error (``x-should-retry``, ``retry-after``, its request id)."""
    if provider == "openai":
        from .openai import error_headers as make
    else:
        from .anthropic import error_headers as make
    return make(status, retry_after_s=retry_after_s, request_id=request_id, should_retry=should_retry)


def request_id(provider: str, *parts: object) -> str:
    """A deterministic request id in the provider's shape, derived from ``parts``."""
    if provider == "openai":
        from .openai import request_id as make
    else:
        from .anthropic import request_id as make
    return make(*parts)


def retry_headers(status: int, *, retry_after_s: float | None = None, should_retry: bool | None = None) -> dict[str, str]:
    """The headers both APIs send with an error: ``x-should-retry`` drives the SDKs' retry decision;
    ``retry-after`` is whole seconds (rounded up, as RFC 9110 allows no fraction) and
    ``retry-after-ms``, which the SDKs read first, carries the exact value."""
    if should_retry is None:
        should_retry = status in (408, 409, 429) or status >= 500
    headers = {"content-type": "application/json", "x-should-retry": "true" if should_retry else "false"}
    if retry_after_s is not None:
        headers["retry-after"] = str(math.ceil(retry_after_s))
        headers["retry-after-ms"] = f"{retry_after_s * 1000:g}"
    return headers
