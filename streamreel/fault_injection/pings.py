"""``pings``: interleave keep-alives every N ms, as ``event: ping`` or as SSE comments."""

from __future__ import annotations

from dataclasses import dataclass

from .. import providers
from ..sse import Event
from .base import Context, EventFault, holds, register, spec_field

__all__ = ["Pings", "PING_DATA"]

PING_DATA = '{"type": "ping"}'
"""Anthropic's ping payload, with the space after the colon that the API really sends."""

MAX_PINGS = 100_000


@register
@dataclass(frozen=True)
class Pings(EventFault):
    """Insert a ping every ``every_ms`` from the first event to the last.

    ``style=auto`` sends what the stream's API sends (``event: ping`` to Anthropic streams,
    on Vertex too) and a ``: ping`` comment line to others (OpenAI and Gemini send none;
    comments are how SSE servers keep a connection alive, and every SSE parser must skip
    them). Bedrock's event stream has no keep-alive at all: pings there are an error.
    """

    name = "pings"

    every_ms: float = spec_field("every", "ms", default=100.0, low=1.0, help="interval between pings")
    style: str = spec_field("style", "choice", default="auto", choices=("auto", "event", "comment"), help="event: ping, a comment, or by provider")

    def __post_init__(self) -> None:
        if not self.every_ms >= 1:
            raise ValueError(f"every must be at least 1ms, got {self.every_ms!r}")

    def ping(self, t: float, ctx: Context) -> Event:
        if self.style == "auto":
            return providers.get(ctx.provider).keepalive(t)
        return Event(t=t, event="ping", data=PING_DATA) if self.style == "event" else Event(t=t, comment="ping")

    def count(self, events: tuple[Event, ...]) -> int:
        """How many pings fit between the first event and the last."""
        if len(events) < 2:
            return 0
        span = events[-1].t - events[0].t
        return int(span // self.every_ms) - (1 if span > 0 and span % self.every_ms == 0 else 0)

    def why_not(self, events: tuple[Event, ...], ctx: Context) -> str | None:
        if len(events) < 2:
            return f"pings go between events; the stream holds {holds(events)}"
        if not self.count(events):
            return f"the stream spans {events[-1].t - events[0].t:.15g} ms from its first event to its last, not more than every={self.every_ms:.15g}ms"
        return None

    def describe(self, events: tuple[Event, ...], ctx: Context) -> str:
        return f"{self.count(events)} pings, every {self.every_ms:.15g} ms"

    def apply_events(self, events: tuple[Event, ...], ctx: Context) -> tuple[Event, ...]:
        if len(events) < 2:
            return events
        start, stop = events[0].t, events[-1].t
        count = int((stop - start) // self.every_ms)
        if count > MAX_PINGS:
            raise ValueError(f"pings every {self.every_ms:.15g}ms over {stop - start:.15g}ms would be {count} pings; at most {MAX_PINGS}")
        out: list[Event] = [events[0]]
        k = 1
        for ev in events[1:]:
            while start + k * self.every_ms < ev.t:
                out.append(self.ping(start + k * self.every_ms, ctx))
                k += 1
            out.append(ev)
        return tuple(out)
