"""``latency``: added delay before the headers, the first event and every later event, with seeded jitter."""

from __future__ import annotations

import random
from collections.abc import Sized
from dataclasses import dataclass
from itertools import islice, repeat, starmap
from typing import Iterable, Iterator

from ..pipeline import Chunk, Ending, EventChunks, Plan
from .base import ByteFault, Context, register, spec_field

__all__ = ["Latency"]


@register
@dataclass(frozen=True)
class Latency(ByteFault):
    """Delay the response: ``headers_ms`` before the headers, ``first_ms`` more before the first
    event, ``each_ms`` more before every later one. Each event delay is drawn from
    ``[delay - jitter_ms, delay + jitter_ms]`` (never below 0) with ``seed``; delays add up,
    so the whole rest of the stream moves with each one. Times are wall-clock ms, not
    scaled by ``speed``.
    """

    name = "latency"
    stage = 10
    needs_chunks = True

    first_ms: float = spec_field("first", "ms", default=0.0, help="extra delay before the first event")
    each_ms: float = spec_field("each", "ms", default=0.0, help="extra delay before every later event")
    jitter_ms: float = spec_field("jitter", "ms", default=0.0, help="each delay varies by up to this much either way")
    headers_ms: float = spec_field("headers", "ms", default=0.0, help="extra delay before the response headers")
    seed: int = spec_field("seed", "int", default=0, high=2**64 - 1, help="seed of the jitter")

    def __post_init__(self) -> None:
        if not (self.first_ms or self.each_ms or self.jitter_ms or self.headers_ms):
            raise ValueError("every delay is 0; give first=, each=, jitter= or headers= (e.g. latency:first=300ms)")

    def why_not(self, plan: Plan, ctx: Context) -> str | None:
        if self.headers_ms:
            return None
        n = _count(plan.chunks)
        if not n:
            return "the stream has no events to delay"
        if self.first_ms > self.jitter_ms or (n > 1 and self.each_ms > self.jitter_ms):
            return None  # a delay that jitter cannot take to 0: no need to draw them
        if any(d > 0 for d in islice(self._delays(), n)):
            return None
        return f"every delay drawn for its {n} event(s) is 0"

    def max_delay_ms(self, events: int, size: int) -> float:
        return self.headers_ms + self.first_ms + self.jitter_ms + (self.each_ms + self.jitter_ms) * events

    def describe(self, plan: Plan, ctx: Context) -> str:
        parts = [f"{key} +{value:.15g}ms" for key, value in (("headers", self.headers_ms), ("first", self.first_ms), ("each", self.each_ms)) if value]
        if self.jitter_ms:
            parts.append(f"jitter {self.jitter_ms:.15g}ms")
        return "delayed " + ", ".join(parts)

    def delays(self, count: int) -> list[float]:
        """The delay added before each of ``count`` events (ms), before accumulation."""
        return list(islice(self._delays(), count))

    def _delays(self) -> Iterator[float]:
        draw = random.Random(self.seed).random
        jitter = self.jitter_ms
        low, width = -jitter, jitter - -jitter  # random.uniform(-jitter, jitter), inlined: the same numbers, a third of the time
        base = self.first_ms
        yield max(base + (low + width * draw()), 0.0) if jitter else base
        base = self.each_ms
        if not jitter:
            yield from repeat(base)
        while True:
            d = base + (low + width * draw())
            yield d if d > 0.0 else 0.0

    def _total(self, count: int) -> float:
        """The sum of the first ``count`` delays. It is needed before the first byte (a timed
        ending), so when no delay can be cut at 0 the draws are summed in C, not one by one."""
        if count <= 0:
            return 0.0
        first, each, jitter = self.first_ms, self.each_ms, self.jitter_ms
        if not jitter:
            return first + each * (count - 1)
        if first >= jitter and (each >= jitter or count == 1):
            draws = sum(starmap(random.Random(self.seed).random, repeat((), count)))
            return first + each * (count - 1) - jitter * count + 2 * jitter * draws
        return sum(islice(self._delays(), count))

    def apply(self, plan: Plan, ctx: Context) -> Plan:
        # Lazy: the delays are drawn as the chunks go out, so a burst of requests does not
        # build every stream's schedule before its first byte. Only a timed ending needs the total.
        chunks = plan.chunks
        ending = plan.ending
        if ending.at_ms is not None:
            if not isinstance(chunks, Sized):
                chunks = list(chunks)
            ending = Ending(ending.how, ending.at_ms + self.headers_ms + self._total(len(chunks)))
        if type(chunks) is EventChunks:  # still whole events: the replayer's hot path takes the delays as it writes
            shifted: Iterable[Chunk] = chunks.shifted(self._delays, self.headers_ms)
        else:
            shifted = _shifted(chunks, self._delays(), self.headers_ms)
        return plan.but(headers_at_ms=plan.headers_at_ms + self.headers_ms, chunks=shifted, ending=ending)


def _shifted(chunks: Iterable[Chunk], delays: Iterator[float], start: float) -> Iterator[Chunk]:
    total = start
    for c, d in zip(chunks, delays):
        total += d
        yield Chunk(c.at_ms + total, c.data, c.events_done)


def _count(chunks: Iterable[Chunk]) -> int:
    return len(chunks) if isinstance(chunks, Sized) else sum(1 for _ in chunks)
