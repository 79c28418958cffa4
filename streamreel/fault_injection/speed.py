"""``speed``: scale the recorded gaps; ``speed:2`` plays twice as fast, ``speed:0`` does not wait."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from ..errors import FaultSpecError
from ..pipeline import Plan
from .base import ByteFault, Context, register, spec_field

__all__ = ["Speed", "check_speed", "MIN_SPEED", "MAX_SPEED"]

MIN_SPEED = 0.001
"""The slowest playback rate (a thousand times slower than recorded); 0 means no waiting."""

MAX_SPEED = 1000.0
"""The fastest playback rate short of 0 (no waiting)."""


def check_speed(value: object, key: str = "speed") -> float:
    """``value`` as a playback rate: 0 (no waiting) or between :data:`MIN_SPEED` and :data:`MAX_SPEED`.

    Raises :class:`~streamreel.errors.FaultSpecError` naming ``key`` and the range; used by the
    ``speed`` fault, ``Replayer(speed=)``, ``serve --speed``, the marker and ``reel.load``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FaultSpecError(f"{key} must be a number, got {value!r}")
    number = float(value)
    if number == 0 or (math.isfinite(number) and MIN_SPEED <= number <= MAX_SPEED):
        return number
    raise FaultSpecError(f"{key} must be 0 (no waiting) or between {MIN_SPEED:g} and {MAX_SPEED:g}, got {number!r}")


@register
@dataclass(frozen=True)
class Speed(ByteFault):
    """Divide every recorded time by ``factor`` (0 = send everything at once).

    It is the first byte stage, so :func:`streamreel.pipeline.plan` folds it into the chunks as
    it makes them (no per-chunk pass); the last ``speed`` given wins over the replay's own.
    """

    name = "speed"
    stage = 0

    factor: float = spec_field("factor", "float", default=1.0, positional=True, help=f"playback rate, {MIN_SPEED:g} to {MAX_SPEED:g}; 0 = no waiting")

    def __post_init__(self) -> None:
        check_speed(self.factor, "speed")

    def scale(self, ms: float) -> float:
        return 0.0 if self.factor == 0 else ms / self.factor

    @classmethod
    def of(cls, faults: Iterable[object], default: float = 1.0) -> Speed:
        """The speed in force: the last ``speed`` fault among ``faults``, else ``default``."""
        found = [f for f in faults if isinstance(f, cls)]  # spent ones are left out by the caller
        return found[-1] if found else cls(factor=default)

    def apply(self, plan: Plan, ctx: Context) -> Plan:
        raise TypeError("speed is applied by pipeline.plan() as it makes the chunks; pass it in the fault list")
