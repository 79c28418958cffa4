"""Many streams at once from one replayer, with latency and jitter: do all finish, on time, and in how much memory?

    python benchmarks/bench_concurrency.py [--streams 200] [--events 200] [--gap 20] [--rounds 3]
                                           [--latency first=50ms,each=2ms,jitter=2ms]

``--streams`` clients start at once against one server, each asking (``x-streamreel-faults``)
for ``latency:<--latency>,seed=<i>``, so every stream has its own jittered schedule over a
cassette of ``--events`` events ``--gap`` ms apart. The server runs in a process of its own:
with clients and server on one loop, 200 clients' decoding would delay the server's timers
and the figures would measure the client; in a thread they would share one GIL. A separate
process also lets its memory be read alone.

The baseline is the obvious hand-written aiohttp server (``await asyncio.sleep(due -
loop.time())`` before each write) given the same schedules ahead of time (from
``streamreel.pipeline.timed_chunks`` with the same faults), in its own process, in the same run.

Each server runs ``--rounds`` times, alternating which goes first, and the rounds are pooled:
on a shared machine a change in load between two runs would otherwise fall on one server only.
Reported: streams that completed (all must); per-event timing error against the plan, as
|(arrival - planned time) - that stream's median of it| (aligned on the stream's usual
latency rather than its first event, which a burst of 200 requests delays), p50/p99/max
over all events and over the streams' worst events; request -> first event against the
plan (connections are opened ahead, so this is the burst, not TCP handshakes); the
server's CPU time per event sent; the server's memory per stream
(RSS with every stream open - idle RSS, peak over the run, and still held once all ended:
the replayer keeps each response's ground truth; ``Replayer(history=N)`` bounds that).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import (  # noqa: E402
    Child,
    Naive,
    arrivals,
    dist,
    figure,
    load,
    mib,
    open_connections,
    pct,
    serve_child,
)

from streamreel import Cassette, Replayer  # noqa: E402
from streamreel.cli import settle_heap  # noqa: E402
from streamreel.pipeline import timed_chunks  # noqa: E402
from streamreel.providers.anthropic import TextBlock, message_events  # noqa: E402

FAULTS_HEADER = "x-streamreel-faults"


def cassette(events: int, gap_ms: float) -> Cassette:
    deltas = max(events - 6, 1)  # message_events adds 6 around the deltas
    made = message_events([TextBlock(tuple(f" w{i % 97}" for i in range(deltas)))])
    return Cassette.from_events([replace(e, t=round(i * gap_ms, 3)) for i, e in enumerate(made)])


def spec(latency: str, seed: int) -> str:
    return f"latency:{latency},seed={seed}"


def schedule(cas: Cassette, fault: str) -> list[tuple[float, bytes]]:
    return [(c.at_ms, c.data) for c in timed_chunks(cas, fault)]


async def child(kind: str, args: argparse.Namespace) -> None:
    cas = cassette(args.events, args.gap)
    if kind == "streamreel":
        reel = Replayer(cas)

        def clear() -> int:
            reel.clear()
            return gc.collect()

        async with reel:
            settle_heap()  # as `streamreel serve` does once it is up
            await serve_child({"url": reel.url}, {"clear": clear})
    else:
        plans = {spec(args.latency, i): schedule(cas, spec(args.latency, i)) for i in range(args.streams)}

        def pick(request: web.Request) -> list[tuple[float, bytes]]:
            return plans[request.headers[FAULTS_HEADER]]

        async with Naive(pick) as naive:
            settle_heap()
            await serve_child({"url": naive.url}, {"clear": gc.collect})


@dataclass
class Run:
    completed: int
    aligned: list[float]
    worst: list[float]
    first: list[float]
    idle: float
    open: float
    peak: float
    after: float
    cpu_us: float


async def run(kind: str, args: argparse.Namespace, plans: list[list[float]]) -> Run:
    n = args.streams
    child_args = ["--child", kind, "--streams", str(n), "--events", str(args.events), "--gap", str(args.gap), "--latency", args.latency]
    async with Child(__file__, *child_args) as server:
        url = server.urls["url"]
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
            await asyncio.gather(*(arrivals(http, url, headers={FAULTS_HEADER: spec(args.latency, i)}) for i in range(4)))
            await open_connections(http, url, n)
            await server.call("clear")
            before = await server.stats()
            idle = before["rss"]
            opened = 0
            all_open = asyncio.Event()

            def one_open() -> None:
                nonlocal opened
                opened += 1
                if opened == n:
                    all_open.set()

            async def snapshot() -> dict[str, int]:
                await all_open.wait()
                return await server.stats()

            sampler = asyncio.create_task(snapshot())
            results: list[Any] = await asyncio.gather(
                *(arrivals(http, url, headers={FAULTS_HEADER: spec(args.latency, i)}, first=one_open) for i in range(n)), return_exceptions=True
            )
            if not all_open.is_set():
                sampler.cancel()
                at_open = {"rss": 0.0}
            else:
                at_open = await sampler
            after = await server.stats()
    aligned: list[float] = []
    worst: list[float] = []
    first: list[float] = []
    completed = 0
    for seen, plan in zip(results, plans):
        if isinstance(seen, BaseException) or len(seen) != len(plan):
            continue
        completed += 1
        offsets = [s - p for s, p in zip(seen, plan)]
        usual = statistics.median(offsets)
        errors = [abs(o - usual) for o in offsets]
        aligned += errors
        worst.append(max(errors))
        first.append(offsets[0])
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        print(f"  {kind}: {len(failures)} streams failed, first: {failures[0]!r}")
    cpu_us = (after["cpu"] - before["cpu"]) * 1e6 / sum(len(p) for p in plans)
    return Run(completed, aligned, worst, first, idle, at_open["rss"], after["peak"], after["rss"], cpu_us)


def pooled(rounds: list[Run]) -> Run:
    """Several rounds of one server as one: every stream's figures together, the median round's memory and CPU."""
    if len(rounds) == 1:
        return rounds[0]
    mid = sorted(rounds, key=lambda r: r.open - r.idle)[len(rounds) // 2]
    return Run(
        completed=min(r.completed for r in rounds),
        aligned=[x for r in rounds for x in r.aligned],
        worst=[x for r in rounds for x in r.worst],
        first=[x for r in rounds for x in r.first],
        idle=mid.idle,
        open=mid.open,
        peak=mid.peak,
        after=mid.after,
        cpu_us=statistics.median(r.cpu_us for r in rounds),
    )


def per_stream(value: float, base: float, n: int) -> str:
    return f"{(value - base) / n / 1024:9.1f} KiB"


async def main(args: argparse.Namespace) -> int:
    cas = cassette(args.events, args.gap)
    plans = [[c.at_ms for c in timed_chunks(cas, spec(args.latency, i))] for i in range(args.streams)]
    n = args.streams
    length = max(p[-1] for p in plans) / 1000.0
    print(
        f"{n} simultaneous streams, {len(plans[0])} events {args.gap:g} ms apart, faults latency:{args.latency},seed=<stream>; "
        f"longest stream {length:.1f} s; server in its own process, {os.cpu_count()} CPUs; ms"
    )
    rounds: dict[str, list[Run]] = {"naive": [], "streamreel": []}
    for i in range(args.rounds):  # alternating which goes first, so a change in the machine's load falls on both
        for kind in ("naive", "streamreel") if i % 2 == 0 else ("streamreel", "naive"):
            rounds[kind].append(await run(kind, args, plans))
    runs = {kind: pooled(rs) for kind, rs in rounds.items()}
    if args.rounds > 1:
        print(f"{args.rounds} rounds of each server, alternating; events pooled, memory and CPU the median round")
    for kind, r in runs.items():
        print(f"{kind}:")
        print(f"  completed {r.completed}/{n}")
        if not r.completed:
            continue
        print(f"  |error| per event            {dist(r.aligned)}")
        print(f"  worst event of each stream   {dist(r.worst)}")
        print(f"  request -> first event, late {dist(r.first)}")
        print(f"  server CPU per event sent    {r.cpu_us:7.1f} us")
        print(
            f"  server RSS idle {mib(r.idle)}; per stream: with all {n} open {per_stream(r.open, r.idle, n)}, "
            f"peak {per_stream(r.peak, r.idle, n)}, still held after all ended {per_stream(r.after, r.idle, n)}"
        )
    base, ours = runs["naive"], runs["streamreel"]
    ok = ours.completed == n and base.completed == n
    if base.completed and ours.completed:
        print(
            f"ratio streamreel / naive: p99 error {pct(ours.aligned, 99) / pct(base.aligned, 99):.2f}x, "
            f"p99 worst-per-stream {pct(ours.worst, 99) / pct(base.worst, 99):.2f}x, "
            f"p50 first event {pct(ours.first, 50) / pct(base.first, 50):.2f}x, "
            f"CPU per event {ours.cpu_us / base.cpu_us:.2f}x, "
            f"peak memory per stream {(ours.peak - ours.idle) / max(base.peak - base.idle, 1):.1f}x"
        )
        first, first_base = pct(ours.first, 50), pct(base.first, 50)
        burst = figure(f"{n} requests at once: request -> first event, p50 late", first, first_base, "ms", baseline="naive server", target="<= 1.2x naive", ok=first <= 1.2 * first_base)
        figure(f"{n} streams: p99 error per event", pct(ours.aligned, 99), pct(base.aligned, 99), "ms", baseline="naive server")
        figure(f"{n} streams: server CPU per event", ours.cpu_us, base.cpu_us, "us", baseline="naive server")
        open_kib, base_kib = (ours.open - ours.idle) / n / 1024, (base.open - base.idle) / n / 1024
        memory = figure(f"server memory per open stream ({n} open)", open_kib, base_kib, "KiB", baseline="naive server", target="< 16 KiB", ok=open_kib < 16)
        ok = ok and ((burst and memory) or not args.check)
    print(f"all {n} streams completed: {'yes' if ours.completed == n and base.completed == n else 'NO'}  ({load()})")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--gap", type=float, default=20.0, help="ms between events in the cassette")
    parser.add_argument("--latency", default="first=50ms,each=2ms,jitter=2ms", help="latency fault fields; each stream adds seed=<its index>")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each server, alternating which goes first")
    parser.add_argument("--check", action="store_true", help="exit 1 when a figure misses its target (every stream must complete regardless)")
    parser.add_argument("--child", choices=("streamreel", "naive"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(child(args.child, args))
    else:
        sys.exit(asyncio.run(main(args)))
