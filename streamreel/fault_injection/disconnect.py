"""``disconnect``: cut the stream after event N, inside event N, or after byte B, the three ways clients really meet."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..pipeline import Ending, Plan, cut
from .base import ByteFault, Context, check_cut_point, register, spec_field, where_cut

__all__ = ["Disconnect", "HOW"]

HOW = {"reset": "reset", "close": "close", "eof": "end"}
"""Spec ``how`` -> the plan's ending: ``reset`` a TCP RST (connection reset by peer),
``close`` a FIN without the chunked terminator (an incomplete body), ``eof`` a clean end
of the body without the rest of the stream (no ``message_stop``, no ``[DONE]``)."""


@register
@dataclass(frozen=True)
class Disconnect(ByteFault):
    """End the response once ``after_events`` events (or ``after_bytes`` bytes) went out, or
    in the middle of event ``inside`` (1-based, like ``after``), ``keep_bytes`` into it
    (default: half of it), so a client holds half a JSON line when the connection goes.

    Everything before the cut reaches the client (the server waits until the peer has
    acknowledged it before a reset). A cut past the end of the stream, or one at its end
    that would end it the way it already ends, cannot apply (see :meth:`why_not`).
    """

    name = "disconnect"
    stage = 30
    needs_chunks = True

    after_events: int | None = spec_field("after", "int", default=None, help="events sent before the cut")
    after_bytes: int | None = spec_field("after_bytes", "int", default=None, help="or: bytes sent before the cut (may split an event)")
    inside: int | None = spec_field("inside", "int", default=None, low=1, help="or: cut in the middle of this event (1-based)")
    keep_bytes: int | None = spec_field("keep", "int", default=None, low=1, help="with inside: bytes of that event sent before the cut (default half)")
    how: str = spec_field("how", "choice", default="reset", choices=tuple(HOW), help="reset (RST), close (FIN, body incomplete), eof (clean end of body)")

    def __post_init__(self) -> None:
        check_cut_point(self.after_events, self.after_bytes)
        given = [k for k, v in (("after", self.after_events), ("after_bytes", self.after_bytes), ("inside", self.inside)) if v is not None]
        if len(given) > 1:
            raise ValueError(f"give one of after=N, after_bytes=B or inside=N, not {' and '.join(given)}")
        if not given:
            raise ValueError("say where to cut: after=N (events), after_bytes=B, or inside=N (in the middle of event N)")
        if self.keep_bytes is not None and self.inside is None:
            raise ValueError("keep=B counts bytes into the event given by inside=N; give inside too")

    def _where(self, plan: Plan):  # type: ignore[no-untyped-def]
        return where_cut(plan, self.after_events, self.after_bytes, self.inside, self.keep_bytes)

    def why_not(self, plan: Plan, ctx: Context) -> str | None:
        found = self._where(plan)
        if found.problem:
            return found.problem
        if found.at_end and HOW[self.how] == plan.ending.how:
            return f"the stream already ends this way ({self.how}) after its last byte; cut earlier, or choose another how"
        return None

    def describe(self, plan: Plan, ctx: Context) -> str:
        return f"{self.how} {self._where(plan).where}"

    def apply(self, plan: Plan, ctx: Context) -> Plan:
        found = self._where(plan)
        if found.problem:
            return plan
        head, _, _ = cut(plan, after_bytes=found.offset)
        # A cut at the very end changes how the stream ends, not when (a recorded cut keeps its time).
        return replace(plan, chunks=head, ending=Ending(HOW[self.how], plan.ending.at_ms if found.at_end else None))
