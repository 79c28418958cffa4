"""``speed``: scale the recorded gaps; ``speed:2`` plays twice as fast, ``speed:0`` does not wait."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Iterator

from ..pipeline import Chunk, Plan
from .base import ByteFault, Context, register, spec_field

__all__ = ["Speed"]


@register
@dataclass(frozen=True)
class Speed(ByteFault):
    """Divide every recorded time by ``factor`` (0 = send everything at once)."""

    name = "speed"
    stage = 0

    factor: float = spec_field("factor", "float", default=1.0, positional=True, help="playback rate; 0 = no waiting")

    def __post_init__(self) -> None:
        if not self.factor >= 0:
            raise ValueError(f"speed factor must be >= 0, got {self.factor!r}")

    def scale(self, ms: float) -> float:
        return 0.0 if self.factor == 0 else ms / self.factor

    def apply(self, plan: Plan, ctx: Context) -> Plan:
        if self.factor == 1.0:
            return plan
        ending = plan.ending
        if ending.at_ms is not None:
            ending = replace(ending, at_ms=self.scale(ending.at_ms))
        return replace(plan, headers_at_ms=self.scale(plan.headers_at_ms), chunks=self._chunks(plan.chunks), ending=ending)

    def _chunks(self, chunks: Iterable[Chunk]) -> Iterator[Chunk]:
        if self.factor == 0:
            for c in chunks:
                yield Chunk(0.0, c.data, c.events_done)
        else:
            k = 1.0 / self.factor
            for c in chunks:
                yield Chunk(c.at_ms * k, c.data, c.events_done)
