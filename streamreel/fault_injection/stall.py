"""``stall``: go silent after event N (or byte B) with the connection open, for a while or until the client leaves."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..pipeline import Chunk, Ending, Plan, cut
from .base import ByteFault, Context, check_cut_point, register, spec_field

__all__ = ["Stall"]


@register
@dataclass(frozen=True)
class Stall(ByteFault):
    """Stop sending once ``after_events`` events (or ``after_bytes`` bytes) went out.

    With ``seconds`` the rest follows after that much silence (every later event moves
    by it); without, the connection hangs open and silent until the client gives up, so
    a read timeout is what ends it. A stream shorter than the stall point stalls at its
    end instead of ending.
    """

    name = "stall"
    stage = 20

    after_events: int | None = spec_field("after", "int", default=None, help="events sent before the stall (default 0)")
    after_bytes: int | None = spec_field("after_bytes", "int", default=None, help="or: bytes sent before the stall")
    seconds: float | None = spec_field("seconds", "s", default=None, help="length of the silence; none = until the client leaves")

    def __post_init__(self) -> None:
        check_cut_point(self.after_events, self.after_bytes)
        if self.seconds is not None and not self.seconds >= 0:
            raise ValueError(f"seconds must be >= 0, got {self.seconds!r}")

    def apply(self, plan: Plan, ctx: Context) -> Plan:
        head, tail, reached = cut(plan, after_events=self.after_events, after_bytes=self.after_bytes)
        if self.seconds is None:
            if not reached and plan.ending.how != "end":
                return replace(plan, chunks=head)
            return replace(plan, chunks=head, ending=Ending("hang", None))
        pause = self.seconds * 1000.0
        if reached:
            start = head[-1].at_ms if head else plan.headers_at_ms
            tail = [Chunk(max(c.at_ms, start) + pause, c.data, c.events_done) for c in tail]
            ending = plan.ending if plan.ending.at_ms is None else replace(plan.ending, at_ms=plan.ending.at_ms + pause)
        else:
            last = head[-1].at_ms if head else plan.headers_at_ms
            base = last if plan.ending.at_ms is None else max(plan.ending.at_ms, last)
            ending = replace(plan.ending, at_ms=base + pause)
        return replace(plan, chunks=[*head, *tail], ending=ending)
