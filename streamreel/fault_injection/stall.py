"""``stall``: go silent after event N (or byte B) with the connection open, for a while or until the client leaves."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..pipeline import Chunk, Ending, Plan, cut
from .base import ByteFault, Context, check_cut_point, register, spec_field, where_cut

__all__ = ["Stall"]


@register
@dataclass(frozen=True)
class Stall(ByteFault):
    """Stop sending once ``after_events`` events (or ``after_bytes`` bytes) went out.

    With ``seconds`` the rest follows after that much silence (every later event moves
    by it); without, the connection hangs open and silent until the client gives up, so
    a read timeout is what ends it. A stall point past the end of the stream cannot
    apply (see :meth:`why_not`).
    """

    name = "stall"
    stage = 20
    needs_chunks = True

    after_events: int | None = spec_field("after", "int", default=None, help="events sent before the stall (default 0)")
    after_bytes: int | None = spec_field("after_bytes", "int", default=None, help="or: bytes sent before the stall")
    seconds: float | None = spec_field("seconds", "s", default=None, help="length of the silence, up to an hour; none = until the client leaves")

    def __post_init__(self) -> None:
        check_cut_point(self.after_events, self.after_bytes)
        if self.seconds is not None and not self.seconds > 0:
            raise ValueError(f"seconds must be > 0 (leave it out to stay silent until the client leaves), got {self.seconds!r}")

    def why_not(self, plan: Plan, ctx: Context) -> str | None:
        found = where_cut(plan, self.after_events, self.after_bytes)
        if found.problem:
            return found.problem
        if found.at_end and plan.ending.how == "hang":
            return "the stream already ends in silence after its last byte"
        return None

    def max_delay_ms(self, events: int, size: int) -> float:
        return (self.seconds or 0.0) * 1000.0

    def describe(self, plan: Plan, ctx: Context) -> str:
        where = where_cut(plan, self.after_events, self.after_bytes).where
        return f"silent {self.seconds:.15g} s {where}" if self.seconds is not None else f"silent until the client left, {where}"

    def apply(self, plan: Plan, ctx: Context) -> Plan:
        head, tail, reached = cut(plan, after_events=self.after_events, after_bytes=self.after_bytes)
        if not reached:
            return plan
        if self.seconds is None:
            return replace(plan, chunks=head, ending=Ending("hang", None))
        pause = self.seconds * 1000.0
        start = head[-1].at_ms if head else plan.headers_at_ms
        tail = [Chunk(max(c.at_ms, start) + pause, c.data, c.events_done) for c in tail]
        if plan.ending.at_ms is not None:
            ending = replace(plan.ending, at_ms=max(plan.ending.at_ms, start) + pause)
        else:
            ending = plan.ending if tail else replace(plan.ending, at_ms=start + pause)
        return replace(plan, chunks=[*head, *tail], ending=ending)
