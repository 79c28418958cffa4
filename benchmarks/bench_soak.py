"""A longer soak: the mixed faulted workload of tests/test_soak.py at a larger count, against the same count with no faults.

    python benchmarks/bench_soak.py [--streams 20000] [--every 2000] [--mode async|thread] [--check]

One replayer (``history=1000``, as a long ``serve``) per run, on loopback. After every
``--every`` streams the clients are closed, the replayer settled and the process measured:
descriptors, sockets, server-loop tasks, server connections, in flight, TCP sockets on the
port, RSS and allocator blocks, with streams/s for that slice. The no-fault run (every shot
plain, raw aiohttp) is the baseline in the same process; the report gives the faulted
run's streams/s as a ratio of it (stalls and slow-latency shots hold a slot on purpose, so
the ratio is below 1 by design). ``--check`` exits 1 when any count ends off its baseline
or allocator blocks grow by more than half a block per stream from the first slice to the last.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from _harness import figure  # noqa: E402

from _soak_helpers import Clients, Snapshot, check_truth, quiesce, run_batch, shots, snapshot, soak_cassette  # noqa: E402

from streamreel import Replayer  # noqa: E402

CONCURRENCY = 32
HISTORY = 1000


async def soak(r: Replayer, total: int, every: int, kinds: list[str] | None, exclude: list[asyncio.Task[Any]]) -> tuple[Snapshot, list[Snapshot], float, int]:
    clients = Clients.open(r.url, CONCURRENCY)
    await run_batch(clients, shots(200, seed=1, kinds=kinds), CONCURRENCY)
    baseline = await quiesce(r, clients, exclude=exclude)
    print(f"  baseline  fds/sockets/tasks/conns/inflight/tcp {baseline.counts()} rss {baseline.rss / 1e6:.1f} MB blocks {baseline.blocks}")
    slices, busy, problems = [], 0.0, 0
    for start in range(0, total, every):
        batch = shots(min(every, total - start), seed=2 + start, start=1000 + start, kinds=kinds)
        clients = Clients.open(r.url, CONCURRENCY)
        began = time.perf_counter()
        outcomes = await run_batch(clients, batch, CONCURRENCY)
        took = time.perf_counter() - began
        busy += took
        await quiesce(r, clients, baseline, exclude=exclude)
        if len(batch) <= HISTORY:
            problems += len(check_truth(batch, outcomes, r.responses, r.requests))
        del batch, outcomes
        now = await snapshot(r, exclude=exclude, collect=True)
        slices.append(now)
        print(
            f"  {start + every:>7} streams {every / took:6.0f}/s  counts {now.counts()}  rss {now.rss / 1e6:6.1f} MB  blocks {now.blocks - baseline.blocks:+d}"
        )
    return baseline, slices, total / busy, problems


async def run(args: argparse.Namespace) -> int:
    me = asyncio.current_task()
    assert me is not None
    results = {}
    for name, kinds in (("no faults", ["none"]), ("faulted", None)):
        print(f"{name} ({args.mode}):")
        if args.mode == "async":
            async with Replayer(soak_cassette(), speed=0, history=HISTORY) as r:
                results[name] = await soak(r, args.streams, args.every, kinds, [me])
        else:
            with Replayer(soak_cassette(), speed=0, history=HISTORY) as r:
                results[name] = await soak(r, args.streams, args.every, kinds, [me])
    plain, faulted = results["no faults"], results["faulted"]
    print(f"streams/s: no faults {plain[2]:.0f}, faulted {faulted[2]:.0f}, ratio {faulted[2] / plain[2]:.2f}")
    figure(f"soak, {args.streams:,} mixed faulted streams", faulted[2], plain[2], "streams/s", baseline="no faults")
    failed = False
    for name, (baseline, slices, _, problems) in results.items():
        off = [s.counts() for s in slices if s.counts() != baseline.counts()]
        growth = slices[-1].blocks - slices[0].blocks
        print(f"{name}: counts off baseline in {len(off)} slices; blocks first->last slice {growth:+d}; ground-truth problems {problems}")
        failed |= bool(off) or problems > 0 or growth > args.streams // 2
    return 1 if args.check and failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=20000)
    parser.add_argument("--every", type=int, default=2000)
    parser.add_argument("--mode", choices=("async", "thread"), default="async")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
