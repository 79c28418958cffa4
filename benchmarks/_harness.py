"""Shared parts of the timing, concurrency and scale benchmarks (not a benchmark itself).

- :class:`Naive`: the baseline, the obvious hand-written aiohttp SSE server that sleeps
  against ``loop.time()`` to each chunk's due time and writes it;
- :class:`Child`: a server process started from a benchmark script (``--child ...``), so
  the clients' CPU does not share the server's event loop and its memory is measured on
  its own; it prints one JSON line (its URLs), answers ``GET /stats`` and ``POST /<verb>``
  on a control port, and exits when its stdin closes;
- :func:`arrivals`: a raw aiohttp reader that decodes events incrementally and stamps each
  with the time since the request was sent;
- :func:`figure`: one result as a ratio against its in-run baseline, PASS or MISS against its
  target, with the machine's load; ``run.py`` gathers them into one table;
- small statistics helpers.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import resource
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping, Sequence, TypeVar

import aiohttp
from aiohttp import web

from streamreel.sse import Decoder

__all__ = [
    "Naive",
    "Child",
    "serve_child",
    "arrivals",
    "open_connections",
    "rss",
    "peak_rss",
    "reset_peak_rss",
    "cpu_seconds",
    "load",
    "figure",
    "pct",
    "dist",
    "mib",
    "REQUEST",
    "HEADERS",
    "FIGURES_ENV",
]

FIGURES_ENV = "STREAMREEL_BENCH_FIGURES"
"""Where :func:`figure` also appends each figure as a JSON line (``run.py`` sets it)."""

REQUEST = json.dumps({"model": "claude-sonnet-4-6", "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": "bench"}]}).encode()
HEADERS = {"content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": "bench"}

Schedule = Sequence[tuple[float, bytes]]
"""(ms after the request arrived, bytes) for every write of one response."""


def rss() -> int:
    """This process's resident set size now, in bytes (Linux /proc; elsewhere the peak)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return peak_rss()


def peak_rss() -> int:
    """This process's peak resident set size since it started or since :func:`reset_peak_rss`, in bytes."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def reset_peak_rss() -> bool:
    """Start measuring the peak again from now (Linux: ``clear_refs``); False where the OS cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def load() -> str:
    """The machine's load, to print next to every figure: 1-minute load average over the CPUs."""
    try:
        with open("/proc/loadavg") as f:
            one = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return "load unknown"
    return f"load {one:.2f} on {os.cpu_count()} CPUs"


def figure(
    what: str,
    ours: float,
    base: float,
    unit: str,
    *,
    baseline: str,
    target: str = "",
    ok: bool | None = None,
    show: str = "{:,.3g}",
) -> bool:
    """Print one figure, ``ours`` against the ``baseline`` measured in the same run, as a ratio,
    and PASS or MISS when it has a ``target`` (``ok`` says whether it was met); the line also
    goes, as JSON, to the file named by :data:`FIGURES_ENV`, for ``run.py``'s table. Returns ``ok``
    (True when there is no target)."""
    ratio = ours / base if base else math.nan
    verdict = "" if ok is None else ("PASS" if ok else "MISS")
    text = f"{show.format(ours)} {unit}".strip()
    line = f"figure: {what}: {text}; {baseline} {show.format(base)}; ratio {ratio:.2f}x"
    if target:
        line += f"; target {target}: {verdict}"
    print(f"{line}  ({load()})", flush=True)
    out = os.environ.get(FIGURES_ENV)
    if out:
        record = {"bench": Path(sys.argv[0]).stem, "what": what, "ours": ours, "base": base, "unit": unit, "baseline": baseline, "ratio": ratio, "target": target, "verdict": verdict, "load": load(), "show": show}
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
    return ok is not False


def cpu_seconds() -> float:
    """CPU time (user + system) this process has used so far."""
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def pct(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100), linear between the closest ranks."""
    s = sorted(values)
    if not s:
        return math.nan
    k = (len(s) - 1) * p / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def dist(values: Sequence[float], unit: str = "ms") -> str:
    return f"p50 {pct(values, 50):7.3f}  p99 {pct(values, 99):7.3f}  max {max(values):7.3f} {unit}"


_App = TypeVar("_App", bound="LoopbackApp")


class LoopbackApp:
    """An aiohttp server on 127.0.0.1 routing every request to ``handle``: the baselines' shell."""

    url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    async def __aenter__(self: _App) -> _App:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


class Naive(LoopbackApp):
    """The baseline server: for each POST, ``schedule(request)`` gives the writes, and the
    handler does ``await asyncio.sleep(due - loop.time())`` before each, from the moment the
    request arrived, then ends the body. Nothing recorded, nothing matched, no faults.
    Any other method gets an empty 204 (a client opening connections ahead)."""

    def __init__(self, schedule: Callable[[web.Request], Schedule]) -> None:
        self.schedule = schedule
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await request.read()
        if request.method != "POST":
            return web.Response(status=204)
        writes = self.schedule(request)
        resp = web.StreamResponse(headers={"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"})
        await resp.prepare(request)
        try:
            for at_ms, data in writes:
                delay = start + at_ms / 1000.0 - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await resp.write(data)
            await resp.write_eof()
        except ConnectionError:  # the client left (a warm-up read)
            pass
        return resp


async def serve_child(urls: Mapping[str, str], verbs: Mapping[str, Callable[[], Any]] | None = None) -> None:
    """The child's side: print ``urls`` plus the control URL as one JSON line, serve the
    control port (``GET /stats``: current and peak RSS, CPU seconds, and current and peak
    memory traced by ``tracemalloc`` if the child started it; ``POST /<verb>``: run it) until
    stdin closes."""
    verbs = dict(verbs or {})

    async def stats(_: web.Request) -> web.Response:
        traced, traced_peak = tracemalloc.get_traced_memory()
        return web.json_response({"rss": rss(), "peak": peak_rss(), "cpu": cpu_seconds(), "traced": traced, "traced_peak": traced_peak})

    async def verb(request: web.Request) -> web.Response:
        result = verbs[request.match_info["verb"]]()
        if asyncio.iscoroutine(result):
            result = await result
        return web.json_response({"result": result})

    app = web.Application()
    app.router.add_get("/stats", stats)
    app.router.add_post("/{verb}", verb)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(json.dumps({**urls, "control": f"http://127.0.0.1:{runner.addresses[0][1]}"}), flush=True)
    try:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)
    finally:
        await runner.cleanup()


class Child:
    """A server process: ``python <script> <args>``; ``urls`` is the JSON line it printed."""

    def __init__(self, script: str | Path, *args: str) -> None:
        self.argv = [sys.executable, str(script), *args]
        self.urls: dict[str, str] = {}

    async def __aenter__(self) -> Child:
        self.proc = await asyncio.create_subprocess_exec(*self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 120)
        if not line.startswith(b"{"):
            await self.proc.wait()
            raise SystemExit(f"server process {self.argv[1:]} did not start (exit {self.proc.returncode}): {line!r}")
        self.urls = json.loads(line)
        self.http = aiohttp.ClientSession()
        return self

    async def stats(self) -> dict[str, float]:
        async with self.http.get(self.urls["control"] + "/stats") as resp:
            return await resp.json()  # type: ignore[no-any-return]

    async def call(self, verb: str) -> Any:
        async with self.http.post(f"{self.urls['control']}/{verb}") as resp:
            return (await resp.json())["result"]

    async def __aexit__(self, *exc: object) -> None:
        await self.http.close()
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def open_connections(session: aiohttp.ClientSession, url: str, n: int) -> None:
    """Open ``n`` kept-alive connections to ``url`` (one GET each, all at once), so a burst of
    requests that follows is timed from its send, not from ``n`` TCP handshakes."""

    async def one() -> None:
        async with session.get(url + "/__connect") as resp:
            await resp.read()

    await asyncio.gather(*(one() for _ in range(n)))


async def arrivals(
    session: aiohttp.ClientSession,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    first: Callable[[], Awaitable[None] | None] | None = None,
) -> list[float]:
    """ms from sending the request to each whole event's arrival, decoded as it comes in.

    ``first`` runs once the first event is in (the concurrency benchmark counts open streams).
    """
    decoder = Decoder()
    out: list[float] = []
    t0 = time.perf_counter()
    async with session.post(url + "/v1/messages", data=REQUEST, headers={**HEADERS, **(headers or {})}) as resp:
        if resp.status != 200:
            raise RuntimeError(f"{url}: HTTP {resp.status}: {(await resp.read())[:200]!r}")
        async for chunk in resp.content.iter_any():
            now = (time.perf_counter() - t0) * 1000.0
            got = decoder.feed(chunk)
            if got:
                opened = not out
                out.extend(now for _ in got)
                if opened and first is not None:
                    res = first()
                    if res is not None:
                        await res
    return out
