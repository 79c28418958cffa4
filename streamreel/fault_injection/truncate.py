"""``truncate``: cut the ``data`` of chosen events short, leaving broken JSON on the wire."""

from __future__ import annotations

from dataclasses import dataclass

from .. import providers
from ..sse import Event
from .base import Context, EventFault, register, selected, spec_field, unpicked

__all__ = ["Truncate"]


@register
@dataclass(frozen=True)
class Truncate(EventFault):
    """Keep only the first ``keep_fraction`` of the ``data`` of the events ``events`` picks
    (0-based index, negative from the end, or a name: every event of that type). The
    event still goes out whole, blank line included, so the stream goes on after it. In
    Bedrock's event stream the frame is cut instead, so its checksum no longer matches.

    Any ``keep`` above 0 keeps at least one character. ``keep=0`` sends an empty ``data:``
    line: the anthropic SDK skips an event whose data is empty, so a client sees the event
    vanish (a drop), not broken JSON."""

    name = "truncate"

    events: tuple[int | str, ...] = spec_field("event", "ints_or_names", default=(), help="index or name of the event(s) to cut, joined by |")
    keep_fraction: float = spec_field("keep", "float", default=0.5, low=0.0, high=1.0, help="fraction of the data kept, 0 <= keep < 1 (0: an empty data line)")

    def __post_init__(self) -> None:
        if not self.events:
            raise ValueError("say which event to cut: event=N (0-based index) or event=NAME")
        if not 0 <= self.keep_fraction < 1:
            raise ValueError(f"keep must be in [0, 1), got {self.keep_fraction!r}")

    def kept(self, size: int) -> int:
        """How many characters of a ``size``-character data stay: at least one unless ``keep=0``,
        so that only ``keep=0`` (never a small fraction of a short line) empties it."""
        k = int(size * self.keep_fraction)
        return 1 if k == 0 and self.keep_fraction > 0 else k

    def _cuts(self, event: Event) -> bool:
        return bool(event.data) and self.kept(len(event.data or "")) < len(event.data or "")

    def why_not(self, events: tuple[Event, ...], ctx: Context) -> str | None:
        return unpicked(events, self.events, usable=self._cuts)

    def describe(self, events: tuple[Event, ...], ctx: Context) -> str:
        picked = sorted(i for i in selected(events, self.events) if self._cuts(events[i]))
        which = f"event {picked[0]}" if len(picked) == 1 else f"events {', '.join(map(str, picked))}"
        return f"cut the data of {which} to {self.keep_fraction:.0%}" + (" (an empty data line, which the anthropic SDK skips)" if self.keep_fraction == 0 else "")

    def apply_events(self, events: tuple[Event, ...], ctx: Context) -> tuple[Event, ...]:
        picked = selected(events, self.events)
        dialect = providers.get(ctx.provider)
        return tuple(dialect.truncated(ev, self.keep_fraction) if i in picked and self._cuts(ev) else ev for i, ev in enumerate(events))
