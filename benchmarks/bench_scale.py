"""A 100,000-event cassette: load time and peak memory, and replay memory per client.

    python benchmarks/bench_scale.py [--events 100000] [--clients 1,4,16] [--sequential 4]

1. Writes a cassette of ``--events`` events (an Anthropic text stream from
   ``message_events``, saved with ``streamreel.save``) to a temporary directory.
2. Loads it in fresh processes, so nothing earlier in this run pollutes the peak:
   ``streamreel.cassette.load`` against the baseline ``yaml.load(text, CSafeLoader)`` (the
   parse alone, without building events), each next to a process that only imports, to
   subtract the interpreter; reports wall and CPU seconds (the ratio is on CPU time, which
   other processes on a busy machine disturb less) and peak RSS (``ru_maxrss``).
3. Replays it at speed 0 from a server process (a ``Replayer``; the baseline is a
   hand-written aiohttp server writing the same events, one write each) to ``--clients``
   concurrent raw readers, phase by phase, then to ``--sequential`` readers one after the
   other, and reports the server's memory growth per client against the stream's size
   (traced by ``tracemalloc`` from after the load, so each phase is measured alone). The
   target is memory proportional to the file, not to the number of clients. The replayer
   keeps every response's ground truth by default; ``Replayer(history=N)`` keeps only the
   last N, so the sequential phase runs on both a default and a ``history=0`` replayer
   (one process, one loaded cassette).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Child, Naive, mib, serve_child  # noqa: E402

from streamreel import Cassette, Replayer, load, save  # noqa: E402
from streamreel.providers.anthropic import TextBlock, message_events  # noqa: E402


def cassette(events: int, gap_ms: float = 1.0) -> Cassette:
    deltas = max(events - 6, 1)  # message_events adds 6 around the deltas
    made = message_events([TextBlock(tuple(f" w{i % 97}" for i in range(deltas)))])
    return Cassette.from_events([replace(e, t=round(i * gap_ms, 3)) for i, e in enumerate(made)])


# ------------------------------------------------------------------ loading


def load_child(how: str, path: str) -> None:
    """One fresh process: load ``path`` the ``how`` way, print wall and CPU seconds and peak RSS as JSON."""
    start = time.perf_counter()
    cpu = time.process_time()
    if how == "streamreel":
        count = len(load(path).interactions[0].response.events or ())
    elif how == "yaml":
        with open(path, encoding="utf-8") as f:
            count = len(yaml.load(f.read(), Loader=yaml.CSafeLoader)["interactions"][0]["response"]["events"])
    else:
        count = 0
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    print(json.dumps({"seconds": seconds, "cpu": cpu, "peak": peak, "events": count}))


def load_in_fresh_process(how: str, path: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", "load", how, str(path)], capture_output=True, text=True, timeout=600, check=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


# ------------------------------------------------------------------ replaying


async def serve(kind: str, path: str) -> None:
    """The server process; memory is traced from after the load, so each phase's growth is
    exact whatever the phases before it left in the allocator (RSS is not: it rarely shrinks)."""
    cas = load(path)

    def reset_peak() -> int:
        gc.collect()
        tracemalloc.reset_peak()
        return 0

    verbs = {"reset_peak": reset_peak}
    if kind == "streamreel":
        async with Replayer(cas, speed=0) as reel, Replayer(cas, speed=0, history=0) as bounded:

            def clear() -> int:
                reel.clear()
                bounded.clear()
                return gc.collect()

            tracemalloc.start()
            await serve_child({"url": reel.url, "history0": bounded.url}, {**verbs, "clear": clear})
    else:
        writes = [(0.0, e.wire) for e in cas.interactions[0].response.events or ()]
        del cas
        async with Naive(lambda _: writes) as naive:
            tracemalloc.start()
            await serve_child({"url": naive.url, "history0": naive.url}, {**verbs, "clear": gc.collect})


async def read_all(http: aiohttp.ClientSession, url: str) -> int:
    size = 0
    async with http.post(url + "/v1/messages", data=b"{}") as resp:
        async for chunk in resp.content.iter_any():
            size += len(chunk)
    return size


async def replay_phases(kind: str, server: Child, clients: list[int], sequential: int, stream_bytes: int) -> list[tuple[str, int, float, float, float]]:
    """(phase, clients, peak growth, growth still held after the phase, seconds) in traced bytes, for one server process."""
    rows: list[tuple[str, int, float, float, float]] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:

        async def phase(label: str, url: str, k: int, together: bool) -> None:
            await server.call("clear")
            await server.call("reset_peak")
            idle = await server.stats()
            began = time.perf_counter()
            if together:
                sizes = await asyncio.gather(*(read_all(http, url) for _ in range(k)))
            else:
                sizes = [await read_all(http, url) for _ in range(k)]
            if any(s != stream_bytes for s in sizes):
                raise SystemExit(f"{kind}: a client got {min(sizes)} bytes of {stream_bytes}")
            seconds = time.perf_counter() - began
            after = await server.stats()
            rows.append((label, k, after["traced_peak"] - idle["traced"], after["traced"] - idle["traced"], seconds))

        await phase("warm-up", server.urls["url"], 1, True)
        rows.clear()
        for k in clients:
            await phase("concurrent", server.urls["url"], k, True)
        if sequential:
            await phase("sequential", server.urls["url"], sequential, False)
            if kind == "streamreel":
                await phase("sequential, history=0", server.urls["history0"], sequential, False)
    return rows


async def main(args: argparse.Namespace) -> None:
    clients = [int(c) for c in args.clients.split(",") if c]
    with tempfile.TemporaryDirectory(prefix="streamreel-scale-") as tmp:
        path = Path(tmp) / "scale.yaml"
        start = time.perf_counter()
        cas = cassette(args.events)
        save(cas, path)
        events = cas.interactions[0].response.events or ()
        stream_bytes = sum(len(e.wire) for e in events)
        del cas, events
        print(
            f"{args.events:,} events, file {mib(path.stat().st_size)}, stream on the wire {mib(stream_bytes)}; "
            f"written in {time.perf_counter() - start:.1f} s; {os.cpu_count()} CPUs, PyYAML {yaml.__version__} with libyaml {yaml.__with_libyaml__}"
        )
        bare = load_in_fresh_process("none", path)
        base = load_in_fresh_process("yaml", path)
        ours = load_in_fresh_process("streamreel", path)
        assert ours["events"] == base["events"] == args.events, (ours, base)
        print("load, each in a fresh process (peak RSS minus a process that only imports):")
        for label, r in (("yaml.load(CSafeLoader)", base), ("streamreel.load", ours)):
            print(
                f"  {label:<24}{r['seconds']:7.2f} s wall, {r['cpu']:6.2f} s CPU   peak +{mib(r['peak'] - bare['peak'])}  "
                f"({(r['peak'] - bare['peak']) / path.stat().st_size:.1f}x the file)"
            )
        print(
            f"  ratio streamreel / yaml: CPU time {ours['cpu'] / base['cpu']:.2f}x (wall {ours['seconds'] / base['seconds']:.2f}x, noisier under load), "
            f"peak memory {(ours['peak'] - bare['peak']) / (base['peak'] - bare['peak']):.2f}x"
        )
        print(f"replay at speed 0, raw readers; server memory growth over idle, traced by tracemalloc (stream = {mib(stream_bytes)} on the wire):")
        print(f"  {'server':<12}{'phase':<24}{'clients':>8}{'peak growth':>14}{'per client':>14}{'x stream':>10}{'held after':>14}{'seconds':>9}")
        servers = {kind: Child(__file__, "--child", "serve", kind, str(path)) for kind in ("naive", "streamreel")}
        await asyncio.gather(*(child.__aenter__() for child in servers.values()))  # both load at once; loading is not measured here
        try:
            for kind, server in servers.items():
                for label, k, peak, held, seconds in await replay_phases(kind, server, clients, args.sequential, stream_bytes):
                    print(f"  {kind:<12}{label:<24}{k:>8}{mib(peak):>14}{mib(peak / k):>14}{peak / k / stream_bytes:>9.2f}x{mib(held):>14}{seconds:>9.1f}")
        finally:
            await asyncio.gather(*(child.__aexit__(None, None, None) for child in servers.values()))
        print("target: per-client growth near 0x the stream (memory proportional to the file, not to the clients)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--clients", default="1,4,16", help="concurrent readers per phase, comma-separated")
    parser.add_argument("--sequential", type=int, default=4, help="readers one after another (0: skip)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child and args.child[0] == "load":
        load_child(args.child[1], args.child[2])
    elif args.child and args.child[0] == "serve":
        asyncio.run(serve(args.child[1], args.child[2]))
    else:
        asyncio.run(main(args))
