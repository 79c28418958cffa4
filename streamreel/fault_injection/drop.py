"""``drop``: remove events by index or name (``drop:event=message_stop``, ``drop:event=[DONE]``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..sse import Event
from .base import Context, EventFault, label, register, selected, spec_field, unpicked

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

    def why_not(self, events: tuple[Event, ...], ctx: Context) -> str | None:
        return unpicked(events, self.events)

    def describe(self, events: tuple[Event, ...], ctx: Context) -> str:
        picked = sorted(selected(events, self.events))
        return f"dropped {_which(events, picked)} of {len(events)}"

    def apply_events(self, events: tuple[Event, ...], ctx: Context) -> tuple[Event, ...]:
        picked = selected(events, self.events)
        return tuple(ev for i, ev in enumerate(events) if i not in picked)


def _which(events: tuple[Event, ...], picked: list[int]) -> str:
    """``event 8 (message_stop)`` or ``3 events (ping x3)``."""
    if len(picked) == 1:
        return f"event {picked[0]} ({label(events[picked[0]])})"
    names: dict[str, int] = {}
    for i in picked:
        names[label(events[i])] = names.get(label(events[i]), 0) + 1
    return f"{len(picked)} events (" + ", ".join(n if k == 1 else f"{n} x{k}" for n, k in names.items()) + ")"
