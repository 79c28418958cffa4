"""A bounded soak: one replayer serves thousands of mixed, faulted streams and ends with nothing leaked.

Every shot picks a bundled cassette, a fault mix (none, resets, closes, eofs, truncation,
errors, drops, fragments, pings, HTTP 429/529, stalls the client times out on or cancels,
latency with jitter, clients that cancel mid-stream or leave without reading) and a
client (raw aiohttp, or for a tenth the anthropic SDK) from a seed. Before the soak
(after a warm-up) and after each batch, with the clients closed and the replayer
settled, the process must hold the same descriptors, sockets, server-loop tasks, server
connections and TCP sockets on the port, nothing in flight; and the ground truth must
account for every request with an ending its faults allow.
"""

from __future__ import annotations

import asyncio
from typing import Any

from _soak_helpers import KINDS, Clients, Snapshot, check_truth, quiesce, run_batch, shots, snapshot, soak_cassette

from streamreel import Replayer

SOAK_STREAMS = 2000
"""Streams per soak, in two batches of the same seeded mix. Each of the 19 kinds of shot
(the rarest weigh 1 in 25) comes up about 40 times a batch, so a resource left behind by
any one fault path shows as dozens of descriptors, tasks or connections, not a maybe;
a leak of half an allocator block per stream (500) is three times the ~160-block noise
between two batches. At 300-800 streams/s on a loaded 2-core machine (load average 4-5
measured) each test takes 10-17 s, under the suite's budget even with ``-n 2``; 3,000
took 22 s there."""

SOAK_BATCH = SOAK_STREAMS // 2
WARMUP = 200
"""Shots before the baseline: the server's caches (parsed header faults: 256) and the clients' imports warm up."""

CONCURRENCY = 32
"""Streams in flight at once: a busy test suite's worth, and every fault path overlapping others."""

FLAT_BLOCKS = SOAK_BATCH // 2
"""Allocator blocks (``sys.getallocatedblocks``, after a full collection) a second batch may
add to the first's with a bounded history: half a block per stream. A retained request and
response cost about 32 (the unbounded test measures it with the same gauge)."""


async def _soak(r: Replayer, seed: int, exclude: list[asyncio.Task[Any]]) -> tuple[Snapshot, list[Snapshot], list[float]]:
    """Warm up, take the baseline, then two batches. After each, its clients are closed and the
    replayer settled, its ground truth checked and dropped (so the test itself holds no more
    after the second batch than after the first), and then the process measured."""
    clients = Clients.open(r.url, CONCURRENCY)
    await run_batch(clients, shots(WARMUP, seed=seed), CONCURRENCY)
    baseline = await quiesce(r, clients, exclude=exclude)
    afters, seconds, kinds, sdk = [], [], set(), 0
    loop = asyncio.get_running_loop()
    for b in range(2):
        batch = shots(SOAK_BATCH, seed=seed + 1, start=WARMUP + b * SOAK_BATCH)
        clients = Clients.open(r.url, CONCURRENCY)
        began = loop.time()
        outcomes = await run_batch(clients, batch, CONCURRENCY)
        seconds.append(loop.time() - began)
        await quiesce(r, clients, baseline, exclude=exclude)
        problems = check_truth(batch, outcomes, r.responses, r.requests)
        assert not problems, f"{len(problems)} problems, first: {problems[:5]}"
        kinds |= {s.kind for s in batch}
        sdk += sum(s.client == "sdk" for s in batch)
        del batch, outcomes, problems
        afters.append(await snapshot(r, exclude=exclude, collect=True))
    assert kinds == set(KINDS) and sdk >= SOAK_STREAMS // 40
    return baseline, afters, seconds


def _report(mode: str, baseline: Snapshot, afters: list[Snapshot], seconds: list[float]) -> str:
    rates = ", ".join(f"{SOAK_BATCH / s:.0f}" for s in seconds)
    return (
        f"{mode}: {SOAK_STREAMS} streams at {rates} streams/s; baseline {baseline.counts()} -> {[a.counts() for a in afters]} "
        f"(fds, sockets, tasks, conns, inflight, tcp); blocks +{afters[0].blocks - baseline.blocks} then +{afters[1].blocks - afters[0].blocks}; "
        f"rss +{(afters[0].rss - baseline.rss) / 1e6:.1f} MB then +{(afters[1].rss - afters[0].rss) / 1e6:.1f} MB"
    )


def _assert_back_to_baseline(baseline: Snapshot, afters: list[Snapshot]) -> None:
    assert baseline.connections == baseline.inflight == 0 and set(baseline.tcp) == {"LISTEN"}
    for after in afters:
        # at most the baseline's: a socket another test left to the garbage collector may close meanwhile
        assert after.fds <= baseline.fds and after.sockets <= baseline.sockets and after.tasks == baseline.tasks, (after.counts(), baseline.counts())
        assert (after.connections, after.inflight, after.tcp) == (0, 0, {"LISTEN": 1})


async def test_an_async_replayer_serves_thousands_of_faulted_streams_and_leaks_nothing() -> None:
    me = asyncio.current_task()
    assert me is not None
    async with Replayer(soak_cassette(), speed=0) as r:
        baseline, afters, seconds = await _soak(r, 11, [me])
        answered = len(r.responses)
    print(_report("async with", baseline, afters, seconds))
    _assert_back_to_baseline(baseline, afters)
    assert answered >= WARMUP + SOAK_STREAMS - SOAK_STREAMS // 100
    # The default history keeps every request and response: the second batch adds its
    # records to the first's. The same measure that must stay flat below sees them here.
    # A record is a few dozen blocks (headers, the parsed JSON body, what was sent); a
    # leak of the stream itself (its chunks, its task) would be hundreds.
    kept = (afters[1].blocks - afters[0].blocks) / SOAK_BATCH
    print(f"history=None keeps {kept:.1f} blocks and {(afters[1].rss - afters[0].rss) / SOAK_BATCH:.0f} B of RSS per response")
    assert 4 <= kept <= 128


def test_a_threaded_replayer_with_bounded_history_keeps_memory_flat_and_leaks_nothing() -> None:
    async def main() -> tuple[Snapshot, list[Snapshot], list[float]]:
        me = asyncio.current_task()
        assert me is not None
        with Replayer(soak_cassette(), speed=0, history=SOAK_BATCH) as r:
            baseline, afters, seconds = await _soak(r, 23, [me])
        return baseline, afters, seconds

    baseline, afters, seconds = asyncio.run(main())
    print(_report("with (thread)", baseline, afters, seconds))
    _assert_back_to_baseline(baseline, afters)
    assert afters[1].blocks - afters[0].blocks < FLAT_BLOCKS
