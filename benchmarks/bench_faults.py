"""What faults cost and what a reader sees of them, measured against a baseline in the same process.

Run: ``python benchmarks/bench_faults.py [--events 20000] [--repeats 5]`` (about 30 s). Prints four tables:

1. replay throughput of a 20,000-event stream at ``speed:0`` under each fault, as a ratio
   to the unfaulted replay (a raw httpx2 client on another thread reads the body);
2. how many of 400 one-byte ``fragment`` pieces a raw socket reader gets in reads of their
   own, by ``gap``, on another thread, in another process and on the replayer's own loop;
3. how long a ``reset`` takes after its last byte (waiting for the peer's ACKs) against a
   clean ``eof`` ending;
4. the socketless path: plans per second for the 9-event capture under a 3-fault plan.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _fault_helpers import anthropic_cassette  # noqa: E402
from _harness import figure  # noqa: E402

from streamreel import Cassette, Event, Replayer  # noqa: E402
from streamreel.pipeline import plan  # noqa: E402

N_EVENTS = 20_000
REPEATS = 5


def _big() -> Cassette:
    delta = json.dumps({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "ab"}}, separators=(",", ":"))
    # recorded over one second (played at speed 0): pings need a span to go into, or they would do nothing
    return Cassette.from_events([Event(t=i * 1000.0 / N_EVENTS, event="content_block_delta", data=delta) for i in range(N_EVENTS)])


def throughput() -> None:
    cas = _big()
    specs = ["", "drop:event=0", "truncate:event=5", "pings:every=10ms", "fragment:size=512", "fragment:random,max=64,seed=1", f"disconnect:after={N_EVENTS - 1},how=reset", f"disconnect:after={N_EVENTS - 1},how=close"]
    results: dict[str, float] = {}
    with httpx2.Client() as client:
        for spec in specs:
            with Replayer(cas, speed=0, faults=spec) as r:
                times = []
                for _ in range(REPEATS):
                    t0 = time.perf_counter()
                    try:
                        with client.stream("POST", r.url + "/v1/messages", content=b"{}") as resp:
                            for _ in resp.iter_raw():
                                pass
                    except httpx2.HTTPError:
                        pass
                    times.append(time.perf_counter() - t0)
                    r.settle()
                results[spec] = statistics.median(times)
    base = results[""]
    print(f"\n1. replay of {N_EVENTS} events at speed:0, httpx2 reader on a thread (median of {REPEATS})")
    print(f"{'fault':40} {'events/s':>10} {'vs none':>8}")
    for spec, took in results.items():
        print(f"{spec or '(none)':40} {N_EVENTS / took:10.0f} {base / took:8.2f}")
    slowest = max(results, key=lambda spec: results[spec])
    figure(f"faulted replay throughput, slowest fault ({slowest})", N_EVENTS / results[slowest], N_EVENTS / base, "events/s", baseline="no fault")


def _count_reads(port: int, path: str) -> int:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}".encode())
    reads, tail = 0, b""
    while True:
        got = sock.recv(65536)
        if not got:
            break
        reads += 1
        tail = (tail + got)[-7:]
        if tail.endswith(b"\r\n0\r\n\r\n"):
            break
    sock.close()
    return reads


async def _count_reads_async(port: int, path: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}".encode())
    reads, tail = 0, b""
    while True:
        got = await reader.read(65536)
        if not got:
            break
        reads += 1
        tail = (tail + got)[-7:]
        if tail.endswith(b"\r\n0\r\n\r\n"):
            break
    writer.close()
    return reads


async def _same_loop_reads(cas: Cassette, spec: str) -> int:
    async with Replayer(cas, speed=0, faults=spec) as r:
        reads = await asyncio.wait_for(_count_reads_async(r.port, "/v1/messages"), 30)
        await r.asettle()
    return reads


def _reader_process(port: int, path: str, out: "multiprocessing.Queue[int]") -> None:
    out.put(_count_reads(port, path))


def fragment_reads() -> None:
    pieces = 400
    cas = Cassette.from_events([Event(t=0, data="x" * (pieces - len("data: \n\n")))])
    print(f"\n2. fragment:size=1 — share of {pieces} pieces a raw socket reader got in reads of their own (median of 3)")
    print(f"{'gap':>8} {'thread':>8} {'process':>8} {'same loop':>10} {'ms':>6}")
    for gap in ("0ms", "0.1ms", "0.5ms", "1ms"):
        row = []
        took = 0.0
        spec = f"fragment:size=1,gap={gap}"
        for where in ("thread", "process", "same loop"):
            shares = []
            for _ in range(3):
                if where == "same loop":
                    reads = asyncio.run(_same_loop_reads(cas, spec))
                else:
                    with Replayer(cas, speed=0, faults=spec) as r:
                        t0 = time.perf_counter()
                        if where == "thread":
                            reads = _count_reads(r.port, "/v1/messages")
                        else:
                            q: multiprocessing.Queue[int] = multiprocessing.Queue()
                            p = multiprocessing.Process(target=_reader_process, args=(r.port, "/v1/messages", q))
                            p.start()
                            reads = q.get(timeout=30)
                            p.join()
                        took = (time.perf_counter() - t0) * 1000
                        r.settle()
                # one read carries the headers, one the terminator; the rest are pieces
                shares.append(min(max(reads - 2, 0), pieces) / pieces)
            row.append(statistics.median(shares))
        print(f"{gap:>8} {row[0]:8.0%} {row[1]:8.0%} {row[2]:10.0%} {took:6.0f}")


def reset_cost() -> None:
    cas = anthropic_cassette()
    print("\n3. time from request to the end of the response (ms, median of 50): reset waits for the peer's ACKs")
    # the stream's own clean end is the baseline (an eof after its last event would change nothing, and is refused)
    for spec in ("", "disconnect:after=9,how=close", "disconnect:after=9,how=reset"):
        with Replayer(cas, speed=0, faults=spec) as r:
            durations = []
            for _ in range(50):
                sock = socket.create_connection(("127.0.0.1", r.port), timeout=30)
                sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
                reader = threading.Thread(target=_drain_socket, args=(sock,))
                reader.start()
                (sent,) = r.settle(requests=1)
                reader.join()
                durations.append(sent.duration_ms or 0.0)
                r.clear()
        print(f"{spec or '(none: the clean end)':36} {statistics.median(durations):6.2f}")


def _drain_socket(sock: socket.socket) -> None:
    try:
        tail = b""
        while True:
            got = sock.recv(65536)
            if not got:
                break
            tail = (tail + got)[-7:]
            if tail.endswith(b"\r\n0\r\n\r\n"):
                break
    except OSError:
        pass
    finally:
        sock.close()


def socketless() -> None:
    inter = anthropic_cassette().interactions[0]
    spec = "fragment:random,max=16,seed=4; truncate:event=4; disconnect:after_bytes=700,how=reset"
    baseline_spec = ""
    out = {}
    for s in (baseline_spec, spec):
        n = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 1.0:
            list(plan(inter, s, speed=0).chunks)
            n += 1
        out[s] = n / (time.perf_counter() - t0)
    print("\n4. socketless plans per second (9-event capture, chunks materialised)")
    for s, rate in out.items():
        print(f"{s or '(none)':80} {rate:10.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=N_EVENTS, help="events in the throughput stream")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="throughput runs per fault (median)")
    args = parser.parse_args()
    N_EVENTS, REPEATS = args.events, args.repeats
    throughput()
    fragment_reads()
    reset_cost()
    socketless()
