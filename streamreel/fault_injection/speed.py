"""``speed``: scale the recorded gaps; ``speed:2`` plays twice as fast, ``speed:0`` does not wait."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ..pipeline import Plan
from .base import ByteFault, Context, register, spec_field

__all__ = ["Speed"]


@register
@dataclass(frozen=True)
class Speed(ByteFault):
    """Divide every recorded time by ``factor`` (0 = send everything at once).

    It is the first byte stage, so :func:`streamreel.pipeline.plan` folds it into the chunks as
    it makes them (no per-chunk pass); the last ``speed`` given wins over the replay's own.
    """

    name = "speed"
    stage = 0

    factor: float = spec_field("factor", "float", default=1.0, positional=True, help="playback rate; 0 = no waiting")

    def __post_init__(self) -> None:
        if not self.factor >= 0:
            raise ValueError(f"speed factor must be >= 0, got {self.factor!r}")

    def scale(self, ms: float) -> float:
        return 0.0 if self.factor == 0 else ms / self.factor

    @classmethod
    def of(cls, faults: Iterable[object], default: float = 1.0) -> Speed:
        """The speed in force: the last ``speed`` fault among ``faults``, else ``default``."""
        found = [f for f in faults if isinstance(f, cls)]
        return found[-1] if found else cls(factor=default)

    def apply(self, plan: Plan, ctx: Context) -> Plan:
        raise TypeError("speed is applied by pipeline.plan() as it makes the chunks; pass it in the fault list")
