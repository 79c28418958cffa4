"""The replay server: serves a cassette on 127.0.0.1 to any client, SDK, curl or browser.

Use it as ``with Replayer(path) as r:`` (the server runs on a background thread, for sync
tests) or ``async with Replayer(path) as r:`` (on the running loop). Point a client's
``base_url`` at ``r.url``. Every response follows its plan (see :mod:`streamreel.pipeline`),
written against the loop's monotonic clock from the moment the request arrived, so gaps do
not accumulate drift. Afterwards ``r.requests`` holds what arrived and ``r.responses``
what was really sent: the bytes, the events they complete, and how the response ended.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections import deque
import json
import logging
import os
import socket
import struct
import sys
import threading
import time
from array import array
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable, Mapping, MutableMapping, Sequence, Union

from aiohttp import web

from . import cassette as _cassette
from .bind import check_address, listen, warn_if_exposed
from .browser import BrowserState
from .cassette import Cassette
from .clock import Clock, DeadlineError
from .errors import CassetteError, FaultSpecError, NoMatchError, StreamreelError
from .guard import ARRIVED_KEY, DEFAULT_IDLE_TIMEOUT_S, SERVER_LOG, VERSION_KEY, AcceptErrors, BodyTooLarge, drain, harden, read_body
from .fault_injection.base import FaultOutcome
from .library import CASSETTE_PARAM, Library
from .library import Refusal as LibraryRefusal
from .matching import MATCH_ON, SDK_QUERY_PARAMS, Matcher, ReceivedRequest
from .pipeline import EventChunks, Plan, check_fit, plan
from .providers import decode_body, detect_provider
from .providers.anthropic import error_body, error_headers
from .sse import Event
from .scrub import CREDENTIAL_HEADERS, Scrubber

__all__ = ["Replayer", "SentResponse", "MAX_REQUEST_BYTES", "FAULTS_HEADER"]

MAX_REQUEST_BYTES = 32 * 1024 * 1024
"""The Messages API's request size limit; aiohttp's default of 1 MB would turn an image into a 413."""

_BODY_LIMIT = MAX_REQUEST_BYTES + 1024 * 1024
"""The largest body read (the API's limit, with 1 MiB of slack for framing differences)."""

FAULTS_HEADER = "x-streamreel-faults"
"""Request header carrying fault specs (joined by ``;``) for that one request."""

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer", "trailers", "transfer-encoding", "upgrade"}
)
"""Headers that describe one connection (RFC 9110 7.6.1), never stored or passed on."""

_NOT_REPLAYED = HOP_BY_HOP | {"content-length", "content-encoding", "date", "server"}
"""Recorded response headers the replayer sets itself (the body is re-framed, decoded, and sent now)."""

_SCRUB = Scrubber()
_TURN_S = 0.0005
"""While streams under way are behind their schedule, new requests start in a turn of the event
loop only as many as take about this long (a burst of requests would otherwise hold every due
event for as long as it takes to start them all: 300 requests, 25 ms)."""
_log = logging.getLogger("streamreel.server")

NOTHING_LOADED = "no cassette loaded: use @pytest.mark.reel or reel.load in a test, Replayer(cassette) or .load() in code, or POST /__streamreel/load"
"""What a request gets (a 404) from a server that was given no cassette."""

CassetteLike = Union[Cassette, str, "os.PathLike[str]", None]


@dataclass(frozen=True)
class SentResponse:
    """Ground truth for one response: what went out before the end, a fault, or a hang-up.

    ``ending`` is ``end`` (clean end of body), ``close`` (cut without the chunked
    terminator), ``reset`` (TCP RST), ``hang`` (held silent until the client left),
    ``client_hung_up`` (the client left before the response ended), or None while still
    in flight. ``data`` is the body bytes the client got: everything written before a
    ``close`` or ``end``; before a ``reset``, what the peer's kernel acknowledged (the
    server waits for that, so it is everything unless the client stopped reading). When the
    client leaves (``client_hung_up``, or a ``hang`` it gave up on), ``data`` is what the server
    had handed to the connection before it saw the client go, counted as each piece is handed
    over (not once the client has read it): a client that leaves while the server waits for
    its next planned write gets exactly what went before, every run; pieces planned closer
    together than the client takes to hang up (speed 0, sub-millisecond gaps) may have gone
    out first, and are then counted, since they were sent.
    ``answered_by`` names the request fault (``http:...``) that answered instead of the
    recording; ``faults`` says, for each fault in force (the cassette's, the replay's, the
    request header's), whether it fired on this response and what it did or why it could
    not (:class:`~streamreel.fault_injection.FaultOutcome`; ``fault_specs`` lists just
    their spec strings); ``headers`` are the response headers sent. On a directory server
    (``cassette_dir=``), ``cassette`` is the path, relative to the directory, of the
    cassette that answered (``interaction`` is an index in it). ``silent_ms`` is the
    longest time the server sent nothing while the response was open (from the request,
    between writes, or after the last write until the end or now), ``silent_since`` when
    the server last went quiet and stayed so (None while it is writing); both None for a
    response streamed through from a recording upstream.
    """

    request_index: int
    interaction: int | None
    status: int
    data: bytes = field(repr=False)
    events_done: int
    ending: str | None
    client_hung_up: bool
    faults: tuple[FaultOutcome, ...]
    started: float
    finished: float | None
    headers: Mapping[str, str] = field(default_factory=dict)
    answered_by: str | None = None
    cassette: str | None = None
    silent_ms: float | None = None
    silent_since: float | None = None

    @property
    def events(self) -> list[Event]:
        """The whole events among the bytes that went out (an event cut in half is left out)."""
        return decode_body(self.headers, self.data)[: self.events_done] if self.events_done else []

    @property
    def bytes_sent(self) -> int:
        return len(self.data)

    @property
    def fault_specs(self) -> tuple[str, ...]:
        """The spec strings of the faults in force, fired or not (``("disconnect:after=2",)``)."""
        return tuple(o.spec for o in self.faults)

    @property
    def fired(self) -> tuple[str, ...]:
        """The spec strings of the faults that fired on this response."""
        return tuple(o.spec for o in self.faults if o.fired)

    @property
    def duration_ms(self) -> float | None:
        return None if self.finished is None else (self.finished - self.started) * 1000.0


class _Live:
    """The mutable record the server updates while a response goes out."""

    __slots__ = ("request_index", "interaction", "status", "data", "events_done", "ending", "client_hung_up", "faults", "started", "finished", "headers", "answered_by", "frames", "view", "sent_bytes", "cassette", "quiet_since", "quiet_s")

    def __init__(self, request_index: int, started: float) -> None:
        self.request_index = request_index
        self.interaction: int | None = None
        self.status = 0
        self.data = bytearray()  # what went out when it is not a stream of events (a body, an error)
        self.events_done = 0
        self.ending: str | None = None
        self.client_hung_up = False
        self.faults: tuple[FaultOutcome, ...] = ()
        self.started = started
        self.finished: float | None = None
        self.headers: dict[str, str] = {}
        self.answered_by: str | None = None
        self.frames = array("q")  # body bytes after each part written (kept only when a reset is planned)
        self.cassette: str | None = None
        self.view: Sequence[Event] | None = None  # a stream: what went out is the start of these events' bytes
        self.sent_bytes: int | None = None  # how many of them (None: its first events_done events)
        self.quiet_since: float | None = None  # when the server went quiet (None: writing, or not tracked)
        self.quiet_s: float | None = None  # the longest silence that has ended (None: not tracked)

    def sent(self) -> bytes:
        """The body bytes sent, joined only when asked for: a stream's ground truth shares the cassette's
        bytes (byte faults only delay, split and cut them), so it costs a count while it goes out."""
        view, size = self.view, self.sent_bytes
        if view is None:
            return bytes(self.data)
        if size is None:
            return b"".join([ev.wire for ev in view[: self.events_done]])
        parts: list[bytes] = []
        total = 0
        for ev in view:
            if total >= size:
                break
            parts.append(ev.wire)
            total += len(ev.wire)
        return b"".join(parts)[:size]

    def silence(self, now: float) -> float | None:
        """The longest silence so far in ms, counting the one still going on until the end (or ``now``)."""
        if self.quiet_s is None:
            return None
        tail = 0.0 if self.quiet_since is None else (self.finished if self.finished is not None else now) - self.quiet_since
        return max(self.quiet_s, tail) * 1000.0

    def snapshot(self) -> SentResponse:
        return SentResponse(
            request_index=self.request_index,
            interaction=self.interaction,
            status=self.status,
            data=self.sent(),
            events_done=self.events_done,
            ending=self.ending,
            client_hung_up=self.client_hung_up,
            faults=self.faults,
            started=self.started,
            finished=self.finished,
            headers=dict(self.headers),
            answered_by=self.answered_by,
            cassette=self.cassette,
            silent_ms=self.silence(time.monotonic()),
            silent_since=self.quiet_since,
        )

    def speaks(self, at: float) -> None:
        """The server writes again at ``at`` (loop time): a silence, if there was one, ends."""
        since = self.quiet_since
        if since is not None:
            self.quiet_since = None
            if self.quiet_s is not None and at - since > self.quiet_s:
                self.quiet_s = at - since


@dataclass(frozen=True)
class Refusal:
    """An error the replayer answers with instead of a recording (no match, a bad fault header...)."""

    status: int
    kind: str
    message: str

    def response(self, live: _Live) -> tuple[dict[str, str], bytes]:
        """The headers and Anthropic-shaped JSON body that say it, noted in ``live``'s ground truth."""
        payload = json.dumps(error_body(self.status, message=self.message, error_type=self.kind)).encode()
        headers = error_headers(self.status, should_retry=False if self.status == 505 else None)
        headers.update(_CORS)
        live.status = self.status
        live.data += payload
        live.ending = "end"
        return headers, payload


class _Turns:
    """New requests taking turns while streams under way are behind their schedule.

    Requests that find the loop's current turn used up (or others already waiting) wait in line,
    in the order they came; each turn of the loop lets go as many as the last turn's pace fits in
    :data:`_TURN_S`, at least one, so a burst starts at a pace the streams already playing can bear.
    """

    def __init__(self) -> None:
        self.began: float | None = None  # when this turn started its first request
        self.starts = 0  # requests started in this turn
        self.planned = False  # whether the next turn's bookkeeping is due
        self.waiting: deque[asyncio.Future[None]] = deque()

    async def take(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait for a turn with time left to start one request."""
        if self.waiting or (self.began is not None and loop.time() - self.began >= _TURN_S):
            waiter: asyncio.Future[None] = loop.create_future()
            self.waiting.append(waiter)
            self._plan(loop)
            try:
                await waiter
            except asyncio.CancelledError:  # the client left while waiting: its place goes to the next
                if waiter.cancelled():
                    with contextlib.suppress(ValueError):
                        self.waiting.remove(waiter)
                raise
        if self.began is None:
            self.began = loop.time()
            self._plan(loop)
        self.starts += 1

    def _plan(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self.planned:
            self.planned = True
            loop.call_soon(self._next, loop)

    def _next(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop has turned: let the next requests in line go, and time the new turn afresh."""
        self.planned = False
        began, starts = self.began, self.starts
        self.began, self.starts = None, 0
        waiting = self.waiting
        if not waiting:
            return
        spent = loop.time() - began if began is not None else 0.0
        go = max(1, int(_TURN_S * starts / spent)) if starts and spent > 0 else 1
        while go > 0 and waiting:
            waiter = waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                go -= 1
        if waiting:
            self._plan(loop)


def sent_headers(p: Plan) -> dict[str, str]:
    """The response headers a plan goes out with: the recorded ones less those that described
    the recorded connection and body, CORS for browsers, and a stream's content type."""
    headers = {k: v for k, v in p.headers.items() if k.lower() not in _NOT_REPLAYED}
    headers.update(_CORS)
    if p.body is None:
        headers.setdefault("content-type", "text/event-stream; charset=utf-8")
        headers.setdefault("cache-control", "no-cache")
    return headers


@dataclass
class _State:
    """What one ``load`` serves; swapped whole so a running request keeps its own."""

    cassette: Cassette
    matcher: Matcher
    faults: tuple[Any, ...]
    speed: float
    browser: BrowserState
    fault_keys: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    attempts: MutableMapping[str, int] = field(default_factory=dict)
    lock: ContextManager[Any] = contextlib.nullcontext()
    """Held while a request's answer is chosen: the matching, the plan and the counts it moves
    are one step (one process needs none; processes sharing counts share a lock)."""


@lru_cache(maxsize=256)
def _header_faults(spec: str) -> tuple[tuple[Any, ...], tuple[str, ...]]:
    """A request header's faults and their spec strings, parsed once per distinct header."""
    from .fault_injection import parse

    faults = parse(spec)
    return faults, tuple(str(f) for f in faults)


class Replayer:
    """Serve a cassette over HTTP on loopback, with timing and faults.

    ``speed`` scales the recorded gaps (2 = twice as fast, 0 = no waiting); ``faults`` apply
    to every response on top of the cassette's own ``faults:``; a request may add more with
    the ``x-streamreel-faults`` header. ``match_on``/``ignore_query``/``ignore_body_keys``
    tune request matching. For browsers (see :mod:`streamreel.browser`): ``ids`` numbers the
    events of streams that have no ids, ``retry_ms`` is the ``retry:`` sent first (1000 by
    default when ``ids`` is on), and a reconnect with ``Last-Event-ID`` resumes after that event.
    ``history`` keeps only the last N requests and responses, ``history_bytes`` only as many as
    hold that many bytes (about: a request counts its body twice, raw and parsed, a response the
    bytes it sent when faulted); a long-running ``serve`` bounds both; by default everything is
    kept for the test to inspect. ``idle_timeout`` (seconds, :data:`~streamreel.guard.DEFAULT_IDLE_TIMEOUT_S`)
    is how long a connection may take to send a request head, a body may pause, and a response
    may wait for a client that reads nothing, before the connection is cut. ``cassette_dir`` (instead of a
    cassette) serves a directory: each request names its cassette (see :mod:`streamreel.library`).
    ``host`` other than loopback warns with :class:`~streamreel.errors.NonLoopbackWarning` at start.
    """

    def __init__(
        self,
        cassette: CassetteLike = None,
        *,
        speed: float = 1.0,
        faults: Sequence[Any] | str = (),
        host: str = "127.0.0.1",
        port: int = 0,
        match_on: Iterable[str] = MATCH_ON,
        ignore_query: Iterable[str] = SDK_QUERY_PARAMS,
        ignore_body_keys: Iterable[str] = (),
        ids: bool = False,
        retry_ms: int | None = None,
        history: int | None = None,
        history_bytes: int | None = None,
        cassette_dir: str | os.PathLike[str] | None = None,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT_S,
    ) -> None:
        check_address(host, port)
        if isinstance(idle_timeout, bool) or not isinstance(idle_timeout, (int, float)) or not 0 < idle_timeout <= 86400:
            raise ValueError(f"idle_timeout must be a number of seconds > 0 and at most 86400, got {idle_timeout!r}")
        if retry_ms is not None and (isinstance(retry_ms, bool) or not isinstance(retry_ms, int) or retry_ms < 0):
            raise ValueError(f"retry_ms must be a whole number of ms >= 0, got {retry_ms!r}")
        self.ids = ids
        self.retry_ms = retry_ms
        self.host = host
        self.port = port
        self._match = {"match_on": tuple(match_on), "ignore_query": tuple(ignore_query), "ignore_body_keys": tuple(ignore_body_keys)}
        if history is not None and history < 0:
            raise ValueError(f"history must be >= 0 or None, got {history!r}")
        if history_bytes is not None and history_bytes < 0:
            raise ValueError(f"history_bytes must be >= 0 or None, got {history_bytes!r}")
        self.idle_timeout = float(idle_timeout)
        self._history = history
        self._history_bytes = history_bytes
        self._requests: deque[ReceivedRequest] = deque()
        self._responses: deque[_Live] = deque()
        self._kept: deque[list[int]] = deque()  # per record kept: [bytes it holds, 1 while kept]
        self._kept_bytes = 0
        self._accept_errors: AcceptErrors | None = None
        self._arrived = 0
        self._inflight: set[asyncio.Task[Any]] = set()
        self._turns = _Turns()
        self._idle: asyncio.Event | None = None
        self._answered: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._clock: Clock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._library: Library[_State] | None = None
        self.epoch = time.monotonic()
        """When the server started or was last cleared (monotonic time): the zero of ground-truth times."""
        self.on_response: Callable[[ReceivedRequest, SentResponse], None] | None = None
        """Called on the server's loop with each response once it has finished (``serve`` logs them)."""
        if cassette_dir is not None:
            if cassette is not None:
                raise ValueError("give a cassette or a cassette_dir, not both")
            by_name = {"ignore_query": (*self._match["ignore_query"], CASSETTE_PARAM)}
            self._library = Library(cassette_dir, lambda path: self._make_state(path, faults=faults, speed=speed, match=by_name))
        self._state = self._make_state(cassette, faults=faults, speed=speed)

    # ------------------------------------------------------------ configuration

    def _make_state(self, cassette: CassetteLike, *, faults: Sequence[Any] | str, speed: float, match: Mapping[str, Any] | None = None) -> _State:
        from .fault_injection import check_speed, parse

        check_speed(speed)
        if cassette is None:
            cas = Cassette()
            match = {**(match or {}), "empty": NOTHING_LOADED}
        elif isinstance(cassette, Cassette):
            cas = cassette
        else:
            cas = _cassette.load(cassette)
        own, given = parse(list(cas.faults)), parse(faults)
        # A fault that cannot apply is refused where the cassette is known; on a directory
        # server only the cassette's own faults are (the server's are checked per response).
        check_fit(cas.interactions, own if self._library is not None else own + given, speed=speed, source=cas.path)
        parsed = own + given
        browser = BrowserState(cas.interactions, ids=self.ids, retry_ms=self.retry_ms)
        return _State(
            cassette=cas,
            matcher=Matcher(cas.interactions, **{**self._match, **(match or {})}),
            faults=parsed,
            speed=speed,
            browser=browser,
            fault_keys=tuple(str(f) for f in parsed),
            providers=tuple(detect_provider(i) for i in cas.interactions),
        )

    def load(
        self,
        cassette: CassetteLike,
        *,
        faults: Sequence[Any] | str = (),
        speed: float | None = None,
        match_on: Iterable[str] | None = None,
        ignore_query: Iterable[str] | None = None,
        ignore_body_keys: Iterable[str] | None = None,
    ) -> None:
        """Serve another cassette from now on, without restarting; clears requests and responses.

        The matching options apply to this cassette only; left out, they are the ones the
        replayer was made with. On a directory server (``cassette_dir=``), ``cassette`` is a
        name in the directory (or None): it answers the requests that name no cassette, and
        ``faults`` and ``speed`` apply to every cassette in the directory from now on.
        """
        given = {"match_on": match_on, "ignore_query": ignore_query, "ignore_body_keys": ignore_body_keys}
        match = {k: tuple(v) for k, v in given.items() if v is not None}
        speed = self._state.speed if speed is None else speed
        if self._library is not None:
            self._load_directory(cassette, faults=faults, speed=speed, match=match)
            return
        self._state = self._make_state(cassette, faults=faults, speed=speed, match=match)
        self.clear()

    def _load_directory(self, name: CassetteLike, *, faults: Sequence[Any] | str, speed: float, match: Mapping[str, Any]) -> None:
        assert self._library is not None
        if name is not None and not isinstance(name, str):
            raise StreamreelError(
                "this replayer serves a directory, where each request names its cassette; load() takes a name in it "
                "(the cassette for requests that name none) or None; make another Replayer to serve one cassette"
            )
        by_name = {**match, "ignore_query": (*match.get("ignore_query", self._match["ignore_query"]), CASSETTE_PARAM)}
        state = self._make_state(None, faults=faults, speed=speed)
        library: Library[_State] = Library(self._library.directory, lambda path: self._make_state(path, faults=faults, speed=speed, match=by_name))
        if name is not None:
            try:
                library.path(name)  # a bad or missing name is refused before anything changes
            except FileNotFoundError:
                raise CassetteError(f"no cassette {name!r} in the served directory; it holds: {', '.join(library.names()) or 'none'}", path=str(library.directory)) from None
        library.default = name
        self._state, self._library = state, library
        self.clear()

    def clear(self) -> None:
        """Forget recorded requests and responses and restart ordered playback and fault counts."""
        self._requests.clear()
        self._responses.clear()
        for cell in self._kept:
            cell[1] = 0
        self._kept.clear()
        self._kept_bytes = 0
        self._arrived = 0
        self.epoch = time.monotonic()
        self._state.matcher.reset()
        self._state.browser.reset()
        self._state.attempts.clear()
        if self._library is not None:
            self._library.clear()

    @property
    def cassette(self) -> Cassette:
        return self._state.cassette

    @property
    def cassette_dir(self) -> Path | None:
        """The directory a directory server serves (where cassette names point), else None."""
        return self._library.directory if self._library is not None else None

    @property
    def default_name(self) -> str | None:
        """On a directory server, the cassette :meth:`load` chose for requests that name none."""
        return self._library.default if self._library is not None else None

    @property
    def url(self) -> str:
        """Base URL to give a client (``base_url=r.url``)."""
        if self._runner is None:
            raise StreamreelError("the replayer is not running; use it as `with Replayer(...) as r:` or `async with`")
        return f"http://{_url_host(self.host)}:{self.port}"

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request that arrived, in order."""
        return list(self._requests)

    @property
    def responses(self) -> list[SentResponse]:
        """Ground truth for every response so far (call :meth:`settle` first after a client hang-up)."""
        return [live.snapshot() for live in self._responses]

    # ------------------------------------------------------------ lifecycle

    def _app(self) -> web.Application:
        from .admin import mount

        app = web.Application(client_max_size=MAX_REQUEST_BYTES + 1024 * 1024)
        mount(app, self)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def start(self) -> None:
        """Start serving on the running loop."""
        if self._runner is not None:
            return
        self._state.attempts.clear()  # a new serve counts every fault's times afresh
        self._loop = asyncio.get_running_loop()
        self._idle = asyncio.Event()
        self._idle.set()
        self._answered = asyncio.Event()
        runner = web.AppRunner(
            self._app(),
            handler_cancellation=True,
            access_log=None,
            shutdown_timeout=0.5,
            logger=SERVER_LOG,
            keepalive_timeout=self.idle_timeout,
            lingering_time=min(10.0, self.idle_timeout),  # the rest of a refused body is read and dropped, at most this long
        )
        await runner.setup()
        accept_errors = AcceptErrors(self._loop, 0)
        harden(runner, accepted=accept_errors.accepted)
        try:
            port = await self._listen(runner)
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._clock = Clock(self._loop)
        self._turns = _Turns()  # a turn left pending by a loop that stopped must not hold this one
        self.epoch = time.monotonic()
        self.port = accept_errors.port = port
        accept_errors.install()
        self._accept_errors = accept_errors
        warn_if_exposed(self, runner.addresses)

    async def _listen(self, runner: web.AppRunner) -> int:
        """Start serving ``runner`` on the replayer's address; returns the port (a worker process
        of ``serve --workers`` serves the socket it inherited instead)."""
        return await listen(runner, self.host, self.port, reuse_address=True, backlog=socket.SOMAXCONN)  # a burst of connections queues rather than waits out SYN retries

    async def stop(self) -> None:
        """Stop serving; responses still in flight are cut."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        for task in list(self._inflight):
            task.cancel()
        await runner.cleanup()
        if self._accept_errors is not None:
            self._accept_errors.uninstall()
            self._accept_errors = None
        if self._clock is not None:
            self._clock.close()
            self._clock = None

    async def __aenter__(self) -> Replayer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def __enter__(self) -> Replayer:
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                try:
                    loop.run_until_complete(self.start())
                except BaseException as e:  # reported to the caller below
                    failure.append(e)
                    return
                finally:
                    ready.set()
                loop.run_forever()
                loop.run_until_complete(self.stop())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="streamreel-replayer", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._forget_loop()
            raise failure[0]
        return self

    def __exit__(self, *exc: object) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._forget_loop()

    def _forget_loop(self) -> None:
        """After the server's thread is gone: nothing is in flight, and nothing may be scheduled on its loop."""
        self._thread = None
        self._loop = None
        self._idle = self._answered = None

    def settle(self, timeout: float = 5.0, *, requests: int = 0) -> list[SentResponse]:
        """Wait until no response is in flight (from a sync test); returns :attr:`responses`.

        ``requests`` also waits until at least that many requests have been answered, for a
        client that has sent a request the server may not have seen yet.
        """
        loop = self._loop
        if loop is None:
            return self.responses
        if self._thread is None:
            raise StreamreelError("settle() is for a replayer started with `with`; use `await r.asettle()` under `async with`")
        asyncio.run_coroutine_threadsafe(self.asettle(timeout, requests=requests), loop).result()
        return self.responses

    async def asettle(self, timeout: float = 5.0, *, requests: int = 0) -> list[SentResponse]:
        """Wait until no response is in flight (from async code); returns :attr:`responses`.

        Works from any event loop: from another one (a replayer started with `with`, awaited
        from an async test) the wait runs on the server's loop and does not block the caller's.
        """
        server_loop = self._loop
        if server_loop is not None and server_loop is not asyncio.get_running_loop():
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.asettle(timeout, requests=requests), server_loop))
        idle, answered = self._idle, self._answered
        if idle is None or answered is None:
            return self.responses
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                answered.clear()
                done = self._arrived - sum(1 for live in self._responses if live.finished is None)
                if idle.is_set() and done >= requests:
                    break
                await asyncio.wait_for(answered.wait(), max(deadline - loop.time(), 0))
        except asyncio.TimeoutError:
            busy = [live.request_index for live in self._responses if live.finished is None]
            waiting = f"; {requests} answered requests wanted, {self._arrived} arrived" if requests else ""
            raise TimeoutError(f"responses to requests {busy} still in flight after {timeout:g}s{waiting}") from None
        await self._settled(timeout)
        return self.responses

    async def catch_up(self) -> None:
        """Nothing to wait for: a replayer holds its ground truth itself (a front over several
        processes, :mod:`streamreel.workers`, fetches theirs here; the admin API calls it)."""

    async def _settled(self, timeout: float) -> None:
        """What else a settle waits for once no response is in flight (the recorder: its cassette write)."""

    def cut_inflight(self) -> int:
        """Cut every response still in flight (a stalled stream a test never closed); returns how many.

        The server keeps running; the cut responses report ``client_hung_up``. Thread-safe.
        """
        loop = self._loop
        if loop is None or not self._inflight:
            return 0

        def cut() -> int:
            tasks = list(self._inflight)
            for task in tasks:
                task.cancel()
            return len(tasks)

        try:
            same_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            same_loop = False
        if same_loop:
            return cut()
        done: concurrent.futures.Future[int] = concurrent.futures.Future()
        loop.call_soon_threadsafe(lambda: done.set_result(cut()))
        return done.result()

    # ------------------------------------------------------------ serving

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        start = request.get(ARRIVED_KEY) or loop.time()
        task = asyncio.current_task()
        idle = self._idle
        if task is not None:
            self._inflight.add(task)
        if idle is not None:
            idle.clear()
        live = _Live(self._arrived, time.monotonic())
        kept: ReceivedRequest | None = None
        cell: list[int] | None = None
        try:
            clock = self._clock
            if clock is not None and clock.behind():
                await self._turns.take(loop)
            if request.method == "OPTIONS":
                return _preflight(request)
            too_large = None
            try:
                body = await read_body(request, limit=_BODY_LIMIT, idle_s=self.idle_timeout)
            except BodyTooLarge:
                body, too_large = b"", True
            except asyncio.TimeoutError:
                live.request_index = -1
                response = self._error(live, 408, "timeout_error", f"streamreel: the request body stopped arriving for {self.idle_timeout:g} s (idle_timeout)")
                response.force_close()
                return response
            except ConnectionError:
                raise asyncio.CancelledError from None  # the client left mid-body: as when aiohttp cancels the handler
            received = ReceivedRequest(
                method=request.method,
                path=request.path,
                query=request.rel_url.raw_query_string,
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
                at=start,
            )
            cell = self._admit(received, live)
            kept = received
            if too_large is not None:
                size = request.content_length
                asked = f"{size:,}-byte body" if size is not None else "body"
                return self._error(live, 413, "request_too_large", f"streamreel: the {asked} is over the {_BODY_LIMIT:,}-byte limit (the Messages API takes {MAX_REQUEST_BYTES // 2**20} MB)")
            version = request.get(VERSION_KEY)
            if version is not None:
                return self._error(live, 505, "invalid_request_error", f"streamreel: HTTP/{version} is not supported; this server speaks HTTP/1.1")
            refusal = _bad_credential(received)
            if refusal is not None:
                return self._error(live, 400, "invalid_request_error", refusal)
            if self._library is not None:
                await self._library.preload(received.headers, received.query)
            answer = self._answer(received, live)
            received.__dict__.pop("_parsed", None)  # parsed again if asked for: an open stream does not hold its request's JSON
            if isinstance(answer, NoMatchError):
                return await self._unmatched(request, received, live, start, answer)
            if isinstance(answer, Refusal):
                return self._error(live, answer.status, answer.kind, answer.message)
            if answer.status == 204 and answer.body == b"":
                live.status, live.ending = 204, "end"
                return web.Response(status=204, headers=_CORS)
            return await self._send(request, answer, live, start)
        finally:
            if live.finished is None:
                live.finished = time.monotonic()
            if cell is not None and cell[1] and live.data:
                cell[0] += len(live.data)
                self._kept_bytes += len(live.data)
                self._trim()
            if task is not None:
                self._inflight.discard(task)
            if not self._inflight and idle is not None:
                idle.set()
            if self._answered is not None:
                self._answered.set()
            if kept is not None and self.on_response is not None:
                self.on_response(kept, live.snapshot())

    def _admit(self, received: ReceivedRequest, live: _Live) -> list[int]:
        """Count a request in and start its ground truth (whatever carried it: a socket or an in-process
        transport), within ``history`` and ``history_bytes``; returns the bytes it holds, to add what it sends."""
        live.request_index = self._arrived
        self._arrived += 1
        cell = [_held_bytes(received), 1]
        self._requests.append(received)
        self._responses.append(live)
        self._kept.append(cell)
        self._kept_bytes += cell[0]
        self._trim()
        return cell

    def _trim(self) -> None:
        count, most = self._history, self._history_bytes
        while self._kept and ((count is not None and len(self._kept) > count) or (most is not None and self._kept_bytes > most)):
            self._requests.popleft()
            self._responses.popleft()
            cell = self._kept.popleft()
            cell[1] = 0
            self._kept_bytes -= cell[0]

    def _answer(self, received: ReceivedRequest, live: _Live) -> Plan | Refusal | NoMatchError:
        """What to send for a request: its plan (the matched recording under the faults), the
        error to answer instead, or why nothing matched (the recorder records it then). The
        same decision for the socket and in-process transports."""
        state = self._state
        if self._library is not None:
            try:
                live.cassette, state = self._library.select_named(received.headers, received.query)
            except LibraryRefusal as e:
                return Refusal(e.status, e.kind, str(e))
        try:
            extra, extra_keys = _header_faults(received.headers[FAULTS_HEADER]) if FAULTS_HEADER in received.headers else ((), ())
        except FaultSpecError as e:
            return Refusal(400, "invalid_request_error", f"streamreel: bad {FAULTS_HEADER} header: {e}")
        problem = _body_problem(received)
        if problem is not None and not _recorded_raw(state.matcher, received):
            return NoMatchError(problem, request=received)
        with state.lock:
            return self._decide(state, received, live, extra, extra_keys)

    def _decide(self, state: _State, received: ReceivedRequest, live: _Live, extra: tuple[Any, ...], extra_keys: tuple[str, ...]) -> Plan | Refusal | NoMatchError:
        """The matched interaction under the faults, moving ordered playback and the faults' counts."""
        try:
            index = state.browser.find(received, state.matcher)
        except NoMatchError as e:
            return e
        interaction = state.browser.view(index, received)
        if interaction is None:
            live.interaction = index
            return Plan(status=204, headers=dict(_CORS), headers_at_ms=0.0, body=b"")
        faults = state.faults + extra
        keys = state.fault_keys + extra_keys
        attempts = {i: state.attempts.get(keys[i], 0) for i, f in enumerate(faults) if f.times is not None}
        live.interaction = index
        live.faults = tuple(FaultOutcome(k, False, "not planned") for k in keys)
        try:
            p = plan(interaction, faults, speed=state.speed, attempts=attempts, provider=state.providers[index])
        except (StreamreelError, ValueError) as e:
            return Refusal(400, "invalid_request_error", f"streamreel: the faults {list(keys)} cannot be applied to this response: {e}")
        live.faults = p.outcomes
        for i in p.used:
            if i in attempts:
                state.attempts[keys[i]] = state.attempts.get(keys[i], 0) + 1
        if p.unfit:
            _FAULT_LOG.warning("request %d (%s %s): %s", live.request_index, received.method, received.path, "; ".join(str(p.outcomes[i]) for i in p.unfit))
        if p.answered_by is not None:
            state.matcher.release(index)
            live.answered_by = str(p.answered_by)
        return p

    async def _unmatched(self, request: web.Request, received: ReceivedRequest, live: _Live, start: float, error: NoMatchError) -> web.StreamResponse:
        """Answer a request no recorded interaction matches (the recorder records it instead)."""
        refusal = self._no_match(received, error)
        return self._error(live, refusal.status, refusal.kind, refusal.message)

    def _no_match(self, received: ReceivedRequest, error: NoMatchError) -> Refusal:
        """The error for a request no recorded interaction matches.

        A JSON request whose body does not parse gets the API's 400 rather than a 404. The
        explanation quotes the request: its credentials are blanked, as a test runner prints it."""
        problem = _body_problem(received)
        if problem is not None:
            return Refusal(400, "invalid_request_error", f"streamreel: {received.method} {received.path}: {problem}")
        scrub = _SCRUB.also(_SCRUB.found(received.headers, received.target, received.body))
        return Refusal(404, "not_found_error", scrub.message(f"streamreel: {error}"))

    def _error(self, live: _Live, status: int, kind: str, message: str) -> web.Response:
        headers, payload = Refusal(status, kind, message).response(live)
        return web.Response(status=status, body=payload, headers=headers)

    async def _send(self, request: web.Request, p: Plan, live: _Live, start: float) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        clock = self._clock or Clock(loop, precise=False)
        headers = sent_headers(p)
        live.status = p.status
        live.quiet_s, live.quiet_since = 0.0, start
        try:
            await clock.sleep_until(start + p.headers_at_ms / 1000.0)
        except DeadlineError as e:
            return self._error(live, 400, "invalid_request_error", f"streamreel: this response cannot be replayed: {e}")
        live.headers = headers
        if p.body is not None:
            live.data += p.body
            live.ending = "end"
            live.speaks(loop.time())
            return web.Response(status=p.status, body=p.body, headers=headers)
        resp = web.StreamResponse(status=p.status, headers=headers)
        ending = p.ending
        try:
            await resp.prepare(request)
            live.speaks(loop.time())
            transport = request.transport
            if transport is not None:
                # Every write now waits until the kernel holds all of it: pieces go out as
                # separate sends, and the ground truth never counts bytes stuck in a buffer.
                transport.set_write_buffer_limits(high=0)
            if type(p.chunks) is EventChunks and ending.how != "reset" and _frames_itself(request):
                start = await _write_events(request, p.chunks, live, start, clock, self.idle_timeout)
            else:
                start = await _write_chunks(resp, request, p, live, start, clock, self.idle_timeout)
            live.quiet_since = loop.time()
            if ending.at_ms is not None:
                await clock.sleep_until(start + ending.at_ms / 1000.0)
            if ending.how == "end":
                await resp.write_eof()
                live.ending = "end"
            elif ending.how == "close":
                live.ending = "close"
                if request.transport is not None:
                    request.transport.close()
            elif ending.how == "reset":
                unacked = await _reset_when_delivered(request, loop)
                if unacked:
                    _forget_unacked(live, unacked, p.events)
                live.ending = "reset"
            else:
                live.ending = "hang"
                await asyncio.Event().wait()
        except asyncio.CancelledError:
            _client_left(live)
            live.finished = time.monotonic()
            raise
        except ConnectionError:
            _client_left(live)
        except DeadlineError as e:
            # The headers are out: cut the stream where it is, and say why in one line.
            _log.warning("streamreel: cut response #%d: %s", live.request_index, e)
            live.ending = "close"
            if request.transport is not None:
                request.transport.close()
        return resp


async def _write_events(request: web.Request, chunks: EventChunks, live: _Live, start: float, clock: Clock, idle_s: float) -> float:
    """A stream of whole events, only delayed (unfaulted, ``speed``, ``latency``), the hot path:
    each event's cached bytes, framed as one HTTP chunk, straight to the transport at its time;
    the ground truth is a count of events. Returns the time the schedule ran from (see :func:`_write_chunks`).

    aiohttp's ``resp.write`` would frame the same bytes through four calls and a join per
    event; at speed 0 that was a fifth of the replayer's time (``benchmarks/bench_replay.py``).
    """
    loop = asyncio.get_running_loop()
    protocol, writer, transport = request.protocol, request.writer, request.transport
    if transport is None:
        raise ConnectionResetError("the client left before the body")
    send_headers = getattr(writer, "send_headers", None)
    if send_headers is not None:
        send_headers()  # aiohttp >= 3.12 holds them back to coalesce with the first write
    live.view = chunks.events
    k = 1.0 / chunks.factor if chunks.factor else 0.0
    delays = chunks.delays() if chunks.delays is not None else None
    shift = chunks.start_ms
    timed = bool(k) or delays is not None
    elapsed_ms = -1.0  # the first event always reads the clock
    n = 0
    for ev in chunks.events:
        if timed:
            if delays is not None:
                shift += next(delays)
            at_ms = ev.t * k + shift
            if at_ms > elapsed_ms:
                elapsed_ms = (loop.time() - start) * 1000.0
                if at_ms > elapsed_ms:
                    live.quiet_since = start + elapsed_ms / 1000.0
                    await clock.sleep_until(start + at_ms / 1000.0)
                    live.speaks(start + at_ms / 1000.0)
                    elapsed_ms = at_ms
                elif not n:  # overdue from the start: keep the gaps (see _write_chunks)
                    start += (elapsed_ms - at_ms) / 1000.0
                    elapsed_ms = at_ms
        if transport.is_closing():
            raise ConnectionResetError("the client left mid-stream")
        wire = ev.wire
        transport.write(b"%x\r\n%b\r\n" % (len(wire), wire))
        n += 1
        live.events_done = n  # counted once handed over, before any wait for the client to read it
        if protocol.writing_paused:
            await drain(request, idle_s)
    return start


def _frames_itself(request: web.Request) -> bool:
    """Whether the hot path may write HTTP chunks itself: a chunked, uncompressed, unsized body."""
    writer = request.writer
    return bool(getattr(writer, "chunked", False)) and getattr(writer, "length", None) is None and getattr(writer, "_compress", None) is None


async def _write_chunks(resp: web.StreamResponse, request: web.Request, p: Plan, live: _Live, start: float, clock: Clock, idle_s: float) -> float:
    """Any plan: each chunk at its time, counting what went out (and, before a reset, where each chunk ended).

    Times count from ``start``, when the request arrived. If the server got to it too late for
    the first chunk (a burst of requests), the first chunk goes at once and the schedule runs
    from then, so the recorded gaps are kept rather than the overdue chunks sent in one clump;
    returns the time the schedule ran from.

    A chunked body is framed here and written straight to the transport, as on the hot path.
    A piece is counted once handed over, before any wait for the client to read it.
    """
    loop = asyncio.get_running_loop()
    protocol, writer, transport = request.protocol, request.writer, request.transport
    write = closing = None
    if transport is not None and _frames_itself(request):
        write, closing = transport.write, transport.is_closing
        send_headers = getattr(writer, "send_headers", None)
        if send_headers is not None:
            send_headers()
    frames = live.frames
    track = p.ending.how == "reset"
    separate = p.separate_writes
    live.view = p.events
    live.sent_bytes = sent = 0
    elapsed_ms = -1.0  # the first chunk always reads the clock
    first = True
    for chunk in p.chunks:
        at_ms = chunk.at_ms
        if at_ms > elapsed_ms:
            elapsed_ms = (loop.time() - start) * 1000.0
            if at_ms > elapsed_ms:
                live.quiet_since = start + elapsed_ms / 1000.0
                await clock.sleep_until(start + at_ms / 1000.0)
                live.speaks(start + at_ms / 1000.0)
                elapsed_ms = at_ms
            else:
                if first:
                    start += (elapsed_ms - at_ms) / 1000.0
                    elapsed_ms = at_ms
                if separate:
                    await asyncio.sleep(0)
        elif separate:
            await asyncio.sleep(0)
        first = False
        data = chunk.data
        if data:
            if write is not None and closing is not None:
                if closing():
                    raise ConnectionResetError("the client left mid-stream")
                write(b"%x\r\n%b\r\n" % (len(data), data))
            else:
                await writer.write(data, drain=False)  # raises, writing nothing, once the client is gone
            sent += len(data)
            live.sent_bytes = sent
            if track:
                frames.append(sent)
        live.events_done = chunk.events_done
        if protocol.writing_paused:
            await drain(request, idle_s)
    return start


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _held_bytes(received: ReceivedRequest) -> int:
    """About what a kept request holds: its body twice (the bytes and, once matched, the parsed JSON), target and headers."""
    return 2 * len(received.body) + len(received.target) + sum(len(k) + len(v) for k, v in received.headers.items()) + 512


def _bad_credential(received: ReceivedRequest) -> str | None:
    """Why a credential header cannot be a key (bytes that are not UTF-8), or None; never quotes the value."""
    for name in CREDENTIAL_HEADERS:
        value = received.headers.get(name)
        if value is not None and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as e:
                return f"streamreel: the {name} header holds bytes that are not UTF-8 text (at character {e.start}); an API key is plain ASCII"
    return None


def _body_problem(received: ReceivedRequest) -> str | None:
    """Why a request that says it sends JSON does not (the API answers that with a 400), or None."""
    if received.method.upper() not in _BODY_METHODS:
        return None
    media = received.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        return None
    return received.json_error


def _recorded_raw(matcher: Matcher, received: ReceivedRequest) -> bool:
    """Whether a recorded request with a non-JSON body matches (the recording then answers it)."""
    return any(isinstance(i.request.body, (str, bytes)) and not matcher.differences(received, i) for i in matcher.interactions)


_FAULT_LOG = logging.getLogger("streamreel.faults")


def _client_left(live: _Live) -> None:
    live.client_hung_up = live.ending in (None, "hang")
    if live.ending is None:
        live.ending = "client_hung_up"


_CORS = {
    "access-control-allow-origin": "*",
    "access-control-expose-headers": "*",
}


def _preflight(request: web.Request) -> web.Response:
    return web.Response(
        status=204,
        headers={
            **_CORS,
            "access-control-allow-methods": "GET, POST, OPTIONS",
            "access-control-allow-headers": request.headers.get("access-control-request-headers", "*"),
            "access-control-max-age": "600",
        },
    )


UNACKED_WAIT_S = 1.0
"""How long a reset waits for the peer to acknowledge what was written before it aborts."""


def _unacked(sock: Any) -> int | None:
    """Bytes the peer has not acknowledged yet (Linux SIOCOUTQ, macOS SO_NWRITE); None if unknown."""
    try:
        if sys.platform.startswith("linux"):
            import fcntl
            import termios

            buf = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
            return int(struct.unpack("i", buf)[0])
        if sys.platform == "darwin":
            return int(sock.getsockopt(socket.SOL_SOCKET, 0x1024))  # SO_NWRITE
    except (OSError, ValueError):
        return None
    return None


async def _reset_when_delivered(request: web.Request, loop: asyncio.AbstractEventLoop) -> int:
    """Reset the connection once the peer has every byte written (waiting at most
    :data:`UNACKED_WAIT_S`, since an RST throws away what is still queued); returns the
    bytes it still had not acknowledged, which died with the reset.

    Nothing signals an acknowledgement, so this polls what is still queued (the transport's
    buffer plus the kernel's send queue), backing off from 0.2 ms to 10 ms; on loopback with a
    reading client the first check or two find it empty.
    """
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    left = 0
    if transport is not None and sock is not None:
        deadline = loop.time() + UNACKED_WAIT_S
        delay = 0.0002
        while True:
            left = transport.get_write_buffer_size() + (_unacked(sock) or 0)
            if not left or transport.is_closing() or loop.time() >= deadline:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.01)
    _reset(request)
    return left


def _forget_unacked(live: _Live, unacked: int, events: Sequence[Event]) -> None:
    """Drop from the ground truth the tail the peer never acknowledged (it dies with the RST).

    ``unacked`` counts wire bytes at the end of what was written; each chunk went out
    framed as ``<hex length>CRLF<data>CRLF``.
    """
    frames = live.frames
    keep = live.sent_bytes or 0
    left = unacked
    for i in range(len(frames) - 1, -1, -1):
        end = frames[i]
        start = frames[i - 1] if i else 0
        size = end - start
        if left <= 2:
            break
        left -= 2
        if left <= size:
            keep = end - left
            break
        left -= size
        keep = start
        prefix = len(f"{size:x}") + 2
        if left <= prefix:
            break
        left -= prefix
    live.sent_bytes = keep
    live.events_done = bisect_right(list(accumulate(len(e.wire) for e in events)), keep)


def _reset(request: web.Request) -> None:
    """Abort the connection with a TCP RST (SO_LINGER 0), not the FIN a plain abort sends."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
