"""``streamreel serve --workers N``: how many timed events a second one port holds, one worker against two.

    python benchmarks/bench_workers.py [--events 50] [--gap 20] [--ladder 100,200,...,1400]
                                       [--tries 2] [--streams 400] [--many 2000] [--workers 2]

Each server is the real command (``streamreel serve CASSETTE --workers N -q``) in a process
tree of its own, serving a cassette of ``--events`` events ``--gap`` ms apart at speed 1.
The clients, in this process, are one ``epoll`` loop (asyncio protocols where there is none)
that only stamps each ``\\n\\n`` as it arrives (an SDK decoding thousands of events a second would measure itself, on the same
cores as the servers). ``--streams S`` start at once, each on a connection of its own (the
kernel's ``SO_REUSEPORT`` spreads them over the workers); an event's error is
|(arrival - planned time) - its stream's median of that|, aligned on the stream's usual
latency as in ``bench_concurrency.py``, so the burst's first event does not count.

Figures:

- **timed events/s held at p99 < 5 ms**: the ladder of stream counts is climbed, for one
  worker and for ``--workers``, until the p99 error passes 5 ms (in each of ``--tries``
  bursts at that count); at the last count under it, the events a second the clients got,
  from the first request sent to the last event in, is the figure (a server that holds
  timing by starting some streams late delivers the same events over a longer time, and so
  holds fewer a second; how late the streams started is printed with each rung). Target:
  ``--workers 2`` at least 1.7x one worker. On a 2-core machine the clients share the cores
  with the servers.
- **N streams at once: p99 error**, ``--workers`` against the reference: a bare aiohttp
  server in as many processes on one ``SO_REUSEPORT`` port (no matching, no ground truth,
  no faults), which sleeps to each event's due time and writes it (``_harness.Naive``).
  Target: under 5 ms at ``--streams`` (400).
- **``--many`` streams at once** (2,000: 100,000 writes a second, more than two cores
  can time to the millisecond): all must complete, with a p99 error within 1.5x the reference's.
- **server memory per open stream**: the server's processes' RSS with ``--streams`` open,
  less their RSS with every connection open and idle (each stream has a connection of its
  own, kept alive from one ``OPTIONS`` request as an SDK's pool would leave it), over the
  streams. Target: under 16 KiB. Also printed counting the connection itself (from the
  server's idle RSS before connecting): most of that is aiohttp's, as the reference shows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import HEADERS, REQUEST, Naive, figure, load, pct  # noqa: E402
from bench_concurrency import cassette  # noqa: E402  (the same streams: message_events, --gap apart)

from streamreel.cassette import save  # noqa: E402
from streamreel.guard import raise_open_files  # noqa: E402
from streamreel.pipeline import timed_chunks  # noqa: E402

TARGET_P99_MS = 5.0
WAIT_S = 60.0


class Served:
    """A server process tree: ``streamreel serve --workers N``, or the bare reference (``--child naive``)."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.url = ""

    def __enter__(self) -> Served:
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("listening on http://"):
            self.proc.kill()
            raise SystemExit(f"{self.argv[2:]} did not start: {line!r} {self.proc.communicate()[1][-2000:]}")
        self.url = line.split()[-1]
        return self

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        return host, int(port)

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.communicate(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


def _head(host: str, port: int) -> bytes:
    lines = ["POST /v1/messages HTTP/1.1", f"host: {host}:{port}", "connection: close", f"content-length: {len(REQUEST)}", *(f"{k}: {v}" for k, v in HEADERS.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + REQUEST


class _Stamps(asyncio.Protocol):
    """One stream's client: stamps each ``\\n\\n`` (an event's end) as its bytes arrive, in the
    transport's own callback (no reader, no coroutine to wake per read: the lightest client
    asyncio has, so that on a shared machine the clients take as little from the servers as they can)."""

    def __init__(self, events: int, opened: Callable[[], None]) -> None:
        self.events = events
        self.opened = opened
        self.out: list[float] = []
        self.tail = False
        self.t0 = 0.0
        self.done: asyncio.Future[list[float]] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        now = (time.perf_counter() - self.t0) * 1000.0
        n = data.count(b"\n\n") + (self.tail and data[:1] == b"\n")
        self.tail = data[-1:] == b"\n"
        if n:
            out = self.out
            first = not out
            out.extend([now] * n)
            if first:
                self.opened()
            if len(out) >= self.events and not self.done.done():
                self.done.set_result(out)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(self.out)


async def stream(address: tuple[str, int], events: int, start: asyncio.Event, opened: Callable[[], None] = lambda: None) -> list[float]:
    """ms from sending the request to the arrival of each ``\\n\\n`` (an event's end), on a connection of its own;
    ``opened`` is called once the first event is in."""
    transport, stamps = await asyncio.get_running_loop().create_connection(lambda: _Stamps(events, opened), *address)
    try:
        await start.wait()
        stamps.t0 = time.perf_counter()
        transport.write(_head(*address))
        return await stamps.done
    finally:
        transport.close()


def _warm(socks: list[socket.socket], address: tuple[str, int]) -> None:
    """One ``OPTIONS`` request on each connection, answered before the streams start: each server then
    holds every connection, idle and kept alive, as an SDK's pool would leave it."""
    head = f"OPTIONS /v1/messages HTTP/1.1\r\nhost: {address[0]}:{address[1]}\r\ncontent-length: 0\r\n\r\n".encode()
    for sock in socks:
        sock.sendall(head)
    for sock in socks:
        sock.settimeout(WAIT_S)
        got = b""
        while b"\r\n\r\n" not in got:
            more = sock.recv(4096)
            if not more:
                raise ConnectionError("the server closed a connection it was warming")
            got += more


def _stamped_epoll(address: tuple[str, int], n: int, events: int, all_open: Callable[[], None], connected: Callable[[], None]) -> tuple[list[list[float]], list[float]]:
    """``n`` streams at once on connections of their own, read by one ``epoll`` loop: for each,
    ms from sending its request to the arrival of each ``\\n\\n`` (an event's end). The lightest
    client Python has: a ``recv_into`` and a count per read, no event loop's handles or
    callbacks; what one ``poll`` returns is stamped with the time it returned. ``connected`` is
    called once every connection is open and idle (see :func:`_warm`), before any stream starts.
    Also returns when each request was sent (``time.perf_counter()``)."""
    socks = [socket.create_connection(address) for _ in range(n)]
    _warm(socks, address)
    connected()
    poller = select.epoll(n)
    out: list[list[float]] = [[] for _ in range(n)]
    try:
        slot = [-1] * (max(sock.fileno() for sock in socks) + 1)
        for i, sock in enumerate(socks):
            sock.setblocking(False)
            poller.register(sock.fileno(), select.EPOLLIN)
            slot[sock.fileno()] = i
        head = _head(*address)
        t0 = [0.0] * n
        for i, sock in enumerate(socks):
            t0[i] = time.perf_counter()
            sock.send(head)
        reads = [sock.recv_into for sock in socks]
        buf = bytearray(65536)
        tail = [False] * n
        first, left = n, n
        deadline = time.monotonic() + WAIT_S
        clock = time.perf_counter
        while left and time.monotonic() < deadline:
            ready = poller.poll(1.0)
            now = clock()
            for fd, _ in ready:
                i = slot[fd]
                try:
                    got = reads[i](buf)
                except BlockingIOError:
                    continue
                except OSError:
                    got = 0
                if not got:
                    poller.unregister(fd)
                    left -= 1
                    continue
                k = buf.count(b"\n\n", 0, got) + (tail[i] and buf[0] == 10)
                tail[i] = buf[got - 1] == 10
                if k:
                    seen = out[i]
                    if not seen:
                        first -= 1
                        if not first:
                            all_open()
                    seen.extend([(now - t0[i]) * 1000.0] * k)
                    if len(seen) >= events:
                        poller.unregister(fd)
                        left -= 1
    finally:
        poller.close()
        for sock in socks:
            sock.close()
    return out, t0


async def _stamped_asyncio(address: tuple[str, int], n: int, events: int, all_open: Callable[[], None]) -> list[list[float]]:
    """The same as :func:`_stamped_epoll`, on asyncio protocols (where there is no ``epoll``)."""
    start = asyncio.Event()
    waiting = n

    def opened() -> None:
        nonlocal waiting
        waiting -= 1
        if waiting == 0:
            all_open()

    tasks = [asyncio.ensure_future(stream(address, events, start, opened)) for _ in range(n)]
    await asyncio.sleep(0)
    start.set()
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), WAIT_S)
    return [[] if isinstance(r, BaseException) else r for r in results]


@dataclass
class Burst:
    """What ``n`` streams started at once did."""

    errors: list[float]
    """Every event's timing error (ms), aligned on its stream's median latency."""
    completed: int
    delivered: float
    """Events a second the clients got, from the first request sent to the last event in (NaN where not measured):
    a server that started some streams late delivers the same events over a longer time."""
    start_spread: float
    """p99 over the streams of how much later than the earliest one each started (ms; NaN where not measured)."""



def burst(
    address: tuple[str, int], n: int, plan: list[float], all_open: Callable[[], None] = lambda: None, connected: Callable[[], None] = lambda: None
) -> Burst:
    """``n`` streams at once: each event's aligned timing error, the streams completed, the events
    a second delivered and how late the streams started; ``all_open`` is called once every stream
    has its first event (``connected`` before they start, on Linux)."""
    sent: list[float] = []
    if hasattr(select, "epoll"):
        results, sent = _stamped_epoll(address, n, len(plan), all_open, connected)
    else:
        results = asyncio.run(_stamped_asyncio(address, n, len(plan), all_open))
    errors: list[float] = []
    usual: list[float] = []
    completed = 0
    for seen in results:
        if len(seen) != len(plan):
            continue
        completed += 1
        offsets = [s - p for s, p in zip(seen, plan)]
        latency = statistics.median(offsets)
        usual.append(latency)
        errors += [abs(o - latency) for o in offsets]
    delivered = spread = float("nan")
    if sent and completed:
        last = max(t + seen[-1] / 1000.0 for t, seen in zip(sent, results) if seen)
        delivered = completed * len(plan) / (last - min(sent))
        earliest = min(usual)
        spread = pct([u - earliest for u in usual], 99)
    return Burst(errors, completed, delivered, spread)


def tree(pid: int) -> list[int]:
    """Process ``pid`` and every process below it (Linux /proc; just ``pid`` elsewhere)."""
    parents = {}
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError), open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
    found, wanted = [], [pid]
    while wanted:
        p = wanted.pop()
        found.append(p)
        wanted += [c for c, parent in parents.items() if parent == p]
    return found


def rss(pids: list[int]) -> int:
    """Resident bytes of ``pids`` together (Linux /proc; 0 elsewhere): read in well under a ms, mid-burst."""
    total = 0
    for p in pids:
        with contextlib.suppress(OSError), open(f"/proc/{p}/statm") as f:
            total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return total


def at_once(served: Served, n: int, plan: list[float]) -> tuple[list[float], int, tuple[float, float]]:
    """``n`` streams at once on ``served``: errors, streams completed, and its processes' memory per open
    stream (bytes), counting the stream's connection and not (its connection open and idle before)."""
    pids = tree(served.proc.pid)
    idle = rss(pids)
    connected: list[int] = []
    at_open: list[int] = []
    got = burst(served.address, n, plan, lambda: at_open.append(rss(pids)), lambda: connected.append(rss(pids)))
    if not (at_open and connected and idle):
        return got.errors, got.completed, (float("nan"), float("nan"))
    return got.errors, got.completed, ((at_open[0] - idle) / n, (at_open[0] - connected[0]) / n)


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) of ``pids`` so far (Linux /proc; 0 elsewhere)."""
    total = 0
    for p in pids:
        with contextlib.suppress(OSError, IndexError, ValueError), open(f"/proc/{p}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def climb(served: Served, ladder: list[int], plan: list[float], rate: float, tries: int) -> tuple[float, list[str], tuple[float, float]]:
    """Events/s held at p99 < target: the events a second delivered at the last rung of ``ladder``
    under it (0 if none; ``n`` streams times ``rate`` where that is not measured). A rung gets up
    to ``tries`` bursts (the same for every server): on a shared machine one burst can land on
    someone else's busy moment. Also the CPU the servers and the clients spent per event (µs) at that rung."""
    held = 0.0
    said = []
    pids = tree(served.proc.pid)
    cost = (float("nan"), float("nan"))
    for n in ladder:
        for _ in range(tries):
            server_cpu, client_cpu = cpu_seconds(pids), own_cpu_seconds()
            got = burst(served.address, n, plan)
            per_event = 1e6 / (n * len(plan))
            spent = ((cpu_seconds(pids) - server_cpu) * per_event, (own_cpu_seconds() - client_cpu) * per_event)
            p99 = pct(got.errors, 99) if got.errors else float("inf")
            said.append(f"{n} streams: p99 {p99:.2f} ms, {got.completed}/{n} completed, {got.delivered:,.0f} events/s, started within {got.start_spread:.0f} ms")
            if got.completed == n and p99 < TARGET_P99_MS:
                break
        if got.completed < n or p99 >= TARGET_P99_MS:
            break
        held = got.delivered if got.delivered == got.delivered else n * rate
        cost = spent
    return held, said, cost


def serve_argv(path: Path, workers: int) -> list[str]:
    return [sys.executable, "-m", "streamreel", "serve", str(path), "--workers", str(workers), "-q", "--speed", "1"]


def naive_argv(args: argparse.Namespace) -> list[str]:
    return [sys.executable, __file__, "--child", "--workers", str(args.workers), "--events", str(args.events), "--gap", str(args.gap)]


def child(args: argparse.Namespace) -> None:
    """The reference: ``--workers`` processes of :class:`_harness.Naive` on one ``SO_REUSEPORT`` port; stops on SIGTERM."""
    reserved = socket.socket()
    reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    reserved.bind(("127.0.0.1", 0))
    port = reserved.getsockname()[1]
    pids = []
    for _ in range(args.workers):
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            asyncio.run(_naive(port, ready_w))
            os._exit(0)
        os.close(ready_w)
        os.read(ready_r, 1)
        os.close(ready_r)
        pids.append(pid)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)


async def _naive(port: int, ready: int) -> None:
    from aiohttp import web

    cas = cassette(_ARGS.events, _ARGS.gap)
    writes = [(c.at_ms, c.data) for c in timed_chunks(cas)]
    naive = Naive(lambda request: writes)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", naive.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, reuse_port=True, backlog=socket.SOMAXCONN).start()
    os.write(ready, b"1")
    os.close(ready)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()


_ARGS: argparse.Namespace


def main(args: argparse.Namespace) -> int:
    limited = raise_open_files()  # every stream is a client socket here
    if limited is not None:
        print(f"warning: {limited}")
    cas = cassette(args.events, args.gap)
    plan = [c.at_ms for c in timed_chunks(cas)]
    rate = len(plan) / (plan[-1] / 1000.0)  # each stream's events a second
    ladder = [int(n) for n in args.ladder.split(",")]
    print(f"{len(plan)} events {args.gap:g} ms apart per stream ({rate:.0f} events/s each); ladder {ladder}; {os.cpu_count()} CPUs; clients in this process")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        save(cas, path)
        held: dict[int, float] = {}
        costs: dict[int, tuple[float, float]] = {}
        for workers in (1, args.workers):
            with Served(serve_argv(path, workers)) as served:
                burst(served.address, 8, plan)  # warm every worker
                held[workers], said, costs[workers] = climb(served, ladder, plan, rate, args.tries)
            print(f"--workers {workers}: " + "; ".join(said))
            print(f"  at {held[workers]:,.0f} events/s: servers {costs[workers][0]:.1f} us, clients {costs[workers][1]:.1f} us of CPU per event")
        many_ours: list[float] = []
        many_base: list[float] = []
        many_done = (0, 0)
        with Served(serve_argv(path, args.workers)) as served:
            _, _, ours_bytes = at_once(served, args.streams, plan)  # memory from idle; timing from the next burst (a fresh server's first runs cold)
            ours, ours_done, _ = at_once(served, args.streams, plan)
            if args.many:
                many_ours, done, _ = at_once(served, args.many, plan)
                many_done = (done, 0)
        with Served(naive_argv(args)) as reference:
            _, _, base_bytes = at_once(reference, args.streams, plan)
            base, base_done, _ = at_once(reference, args.streams, plan)
            if args.many:
                many_base, done, _ = at_once(reference, args.many, plan)
                many_done = (many_done[0], done)
    print(f"{args.streams} streams at once: --workers {args.workers} completed {ours_done}, reference completed {base_done}")
    if args.many:
        print(f"{args.many} streams at once: --workers {args.workers} completed {many_done[0]}, reference completed {many_done[1]}")
    one, many = held[1], held[args.workers]
    ok = figure(
        f"timed events/s held at p99 < {TARGET_P99_MS:g} ms, --workers {args.workers}",
        many,
        one,
        "events/s",
        baseline="--workers 1",
        target=">= 1.7x 1 worker" if args.workers == 2 else "",
        ok=(many >= 1.7 * one and one > 0) if args.workers == 2 else None,
        show="{:,.0f}",
    )
    if args.workers == 2 and one > 0:
        server_us, client_us = costs[args.workers]
        need = 1.7 * one * (server_us + client_us) / 1e6
        print(f"  1.7x one worker's rate is {1.7 * one:,.0f} events/s: at the CPU per event measured with 2 workers, servers and clients would need {need:.2f} of the {os.cpu_count()} CPUs")
    if ours and base:
        p99, p99_base = pct(ours, 99), pct(base, 99)
        ok = figure(
            f"{args.streams} streams at once, --workers {args.workers}: p99 error",
            p99,
            p99_base,
            "ms",
            baseline=f"bare aiohttp in {args.workers} processes",
            target=f"< {TARGET_P99_MS:g} ms",
            ok=p99 < TARGET_P99_MS and ours_done == args.streams,
        ) and ok
    if args.many and many_ours and many_base:
        p99, p99_base = pct(many_ours, 99), pct(many_base, 99)
        ok = figure(
            f"{args.many} streams at once, --workers {args.workers}: p99 error",
            p99,
            p99_base,
            "ms",
            baseline=f"bare aiohttp in {args.workers} processes",
            target="<= 1.5x the reference, all complete",
            ok=p99 <= 1.5 * p99_base and many_done == (args.many, args.many),
        ) and ok
    if ours_bytes[1] == ours_bytes[1] and base_bytes[1] == base_bytes[1]:  # measured (not NaN)
        kib = ours_bytes[1] / 1024
        ok = figure(
            f"server memory per open stream, {args.streams} open on kept-alive connections, --workers {args.workers}",
            kib,
            base_bytes[1] / 1024,
            "KiB",
            baseline=f"bare aiohttp in {args.workers} processes",
            target="< 16 KiB",
            ok=kib < 16,
        ) and ok
        figure(
            f"the same with each stream's connection, --workers {args.workers}",
            ours_bytes[0] / 1024,
            base_bytes[0] / 1024,
            "KiB",
            baseline=f"bare aiohttp in {args.workers} processes",
        )
    completed = ours_done == args.streams and base_done == args.streams and (not args.many or many_done == (args.many, args.many))
    print(f"all streams completed on both: {'yes' if completed else 'NO'}  ({load()})")
    return 0 if completed and (ok or not args.check) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--gap", type=float, default=20.0, help="ms between events in the cassette")
    parser.add_argument("--ladder", default="100,200,300,400,500,600,700,800,900,1000,1100,1200,1400", help="stream counts to climb, comma-separated")
    parser.add_argument("--tries", type=int, default=2, help="bursts a rung of the ladder gets to stay under the p99 target")
    parser.add_argument("--streams", type=int, default=400, help="streams at once for the p99 error against the reference")
    parser.add_argument("--many", type=int, default=2000, help="streams at once that must all complete, p99 within 1.5x the reference (0: skip)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--check", action="store_true", help="exit 1 when a figure misses its target")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    _ARGS = parser.parse_args()
    if _ARGS.child:
        child(_ARGS)
    else:
        sys.exit(main(_ARGS))
