"""``fragment``: split the byte stream into tiny writes, across line ends and inside UTF-8 characters."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Iterable, Iterator

from ..pipeline import Chunk, Plan
from .base import ByteFault, Context, register, spec_field

__all__ = ["Fragment", "MAX_PIECE_BYTES"]

MAX_PIECE_BYTES = 1 << 20
"""The largest piece ``size``/``max`` may ask for (a mebibyte)."""


@register
@dataclass(frozen=True)
class Fragment(ByteFault):
    """Re-cut the bytes into writes of ``size_bytes`` (or, with ``random``, of 1..``max_bytes``
    drawn with ``seed``).

    Chunks due at the same moment (all of them at ``speed:0``) are cut as one byte stream,
    so a piece may also end one event and begin the next, as TCP delivers them. The
    replayer flushes every piece to the socket before the next; ``gap_ms`` spaces them
    out so that a reader is more likely to get each piece in a read of its own (TCP
    promises no boundaries: at gap 0 a loopback reader still sees most pieces apart).
    """

    name = "fragment"
    stage = 50
    needs_chunks = True

    size_bytes: int = spec_field("size", "int", default=1, low=1, high=MAX_PIECE_BYTES, help="bytes per write")
    random: bool = spec_field("random", "bool", default=False, help="random sizes from 1 to max")
    max_bytes: int = spec_field("max", "int", default=16, low=1, high=MAX_PIECE_BYTES, help="largest random piece")
    seed: int = spec_field("seed", "int", default=0, high=2**64 - 1, help="seed of the random sizes")
    gap_ms: float = spec_field("gap", "ms", default=0.0, help="pause between pieces")

    def __post_init__(self) -> None:
        if self.size_bytes < 1:
            raise ValueError(f"size must be >= 1 byte, got {self.size_bytes}")
        if self.max_bytes < 1:
            raise ValueError(f"max must be >= 1 byte, got {self.max_bytes}")
        if not self.gap_ms >= 0:
            raise ValueError(f"gap must be >= 0ms, got {self.gap_ms!r}")

    def why_not(self, plan: Plan, ctx: Context) -> str | None:
        runs = list(_same_time_runs(plan.chunks))
        if not runs:
            return "the stream sends no bytes to split"
        pieces = self._chunks(Chunk(at, data, 0) for at, data in runs)
        for (at, data), piece in zip(runs, pieces):
            if piece.at_ms != at or len(piece.data) != len(data):
                return None
        longest = max(len(data) for _, data in runs)
        sizes = f"random sizes up to max={self.max_bytes}" if self.random else f"size={self.size_bytes}"
        return f"no write of the stream is longer than one piece ({sizes}; the longest write is {longest} bytes), so nothing would be split"

    def max_delay_ms(self, events: int, size: int) -> float:
        return self.gap_ms * size

    def describe(self, plan: Plan, ctx: Context) -> str:
        sizes = f"random pieces of 1..{self.max_bytes} bytes (seed {self.seed})" if self.random else f"pieces of {self.size_bytes} bytes"
        return f"split into {sizes}" + (f", {self.gap_ms:.15g} ms apart" if self.gap_ms else "")

    def apply(self, plan: Plan, ctx: Context) -> Plan:
        return replace(plan, chunks=self._chunks(plan.chunks), separate_writes=True)

    def _sizes(self) -> Iterator[int]:
        if not self.random:
            while True:
                yield self.size_bytes
        rng = random.Random(self.seed)
        top = self.max_bytes
        while True:
            yield rng.randint(1, top)

    def _chunks(self, chunks: Iterable[Chunk]) -> Iterator[Chunk]:
        sizes = self._sizes()
        gap = self.gap_ms
        clock: float | None = None
        for at, data in _same_time_runs(chunks):
            t = at if clock is None else max(at, clock + gap)
            pos = 0
            while pos < len(data):
                end = pos + next(sizes)
                yield Chunk(t, data[pos:end], 0)
                clock = t
                t += gap
                pos = end


def _same_time_runs(chunks: Iterable[Chunk]) -> Iterator[tuple[float, bytes]]:
    """Consecutive chunks due at the same time, joined into one run of bytes."""
    at: float | None = None
    parts: list[bytes] = []
    for c in chunks:
        if at is not None and c.at_ms != at:
            yield at, b"".join(parts)
            parts = []
        at = c.at_ms
        parts.append(c.data)
    if at is not None:
        yield at, b"".join(parts)
