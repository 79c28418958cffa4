"""A bounded soak of one replayer: thousands of seeded, faulted streams from raw aiohttp and SDK clients, and the process's resources around them.

Shared by tests/test_soak.py (a few thousand streams, asserting nothing leaks) and
benchmarks/bench_soak.py (more streams, printing the same figures over time).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import os
import random
import sys
from dataclasses import dataclass
from typing import Any, Sequence

import aiohttp
import anthropic
import httpx2

from streamreel import Cassette, Replayer, SentResponse, load
from streamreel.cassette import bundled, bundled_names
from streamreel.replayer import FAULTS_HEADER

ID_HEADER = "x-soak-id"
"""Request header carrying the shot's number, so every request finds its ground truth."""

DOCUMENTED_ENDINGS = frozenset({"end", "close", "reset", "hang", "client_hung_up"})
"""Every ending :class:`SentResponse` documents for a finished response."""

STALL_TIMEOUT_S = 0.25
"""How long a client meant to give up on a stalled stream waits for more of its body (only those clients)."""

PATIENT_TIMEOUT_S = 20.0
"""The timeout of every other client: generous, so a loaded machine never turns a stream into a timeout."""

SDK_REQUEST = {"model": "claude-soak", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def soak_cassette() -> Cassette:
    """Every bundled cassette in one: each interaction answers only ``?reel=<its name>``."""
    interactions = []
    for name in bundled_names():
        (item,) = load(bundled(name)).interactions
        request = dataclasses.replace(item.request, path=f"{item.request.route}?reel={name}")
        interactions.append(dataclasses.replace(item, request=request))
    return Cassette(interactions=tuple(interactions))


@dataclass(frozen=True)
class Shot:
    """One request of the soak: which cassette, which faults, which client, how it behaves, what ending it must get."""

    id: int
    reel: str
    path: str
    events: int
    kind: str
    faults: str
    client: str  # "raw" | "sdk"
    behaviour: str  # "read" | "timeout" | "cancel" | "close_early"
    endings: frozenset[str]
    status: int = 200
    ready_bytes: int = 1
    """Body bytes a cancelling client waits for before it cancels (for a stall: all that precedes it)."""


# kind -> (weight, behaviour, endings, sdk-capable)
KINDS: dict[str, tuple[int, str, frozenset[str], bool]] = {
    "none": (3, "read", frozenset({"end"}), True),
    "reset": (2, "read", frozenset({"reset"}), True),
    "reset_bytes": (1, "read", frozenset({"reset"}), False),
    "close": (2, "read", frozenset({"close"}), True),
    "eof": (1, "read", frozenset({"end"}), True),
    "truncate": (1, "read", frozenset({"end"}), True),
    "error": (1, "read", frozenset({"end"}), True),
    "drop": (1, "read", frozenset({"end"}), True),
    "fragment": (1, "read", frozenset({"end"}), True),
    "pings": (1, "read", frozenset({"end"}), True),
    "http429": (1, "read", frozenset({"end"}), True),
    "http529": (1, "read", frozenset({"end"}), True),
    "stall_timeout": (1, "timeout", frozenset({"hang"}), True),
    "stall_cancel": (1, "cancel", frozenset({"hang"}), False),
    "latency": (1, "read", frozenset({"end"}), True),
    "cancel_mid_stream": (1, "cancel", frozenset({"client_hung_up"}), True),
    "close_early_slow": (1, "close_early", frozenset({"client_hung_up"}), False),
    # With nothing to wait for, the whole body may be in the kernel before the client leaves: either ending is right.
    "close_early": (1, "close_early", frozenset({"end", "client_hung_up"}), False),
    "close_early_reset": (1, "close_early", frozenset({"reset", "client_hung_up"}), False),
}


SDK_RAISES_MID_STREAM = frozenset({"truncate", "error"})
"""Kinds the SDK raises on before the stream's end (a JSON error, an ``event: error``), leaving
while the server may still be writing the rest: either ending is right then."""


def _faults(kind: str, events: int, rng: random.Random) -> str:
    seed = rng.randrange(1 << 16)
    some = rng.randint(1, max(events - 1, 1))
    return {
        "none": "",
        "reset": f"disconnect:after={some},how=reset",
        "reset_bytes": f"disconnect:after_bytes={rng.randint(1, 400)},how=reset",
        "close": f"disconnect:after={some},how=close",
        "eof": f"disconnect:after={some},how=eof",
        "truncate": f"truncate:event={some},keep=0.5",
        "error": f"error:after={some},type={rng.choice(['overloaded_error', 'api_error'])}",
        "drop": "drop:event=message_stop",
        "fragment": f"fragment:random,max={rng.choice([16, 64, 256])},seed={seed}",
        "pings": "pings:every=5ms",
        "http429": "http:status=429,times=1000000000,retry_after=1",
        "http529": "http:status=529,times=1000000000",
        "stall_timeout": f"stall:after={rng.randint(0, events - 1)}",
        "stall_cancel": f"stall:after={some}",
        "latency": f"latency:first={rng.randint(0, 3)}ms,each=0.2ms,jitter=0.2ms,seed={seed}",
        "cancel_mid_stream": "latency:each=50ms",
        "close_early_slow": "latency:each=50ms",
        "close_early": "",
        "close_early_reset": f"disconnect:after={some},how=reset",
    }[kind]


def shots(count: int, *, seed: int, start: int = 0, sdk_fraction: float = 0.1, kinds: Sequence[str] | None = None) -> list[Shot]:
    """``count`` shots drawn from ``seed``: a kind by weight, a cassette, its faults, a client."""
    rng = random.Random(seed)
    cas = soak_cassette()
    reels = [(name, item.request.route or "/", [len(e.wire) for e in item.response.events or ()]) for name, item in zip(bundled_names(), cas.interactions)]
    names = list(kinds) if kinds is not None else list(KINDS)
    weights = [KINDS[k][0] for k in names]
    out = []
    for i in range(start, start + count):
        kind = rng.choices(names, weights)[0]
        _, behaviour, endings, sdk_ok = KINDS[kind]
        reel, path, sizes = rng.choice(reels)
        client = "sdk" if sdk_ok and path == "/v1/messages" and rng.random() < sdk_fraction else "raw"
        status = {"http429": 429, "http529": 529}.get(kind, 200)
        if client == "sdk" and kind in SDK_RAISES_MID_STREAM:
            endings = endings | {"client_hung_up"}
        faults = _faults(kind, len(sizes), rng)
        ready = sum(sizes[: int(faults.rsplit("=", 1)[1])]) if kind == "stall_cancel" else 1
        out.append(Shot(i, reel, path, len(sizes), kind, faults, client, behaviour, endings, status, ready))
    return out


@dataclass
class Clients:
    """The soak's clients: keep-alive pools that :meth:`close` shuts (a raw session, and SDK clients)."""

    url: str
    raw: aiohttp.ClientSession
    sdk: anthropic.AsyncAnthropic
    sdk_stalls: anthropic.AsyncAnthropic

    @classmethod
    def open(cls, url: str, concurrency: int) -> Clients:
        def sdk(timeout: float) -> anthropic.AsyncAnthropic:
            return anthropic.AsyncAnthropic(base_url=url, api_key="sk-ant-test-not-a-key-soak", max_retries=0, timeout=timeout)

        raw = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency), timeout=aiohttp.ClientTimeout(total=PATIENT_TIMEOUT_S))
        return cls(url, raw, sdk(PATIENT_TIMEOUT_S), sdk(STALL_TIMEOUT_S))

    async def close(self) -> None:
        await self.raw.close()
        await self.sdk.close()
        await self.sdk_stalls.close()


async def fire(clients: Clients, shot: Shot) -> str:
    """Send one shot and behave as it says; returns what the client saw (for the report only)."""
    headers = {ID_HEADER: str(shot.id), "content-type": "application/json"}
    if shot.faults:
        headers[FAULTS_HEADER] = shot.faults
    got_bytes = asyncio.Event()
    if shot.client == "sdk":
        client = clients.sdk_stalls if shot.behaviour == "timeout" else clients.sdk
        job = asyncio.ensure_future(_sdk(client, shot, headers, got_bytes))
    else:
        job = asyncio.ensure_future(_raw(clients, shot, headers, got_bytes))
    if shot.behaviour != "cancel":
        return await job
    waiter = asyncio.ensure_future(got_bytes.wait())
    await asyncio.wait({job, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    job.cancel()
    try:
        return await job
    except asyncio.CancelledError:
        return "cancelled"


async def _raw(clients: Clients, shot: Shot, headers: dict[str, str], got_bytes: asyncio.Event) -> str:
    try:
        async with clients.raw.post(f"{clients.url}{shot.path}?reel={shot.reel}", data=b"{}", headers=headers) as resp:
            if shot.behaviour == "close_early":
                resp.close()
                return f"closed early {resp.status}"
            wait = STALL_TIMEOUT_S if shot.behaviour == "timeout" else None
            size = 0
            while True:
                try:
                    piece = await asyncio.wait_for(resp.content.readany(), wait)
                except asyncio.TimeoutError:
                    return "timeout"
                if not piece:
                    return f"read {resp.status}"
                size += len(piece)
                if size >= shot.ready_bytes:
                    got_bytes.set()
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as e:
        return type(e).__name__


async def _sdk(client: anthropic.AsyncAnthropic, shot: Shot, headers: dict[str, str], got_bytes: asyncio.Event) -> str:
    try:
        stream = await client.messages.create(**SDK_REQUEST, stream=True, extra_headers=headers, extra_query={"reel": shot.reel})
        async with stream:
            async for _ in stream:
                got_bytes.set()
        return "sdk read"
    except (anthropic.APIError, httpx2.HTTPError, json.JSONDecodeError) as e:
        return type(e).__name__


async def run_batch(clients: Clients, batch: Sequence[Shot], concurrency: int) -> list[str]:
    """Fire ``batch`` with at most ``concurrency`` in flight; returns each client's outcome."""
    gate = asyncio.Semaphore(concurrency)

    async def one(shot: Shot) -> str:
        async with gate:
            return await fire(clients, shot)

    return list(await asyncio.gather(*(one(s) for s in batch)))


# ------------------------------------------------------------------ measuring


def open_fds() -> int:
    """File descriptors this process holds (Linux: /proc/self/fd)."""
    return len(os.listdir("/proc/self/fd"))


def socket_fds() -> int:
    """How many of this process's descriptors are sockets."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:  # the listing's own descriptor, closed by now
            pass
    return count


_TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"}


def tcp_states(port: int) -> dict[str, int]:
    """Kernel TCP sockets with ``port`` at either end (from /proc/net/tcp), counted by state; TIME_WAIT left out (it holds no descriptor)."""
    out: dict[str, int] = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            local, remote, state = cols[1], cols[2], _TCP_STATES.get(cols[3], cols[3])
            if state == "TIME_WAIT":
                continue
            if int(local.rsplit(":", 1)[1], 16) == port or int(remote.rsplit(":", 1)[1], 16) == port:
                out[state] = out.get(state, 0) + 1
    return out


@dataclass(frozen=True)
class Snapshot:
    """Resources at one moment: descriptors, server-loop tasks, server connections, in flight, TCP sockets, memory."""

    fds: int
    sockets: int
    tasks: int
    connections: int
    inflight: int
    tcp: dict[str, int]
    rss: int
    blocks: int
    """Memory blocks the Python allocator holds (``sys.getallocatedblocks``), after a full collection when asked."""

    def counts(self) -> tuple[int, int, int, int, int, int]:
        return (self.fds, self.sockets, self.tasks, self.connections, self.inflight, sum(self.tcp.values()))


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def snapshot(r: Replayer, *, exclude: Sequence[asyncio.Task[Any]] = (), collect: bool = False) -> Snapshot:
    """Measure on the replayer's own loop (its thread's, for ``with``), leaving out ``exclude`` and the measuring task.

    ``collect`` runs a full garbage collection first, so ``blocks`` counts what is still reachable.
    """
    loop = r._loop
    assert loop is not None and r._runner is not None

    async def on_server_loop() -> tuple[int, int, int]:
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me and t not in exclude]
        return len(tasks), len(r._runner.server.connections), len(r._inflight)  # type: ignore[union-attr]

    if loop is asyncio.get_running_loop():
        tasks, conns, inflight = await on_server_loop()
    else:
        tasks, conns, inflight = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(on_server_loop(), loop))
    if collect:
        gc.collect()
    return Snapshot(open_fds(), socket_fds(), tasks, conns, inflight, tcp_states(r.port), rss_bytes(), sys.getallocatedblocks())


async def quiesce(r: Replayer, clients: Clients | None, baseline: Snapshot | None = None, *, exclude: Sequence[asyncio.Task[Any]] = (), timeout: float = 10.0) -> Snapshot:
    """Close the clients, settle the replayer, then wait until the counts are back to ``baseline``
    (with no baseline: until the server holds no connection and nothing is in flight).

    A closed client socket reaches the server's loop as a callback a moment later, so the
    last step re-measures on each turn of the loop until the condition holds or ``timeout``
    passes (then the snapshot is returned as it is, for the caller's assertion to show).
    """
    if clients is not None:
        await clients.close()
    await r.asettle(timeout)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        now = await snapshot(r, exclude=exclude)
        done = now.counts() == baseline.counts() if baseline is not None else now.connections == now.inflight == 0 and set(now.tcp) == {"LISTEN"}
        if done or loop.time() > deadline:
            return await snapshot(r, exclude=exclude, collect=True) if done else now
        await _next_turn()


async def _next_turn() -> None:
    """Give the loops a turn (a poll step of a condition wait, not a timing assumption)."""
    await asyncio.sleep(0.001)


GAVE_UP_BEFORE_HEADERS = "APITimeoutError"
"""What the SDK raises when its read timeout passes before the response headers (a stall
client's short timeout, on a loaded loop): the request may then never reach the handler."""


def check_truth(batch: Sequence[Shot], outcomes: Sequence[str], responses: Sequence[SentResponse], requests: Sequence[Any]) -> list[str]:
    """Problems with the ground truth of ``batch``: a shot with no response, or an ending it must not get.

    ``outcomes`` are what each shot's client saw; an SDK that gave up before the headers
    may have left before the server read its request, so it may have no response, or one
    the server cut as ``client_hung_up``.
    """
    by_id: dict[int, SentResponse] = {}
    for received, sent in zip(requests, responses):
        by_id[int(received.headers[ID_HEADER])] = sent
    problems = []
    for shot, outcome in zip(batch, outcomes, strict=True):
        sent = by_id.get(shot.id)
        early = outcome == GAVE_UP_BEFORE_HEADERS and shot.behaviour == "timeout"
        if sent is None:
            if not early:
                problems.append(f"shot {shot.id} ({shot.kind}, client saw {outcome}) has no response in the ground truth")
            continue
        if sent.ending not in DOCUMENTED_ENDINGS:
            problems.append(f"shot {shot.id} ({shot.kind}, {shot.faults!r}) ended {sent.ending!r}, not a documented ending")
        elif sent.ending not in shot.endings and not (early and sent.ending == "client_hung_up"):
            problems.append(f"shot {shot.id} ({shot.kind}, {shot.client}, {shot.faults!r}) ended {sent.ending!r}, expected {sorted(shot.endings)}")
        if sent.status != shot.status:
            problems.append(f"shot {shot.id} ({shot.kind}) answered {sent.status}, expected {shot.status}")
        if shot.behaviour in ("timeout", "cancel") and not sent.client_hung_up:
            problems.append(f"shot {shot.id} ({shot.kind}) left by its client but not recorded as client_hung_up")
        if sent.finished is None:
            problems.append(f"shot {shot.id} ({shot.kind}) still unfinished after settle")
    return problems

