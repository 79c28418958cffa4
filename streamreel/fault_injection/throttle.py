"""``throttle``: a bandwidth cap; bytes trickle out no faster than ``bytes_per_s``."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Iterator

from ..pipeline import Chunk, Plan
from .base import ByteFault, Context, register, spec_field

__all__ = ["Throttle"]

_TICK_S = 0.01

MAX_BYTES_PER_S = 1e9
"""The fastest cap a throttle may set (a gigabyte a second); the slowest is 1 byte a second."""


@register
@dataclass(frozen=True)
class Throttle(ByteFault):
    """Send at most ``bytes_per_s``: each chunk waits for the one before it to finish and
    goes out in pieces of 10 ms worth of bytes, like a slow link."""

    name = "throttle"
    stage = 40
    needs_chunks = True

    bytes_per_s: float = spec_field("bytes_per_s", "float", default=None, low=1.0, high=MAX_BYTES_PER_S, help="bandwidth cap in bytes per second")

    def __post_init__(self) -> None:
        if self.bytes_per_s is None:
            raise ValueError("say how fast: bytes_per_s=N (1 to 1e9 bytes a second)")

    def why_not(self, plan: Plan, ctx: Context) -> str | None:
        ms_per_byte = 1000.0 / self.bytes_per_s
        piece = self.piece_bytes
        free_at = 0.0
        count = 0
        for c in plan.chunks:
            if len(c.data) > piece or c.at_ms < free_at:
                return None
            free_at = c.at_ms + len(c.data) * ms_per_byte
            count += 1
        if not count:
            return "the stream sends no bytes to slow down"
        return f"at {self.bytes_per_s:.15g} bytes/s every write of the stream goes out whole and before the next is due; nothing would be slowed"

    def max_delay_ms(self, events: int, size: int) -> float:
        return size * 1000.0 / self.bytes_per_s

    def describe(self, plan: Plan, ctx: Context) -> str:
        return f"at most {self.bytes_per_s:.15g} bytes/s"

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
