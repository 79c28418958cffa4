"""``disconnect``: cut the stream after event N or byte B, the three ways clients really meet."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..pipeline import Ending, Plan, cut
from .base import ByteFault, Context, check_cut_point, register, spec_field

__all__ = ["Disconnect", "HOW"]

HOW = {"reset": "reset", "close": "close", "eof": "end"}
"""Spec ``how`` -> the plan's ending: ``reset`` a TCP RST (connection reset by peer),
``close`` a FIN without the chunked terminator (an incomplete body), ``eof`` a clean end
of the body without the rest of the stream (no ``message_stop``, no ``[DONE]``)."""


@register
@dataclass(frozen=True)
class Disconnect(ByteFault):
    """End the response once ``after_events`` events (or ``after_bytes`` bytes) went out.

    Everything before the cut reaches the client (the server waits until the peer has
    acknowledged it before a reset). A stream that ends before the cut point is cut at
    its end; one that was already cut or stalled keeps its own ending.
    """

    name = "disconnect"
    stage = 30

    after_events: int | None = spec_field("after", "int", default=None, help="events sent before the cut")
    after_bytes: int | None = spec_field("after_bytes", "int", default=None, help="or: bytes sent before the cut (may split an event)")
    how: str = spec_field("how", "choice", default="reset", choices=tuple(HOW), help="reset (RST), close (FIN, body incomplete), eof (clean end of body)")

    def __post_init__(self) -> None:
        check_cut_point(self.after_events, self.after_bytes)
        if self.after_events is None and self.after_bytes is None:
            raise ValueError("say where to cut: after=N (events) or after_bytes=B")

    def apply(self, plan: Plan, ctx: Context) -> Plan:
        head, _, reached = cut(plan, after_events=self.after_events, after_bytes=self.after_bytes)
        if reached:
            return replace(plan, chunks=head, ending=Ending(HOW[self.how], None))
        if plan.ending.how == "end":
            return replace(plan, chunks=head, ending=Ending(HOW[self.how], plan.ending.at_ms))
        return replace(plan, chunks=head)
