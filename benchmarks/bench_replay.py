"""Replay write-loop throughput: streamreel's Replayer against a bare aiohttp server, same run.

    python benchmarks/bench_replay.py [--events 20000] [--repeat 5]

Both servers send the same pre-encoded events, one write per event, at full speed (the
replayer at speed 0); the same clients read them. Ratios near 1.0 mean the replayer adds
nothing measurable on top of aiohttp itself.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Awaitable, Callable

import aiohttp
import anthropic
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import LoopbackApp, figure  # noqa: E402

from streamreel import Cassette, Replayer  # noqa: E402
from streamreel.providers.anthropic import TextBlock, message_events  # noqa: E402

PROMPT = [{"role": "user", "content": "bench"}]


def cassette(n: int) -> Cassette:
    return Cassette.from_events(message_events([TextBlock(tuple(f" w{i % 97}" for i in range(n)))]))


class Bare(LoopbackApp):
    """The baseline: an aiohttp handler writing the same bytes in the same number of writes."""

    def __init__(self, wire: list[bytes]) -> None:
        self.wire = wire

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for chunk in self.wire:
            await resp.write(chunk)
        await resp.write_eof()
        return resp


async def raw_client(url: str) -> int:
    async with aiohttp.ClientSession() as http, http.post(f"{url}/v1/messages", json={}) as resp:
        n = 0
        async for _ in resp.content.iter_any():
            n += 1
        return n


async def sdk_client(url: str) -> int:
    client = anthropic.AsyncAnthropic(base_url=url, api_key="bench")
    n = 0
    async for _ in await client.messages.create(model="m", max_tokens=1, messages=PROMPT, stream=True):  # type: ignore[arg-type]
        n += 1
    await client.close()
    return n


async def rate(client: Callable[[str], Awaitable[int]], url: str, events: int, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        await client(url)
        times.append(time.perf_counter() - start)
    return events / statistics.median(times)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cas = cassette(args.events)
    events = cas.interactions[0].response.events or ()
    print(f"{len(events)} events, {sum(len(e.wire) for e in events):,} bytes; median of {args.repeat} runs; events/s")
    print(f"{'client':<28}{'bare aiohttp':>14}{'streamreel':>14}{'ratio':>8}")
    async with Bare([e.wire for e in events]) as bare, Replayer(cas, speed=0) as reel:
        for label, client in [("raw aiohttp reader", raw_client), ("anthropic SDK stream=True", sdk_client)]:
            base = await rate(client, bare.url, len(events), args.repeat)
            ours = await rate(client, reel.url, len(events), args.repeat)
            print(f"{label:<28}{base:>14,.0f}{ours:>14,.0f}{ours / base:>8.2f}x")
            if client is raw_client:
                figure(f"replay at speed 0, {len(events):,} events, raw reader", ours, base, "events/s", baseline="bare aiohttp", target=">= 0.95x bare aiohttp", ok=ours >= 0.95 * base)
            else:
                figure("the same, read by the anthropic SDK", ours, base, "events/s", baseline="bare aiohttp")


if __name__ == "__main__":
    asyncio.run(main())
