"""Timing fidelity at speed 1: when does each event reach the client, against the cassette's ``t``?

    python benchmarks/bench_timing.py [--events 2000] [--gap 5] [--repeat 1] [--no-sdk]

One cassette of ``--events`` events ``--gap`` ms apart (an Anthropic text stream built with
``message_events``), served at speed 1 by a ``Replayer`` and, as the baseline, by the
obvious hand-written aiohttp server that does ``await asyncio.sleep(due - loop.time())``
before each event. Both run on one event loop in a server process of their own (so the
client's decoding never delays the server's timers), one stream at a time, alternating.

The client stamps every event with ``time.perf_counter()`` since it sent the request: a raw
aiohttp reader decoding incrementally with ``streamreel.sse.Decoder``, then the anthropic
SDK (``stream=True``; it drops ``ping``). Errors in ms:

- aligned: (arrival - first arrival) - (t - first t), the scheduling error of the stream;
- absolute: arrival - t, also counting request -> first event;
- jitter: |absolute - its median|, the spread around the usual latency (unlike the aligned
  error, not moved by a first event that is early or late against the rest);
- drift: mean aligned error over the last 10% of events minus the first 10%, and the
  least-squares slope of the error over the stream (ms per s); zero means no accumulation.

The target is p99 aligned error under 1 ms for the raw reader; it prints PASS or MISS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Awaitable, Callable, Sequence

import aiohttp
import anthropic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Child, Naive, arrivals, dist, figure, pct, serve_child  # noqa: E402

from streamreel import Cassette, Replayer  # noqa: E402
from streamreel.providers.anthropic import TextBlock, message_events  # noqa: E402
from streamreel.sse import Event  # noqa: E402

PROMPT = [{"role": "user", "content": "bench"}]


def cassette(events: int, gap_ms: float) -> Cassette:
    """``events`` events (message_start ... message_stop), event i at ``i * gap_ms``."""
    deltas = max(events - 7, 1)  # message_events adds 7 around the deltas
    made = message_events([TextBlock(tuple(f" w{i % 97}" for i in range(deltas)))])
    return Cassette.from_events([replace(e, t=round(i * gap_ms, 3)) for i, e in enumerate(made)])


def events_of(cas: Cassette) -> tuple[Event, ...]:
    return cas.interactions[0].response.events or ()


async def child(events: int, gap_ms: float) -> None:
    cas = cassette(events, gap_ms)
    writes = [(e.t, e.wire) for e in events_of(cas)]
    async with Replayer(cas, history=0) as reel, Naive(lambda _: writes) as naive:
        await serve_child({"streamreel": reel.url, "naive": naive.url})


async def raw_client(url: str) -> list[float]:
    async with aiohttp.ClientSession() as http:
        return await arrivals(http, url)


async def sdk_client(url: str) -> list[float]:
    client = anthropic.AsyncAnthropic(base_url=url, api_key="bench", max_retries=0)
    out: list[float] = []
    t0 = time.perf_counter()
    stream = await client.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=PROMPT, stream=True)  # type: ignore[arg-type]
    async for _ in stream:
        out.append((time.perf_counter() - t0) * 1000.0)
    await client.close()
    return out


async def warm_up(url: str) -> None:
    """A first event read by each client from each server, so the measured streams do not
    pay for first-use costs (lazy imports, the SDK's first request)."""
    async with aiohttp.ClientSession() as http, http.post(url + "/v1/messages", data=b"{}") as resp:
        async for _ in resp.content.iter_any():
            break
    client = anthropic.AsyncAnthropic(base_url=url, api_key="bench", max_retries=0)
    stream = await client.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=PROMPT, stream=True)  # type: ignore[arg-type]
    async for _ in stream:
        break
    await stream.close()
    await client.close()


@dataclass
class Errors:
    aligned: list[float]
    absolute: list[float]
    drift: float
    slope: float

    @classmethod
    def of(cls, seen: Sequence[float], schedule: Sequence[float]) -> Errors:
        if len(seen) != len(schedule):
            raise SystemExit(f"the client saw {len(seen)} events, the cassette has {len(schedule)}")
        aligned = [(s - seen[0]) - (t - schedule[0]) for s, t in zip(seen, schedule)]
        tenth = max(len(aligned) // 10, 1)
        drift = statistics.fmean(aligned[-tenth:]) - statistics.fmean(aligned[:tenth])
        slope = statistics.linear_regression(schedule, aligned).slope * 1000.0 if len(set(schedule)) > 1 else 0.0
        return cls(aligned, [s - t for s, t in zip(seen, schedule)], drift, slope)

    def merge(self, other: Errors) -> Errors:
        return Errors(self.aligned + other.aligned, self.absolute + other.absolute, max(self.drift, other.drift, key=abs), max(self.slope, other.slope, key=abs))


async def measure(client: Callable[[str], Awaitable[list[float]]], urls: dict[str, str], schedule: list[float], repeat: int) -> dict[str, Errors]:
    got: dict[str, Errors] = {}
    for r in range(repeat):
        order = ["naive", "streamreel"] if r % 2 == 0 else ["streamreel", "naive"]
        for name in order:
            errors = Errors.of(await client(urls[name]), schedule)
            got[name] = got[name].merge(errors) if name in got else errors
    return got


def row(label: str, e: Errors) -> str:
    usual = statistics.median(e.absolute)
    jitter = [abs(a - usual) for a in e.absolute]
    return (
        f"  {label:<12}|aligned| {dist([abs(x) for x in e.aligned])}   absolute {dist(e.absolute)}\n"
        f"  {'':<12}jitter    p50 {pct(jitter, 50):7.3f}  p99 {pct(jitter, 99):7.3f} ms   drift {e.drift:+7.3f} ms, slope {e.slope:+7.4f} ms/s"
    )


async def main(args: argparse.Namespace) -> int:
    cas = cassette(args.events, args.gap)
    events = events_of(cas)
    schedule = [e.t for e in events]
    no_ping = [e.t for e in events if e.type != "ping"]
    print(
        f"timing fidelity at speed 1: {len(events):,} events {args.gap:g} ms apart ({schedule[-1] / 1000:.1f} s a stream), "
        f"{args.repeat} stream(s) per server and client; servers in one process of their own, {os.cpu_count()} CPUs; errors in ms"
    )
    verdict = 0
    async with Child(__file__, "--child", "--events", str(args.events), "--gap", str(args.gap)) as server:
        for url in (server.urls["naive"], server.urls["streamreel"]):
            await warm_up(url)
        clients: list[tuple[str, Callable[[str], Awaitable[list[float]]], list[float]]] = [("raw aiohttp reader + sse.Decoder", raw_client, schedule)]
        if not args.no_sdk:
            clients.append(("anthropic SDK stream=True (pings dropped)", sdk_client, no_ping))
        for label, client, sched in clients:
            got = await measure(client, server.urls, sched, args.repeat)
            base, ours = got["naive"], got["streamreel"]
            print(f"{label}:")
            print(row("naive", base))
            print(row("streamreel", ours))
            b99, o99 = pct([abs(x) for x in base.aligned], 99), pct([abs(x) for x in ours.aligned], 99)
            jitter = [pct([abs(a - statistics.median(e.absolute)) for a in e.absolute], 99) for e in (ours, base)]
            print(
                f"  ratio streamreel / naive: p99 aligned {o99 / b99:.2f}x, p99 jitter {jitter[0] / jitter[1]:.2f}x, "
                f"p50 absolute {pct(ours.absolute, 50) / pct(base.absolute, 50):.2f}x"
            )
            if client is raw_client:
                ok = figure(f"speed 1, {len(events):,} events {args.gap:g} ms apart: p99 arrival error", o99, b99, "ms", baseline="naive server", target="< 1 ms", ok=o99 < 1.0)
                verdict = 0 if ok else 1
            else:
                figure("the same stream read by the anthropic SDK: p99 arrival error", o99, b99, "ms", baseline="naive server")
    return verdict if args.check else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--gap", type=float, default=5.0, help="ms between events")
    parser.add_argument("--repeat", type=int, default=1, help="streams per server and client")
    parser.add_argument("--no-sdk", action="store_true", help="only the raw reader")
    parser.add_argument("--check", action="store_true", help="exit 1 on a MISS")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(child(args.events, args.gap))
    else:
        sys.exit(asyncio.run(main(args)))
