"""Replay cost of the browser options: ids + retry, and a Last-Event-ID resume, against plain replay.

Run: python benchmarks/bench_browser_ids.py [--words 60000] [--runs 7]
Prints medians over several runs of one ~20,000-delta stream read by a raw aiohttp client at
speed 0, and their ratios to plain replay measured in the same process.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import sys
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import figure  # noqa: E402

from streamreel import Replayer  # noqa: E402
from streamreel.synth import synth_cassette  # noqa: E402

RUNS = 7


async def read(url: str, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as resp:
        return len(await resp.read())


async def median_ms(cassette, headers: dict[str, str], **options) -> tuple[float, float]:
    async with Replayer(cassette, speed=0, **options) as r:
        url = r.url + "/v1/messages"
        t0 = time.perf_counter()
        await read(url, headers)
        first = (time.perf_counter() - t0) * 1000
        times = []
        for _ in range(RUNS):
            t0 = time.perf_counter()
            await read(url, headers)
            times.append((time.perf_counter() - t0) * 1000)
    return first, statistics.median(times)


async def main(words: int) -> None:
    cas = synth_cassette("word " * words, tps=1000, seed=1)
    n = len(cas.interactions[0].response.events)
    sse = {"accept": "text/event-stream"}
    await median_ms(cas, sse)  # warm up the process (imports, first sockets)
    _, plain = await median_ms(cas, sse)
    first_ids, ids = await median_ms(cas, sse, ids=True)
    _, resumed = await median_ms(cas, {**sse, "last-event-id": "10"}, ids=True)
    print(f"{n} events, median of {RUNS} runs, speed 0, raw aiohttp client")
    print(f"plain replay          {plain:8.1f} ms  ({n / plain * 1000:,.0f} events/s)  1.00x")
    print(f"ids + retry (cached)  {ids:8.1f} ms  {ids / plain:.2f}x   first request (encodes the numbered events once): {first_ids:.1f} ms")
    print(f"Last-Event-ID resume  {resumed:8.1f} ms  {resumed / plain:.2f}x")
    figure(f"browser ids and retry, {n:,} events at speed 0", ids, plain, "ms", baseline="plain replay")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=60000, help="words in the synthesized stream")
    parser.add_argument("--runs", type=int, default=RUNS, help="runs per variant (median)")
    args = parser.parse_args()
    RUNS = args.runs
    asyncio.run(main(args.words))
