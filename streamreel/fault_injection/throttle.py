"""``throttle``: a bandwidth cap; bytes trickle out no faster than ``bytes_per_s``."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Iterator

from ..pipeline import Chunk, Plan
from .base import ByteFault, Context, register, spec_field

__all__ = ["Throttle"]

_TICK_S = 0.01


@register
@dataclass(frozen=True)
class Throttle(ByteFault):
    """Send at most ``bytes_per_s``: each chunk waits for the one before it to finish and
    goes out in pieces of 10 ms worth of bytes, like a slow link."""

    name = "throttle"
    stage = 40

    bytes_per_s: float = spec_field("bytes_per_s", "float", default=0.0, help="bandwidth cap in bytes per second")

    def __post_init__(self) -> None:
        if not self.bytes_per_s > 0:
            raise ValueError(f"bytes_per_s must be > 0, got {self.bytes_per_s!r}")

    @property
    def piece_bytes(self) -> int:
        return max(1, int(self.bytes_per_s * _TICK_S))

    def apply(self, plan: Plan, ctx: Context) -> Plan:
        return replace(plan, chunks=self._chunks(plan.chunks))

    def _chunks(self, chunks: Iterable[Chunk]) -> Iterator[Chunk]:
        ms_per_byte = 1000.0 / self.bytes_per_s
        piece = self.piece_bytes
        free_at = 0.0
        for c in chunks:
            start = max(c.at_ms, free_at)
            data = c.data
            for k in range(0, len(data), piece):
                yield Chunk(start + k * ms_per_byte, data[k : k + piece], c.events_done)
            free_at = start + len(data) * ms_per_byte
