"""``drop``: remove events by index or name (``drop:event=message_stop``, ``drop:event=[DONE]``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..sse import Event
from .base import Context, EventFault, register, selected, spec_field

__all__ = ["Drop"]


@register
@dataclass(frozen=True)
class Drop(EventFault):
    """Leave out every event ``events`` picks (0-based index, negative from the end, or a
    name matching ``event:``, the JSON ``type``, or the whole data such as ``[DONE]``)."""

    name = "drop"

    events: tuple[int | str, ...] = spec_field("event", "ints_or_names", default=(), help="index or name of the event(s) to drop, joined by |")

    def __post_init__(self) -> None:
        if not self.events:
            raise ValueError("say which events to drop: event=N (0-based index) or event=NAME, several joined by |")

    def apply_events(self, events: tuple[Event, ...], ctx: Context) -> tuple[Event, ...]:
        picked = selected(events, self.events)
        return tuple(ev for i, ev in enumerate(events) if i not in picked)
