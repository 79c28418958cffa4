"""``streamreel serve --workers N``: one server of N processes on one port, with one ground truth.

One process replays on one core. With ``--workers N`` the command's process binds the port
(so ``--port 0`` is known, and printed, before anything else), loads and checks the
cassette, freezes its heap (:func:`gc.freeze`: the forked processes then share the loaded
cassette's pages instead of copying them as the cycle collector walks them) and forks:

- N workers, each an ordinary :class:`~streamreel.replayer.Replayer`. On Linux each listens
  on the port itself with ``SO_REUSEPORT`` (aiohttp's ``TCPSite(reuse_port=True)``), and the
  kernel spreads new connections evenly over them (a burst of connections on one shared
  socket goes mostly to whichever worker wakes first); the first process holds the port
  bound, without listening, so it stays theirs while a worker is replaced. Elsewhere they
  share the listening socket they inherit (aiohttp's :class:`~aiohttp.web.SockSite`, the
  prefork model of gunicorn);
- a hub holding the ground truth of them all: each worker pushes every finished response
  to it, and the hub asks them for what they have in flight when it is asked. The admin API
  (``/__streamreel/``, :mod:`streamreel.admin`), whichever worker a call reaches, is passed
  on to the hub, which answers for every worker, and resets and loads every worker.

What must be one across workers lives in memory they share (:class:`Shared`: multiprocessing
arrays under one lock): the request counter, ordered playback's marks, each ``times=``
fault's count, and the stream last served per path (for ``Last-Event-ID`` resumes). A
request's answer is chosen under that lock, so the workers choose as one process would, in
the order requests reach the choice.

The first process only supervises: SIGINT or SIGTERM stops the workers, then the hub; a
worker that dies is replaced (the ground truth of the responses it had in flight is lost,
and the hub says how many); a worker or hub whose first process is gone stops by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import heapq
import multiprocessing
import multiprocessing.connection
import os
import pickle
import shutil
import signal
import socket
import struct
import sys
import tempfile
import time
import warnings
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, MutableMapping, Sequence

import aiohttp
from aiohttp import web
from yarl import URL

from .admin import PREFIX, mount
from .bind import check_address, exposed, exposure_message
from .errors import NonLoopbackWarning, StreamreelError
from .matching import ReceivedRequest
from .replayer import MAX_REQUEST_BYTES, Replayer, SentResponse, _held_bytes, _Live, _url_host

__all__ = ["MAX_WORKERS", "Shared", "SharedMarks", "SharedCounts", "Pool", "serve"]

BALANCED = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")
"""Whether each worker listens itself, the kernel balancing connections (Linux's ``SO_REUSEPORT``)."""

MAX_WORKERS = 64
"""The most ``--workers`` takes (a worker per core is what helps; more only share the cores)."""

TABLE_SLOTS = 1 << 16
"""Counters the shared table holds (ordered playback's marks, ``times=`` counts, resumes): 1 MiB."""

SLOTS = 256
"""Per-process request counts in shared memory; each worker started (a replacement too) takes the next."""

START_WAIT_S = 60.0
"""How long a worker or the hub may take to start serving."""

STOP_WAIT_S = 10.0
"""How long a process may take to stop after SIGTERM before it is killed."""

SYNC_WAIT_S = 10.0
"""How long the hub waits for a worker's answer (what it has in flight) before saying so."""

RESTARTS = 5
RESTART_WINDOW_S = 30.0
"""More than :data:`RESTARTS` workers dying within this many seconds stops the server (a crash loop)."""

_GENERATION, _COUNT, _BASE, _SERIAL, _FILLED = range(5)


class Shared:
    """What the processes of one server share, made before they fork: one lock, the request
    counter, a count of requests admitted per process, and a table of counters keyed by string.

    Keys are told apart by their 64-bit ``hash()`` (the same in every process forked from one
    parent): two distinct keys would share a counter only on a hash collision, about one in
    10^10 for a full table. Reads and writes of the table happen under :attr:`lock`.
    """

    def __init__(self, context: Any = None) -> None:
        ctx = context if context is not None else multiprocessing.get_context("fork")
        self.lock = ctx.RLock()
        self._arrays = [ctx.RawArray(ctypes.c_int64, n) for n in (5, SLOTS, TABLE_SLOTS, TABLE_SLOTS)]
        self._head, self._admitted, self._keys, self._values = (memoryview(a).cast("B").cast("q") for a in self._arrays)
        self._mask = TABLE_SLOTS - 1

    @property
    def generation(self) -> int:
        """Counted up by every clear and load: ground truth from an older one is not reported."""
        return int(self._head[_GENERATION])

    @property
    def serial(self) -> int:
        """Counted up by every load: the prefix of the new cassette's counters."""
        return int(self._head[_SERIAL])

    def admit(self, slot: int) -> tuple[int, int]:
        """Count a request in for the process in ``slot``: its generation and its index in it."""
        head = self._head
        with self.lock:
            count = head[_COUNT]
            head[_COUNT] = count + 1
            self._admitted[slot] += 1
            return int(head[_GENERATION]), int(count - head[_BASE])

    def admitted(self, slot: int) -> int:
        """Requests the process in ``slot`` has counted in since the slot was (re)started."""
        return int(self._admitted[slot])

    def start_slot(self, slot: int) -> None:
        with self.lock:
            self._admitted[slot] = 0

    def clear(self, *, load: bool) -> int:
        """Start a new generation: request indices from 0, every counter at 0; returns the generation."""
        head = self._head
        with self.locked():
            head[_GENERATION] += 1
            head[_BASE] = head[_COUNT]
            if load:
                head[_SERIAL] += 1
            for raw in self._arrays[2:]:
                ctypes.memset(raw, 0, ctypes.sizeof(raw))
            head[_FILLED] = 0
            return int(head[_GENERATION])

    @contextlib.contextmanager
    def locked(self, timeout: float = 5.0) -> Iterator[None]:
        """The lock, for a caller that must not hang on it (the hub, the supervisor)."""
        if not self.lock.acquire(timeout=timeout):
            raise StreamreelError(f"the workers' shared lock was not free for {timeout:g} s: a worker probably died holding it; restart the server")
        try:
            yield
        finally:
            self.lock.release()

    def get(self, key: str) -> int:
        """The counter ``key`` (0 if never set); call with the lock held."""
        i = self._find(key, insert=False)
        return 0 if i < 0 else int(self._values[i])

    def put(self, key: str, value: int) -> None:
        """Set the counter ``key``; call with the lock held."""
        self._values[self._find(key, insert=True)] = value

    def _find(self, key: str, *, insert: bool) -> int:
        h = hash(key) or 1
        keys, mask = self._keys, self._mask
        i = h & mask
        while True:
            k = keys[i]
            if k == h:
                return i
            if k == 0:
                break
            i = (i + 1) & mask
        if not insert:
            return -1
        if self._head[_FILLED] >= TABLE_SLOTS * 3 // 4:
            raise StreamreelError(
                f"the workers' shared table of counters is full ({TABLE_SLOTS * 3 // 4:,} ordered-playback marks, times= counts "
                "and resume points since the last reset): POST /__streamreel/reset to start again"
            )
        keys[i] = h
        self._head[_FILLED] += 1
        return i


class SharedMarks:
    """Ordered playback's used interactions (a :class:`~streamreel.matching.Marks`) kept in :class:`Shared`."""

    def __init__(self, shared: Shared, prefix: str) -> None:
        self.shared = shared
        self.prefix = prefix

    def claim(self, candidates: Sequence[int]) -> int | None:
        shared, prefix = self.shared, self.prefix
        with shared.lock:
            for i in candidates:
                key = f"{prefix}{i}"
                if not shared.get(key):
                    shared.put(key, 1)
                    return i
        return None

    def release(self, index: int) -> None:
        with self.shared.lock:
            self.shared.put(f"{self.prefix}{index}", 0)

    def reset(self) -> None:
        """Nothing here: the hub clears the whole table, for every process at once (:meth:`Shared.clear`)."""


class SharedCounts(MutableMapping[str, int]):
    """A mapping of names to whole numbers kept in :class:`Shared` (``times=`` counts, streams served per path).

    It cannot list its keys (the table holds their hashes); ``clear`` leaves it to the hub,
    which clears the whole table for every process at once.
    """

    def __init__(self, shared: Shared, prefix: str) -> None:
        self.shared = shared
        self.prefix = prefix

    def get(self, key: str, default: Any = None) -> Any:
        with self.shared.lock:
            stored = self.shared.get(self.prefix + key)
        return stored - 1 if stored else default

    def __getitem__(self, key: str) -> int:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return int(value)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __setitem__(self, key: str, value: int) -> None:
        with self.shared.lock:
            self.shared.put(self.prefix + key, value + 1)

    def __delitem__(self, key: str) -> None:
        with self.shared.lock:
            self.shared.put(self.prefix + key, 0)

    def __iter__(self) -> Iterator[str]:
        raise TypeError("a shared table of counters cannot list its keys (it holds their hashes)")

    def __len__(self) -> int:
        raise TypeError("a shared table of counters cannot count its keys")

    def clear(self) -> None:
        """Nothing here: the hub clears the whole table, for every process at once (:meth:`Shared.clear`)."""


def _source(cassette: Any) -> str:
    if cassette is None:
        return ""
    path = getattr(cassette, "path", cassette)
    return str(path) if path is not None else ""


_Fields = tuple[str, str, str, dict[str, str], bytes, float]
"""A request as it travels between processes (its parsed body stays behind)."""


def _fields(received: ReceivedRequest) -> _Fields:
    return (received.method, received.path, received.query, dict(received.headers), received.body, received.at)


class _Worker(Replayer):
    """A replayer in one worker process: shared counters, the inherited socket, admin calls passed to the hub."""

    def __init__(self, *args: Any, shared: Shared, **kwargs: Any) -> None:
        self._shared = shared
        self.slot = -1
        self.sockets: list[socket.socket] = []  # listening sockets to serve (when not BALANCED)
        self.addresses: list[tuple[str, int]] = []  # where to listen with SO_REUSEPORT (when BALANCED)
        self.admin_path = ""
        self._admin: aiohttp.ClientSession | None = None
        self._open: dict[int, tuple[int, ReceivedRequest, _Live]] = {}
        super().__init__(*args, **kwargs)

    def _make_state(self, cassette: Any, **options: Any) -> Any:
        state = super()._make_state(cassette, **options)
        shared = self._shared
        prefix = f"{shared.serial}\0{_source(cassette)}\0"
        state.matcher.marks = SharedMarks(shared, prefix + "m")
        state.browser.share(SharedCounts(shared, prefix + "s"), SharedMarks(shared, prefix + "p"))
        state.attempts = SharedCounts(shared, prefix + "t")
        state.lock = shared.lock
        return state

    def _admit(self, received: ReceivedRequest, live: _Live) -> list[int]:
        generation, index = self._shared.admit(self.slot)
        live.request_index = index
        self._open[id(received)] = (generation, received, live)
        return [0, 0]  # the hub keeps the history

    def in_flight(self) -> list[tuple[int, _Fields, SentResponse]]:
        return [(generation, _fields(received), live.snapshot()) for generation, received, live in self._open.values()]

    def finished(self, received: ReceivedRequest) -> int | None:
        """The generation of a response that just finished (None for one never counted in)."""
        entry = self._open.pop(id(received), None)
        return None if entry is None else entry[0]

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES + 1024 * 1024)
        app.router.add_route("*", PREFIX.rstrip("/"), self._to_hub)
        app.router.add_route("*", PREFIX + "{tail:.*}", self._to_hub)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _listen(self, runner: web.AppRunner) -> int:
        for host, port in self.addresses:
            await web.TCPSite(runner, host, port, reuse_port=True, backlog=socket.SOMAXCONN).start()
        for sock in self.sockets:
            await web.SockSite(runner, sock, backlog=socket.SOMAXCONN).start()
        return self.addresses[0][1] if self.addresses else int(self.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._admin = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=self.admin_path), timeout=aiohttp.ClientTimeout(total=None))
        await super().start()

    async def stop(self) -> None:
        await super().stop()
        if self._admin is not None:
            await self._admin.close()
            self._admin = None

    async def _to_hub(self, request: web.Request) -> web.StreamResponse:
        """An admin call, answered by the hub for every worker."""
        body = await request.read()
        headers = {"content-type": request.headers["content-type"]} if "content-type" in request.headers else {}
        assert self._admin is not None
        try:
            async with self._admin.request(request.method, URL("http://streamreel" + request.raw_path, encoded=True), data=body, headers=headers) as resp:
                payload = await resp.read()
                kept = {k: v for k, v in resp.headers.items() if k.lower() in ("content-type", "allow")}
                return web.Response(status=resp.status, body=payload, headers=kept)
        except aiohttp.ClientError as e:
            message = f"streamreel admin: the process holding the workers' ground truth did not answer ({type(e).__name__}); the server is stopping or broken"
            return web.json_response({"type": "error", "error": {"type": "api_error", "message": message}}, status=503)


# ---------------------------------------------------------------- between processes

_LENGTH = struct.Struct("!I")


def _frame(message: Any) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


async def _read(reader: asyncio.StreamReader) -> Any:
    """The next message, or None once the other process has closed its end."""
    try:
        head = await reader.readexactly(_LENGTH.size)
        return pickle.loads(await reader.readexactly(_LENGTH.unpack(head)[0]))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


class _HubLink:
    """A worker's line to the hub: finished responses out (batched per turn of the loop), commands in."""

    def __init__(self, server: _Worker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self._pending: list[tuple[int, _Fields, SentResponse]] = []
        self._flushing = False
        self._errors: list[str] = []

    @classmethod
    async def connect(cls, server: _Worker, path: str, number: int) -> _HubLink:
        reader, writer = await asyncio.open_unix_connection(path)
        link = cls(server, reader, writer)
        link.send(("hello", server.slot, number, os.getpid()))
        if await _read(reader) != ("welcome",):
            raise StreamreelError("the hub did not welcome this worker")
        return link

    def send(self, message: Any) -> None:
        if not self.writer.is_closing():
            self.writer.write(_frame(message))

    def finished(self, received: ReceivedRequest, response: SentResponse) -> None:
        generation = self.server.finished(received)
        if generation is None:
            return
        self._pending.append((generation, _fields(received), response))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._flushing = False
        if self._pending:
            batch, self._pending = self._pending, []
            self.send(("done", batch))

    async def run(self) -> None:
        """Apply the hub's commands in order until it closes the line."""
        server = self.server
        while True:
            message = await _read(self.reader)
            if message is None:
                return
            kind = message[0]
            try:
                if kind == "clear":
                    server.clear()
                elif kind == "load":
                    _, cassette, faults, speed = message
                    server.load(server.cassette if cassette == _SAME else cassette, faults=faults, speed=speed)  # pickled: equal, not the same object
            except Exception as e:  # the hub checked it first; say what differs here
                self._errors.append(f"worker pid {os.getpid()}: {kind} failed: {type(e).__name__}: {e}")
            if kind == "sync":
                self.flush()
                errors, self._errors = self._errors, []
                self.send(("synced", message[1], server.in_flight(), errors))

    async def close(self) -> None:
        self.flush()
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


_SAME = "\0the cassette served now"
"""Sent instead of the cassette a load keeps (every worker has it already)."""


# ---------------------------------------------------------------- the hub


class _WorkerLink:
    def __init__(self, slot: int, number: int, pid: int, writer: asyncio.StreamWriter) -> None:
        self.slot = slot
        self.number = number
        self.pid = pid
        self.writer = writer
        self.replies: dict[int, asyncio.Future[Any]] = {}

    def send(self, message: Any) -> None:
        if not self.writer.is_closing():
            self.writer.write(_frame(message))


class Pool:
    """Every worker's ground truth, in the hub: what the admin API reads and drives
    (a :class:`~streamreel.admin.Served`), as one :class:`~streamreel.replayer.Replayer` would hold it.

    Finished responses arrive as the workers finish them; those in flight are asked for by
    :meth:`catch_up` (every admin call does). ``history`` and ``history_bytes`` bound what is
    kept, as a replayer's do. ``on_response`` is called with every finished response and the
    ``(number, pid)`` of the worker that served it (``serve`` logs them), whichever generation it belongs to.
    """

    def __init__(
        self,
        model: Replayer,
        shared: Shared,
        *,
        history: int | None = None,
        history_bytes: int | None = None,
        on_response: Callable[[ReceivedRequest, SentResponse, tuple[int, int]], None] | None = None,
    ) -> None:
        self.model = model
        self.shared = shared
        self.history = history
        self.history_bytes = history_bytes
        self.on_response = on_response
        self.epoch = time.monotonic()
        self.stopping = False
        self._generation = shared.generation
        self._finished: dict[int, tuple[ReceivedRequest, SentResponse, int]] = {}
        self._order: list[int] = []
        self._held = 0
        self._open: dict[int, tuple[ReceivedRequest, SentResponse]] = {}
        self._answered = 0
        self._links: dict[int, _WorkerLink] = {}
        self._received: dict[int, int] = {}
        self._changed = asyncio.Event()
        self._seq = 0

    # ---- what a Served is

    @property
    def cassette(self) -> Any:
        return self.model.cassette

    @property
    def cassette_dir(self) -> Path | None:
        return self.model.cassette_dir

    @property
    def default_name(self) -> str | None:
        return self.model.default_name

    def _pairs(self) -> list[tuple[ReceivedRequest, SentResponse]]:
        merged: dict[int, tuple[ReceivedRequest, SentResponse]] = dict(self._open)
        merged.update((i, (req, res)) for i, (req, res, _) in self._finished.items())
        return [merged[i] for i in sorted(merged)]

    @property
    def requests(self) -> list[ReceivedRequest]:
        return [req for req, _ in self._pairs()]

    @property
    def responses(self) -> list[SentResponse]:
        return [res for _, res in self._pairs()]

    def clear(self) -> None:
        """Forget every worker's requests and responses; restart ordered playback and fault counts."""
        self._new_generation(self.shared.clear(load=False))
        self._send_all(("clear",))

    def load(self, cassette: Any, *, faults: Sequence[Any] | str = (), speed: float | None = None) -> None:
        """Serve another cassette (or the same with other faults and speed) in every worker."""
        same = cassette is self.model.cassette
        self.model.load(cassette, faults=faults, speed=speed)  # refuses what a worker would, before any changes
        self._new_generation(self.shared.clear(load=True))
        self._send_all(("load", _SAME if same else cassette, faults if isinstance(faults, str) else [str(f) for f in faults], speed))

    async def catch_up(self) -> None:
        """Wait until every worker has applied the commands sent so far, and take what it has in flight."""
        self._seq += 1
        seq = self._seq
        loop = asyncio.get_running_loop()
        asked = []
        for link in list(self._links.values()):
            reply: asyncio.Future[Any] = loop.create_future()
            link.replies[seq] = reply
            link.send(("sync", seq))
            asked.append((link, reply))
        opened: dict[int, tuple[ReceivedRequest, SentResponse]] = {}
        problems: list[str] = []
        for link, reply in asked:
            try:
                records, errors = await asyncio.wait_for(reply, SYNC_WAIT_S)
            except asyncio.TimeoutError:
                problems.append(f"worker {link.number} (pid {link.pid}) did not answer within {SYNC_WAIT_S:g} s")
                continue
            finally:
                link.replies.pop(seq, None)
            problems += errors
            for generation, fields, response in records:
                if generation == self._generation and response.request_index not in self._finished:
                    opened[response.request_index] = (ReceivedRequest(*fields), response)
        self._open = opened
        if problems:
            raise StreamreelError("; ".join(problems))

    def settle(self, timeout: float = 5.0, *, requests: int = 0) -> list[SentResponse]:
        raise StreamreelError("the workers' ground truth is waited for on the hub's loop: use asettle")

    async def asettle(self, timeout: float = 5.0, *, requests: int = 0) -> list[SentResponse]:
        """Wait until no worker has a response in flight (and ``requests`` have been answered); returns :attr:`responses`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                self._changed.clear()
                if self.in_flight() <= 0 and self._answered >= requests:
                    break
                await asyncio.wait_for(self._changed.wait(), max(deadline - loop.time(), 0))
        except asyncio.TimeoutError:
            await self.catch_up()
            busy = sorted(i for i, (_, res) in self._open.items() if res.finished is None)
            waiting = f"; {requests} answered requests wanted, {self._answered} answered" if requests else ""
            raise TimeoutError(f"responses to requests {busy} still in flight after {timeout:g}s{waiting}") from None
        await self.catch_up()
        return self.responses

    # ---- the workers' lines

    def in_flight(self) -> int:
        """Responses counted in by a worker still running and not yet reported finished (any generation)."""
        return sum(self.shared.admitted(slot) - self._received.get(slot, 0) for slot in self._links)

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hello = await _read(reader)
        if not (isinstance(hello, tuple) and len(hello) == 4 and hello[0] == "hello"):
            writer.close()
            return
        _, slot, number, pid = hello
        link = _WorkerLink(slot, number, pid, writer)
        self._links[slot] = link
        self._received[slot] = 0
        link.send(("welcome",))
        try:
            while True:
                message = await _read(reader)
                if message is None:
                    break
                if message[0] == "done":
                    self._done(slot, message[1])
                elif message[0] == "synced":
                    reply = link.replies.get(message[1])
                    if reply is not None and not reply.done():
                        reply.set_result((message[2], message[3]))
        finally:
            if self._links.get(slot) is link:
                del self._links[slot]
            lost = self.shared.admitted(slot) - self._received.pop(slot, 0)
            for reply in link.replies.values():
                if not reply.done():
                    reply.set_result(([], []))
            if lost > 0:
                print(f"warning: worker {number} (pid {pid}) ended with {lost} response(s) in flight: their ground truth is lost", file=sys.stderr, flush=True)
            self._changed.set()
            writer.close()

    def _done(self, slot: int, batch: list[tuple[int, _Fields, SentResponse]]) -> None:
        self._received[slot] = self._received.get(slot, 0) + len(batch)
        link = self._links.get(slot)
        worker = (link.number, link.pid) if link is not None else (0, 0)
        for generation, fields, response in batch:
            request = ReceivedRequest(*fields)
            if generation == self._generation:
                self._keep(request, response)
            if self.on_response is not None:
                self.on_response(request, response, worker)
        self._changed.set()

    def _keep(self, request: ReceivedRequest, response: SentResponse) -> None:
        index = response.request_index
        held = _held_bytes(request) + len(response.data)
        self._finished[index] = (request, response, held)
        self._open.pop(index, None)
        self._answered += 1
        self._held += held
        heapq.heappush(self._order, index)
        count, most = self.history, self.history_bytes
        while self._order and ((count is not None and len(self._finished) > count) or (most is not None and self._held > most)):
            dropped = self._finished.pop(heapq.heappop(self._order))
            self._held -= dropped[2]

    def _new_generation(self, generation: int) -> None:
        self._generation = generation
        self._finished.clear()
        self._order.clear()
        self._held = 0
        self._open.clear()
        self._answered = 0
        self.epoch = time.monotonic()

    def _send_all(self, message: tuple[Any, ...]) -> None:
        for link in self._links.values():
            link.send(message)

    async def drained(self, timeout: float) -> None:
        """Until every worker's line has closed (they stop first), at most ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._links and loop.time() < deadline:
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), deadline - loop.time())


# ---------------------------------------------------------------- the child processes


def _as_child(close: Sequence[int]) -> None:
    """In a forked child: the first process decides when to stop (SIGTERM), not the terminal's Ctrl-C."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for fd in close:
        with contextlib.suppress(OSError):
            os.close(fd)


async def _until_stopped(parent: int, *also: asyncio.Future[Any]) -> None:
    """Until SIGTERM, or the first process is gone (checked each second, as gunicorn's workers do), or one of ``also`` ends."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    async def orphaned() -> None:
        while os.getppid() == parent:
            await asyncio.sleep(1.0)

    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(orphaned()), *also]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits[:2]:
            w.cancel()
        loop.remove_signal_handler(signal.SIGTERM)


def _settle_heap() -> None:
    gc.collect()
    gc.freeze()


def _hub_main(pool_args: dict[str, Any], paths: tuple[str, str], make_log: Any, listening: Sequence[int], ready: Any, parent: int, close: Sequence[int]) -> None:
    _as_child([*close, *listening])  # the hub serves no stream
    try:
        asyncio.run(_hub(pool_args, paths, make_log, ready, parent))
    except BaseException as e:  # reported to the first process, which says it and stops
        _say_failed(ready, e)
        raise SystemExit(1) from None


async def _hub(pool_args: dict[str, Any], paths: tuple[str, str], make_log: Any, ready: Any, parent: int) -> None:
    pool = Pool(**pool_args)
    log = make_log(pool) if make_log is not None else None
    pool.on_response = log
    lines = await asyncio.start_unix_server(pool.accept, path=paths[0])
    app = web.Application(client_max_size=MAX_REQUEST_BYTES + 1024 * 1024)
    mount(app, pool)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.UnixSite(runner, paths[1]).start()
    _settle_heap()
    ready.send(None)
    ready.close()
    try:
        await _until_stopped(parent)
        pool.stopping = True
        await pool.drained(STOP_WAIT_S)
    finally:
        await runner.cleanup()
        lines.close()
        await lines.wait_closed()
        if log is not None:
            log.close()


def _worker_main(server: _Worker, slot: int, number: int, paths: tuple[str, str], reserved: Sequence[socket.socket], ready: Any, parent: int, close: Sequence[int]) -> None:
    if BALANCED:
        server.addresses = [s.getsockname()[:2] for s in reserved]
        close = [*close, *(s.fileno() for s in reserved)]
    else:
        server.sockets = list(reserved)
    _as_child(close)
    warnings.simplefilter("ignore", NonLoopbackWarning)  # the first process warned once
    server.slot = slot
    server.admin_path = paths[1]
    try:
        asyncio.run(_work(server, number, paths[0], ready, parent))
    except BaseException as e:
        _say_failed(ready, e)
        raise SystemExit(1) from None


async def _work(server: _Worker, number: int, hub_path: str, ready: Any, parent: int) -> None:
    link = await _HubLink.connect(server, hub_path, number)
    server.on_response = link.finished
    await server.start()
    _settle_heap()
    ready.send(None)
    ready.close()
    commands = asyncio.ensure_future(link.run())
    try:
        await _until_stopped(parent, commands)
    finally:
        await server.stop()
        commands.cancel()
        await link.close()


def _say_failed(ready: Any, error: BaseException) -> None:
    with contextlib.suppress(OSError, ValueError):
        ready.send(" ".join(f"{type(error).__name__}: {error}".split()))


# ---------------------------------------------------------------- the first process


def _bind(host: str, port: int) -> list[socket.socket]:
    """Sockets bound on every address ``host`` resolves to, on one port (the same free one for port 0):
    with :data:`BALANCED`, bound with ``SO_REUSEPORT`` and not listening (each worker listens on
    its own); otherwise listening, for the workers to share."""
    check_address(host, port)
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    addresses = list(dict.fromkeys((family, address[0]) for family, _, _, _, address in infos))
    for _ in range(20):
        sockets: list[socket.socket] = []
        chosen = port
        try:
            for family, address in addresses:
                if BALANCED and chosen:
                    _check_free(family, address, chosen)
                sock = socket.socket(family, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT if BALANCED else socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((address, chosen))
                if not BALANCED:
                    sock.listen(socket.SOMAXCONN)
                chosen = sock.getsockname()[1]
            return sockets
        except OSError:
            for sock in sockets:
                sock.close()
            if port or len(sockets) <= 1:
                raise
    raise OSError(f"could not listen on one port for every address of {host!r}")


def _check_free(family: int, address: str, port: int) -> None:
    """Raise ``EADDRINUSE`` when another socket holds ``port``: binding with ``SO_REUSEPORT`` alone
    would join another server of the same user on it (another ``serve --workers``), each then
    getting a share of the connections, silently."""
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port left in TIME_WAIT is free
        if family == socket.AF_INET6:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        probe.bind((address, port))


class _Process:
    def __init__(self, process: Any, number: int, slot: int) -> None:
        self.process = process
        self.number = number
        self.slot = slot


class _Supervisor:
    def __init__(self, server: _Worker, shared: Shared, sockets: list[socket.socket], paths: tuple[str, str], say: Callable[[str], None]) -> None:
        self.context = multiprocessing.get_context("fork")
        self.server = server
        self.shared = shared
        self.sockets = sockets
        self.paths = paths
        self.say = say
        self.stopping = False
        self.workers: list[_Process] = []
        self.hub: _Process | None = None
        self._next_slot = 0
        self._deaths: deque[float] = deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    def _start(self, name: str, target: Callable[..., None], args: tuple[Any, ...]) -> Any:
        """Fork a child and wait until it serves (or says why it cannot)."""
        receive, send = self.context.Pipe(duplex=False)
        process = self.context.Process(target=target, args=(*args, send, os.getpid(), (self._wake_r, self._wake_w)), name=name, daemon=True)
        process.start()
        send.close()
        try:
            ready = multiprocessing.connection.wait([receive, process.sentinel], timeout=START_WAIT_S)
            message: Any = "did not start in time" if not ready else "exited while starting"
            if receive in ready:
                with contextlib.suppress(EOFError):
                    message = receive.recv()
        finally:
            receive.close()
        if message is not None:
            self._end(process)
            raise StreamreelError(f"{name} could not start: {message}")
        return process

    def start_hub(self, pool_args: dict[str, Any], make_log: Any) -> None:
        process = self._start("streamreel hub", _hub_main, (pool_args, self.paths, make_log, [s.fileno() for s in self.sockets]))
        self.hub = _Process(process, 0, -1)

    def start_worker(self, number: int) -> _Process:
        slot = self._next_slot % SLOTS
        self._next_slot += 1
        self.shared.start_slot(slot)
        process = self._start(f"streamreel worker {number}", _worker_main, (self.server, slot, number, self.paths, self.sockets))
        return _Process(process, number, slot)

    def run(self) -> int:
        """Supervise until SIGINT or SIGTERM (exit status 0), or until the server cannot go on (1)."""

        def stop(signum: int, frame: Any) -> None:
            self.stopping = True

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        wakeup = signal.set_wakeup_fd(self._wake_w)
        try:
            while not self.stopping:
                assert self.hub is not None
                multiprocessing.connection.wait([self._wake_r, self.hub.process.sentinel, *(w.process.sentinel for w in self.workers)])
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._wake_r, 512):
                        pass
                if self.stopping:
                    break
                if not self.hub.process.is_alive():
                    self.say(f"error: the hub holding the workers' ground truth (pid {self.hub.process.pid}) {_how(self.hub.process)}; stopping")
                    return 1
                for i, worker in enumerate(self.workers):
                    if not worker.process.is_alive():
                        problem = self._replace(i, worker)
                        if problem:
                            self.say(f"error: {problem}; stopping")
                            return 1
            return 0
        finally:
            signal.set_wakeup_fd(wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _replace(self, i: int, worker: _Process) -> str | None:
        process = worker.process
        process.join()
        now = time.monotonic()
        self._deaths.append(now)
        while self._deaths and self._deaths[0] < now - RESTART_WINDOW_S:
            self._deaths.popleft()
        if len(self._deaths) > RESTARTS:
            return f"{len(self._deaths)} workers died within {RESTART_WINDOW_S:g} s (the last, worker {worker.number}, pid {process.pid}, {_how(process)})"
        try:
            with self.shared.locked(timeout=2.0):
                pass
        except StreamreelError as e:
            return str(e)
        try:
            self.workers[i] = self.start_worker(worker.number)
        except StreamreelError as e:
            return str(e)
        self.say(f"warning: worker {worker.number} (pid {process.pid}) {_how(process)}; worker {worker.number} now runs as pid {self.workers[i].process.pid}")
        return None

    def shutdown(self) -> None:
        """Stop the workers (their responses in flight are cut and reported), then the hub; kill what does not stop."""
        for worker in self.workers:
            _terminate(worker.process)
        for worker in self.workers:
            self._end(worker.process)
        if self.hub is not None:
            _terminate(self.hub.process)
            self._end(self.hub.process)
        for sock in self.sockets:
            sock.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    @staticmethod
    def _end(process: Any) -> None:
        _terminate(process)
        process.join(STOP_WAIT_S)
        if process.is_alive():
            process.kill()
            process.join()
        process.close()


def _terminate(process: Any) -> None:
    with contextlib.suppress(ValueError, ProcessLookupError):
        if process.is_alive():
            process.terminate()


def _how(process: Any) -> str:
    code = process.exitcode
    if code is None:
        return "is still running"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def serve(
    options: Mapping[str, Any],
    *,
    workers: int,
    on_listening: Callable[[str], None],
    make_log: Callable[[Pool], Any] | None = None,
    history: int | None = None,
    history_bytes: int | None = None,
    say: Callable[[str], None] = _stderr,
) -> int:
    """Serve with ``workers`` processes until SIGINT or SIGTERM; returns the exit status.

    ``options`` are a :class:`~streamreel.replayer.Replayer`'s keyword arguments (the
    cassette is loaded and checked here, before anything is bound or forked). Once every
    process serves, ``on_listening`` gets the URL; ``make_log(pool)``, called in the hub,
    returns what is called with each finished response (and closed at the end);
    ``history`` and ``history_bytes`` bound the ground truth the hub keeps; ``say`` prints
    warnings (a worker replaced, ground truth lost). Bad options raise
    :class:`~streamreel.errors.StreamreelError` or :class:`ValueError`; a port that cannot be
    bound raises :class:`OSError`.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"workers must be a whole number from 1 to {MAX_WORKERS}, got {workers!r}")
    if "fork" not in multiprocessing.get_all_start_methods():
        raise StreamreelError("several workers need fork(), which this platform does not have (Linux and macOS do); serve with one process")
    shared = Shared()
    server = _Worker(**options, shared=shared)
    sockets = _bind(server.host, server.port)
    url = f"http://{_url_host(server.host)}:{sockets[0].getsockname()[1]}"
    hosts = exposed(s.getsockname() for s in sockets)
    if hosts:
        say(f"warning: {exposure_message('Replayer', url, hosts)}")
    directory = tempfile.mkdtemp(prefix="streamreel-")
    paths = (os.path.join(directory, "hub"), os.path.join(directory, "admin"))
    supervisor = _Supervisor(server, shared, sockets, paths, say)
    try:
        _settle_heap()
        supervisor.start_hub({"model": server, "shared": shared, "history": history, "history_bytes": history_bytes}, make_log)
        for number in range(1, workers + 1):
            supervisor.workers.append(supervisor.start_worker(number))
        on_listening(url)
        return supervisor.run()
    finally:
        supervisor.shutdown()
        shutil.rmtree(directory, ignore_errors=True)
