"""``error``: a provider error event in the middle of an HTTP 200 stream, which then ends."""

from __future__ import annotations

from dataclasses import dataclass

from .. import providers
from ..providers import anthropic as _anthropic
from ..sse import Event
from .base import Context, EventFault, holds, register, spec_field

__all__ = ["Error", "ERROR_TYPES"]

ERROR_TYPES = tuple(kind for kind, _ in _anthropic.ERROR_TYPES.values())


@register
@dataclass(frozen=True)
class Error(EventFault):
    """After ``after_events`` events, send the error the provider sends when a stream fails,
    then end the body cleanly without the rest (as the APIs do).

    Anthropic (and on Vertex): ``event: error`` with ``{"type": "error", "error": {"type": ..., "message": ...}}``.
    OpenAI Chat Completions: a ``{"error": {...}}`` chunk then ``data: [DONE]``; Responses:
    ``event: error`` then ``response.failed``; Gemini: Google's ``{"error": {...}}`` as the
    last chunk; Bedrock: an exception frame (``modelStreamErrorException``,
    ``throttlingException``, ...). The other APIs' error has the type and message they use for
    the HTTP status that goes with ``error_type`` (see :mod:`streamreel.providers`).
    """

    name = "error"

    after_events: int = spec_field("after", "int", default=0, help="events sent before the error")
    error_type: str = spec_field("type", "choice", default="overloaded_error", choices=ERROR_TYPES, help="Anthropic error type")
    message: str | None = spec_field("message", "str", default=None, help="error message (default: the API's usual one)")

    def __post_init__(self) -> None:
        if self.after_events < 0:
            raise ValueError(f"after must be >= 0 events, got {self.after_events}")
        if self.error_type not in ERROR_TYPES:
            raise ValueError(f"type must be one of {', '.join(ERROR_TYPES)}, got {self.error_type!r}")

    def why_not(self, events: tuple[Event, ...], ctx: Context) -> str | None:
        if self.after_events > len(events):
            return f"after={self.after_events} is past the end; the stream holds {holds(events)}"
        return None

    def describe(self, events: tuple[Event, ...], ctx: Context) -> str:
        return f"{self.error_type} after event {self.after_events} of {len(events)}"

    def apply_events(self, events: tuple[Event, ...], ctx: Context) -> tuple[Event, ...]:
        before = events[: self.after_events]
        if self.after_events < len(events):
            t = events[self.after_events].t
        else:
            t = events[-1].t if events else 0.0
        return (*before, *providers.get(ctx.provider).stream_error(before, t, self.error_type, self.message))
