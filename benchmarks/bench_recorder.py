"""How much latency the recorder adds: time to first event through `streamreel record` vs going direct.

    python benchmarks/bench_recorder.py [--rounds 200] [--check]

Starts an upstream (`streamreel serve --speed 0` on a real Anthropic capture) and a recorder
(`streamreel record --mode all`) as separate processes, as a user runs them, then times the same
streamed request both ways, interleaved, on kept-alive loopback connections from this process:
time to the first complete SSE event, and to the end of a 21-event stream. Before each
request the recorder has finished writing the cassette for the previous one (its `wrote`
log line), so the figures are the proxy's own cost, not a concurrent disk write.
Then, for timing fidelity, it records a stream with real gaps (20-60 ms, seeded) several times
and compares the gaps the recorder wrote with the upstream's schedule, next to the gaps this
client measured receiving the same stream direct (the baseline jitter of the machine). The
same streams give the per-event added latency: each event's arrival through the recorder
minus its arrival going direct (both in ms since that request was sent, alternating which
goes first), p50/p99/max over every event, not just the first.
``--check`` exits 1 when the median added time to first event is 1 ms or more.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import figure  # noqa: E402

from streamreel import Cassette, load, save  # noqa: E402
from streamreel.importer import import_sse  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CAPTURE = ROOT / "tests" / "data" / "anthropic-sdk-python" / "stream-b-fallback.sse"
BODY = json.dumps({"model": "claude-sonnet-4-6", "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": "Explain eclipses"}]}).encode()
HEADERS = {"content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": "sk-ant-bench-not-a-key"}


async def spawn(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streamreel", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
    if not line.startswith("listening on "):
        raise SystemExit(f"{' '.join(args[:1])} did not start: {line!r}")
    return proc, line.split()[-1]


async def timed(session: aiohttp.ClientSession, url: str) -> tuple[float, float]:
    """(ms to the first complete event, ms to the end of the stream)."""
    t0 = time.perf_counter()
    first = None
    seen = b""
    async with session.post(url + "/v1/messages", data=BODY, headers=HEADERS) as resp:
        async for chunk in resp.content.iter_any():
            if first is None:
                seen += chunk
                if b"\n\n" in seen:
                    first = time.perf_counter() - t0
    last = time.perf_counter() - t0
    assert first is not None and resp.status == 200
    return first * 1000.0, last * 1000.0


async def wait_written(proc: asyncio.subprocess.Process) -> None:
    assert proc.stderr is not None
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), 10)).decode()
        if not line:
            raise SystemExit("the recorder exited")
        if line.startswith("wrote "):
            return


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    return s[lo] + (s[min(lo + 1, len(s) - 1)] - s[lo]) * (k - lo)


def summary(name: str, values: list[float]) -> str:
    q = statistics.quantiles(values, n=20)
    return f"{name:<28} median {statistics.median(values):7.3f}  p10 {q[1]:7.3f}  p90 {q[17]:7.3f}  mean {statistics.fmean(values):7.3f}"


async def main(rounds: int, check: bool, streams: int) -> int:
    with tempfile.TemporaryDirectory(prefix="streamreel-bench-") as tmp:
        return await run(Path(tmp), rounds, check, streams)


def timed_cassette(gaps_ms: tuple[float, float] | None, seed: int = 7) -> Cassette:
    """The capture with every event at 0 ms (``gaps_ms`` None) or with seeded random gaps."""
    it = import_sse(CAPTURE.read_bytes()).interactions[0]
    rng = random.Random(seed)
    t = 0.0
    events = []
    for e in it.response.events or ():
        if gaps_ms is not None:
            t += rng.uniform(*gaps_ms)
        events.append(replace(e, t=round(t, 3)))
    end = replace(it.response.end, t=events[-1].t)
    return Cassette(interactions=(replace(it, response=replace(it.response, headers_at=0.0, events=tuple(events), end=end)),))


async def arrival_times(session: aiohttp.ClientSession, url: str) -> list[float]:
    """ms from the request to each complete event, as this client sees them arrive."""
    t0 = time.perf_counter()
    out: list[float] = []
    pending = b""
    async with session.post(url + "/v1/messages", data=BODY, headers=HEADERS) as resp:
        async for chunk in resp.content.iter_any():
            now = (time.perf_counter() - t0) * 1000.0
            pending += chunk
            while b"\n\n" in pending:
                _, pending = pending.split(b"\n\n", 1)
                out.append(now)
    return out


def gap_errors(want: list[float], got: list[float]) -> list[float]:
    wg = [b - a for a, b in zip(want, want[1:])]
    gg = [b - a for a, b in zip(got, got[1:])]
    assert len(wg) == len(gg), (len(wg), len(gg))
    return [abs(a - b) for a, b in zip(wg, gg)]


async def fidelity(work: Path, streams: int) -> tuple[list[float], list[float], list[float]]:
    """(recorded-gap errors, client-observed direct gap errors) against the upstream's schedule,
    and each event's added latency through the recorder over going direct, in ms."""
    cas = timed_cassette((20.0, 60.0))
    schedule = [e.t for e in cas.interactions[0].response.events or ()]
    save(cas, work / "timed.yaml")
    upstream, upstream_url = await spawn("serve", str(work / "timed.yaml"))
    recorder, recorder_url = await spawn("record", "--upstream", upstream_url, "-o", str(work / "timed-recorded.yaml"), "--mode", "all")
    observed: list[float] = []
    added: list[float] = []
    try:
        async with aiohttp.ClientSession() as session:
            for i in range(streams):
                if i % 2 == 0:
                    direct = await arrival_times(session, upstream_url)
                    proxied = await arrival_times(session, recorder_url)
                    await wait_written(recorder)
                else:
                    proxied = await arrival_times(session, recorder_url)
                    await wait_written(recorder)
                    direct = await arrival_times(session, upstream_url)
                observed += gap_errors(schedule, direct)
                assert len(proxied) == len(direct) == len(schedule), (len(proxied), len(direct), len(schedule))
                added += [p - d for p, d in zip(proxied, direct)]
    finally:
        for proc in (recorder, upstream):
            proc.terminate()
            await proc.wait()
    recorded: list[float] = []
    for item in load(work / "timed-recorded.yaml").interactions:
        recorded += gap_errors(schedule, [e.t for e in item.response.events or ()])
    return recorded, observed, added


async def run(work: Path, rounds: int, check: bool, streams: int) -> int:
    save(timed_cassette(None), work / "upstream.yaml")
    upstream, upstream_url = await spawn("serve", str(work / "upstream.yaml"), "--speed", "0")
    recorder, recorder_url = await spawn("record", "--upstream", upstream_url, "-o", str(work / "recorded.yaml"), "--mode", "all")
    direct_first: list[float] = []
    proxied_first: list[float] = []
    direct_last: list[float] = []
    proxied_last: list[float] = []
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as direct, aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as proxied:
            for i in range(rounds + 20):
                d = await timed(direct, upstream_url)
                p = await timed(proxied, recorder_url)
                await wait_written(recorder)
                if i >= 20:  # warm-up: connections, caches, first cassette writes
                    direct_first.append(d[0])
                    direct_last.append(d[1])
                    proxied_first.append(p[0])
                    proxied_last.append(p[1])
    finally:
        for proc in (recorder, upstream):
            proc.terminate()
            await proc.wait()
    size = (work / "recorded.yaml").stat().st_size
    added_first = statistics.median(proxied_first) - statistics.median(direct_first)
    added_last = statistics.median(proxied_last) - statistics.median(direct_last)
    print(f"streamreel recorder overhead, {rounds} rounds each way, loopback, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}")
    print("all figures in ms")
    print(summary("first event, direct", direct_first))
    print(summary("first event, via recorder", proxied_first))
    print(summary("21-event stream, direct", direct_last))
    print(summary("21-event stream, via record", proxied_last))
    print(f"added time to first event (median): {added_first:.3f} ms   (limit 1 ms: {'OK' if added_first < 1.0 else 'OVER'})")
    first_direct = statistics.median(direct_first)
    figure("time to first event through the recorder", first_direct + added_first, first_direct, "ms", baseline="direct", target="< direct + 1 ms", ok=added_first < 1.0)
    print(f"added time to end of stream (median): {added_last:.3f} ms")
    print(f"cassette rewritten after every interaction, {rounds + 20} interactions, {size} bytes at the end")
    recorded, observed, added = await fidelity(work, streams)
    print(f"gap fidelity, {streams} streams of 21 events with 20-60 ms gaps; |gap - scheduled gap| in ms:")
    print(summary("recorded by the recorder", recorded) + f"  max {max(recorded):7.3f}")
    print(summary("seen by a client, direct", observed) + f"  max {max(observed):7.3f}")
    print(f"added latency per event through the recorder (arrival via recorder - arrival direct, {len(added)} events), ms:")
    print(summary("every event", added) + f"  p99 {percentile(added, 99):7.3f}  max {max(added):7.3f}")
    print(summary("first event of each stream", added[:: len(added) // streams]))
    return 1 if check and added_first >= 1.0 else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--streams", type=int, default=10, help="timed streams recorded for the gap-fidelity figures")
    parser.add_argument("--check", action="store_true", help="exit 1 if the added median time to first event is >= 1 ms")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.rounds, args.check, args.streams)))
