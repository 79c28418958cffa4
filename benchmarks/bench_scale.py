"""Cassettes at file speed (a 100,000-event cassette saved and loaded), and replay memory per client.

    python benchmarks/bench_scale.py [--events 100000] [--repeat 3] [--clients 1,4,16] [--sequential 4]

1. Save: the cassette (an Anthropic text stream of ``--events`` events from ``message_events``)
   is built in a fresh process and written with ``streamreel.save``; the baseline, in another
   fresh process, writes the same data with bare libyaml (``yaml.dump(CSafeDumper)``, events as
   flow mappings, as streamreel writes them). Time is the best wall time of ``--repeat``
   processes each (CPU time next to it); memory is the process's peak RSS during the write
   minus its RSS just before (the peak is reset first), against the file's size.
2. Load: the file is loaded in fresh processes by ``streamreel.load`` and by bare libyaml
   (``yaml.load(CSafeLoader)``: the parse alone, no events built), the same way. A copy with
   one event hand-edited into block style shows what the full YAML path costs (the fast path
   leaves such a file to it).
3. Replay: it is replayed at speed 0 from a server process (a ``Replayer``; the baseline is a
   hand-written aiohttp server writing the same events, one write each) to ``--clients``
   concurrent raw readers, phase by phase, then to ``--sequential`` readers one after the
   other, and reports the server's memory growth per client against the stream's size
   (traced by ``tracemalloc`` from after the load, so each phase is measured alone). The
   target is memory proportional to the file, not to the number of clients. The replayer
   keeps every response's ground truth by default; ``Replayer(history=N)`` keeps only the
   last N, so the sequential phase runs on both a default and a ``history=0`` replayer
   (one process, one loaded cassette).

Targets (issue sizes: 100,000 events): save and load each under 1 s (scaled to ``--events``:
10 µs per event, 0.1 s at the least), peak memory under 3x the file's size.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
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
from _harness import Child, Naive, figure, load as machine_load, mib, peak_rss, reset_peak_rss, rss, serve_child  # noqa: E402

from streamreel import Cassette, Replayer, load, save  # noqa: E402
from streamreel.providers.anthropic import TextBlock, message_events  # noqa: E402

SECONDS_PER_EVENT = 1.0 / 100_000
"""The target: 1 s for 100,000 events, to save and to load."""
MIN_SECONDS = 0.1
"""The least a smaller cassette's target allows: writing any file durably (fsync) takes its time."""
MEMORY_TARGET = 3.0
"""Peak memory while saving or loading, in file sizes."""


def cassette(events: int, gap_ms: float = 1.0) -> Cassette:
    deltas = max(events - 6, 1)  # message_events adds 6 around the deltas
    made = message_events([TextBlock(tuple(f" w{i % 97}" for i in range(deltas)))])
    return Cassette.from_events([replace(e, t=round(i * gap_ms, 3)) for i, e in enumerate(made)])


# ------------------------------------------------------------------ saving and loading, each in a fresh process


def measured(work: Any) -> dict[str, float]:
    """Run ``work()`` with the peak RSS reset first: wall and CPU seconds, peak RSS growth over the RSS before."""
    gc.collect()
    reset_peak_rss()
    before = rss()
    start, cpu = time.perf_counter(), time.process_time()
    count = work()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"seconds": seconds, "cpu": cpu, "peak": max(peak_rss() - before, 0), "events": count}


def save_child(how: str, path: str, events: int) -> None:
    import streamreel._fastyaml  # noqa: F401  (its expressions compile on import: a one-time cost, not the save's)

    if how == "streamreel":
        cas = cassette(events)
        print(json.dumps(measured(lambda: save(cas, path) or events)))
        return
    with open(path.replace(".baseline", ""), encoding="utf-8") as f:
        data = yaml.load(f.read(), Loader=yaml.CSafeLoader)

    def dump() -> int:
        with open(path, "w", encoding="utf-8") as out:
            yaml.dump(data, out, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True, width=2**31 - 1, default_flow_style=None)
        return len(data["interactions"][0]["response"]["events"])

    print(json.dumps(measured(dump)))


def load_child(how: str, path: str) -> None:
    import streamreel._fastyaml  # noqa: F401

    def parse() -> int:
        if how == "streamreel":
            return len(load(path).interactions[0].response.events or ())
        with open(path, encoding="utf-8") as f:
            return len(yaml.load(f.read(), Loader=yaml.CSafeLoader)["interactions"][0]["response"]["events"])

    print(json.dumps(measured(parse)))


def fresh(*args: str, repeat: int = 1) -> dict[str, float]:
    """The best (by wall time) of ``repeat`` fresh processes running this script's ``--child`` ``args``."""
    runs = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, timeout=600, check=True)
        runs.append(json.loads(out.stdout))
    return min(runs, key=lambda r: r["seconds"])


def hand_edited(path: Path, out: Path, block: bool) -> None:
    """A copy of ``path`` with its tenth event edited by hand: on its line (a comment after it), or
    rewritten in block style over several lines."""
    with open(path, encoding="utf-8") as src, open(out, "w", encoding="utf-8") as dst:
        seen = 0
        for line in src:
            if line.startswith("    - {t: "):
                seen += 1
                if seen == 10:
                    if block:
                        line = "    - " + "\n      ".join(line.strip()[3:-1].split(", ", 2)) + "\n"
                    else:
                        line = line.rstrip("\n") + "  # edited by hand\n"
            dst.write(line)


def file_speed(path: Path, events: int, repeat: int) -> bool:
    """Save and load at file speed, each against bare libyaml; True if every target is met."""
    ours = fresh("save", "streamreel", str(path), str(events), repeat=repeat)
    size = path.stat().st_size
    base = fresh("save", "yaml", str(path) + ".baseline", str(events), repeat=repeat)
    budget = max(events * SECONDS_PER_EVENT, MIN_SECONDS)
    print(f"{events:,} events, file {mib(size)}; best of {repeat} fresh processes each; {machine_load()}")
    print(f"  save  streamreel.save          {ours['seconds']:6.2f} s wall, {ours['cpu']:5.2f} s CPU, peak +{mib(ours['peak'])} ({ours['peak'] / size:.1f}x the file)")
    print(f"        yaml.dump(CSafeDumper)    {base['seconds']:6.2f} s wall, {base['cpu']:5.2f} s CPU, peak +{mib(base['peak'])} ({base['peak'] / size:.1f}x)")
    ok = figure(f"save {events:,} events", ours["seconds"], base["seconds"], "s", baseline="yaml.dump(CSafeDumper)", target=f"< {budget:g} s", ok=ours["seconds"] < budget)
    ok &= figure("save, peak memory", ours["peak"] / size, base["peak"] / size, "x the file", baseline="yaml.dump", target=f"< {MEMORY_TARGET:g}x", ok=ours["peak"] / size < MEMORY_TARGET, show="{:.2f}")
    lo = fresh("load", "streamreel", str(path), repeat=repeat)
    lb = fresh("load", "yaml", str(path), repeat=repeat)
    if not lo["events"] == lb["events"] == events:
        raise SystemExit(f"loaded {lo['events']} events, yaml {lb['events']}, wrote {events}")
    edited = {}
    for block in (False, True):
        copy = path.with_name(f"edited-{block}.yaml")
        hand_edited(path, copy, block)
        edited[block] = fresh("load", "streamreel", str(copy))
    print(f"  load  streamreel.load          {lo['seconds']:6.2f} s wall, {lo['cpu']:5.2f} s CPU, peak +{mib(lo['peak'])} ({lo['peak'] / size:.1f}x the file)")
    print(f"        yaml.load(CSafeLoader)    {lb['seconds']:6.2f} s wall, {lb['cpu']:5.2f} s CPU, peak +{mib(lb['peak'])} ({lb['peak'] / size:.1f}x)")
    for block, label in ((False, "one event edited on its line"), (True, "one event rewritten in block style (the full YAML path)")):
        le = edited[block]
        print(f"        {label}: {le['seconds']:.2f} s wall, peak +{mib(le['peak'])} ({le['peak'] / size:.1f}x)")
    ok &= figure(f"load {events:,} events", lo["seconds"], lb["seconds"], "s", baseline="yaml.load(CSafeLoader)", target=f"< {budget:g} s", ok=lo["seconds"] < budget)
    ok &= figure("load, peak memory", lo["peak"] / size, lb["peak"] / size, "x the file", baseline="yaml.load", target=f"< {MEMORY_TARGET:g}x", ok=lo["peak"] / size < MEMORY_TARGET, show="{:.2f}")
    return ok


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


async def main(args: argparse.Namespace) -> int:
    clients = [int(c) for c in args.clients.split(",") if c]
    with tempfile.TemporaryDirectory(prefix="streamreel-scale-") as tmp:
        path = Path(tmp) / "scale.yaml"
        ok = file_speed(path, args.events, args.repeat)
        events = load(path).interactions[0].response.events or ()
        stream_bytes = sum(len(e.wire) for e in events)
        del events
        print(f"replay at speed 0, raw readers; server memory growth over idle, traced by tracemalloc (stream = {mib(stream_bytes)} on the wire):")
        print(f"  {'server':<12}{'phase':<24}{'clients':>8}{'peak growth':>14}{'per client':>14}{'x stream':>10}{'held after':>14}{'seconds':>9}")
        servers = {kind: Child(__file__, "--child", "serve", kind, str(path)) for kind in ("naive", "streamreel")}
        await asyncio.gather(*(child.__aenter__() for child in servers.values()))  # both load at once; loading is not measured here
        per_client: dict[str, float] = {}
        try:
            for kind, server in servers.items():
                for label, k, peak, held, seconds in await replay_phases(kind, server, clients, args.sequential, stream_bytes):
                    print(f"  {kind:<12}{label:<24}{k:>8}{mib(peak):>14}{mib(peak / k):>14}{peak / k / stream_bytes:>9.2f}x{mib(held):>14}{seconds:>9.1f}")
                    if label == "concurrent":
                        per_client[kind] = peak / k / stream_bytes
        finally:
            await asyncio.gather(*(child.__aexit__(None, None, None) for child in servers.values()))
        most = max(clients)
        ours, base = per_client["streamreel"], per_client["naive"]
        # The naive server holds nothing per client but its connection: the same for ours means
        # memory goes with the file, not with the clients.
        ok &= figure(f"replay memory per client, {most} concurrent", ours, base, "x the stream", baseline="naive server", target="<= 1.5x naive", ok=ours <= 1.5 * base, show="{:.3f}")
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per save and load measurement (best wall time)")
    parser.add_argument("--clients", default="1,4,16", help="concurrent readers per phase, comma-separated")
    parser.add_argument("--sequential", type=int, default=4, help="readers one after another (0: skip)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a figure misses its target")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child and args.child[0] == "load":
        load_child(args.child[1], args.child[2])
    elif args.child and args.child[0] == "save":
        save_child(args.child[1], args.child[2], int(args.child[3]))
    elif args.child and args.child[0] == "serve":
        asyncio.run(serve(args.child[1], args.child[2]))
    else:
        sys.exit(asyncio.run(main(args)))
