"""Provider knowledge: which API a recording speaks, its real error bodies, event synthesis."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..cassette import Interaction

__all__ = ["detect_provider", "error_body", "error_headers", "request_id", "FINAL_EVENT"]

FINAL_EVENT = {"anthropic": "message_stop", "openai": "[DONE]"}
"""The event that closes a complete stream, by provider (OpenAI Responses ends with ``response.completed``)."""


def detect_provider(interaction: Interaction) -> str:
    """``anthropic``, ``openai`` or ``sse`` (any other event stream), from the path and the events."""
    path = (interaction.request.route or "").rstrip("/")
    if path.endswith("/messages"):
        return "anthropic"
    if path.endswith(("/chat/completions", "/completions", "/responses")):
        return "openai"
    for ev in (interaction.response.events or ())[:3]:
        if ev.event in ("message_start", "ping", "content_block_start"):
            return "anthropic"
        if ev.event is not None and ev.event.startswith("response."):
            return "openai"
        if ev.data is not None and ev.data.startswith('{"id":"chatcmpl-'):
            return "openai"
    return "sse"


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
