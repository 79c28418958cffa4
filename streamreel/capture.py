"""A flight recorder for production streams: keep the last ones the app read, with their timing,
and write the one that failed as a cassette that replays the failure.

A :class:`Capture` hands out httpx2 clients (or wraps a transport) for the SDKs' ``http_client=``.
Every streamed response the app reads goes through a :class:`~streamreel.transport.TeeStream`
that keeps each chunk with its arrival time, as the app reads it, in a ring bounded by a
number of streams and a number of bytes; nothing is decoded, scrubbed or written until a
stream is dumped. A dump decodes the chunks as the recorder does (SSE, or the dialect's own
framing, by content type), scrubs the request, headers and events as the recorder does, and
writes a cassette atomically: replayed by ``streamreel serve`` or a :class:`~streamreel.Replayer`
it gives the SDK the same events with the same gaps and the same ending, so the app meets the
same exception after the same events.

Dumps happen on demand (:meth:`Capture.dump`), or on their own into ``dump_dir``: when a stream
ends in a cut, a timeout or an error event (``on_error``), when the app's code raises while a
:meth:`Capture.watch` block or decorated handler runs, and for a seeded sample of the others.
Automatic dumps are written by a background thread, never raise into the app, and a write that
fails is logged once.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import itertools
import logging
import os
import random
import re
import threading
import time
import weakref
from array import array
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as _wait_futures
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote
from typing import Any, Callable, Iterator, Sequence, TypeVar, Union

import httpx2

from . import cassette as _cassette
from .cassette import Cassette, End, Interaction
from .errors import StreamreelError
from .providers import get as _dialect, is_complete, names as _dialect_names, provider_of_events, stream_decoder
from .matching import ReceivedRequest
from .recorder import _RESPONSE_DROP, _scrubbed, _Take
from .scrub import Scrubber, safe_url
from .sse import Event
from .transport import TeeTransport, tee_client
from .verdicts import _error_event

__all__ = ["Capture", "CapturedStream", "DEFAULT_STREAMS", "DEFAULT_MAX_BYTES", "SDK_CLIENT_DEFAULTS"]

DEFAULT_STREAMS = 32
DEFAULT_MAX_BYTES = 16 * 2**20
MIN_MAX_BYTES = 16 * 2**10
"""The smallest ``max_bytes``: room for one stream's request and headers."""

SDK_CLIENT_DEFAULTS: dict[str, Any] = {
    "timeout": httpx2.Timeout(600.0, connect=5.0),
    "limits": httpx2.Limits(max_connections=1000, max_keepalive_connections=100),
    "follow_redirects": True,
}
"""What the anthropic and openai SDKs give the client they make for themselves; a client from
:meth:`Capture.http_client` starts from these (each SDK also sets its own timeout per request)."""

_log = logging.getLogger("streamreel.capture")
_now = time.monotonic

_CHUNK_COST = 64
"""Bytes a kept chunk costs beyond its data: the bytes object's header and its slots in the lists."""
_RECORD_COST = 2048
"""Bytes a kept stream costs beyond its chunks, request body and headers: the record and its small fields."""
_HEADER_COST = 160
"""Bytes one kept header costs beyond its name and value (two bytes objects and a tuple)."""
_MAX_ERROR_TEXT = 400
_MAX_RAW_TEXT = 4000
_MAX_PENDING = 64
"""Automatic dumps queued at most; beyond it (a burst of failures) they are skipped and logged."""

_ERROR_HINT = re.compile(rb'event: ?error|"error" ?: ?[{"]|Exception')
"""What an in-band error looks like on the wire (Anthropic/Responses ``event: error``, an OpenAI or
Gemini error chunk, a Bedrock exception frame): a stream whose last chunks hold none has none."""

_SEQUENCE = itertools.count(1)
"""Dump numbers, process-wide: two dumps in the same microsecond still get different names."""


@functools.lru_cache(maxsize=1)
def _stream_media() -> frozenset[str]:
    """Content types of streamed bodies: SSE, and each dialect's own framing (Bedrock's event stream)."""
    media = {"text/event-stream"}
    for name in _dialect_names():
        media.add(_dialect(name).content_type.split(";", 1)[0].strip().lower())
    return frozenset(media)


@dataclass(frozen=True)
class CapturedStream:
    """What the ring holds about one response (scrubbed, so it is safe to log).

    ``ending`` is one of :data:`~streamreel.cassette.END_REASONS`, None while the app is still
    reading; ``error`` what the app met reading it (``httpx2.ReadTimeout: timed out``);
    ``dump`` where it was written on its own, if it was.
    """

    id: int
    started: datetime
    method: str
    path: str
    status: int
    streaming: bool
    events: int
    bytes: int
    ending: str | None
    error: str | None
    duration_ms: float | None
    dump: Path | None


class _Stream:
    """One response as the app read it: raw chunks with their arrival times, decoded only when dumped."""

    __slots__ = (
        "capture", "id", "wall", "t0", "method", "origin", "target", "request_headers", "request_body", "status",
        "headers", "headers_at", "media", "encoding", "streaming", "times", "chunks", "size", "credit", "outcome",
        "ended", "error", "cut", "dropped", "claimed", "dumped", "scope",
    )  # fmt: skip

    def __init__(self, capture: Capture | None, request: httpx2.Request, response: httpx2.Response, started: float, media: str, streaming: bool) -> None:
        url = request.url
        self.capture = capture
        self.id = 0
        self.wall = time.time() - (_now() - started)
        self.t0 = started
        self.method = request.method
        self.origin = f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}"
        self.target = url.raw_path.decode("ascii", "replace")
        self.request_headers = request.headers.raw
        try:
            self.request_body: bytes | None = request.content
        except httpx2.RequestNotRead:
            self.request_body = None
        self.status = response.status_code
        self.headers = response.headers.raw
        self.headers_at = _now() - started
        self.media = media
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        self.encoding = None if encoding in ("", "identity") else encoding
        self.streaming = streaming
        self.times = array("d")
        self.chunks: list[bytes] = []
        self.size = 0
        self.credit = 0
        self.outcome: str | None = None
        self.ended: float | None = None
        self.error: tuple[str, str] | None = None
        self.cut = "close"
        self.dropped = False
        self.claimed = False
        self.dumped: Path | None = None
        self.scope: _Scope | None = None

    def cost(self) -> int:
        """What holding this record costs before any chunk (an upper bound, in bytes)."""
        cost = _RECORD_COST + len(self.target) + len(self.origin) + len(self.media)
        if self.request_body is not None:
            cost += len(self.request_body) + 33
        for k, v in self.request_headers:
            cost += len(k) + len(v) + _HEADER_COST
        for k, v in self.headers:
            cost += len(k) + len(v) + _HEADER_COST
        return cost

    # ------------------------------------------------------------ StreamObserver

    def on_chunk(self, data: bytes) -> None:
        if self.dropped:
            return
        size = self.size + len(data) + _CHUNK_COST
        if size > self.credit and not self.capture._ring.grow(self, size):  # type: ignore[union-attr]
            self.capture._lost()  # type: ignore[union-attr]
            return
        self.size = size
        self.times.append(_now())
        self.chunks.append(data)

    def on_end(self, outcome: str, error: BaseException | None) -> None:
        self.ended = _now()
        self.outcome = outcome
        if error is not None:
            kind = type(error)
            self.error = (f"{kind.__module__.partition('.')[0]}.{kind.__qualname__}", _clip(str(error), _MAX_RAW_TEXT))
            self.cut = "reset" if isinstance(error, httpx2.ReadError) else "hang" if isinstance(error, httpx2.TimeoutException) else "close"
        capture = self.capture
        if capture is not None:
            try:
                capture._ended(self)
            except Exception:  # never into the app's read
                capture._internal_error("deciding what to do with a finished stream")

    # ------------------------------------------------------------ reading it back

    def snapshot(self) -> _Stream:
        """A copy that no longer changes: the chunks so far; a stream still being read ends here, as the app leaving."""
        copy = object.__new__(_Stream)
        for name in _Stream.__slots__:
            setattr(copy, name, getattr(self, name))
        n = len(self.chunks)
        copy.chunks = self.chunks[:n]
        copy.times = self.times[:n]
        copy.capture = None
        copy.scope = None
        if copy.outcome is None:
            copy.outcome, copy.ended = "stopped", _now()
        return copy

    def received(self) -> ReceivedRequest:
        """The request as the recorder's proxy would have received it."""
        path, _, query = self.target.partition("?")
        return ReceivedRequest(
            method=self.method,
            path=unquote(path),
            query=query,
            headers={k.lower(): v for k, v in _text(self.request_headers)},
            body=self.request_body or b"",
            at=self.t0,
        )

    def ms(self, t: float) -> float:
        return (t - self.t0) * 1000.0

    def body(self) -> tuple[list[bytes], Sequence[float]]:
        """The body's chunks as the app's client decoded them (gzip and the like undone), with their times."""
        if self.encoding is None:
            return self.chunks, self.times
        return _decoded(self.chunks, self.times, self.encoding)

    def events(self) -> list[Event]:
        """The events the app's client got, each stamped with when its last byte arrived (ms from the request)."""
        decoder = stream_decoder(self.media)
        if decoder is None:
            return []
        events: list[Event] = []
        chunks, times = self.body()
        t0 = self.t0
        for t, data in zip(times, chunks):
            events.extend(decoder.feed(data, round((t - t0) * 1000.0, 3)))
        if self.outcome == "complete":  # a cut leaves half an event behind, as the recorder does
            events.extend(decoder.flush(round(self.ms(self.ended or t0), 3)))
        return events

    def end(self, events: Sequence[Event]) -> End:
        """How it ended, in the cassette's words, as the recorder says it."""
        end_ms = round(self.ms(self.ended if self.ended is not None else _now()), 3)
        if self.outcome == "complete":
            return End(t=end_ms, reason="complete")
        if self.outcome == "error":
            return End(t=end_ms, reason="timeout" if self.cut == "hang" else "upstream_disconnect")
        # The app stopped reading: after the provider's final event (the openai SDK leaves at [DONE]) it saw it all.
        provider = provider_of_events(events) if events else "sse"
        if self.streaming and provider != "sse" and is_complete(events, provider):
            return End(t=round(events[-1].t, 3), reason="complete")
        return End(t=end_ms, reason="client_cancel")

    def error_text(self, scrub: Scrubber) -> str | None:
        if self.error is None:
            return None
        kind, text = self.error
        return _clip(scrub.message(f"{kind}: {text}" if text else kind), _MAX_ERROR_TEXT)


class _Chunks(httpx2.SyncByteStream):
    def __init__(self, chunks: list[bytes], times: Sequence[float], now: list[float]) -> None:
        self.chunks, self.times, self.now = chunks, times, now

    def __iter__(self) -> Iterator[bytes]:
        for t, data in zip(self.times, self.chunks):
            self.now[0] = t
            yield data


def _decoded(chunks: list[bytes], times: Sequence[float], encoding: str) -> tuple[list[bytes], list[float]]:
    """Undo ``content-encoding`` with httpx2's own decoders (what the app's client did), keeping each chunk's time."""
    now = [times[0] if times else 0.0]
    response = httpx2.Response(200, headers={"content-encoding": encoding}, stream=_Chunks(chunks, times, now))
    out: list[bytes] = []
    out_times: list[float] = []
    try:
        for data in response.iter_bytes():
            out.append(data)
            out_times.append(now[0])
    except httpx2.DecodingError:
        pass  # a body cut inside a compressed block: keep what decoded
    return out, out_times


class _Ring:
    """The last ``streams`` streams in at most ``max_bytes``: whoever grows past the budget pushes
    out the oldest. Each stream reserves room ahead (its credit), so a chunk that fits in it
    costs no lock; the credits together never exceed the budget."""

    def __init__(self, streams: int, max_bytes: int) -> None:
        self.streams = streams
        self.max_bytes = max_bytes
        self.grant = max(4096, min(65536, max_bytes // (4 * streams)))
        self.items: deque[_Stream] = deque()
        self.reserved = 0
        self.lock = threading.Lock()
        self.dropped = 0
        self.ids = itertools.count(1)

    def admit(self, rec: _Stream) -> bool:
        cost = rec.cost()
        with self.lock:
            rec.id = next(self.ids)
            while len(self.items) >= self.streams:
                self._evict(self.items[0])
            while self.reserved + cost > self.max_bytes and self.items:
                self._evict(self.items[0])
            if cost > self.max_bytes:
                rec.dropped = True
                self.dropped += 1
                return False
            credit = min(cost + self.grant, self.max_bytes - self.reserved)
            rec.size, rec.credit = cost, credit
            self.reserved += credit
            self.items.append(rec)
        return True

    def grow(self, rec: _Stream, size: int) -> bool:
        with self.lock:
            if rec.dropped:
                return False
            need = size - rec.credit
            while self.reserved + need > self.max_bytes and self.items[0] is not rec:
                self._evict(self.items[0])
            if self.reserved + need > self.max_bytes:
                self._evict(rec)
                return False
            more = min(need + self.grant, self.max_bytes - self.reserved)
            rec.credit += more
            self.reserved += more
        return True

    def settle(self, rec: _Stream) -> None:
        """A stream ended: hand back the room it reserved and did not use."""
        with self.lock:
            if not rec.dropped:
                self.reserved -= rec.credit - rec.size
                rec.credit = rec.size

    def _evict(self, rec: _Stream) -> None:
        if rec is self.items[0]:
            self.items.popleft()
        else:
            self.items.remove(rec)
        self.reserved -= rec.credit
        rec.credit = 0
        rec.dropped = True
        rec.chunks = []
        rec.times = array("d")
        if rec.outcome is None:
            self.dropped += 1

    def held(self) -> list[_Stream]:
        with self.lock:
            return list(self.items)

    def reset(self) -> None:
        self.lock = threading.Lock()


class _Scope:
    """The streams read inside one :meth:`Capture.watch` block."""

    __slots__ = ("capture", "dump_dir", "parent", "token", "streams")

    def __init__(self, capture: Capture, dump_dir: Path, parent: _Scope | None) -> None:
        self.capture = capture
        self.dump_dir = dump_dir
        self.parent = parent
        self.token: contextvars.Token[_Scope | None] | None = None
        self.streams: list[_Stream] = []


_F = TypeVar("_F", bound=Callable[..., Any])


class _Watch:
    """A context manager (sync or async) and decorator: see :meth:`Capture.watch`."""

    def __init__(self, capture: Capture, dump_dir: Path) -> None:
        self.capture = capture
        self.dump_dir = dump_dir

    def __enter__(self) -> _Watch:
        var = self.capture._scope_var
        scope = _Scope(self.capture, self.dump_dir, var.get())
        scope.token = var.set(scope)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        var = self.capture._scope_var
        scope = var.get()
        if scope is None:
            return
        try:
            var.reset(scope.token)  # type: ignore[arg-type]
        except ValueError:  # left in another context than it was entered (an abandoned async generator)
            var.set(scope.parent)
        try:
            self.capture._scope_done(scope, error if isinstance(error, Exception) else None)
        except Exception:
            self.capture._internal_error("writing the streams of a watched block")

    async def __aenter__(self) -> _Watch:
        return self.__enter__()

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        self.__exit__(kind, error, tb)

    def __call__(self, fn: _F) -> _F:
        if inspect.isasyncgenfunction(fn):

            @functools.wraps(fn)
            async def agen(*args: Any, **kwargs: Any) -> Any:
                with self:
                    async for item in fn(*args, **kwargs):
                        yield item

            return agen  # type: ignore[return-value]
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def coro(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await fn(*args, **kwargs)

            return coro  # type: ignore[return-value]
        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def gen(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return (yield from fn(*args, **kwargs))

            return gen  # type: ignore[return-value]

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            with self:
                return fn(*args, **kwargs)

        return call  # type: ignore[return-value]


Which = Union[int, CapturedStream, Sequence[Union[int, CapturedStream]]]

_CAPTURES: weakref.WeakSet[Capture] = weakref.WeakSet()


class Capture:
    """Keep the last streams the app read (at most ``streams`` of them, in at most ``max_bytes``), with their timing.

    All arguments are keyword-only. ``dump_dir`` is where automatic dumps go; ``on_error``
    writes a stream there when it ends in a cut, a timeout or an error event; ``sample``
    (0 to 1, drawn from ``seed``) writes that share of the other streams; ``non_streaming``
    keeps plain (JSON) responses too, which otherwise pass through untouched; ``scrub``
    adds to what is blanked, as for the recorder.
    """

    def __init__(
        self,
        *,
        streams: int = DEFAULT_STREAMS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        dump_dir: str | os.PathLike[str] | None = None,
        on_error: bool = False,
        sample: float = 0.0,
        seed: int | None = None,
        non_streaming: bool = False,
        scrub: Scrubber | None = None,
    ) -> None:
        if isinstance(streams, bool) or not isinstance(streams, int) or streams < 1:
            raise ValueError(f"streams must be a whole number of streams >= 1, got {streams!r}")
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < MIN_MAX_BYTES:
            raise ValueError(f"max_bytes must be a whole number of bytes >= {MIN_MAX_BYTES} (room for one stream's request and headers), got {max_bytes!r}")
        if isinstance(sample, bool) or not isinstance(sample, (int, float)) or not 0.0 <= sample <= 1.0:
            raise ValueError(f"sample is the share of healthy streams to write, from 0 to 1, got {sample!r}")
        if scrub is not None and not isinstance(scrub, Scrubber):
            raise TypeError(f"scrub must be a streamreel.Scrubber, got {type(scrub).__name__}")
        self.dump_dir = None if dump_dir is None else Path(os.fspath(dump_dir))
        for name, wanted in (("on_error", on_error), ("sample", sample)):
            if wanted and self.dump_dir is None:
                raise ValueError(f"{name} writes dumps into dump_dir; give Capture(dump_dir=...) a directory")
        self.on_error = bool(on_error)
        self.sample = float(sample)
        self.seed = seed
        self.non_streaming = bool(non_streaming)
        self.scrubber = scrub if scrub is not None else Scrubber()
        self._ring = _Ring(streams, max_bytes)
        self._rng = random.Random(seed)
        self._scope_var: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar(f"streamreel_capture_{id(self):x}", default=None)
        self._executor: ThreadPoolExecutor | None = None
        self._pending: set[Future[Any]] = set()
        self._lock = threading.Lock()
        self._write_error: StreamreelError | None = None
        self._warned: set[str] = set()
        self.dumped: deque[Path] = deque(maxlen=1000)
        """The files this capture wrote (the last 1,000), oldest first."""
        _CAPTURES.add(self)

    def __repr__(self) -> str:
        ring = self._ring
        where = f", dumps to {self.dump_dir}" if self.dump_dir is not None else ""
        return f"<Capture {len(ring.items)}/{ring.streams} streams, {ring.reserved // 1024} KiB of {ring.max_bytes // 1024} KiB{where}>"

    @property
    def max_streams(self) -> int:
        return self._ring.streams

    @property
    def max_bytes(self) -> int:
        return self._ring.max_bytes

    @property
    def held_bytes(self) -> int:
        """Bytes the ring accounts for now (room reserved by streams being read included): never above ``max_bytes``."""
        return self._ring.reserved

    @property
    def write_error(self) -> StreamreelError | None:
        """Why the last dump could not be written (scrubbed), until one is written again."""
        return self._write_error

    # ------------------------------------------------------------ wiring

    def transport(self, inner: httpx2.BaseTransport | httpx2.AsyncBaseTransport) -> TeeTransport:
        """``inner`` (the transport your client already uses), wrapped so the streams it carries are kept."""
        return TeeTransport(inner, self._tap)

    def http_client(self, client: httpx2.Client | None = None, /, **options: Any) -> httpx2.Client:
        """An ``httpx2.Client`` for an SDK's ``http_client=``: ``client`` (say ``anthropic.DefaultHttpxClient()``)
        with its transports wrapped, or a new one made from ``options`` on top of :data:`SDK_CLIENT_DEFAULTS`.
        Its proxies, connection pool and timeouts are what httpx2 makes of them, as without the capture."""
        return self._client(client, options, httpx2.Client)

    def async_http_client(self, client: httpx2.AsyncClient | None = None, /, **options: Any) -> httpx2.AsyncClient:
        """The same as :meth:`http_client`, for the async SDK clients (``AsyncAnthropic``, ``AsyncOpenAI``)."""
        return self._client(client, options, httpx2.AsyncClient)

    def _client(self, client: Any, options: dict[str, Any], kind: type) -> Any:
        if client is None:
            client = kind(**{**SDK_CLIENT_DEFAULTS, **options})
        elif options:
            raise TypeError("give an existing client or the options of a new one, not both")
        elif not isinstance(client, kind):
            raise TypeError(f"expected an {kind.__module__.partition('.')[0]}.{kind.__name__}, got {type(client).__name__}")
        return tee_client(client, self._tap)

    def _tap(self, request: httpx2.Request, response: httpx2.Response, started: float) -> _Stream | None:
        media = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        streaming = media in _stream_media()
        if not streaming and not self.non_streaming:
            return None
        rec = _Stream(self, request, response, started, media, streaming)
        if not self._ring.admit(rec):
            self._warn_once("too_big", f"a {request.method} response's request and headers alone exceed max_bytes={self.max_bytes}; it is not kept")
            return None
        if self._ring.dropped:
            self._lost()
        scope = self._scope_var.get()
        if scope is not None:
            rec.scope = scope
            scope.streams.append(rec)
        return rec

    def _lost(self) -> None:
        self._warn_once(
            "in_flight",
            f"streams are pushed out of the ring while still being read (it keeps {self.max_streams} streams in {self.max_bytes} bytes); "
            "raise streams= or max_bytes= to keep long or many concurrent streams",
        )

    # ------------------------------------------------------------ what is held

    @property
    def streams(self) -> tuple[CapturedStream, ...]:
        """What the ring holds, oldest first, scrubbed."""
        scrub = self.scrubber
        out = []
        for rec in self._ring.held():
            snap = rec.snapshot()
            events = snap.events() if snap.streaming else []
            end = snap.end(events) if rec.outcome is not None else None
            out.append(
                CapturedStream(
                    id=rec.id,
                    started=datetime.fromtimestamp(rec.wall, timezone.utc),
                    method=rec.method,
                    path=scrub.target(rec.target),
                    status=rec.status,
                    streaming=rec.streaming,
                    events=len(events),
                    bytes=sum(len(c) for c in snap.chunks),
                    ending=None if end is None else end.reason,
                    error=snap.error_text(scrub),
                    duration_ms=None if rec.ended is None else round(rec.ms(rec.ended), 3),
                    dump=rec.dumped,
                )
            )
        return tuple(out)

    def cassette(self, which: Which = -1) -> Cassette:
        """The stream(s) ``which`` picks as a scrubbed cassette, as :meth:`dump` would write it: an
        index into :attr:`streams` (-1, the default, is the newest), a :class:`CapturedStream`, or a
        list of them (one interaction each, in the order they started)."""
        snaps = [rec.snapshot() for rec in self._pick(which)]
        return _cassette_of(snaps, self.scrubber)[0]

    def dump(self, path: str | os.PathLike[str] | None = None, *, which: Which = -1) -> Path | None:
        """Write the stream(s) ``which`` picks (see :meth:`cassette`) to ``path`` (a file, or a directory
        for a name that sorts by time; default ``dump_dir``), atomically, scrubbed.

        Returns the file written, or None when there was nothing to write or the write failed
        (both logged: this never raises for either, so it is safe in an ``except`` block). It
        writes in the calling thread: from async code, ``await asyncio.to_thread(capture.dump, path)``."""
        if path is None and self.dump_dir is None:
            raise ValueError("dump() needs a path, or give Capture(dump_dir=...) a directory")
        try:
            recs = self._pick(which)
        except StreamreelError as e:
            _log.warning("streamreel capture: nothing dumped: %s", e)
            return None
        target = Path(os.fspath(path)) if path is not None else self.dump_dir
        directory = target if target is not None and (path is None or target.is_dir()) else None
        return self._write([rec.snapshot() for rec in recs], "dump", directory=directory, file=None if directory is not None else target)

    def _pick(self, which: Which) -> list[_Stream]:
        held = self._ring.held()
        if not held:
            raise StreamreelError("the capture holds no stream yet")
        picks = which if isinstance(which, (list, tuple)) else [which]
        if not picks:
            raise StreamreelError("which= names no stream")
        out: list[_Stream] = []
        for pick in picks:
            if isinstance(pick, CapturedStream):
                found = next((rec for rec in held if rec.id == pick.id), None)
                if found is None:
                    raise StreamreelError(f"stream #{pick.id} ({pick.method} {pick.path}) is no longer held; the ring keeps {self.max_streams} streams in {self.max_bytes} bytes")
                out.append(found)
            elif isinstance(pick, int) and not isinstance(pick, bool):
                if not -len(held) <= pick < len(held):
                    raise StreamreelError(f"which={pick} is out of range: the capture holds {len(held)} stream(s)")
                out.append(held[pick])
            else:
                raise TypeError(f"which= takes an index into capture.streams, a CapturedStream, or a list of them; got {type(pick).__name__}")
        return sorted(set(out), key=lambda rec: rec.id)

    # ------------------------------------------------------------ automatic dumps

    def watch(self, dump_dir: str | os.PathLike[str] | None = None) -> _Watch:
        """A context manager (``with`` / ``async with``) or decorator (for functions, coroutines and
        generators) around the app's handler: if the code inside raises, every stream it read is
        written to one cassette in ``dump_dir`` (default: the capture's), the exception named on top.
        The streams of a block that ends cleanly get the capture's usual treatment."""
        directory = Path(os.fspath(dump_dir)) if dump_dir is not None else self.dump_dir
        if directory is None:
            raise ValueError("watch() writes into a directory: give watch(dump_dir=...) or Capture(dump_dir=...)")
        return _Watch(self, directory)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the automatic dumps under way are written (or have failed); False if ``timeout`` (s) ran out first.

        It blocks: from async code, ``await asyncio.to_thread(capture.flush)``."""
        with self._lock:
            pending = list(self._pending)
        if not pending:
            return True
        _, not_done = _wait_futures(pending, timeout=timeout)
        return not not_done

    def _ended(self, rec: _Stream) -> None:
        self._ring.settle(rec)
        if rec.scope is None:
            self._decide(rec, self.dump_dir)

    def _decide(self, rec: _Stream, directory: Path | None) -> None:
        """The usual treatment of a finished stream: written if it failed (``on_error``) or if drawn (``sample``)."""
        if directory is None or rec.dropped or rec.claimed:
            return
        if rec.outcome == "error":
            if self.on_error:
                self._queue([rec], rec.end(()).reason, directory)
            return
        sampled = self.sample > 0.0 and self._rng.random() < self.sample
        suspect = self.on_error and rec.streaming and (rec.encoding is not None or _may_hold_error(rec.chunks))
        if suspect or sampled:
            self._queue([rec], "sample" if sampled else None, directory, check=suspect)

    def _scope_done(self, scope: _Scope, error: Exception | None) -> None:
        streams = scope.streams
        if not streams:
            return
        if error is not None:
            kept = [rec for rec in streams if not rec.dropped]
            lost = len(streams) - len(kept)
            if lost:
                self._warn_once("scope_lost", f"{lost} of the {len(streams)} streams read in a watched block were pushed out of the ring before it ended; raise streams= or max_bytes= to keep them")
            if any(not rec.claimed for rec in kept):
                self._queue(kept, "app_error", scope.dump_dir, app_error=error)
            for rec in streams:
                rec.scope = None
            return
        parent = scope.parent
        for rec in streams:
            if parent is not None:
                rec.scope = parent
                parent.streams.append(rec)
            else:
                rec.scope = None
                if rec.outcome is not None:
                    self._decide(rec, self.dump_dir)

    def _queue(self, recs: list[_Stream], why: str | None, directory: Path, *, check: bool = False, app_error: Exception | None = None) -> None:
        snaps = [rec.snapshot() for rec in recs]
        described = None if app_error is None else _clip(f"{type(app_error).__module__}.{type(app_error).__qualname__}: {app_error}", _MAX_RAW_TEXT)
        with self._lock:
            if len(self._pending) >= _MAX_PENDING:
                self._warn_once("backlog", f"more than {_MAX_PENDING} dumps waiting to be written; later ones are skipped until the writer catches up")
                return
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="streamreel-capture")
            future = self._executor.submit(self._background, recs, snaps, why, directory, check, described)
            self._pending.add(future)
        future.add_done_callback(self._done)
        for rec in recs:
            rec.claimed = True  # a later decision does not write it again

    def _done(self, future: Future[Any]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _background(self, recs: list[_Stream], snaps: list[_Stream], why: str | None, directory: Path, check: bool, app_error: str | None) -> None:
        try:
            if check and _error_event(snaps[0].events()) is not None:
                why = "error_event"
            if why is None:
                return
            path = self._write(snaps, why, directory=directory, app_error=app_error)
        except Exception:
            self._internal_error("looking for an error event in a stream")
            return
        for rec in recs:
            rec.dumped = path

    # ------------------------------------------------------------ writing

    def _write(self, snaps: list[_Stream], why: str, *, directory: Path | None = None, file: Path | None = None, app_error: str | None = None) -> Path | None:
        try:
            cas, notes, scrub = _cassette_of(snaps, self.scrubber)
            first = snaps[0]
            if file is None:
                assert directory is not None
                file = directory / _file_name(first, why, cas)
            lines = [f"captured by streamreel from {safe_url(first.origin)} at {_stamp(first.wall, ' ')} UTC ({why.replace('_', ' ')})"]
            lines += notes
            if app_error is not None:
                lines.append(f"the app raised {_clip(scrub.message(app_error), _MAX_ERROR_TEXT)}")
            lines.append(f"replay it: streamreel serve {file.name}")
            _cassette.save(cas, file, comment="\n".join(line.replace("\n", " ") for line in lines))
        except Exception as e:
            reason = (e.strerror or str(e)) if isinstance(e, OSError) else f"{type(e).__name__}: {e}"
            where = file if file is not None else directory
            error = StreamreelError(self.scrubber.message(f"could not write a capture dump to {where}: {reason}"))
            if self._write_error is None:
                _log.error("streamreel capture: %s (further failures are not logged until a dump is written again)", error)
            self._write_error = error
            return None
        if self._write_error is not None:
            _log.warning("streamreel capture: dumps are being written again (%s)", file)
            self._write_error = None
        self.dumped.append(file)
        level = logging.INFO if why in ("dump", "sample") else logging.WARNING
        _log.log(level, "streamreel capture: wrote %s (%s)", file, "; ".join(notes))
        return file

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            _log.warning("streamreel capture: %s", message)

    def _internal_error(self, doing: str) -> None:
        if "internal" not in self._warned:
            self._warned.add("internal")
            _log.exception("streamreel capture: failed %s; the app is not affected", doing)

    def _after_fork(self) -> None:
        self._ring.reset()
        self._lock = threading.Lock()
        self._executor = None
        self._pending = set()


def _clip(text: str, limit: int) -> str:
    """``text`` cut to about ``limit`` characters at a space, so no half of a secret is left to escape scrubbing."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    cut = max(head.rfind(" "), head.rfind("\n"))
    return (head[:cut] if cut > 0 else "") + " ..."


_TAIL_BYTES = 8192
"""How far from the end of a stream an error event is looked for: it is the stream's last event."""


def _may_hold_error(chunks: list[bytes]) -> bool:
    """Whether the end of the stream could hold an error event: a quick look at its last bytes,
    on the app's thread when a stream ends; the background writer then decodes to be sure."""
    tail = b"".join(chunks[-3:])[-_TAIL_BYTES:]
    return (b"rror" in tail or b"xception" in tail) and _ERROR_HINT.search(tail) is not None


def _cassette_of(snaps: list[_Stream], base: Scrubber) -> tuple[Cassette, list[str], Scrubber]:
    """The streams as one scrubbed cassette, a line about each for the file's top, and the scrubber
    used (the base one, also blanking every credential the requests carried)."""
    scrub = base
    for snap in snaps:
        received = snap.received()
        scrub = scrub.also(scrub.found(received.headers, received.target, received.body))  # as the recorder does for each request
    interactions: list[Interaction] = []
    notes: list[str] = []
    resets: list[tuple[int, int]] = []
    for snap in snaps:
        item, events = _interaction(snap, scrub)
        interactions.append(item)
        end = item.response.end
        what = f"{len(events)} events" if snap.streaming else f"{len(item.response.body_bytes())} bytes"
        error = snap.error_text(scrub)
        note = f"{item.request.method} {item.request.path}: {snap.status}, {what}, {end.reason} at {end.t:.0f} ms"
        notes.append(note + (f" ({error})" if error else ""))
        if snap.outcome == "error" and snap.cut == "reset" and snap.streaming:
            resets.append((len(interactions) - 1, len(events)))
    faults, inexact = _reset_faults(interactions, resets)
    for i in inexact:
        notes.append(f"interaction {i + 1} was cut by a reset (httpx2.ReadError) but replays as a close: an earlier interaction is as long")
    if faults:
        notes.append("the connection was reset, not closed: the disconnect fault below replays the reset")
    return Cassette(interactions=tuple(interactions), faults=tuple(faults)), notes, scrub


def _interaction(snap: _Stream, scrub: Scrubber) -> tuple[Interaction, list[Event]]:
    """One stream as the recorder writes what it recorded (:func:`streamreel.recorder._scrubbed`):
    the same request and response fields, scrubbed the same way, a secret split across events included."""
    events = snap.events() if snap.streaming else []
    end = snap.end(events)
    take = _Take(
        status=snap.status,
        headers=scrub.header_map((k, v) for k, v in _text(snap.headers) if k.lower() not in _RESPONSE_DROP),
        headers_at=snap.headers_at * 1000.0,
        stream=snap.streaming,
        events=events,
        body=bytearray() if snap.streaming else bytearray(b"".join(snap.body()[0])),
        end_t=end.t if end.t is not None else 0.0,
        reason=end.reason,
    )
    return _scrubbed(scrub, snap.received(), take), events


def _text(headers: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """Raw header bytes as an aiohttp server reads them (UTF-8, undecodable bytes kept as surrogates)."""
    return [(k.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape")) for k, v in headers]


def _reset_faults(interactions: list[Interaction], resets: list[tuple[int, int]]) -> tuple[list[str], list[int]]:
    """``disconnect`` faults that cut each reset stream with a reset, as it was cut; each applies to the
    first response it can, so one is exact only when no earlier interaction has as many events."""
    faults: list[str] = []
    inexact: list[int] = []
    for i, n in resets:
        earlier = [len(item.response.events or ()) for j, item in enumerate(interactions[:i]) if (j, len(item.response.events or ())) not in resets]
        if any(m >= n for m in earlier):
            inexact.append(i)
            continue
        faults.append(f"disconnect:after={n},how=reset,times=1")
    return faults, inexact


def _stamp(wall: float, sep: str = "T") -> str:
    return datetime.fromtimestamp(wall, timezone.utc).strftime(f"%Y-%m-%d{sep}%H:%M:%S.%f")


def _file_name(first: _Stream, why: str, cas: Cassette) -> str:
    """``<UTC start>-<pid>-<n>-<why>-<path>.yaml``: names sort by when the (first) stream started."""
    stamp = datetime.fromtimestamp(first.wall, timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    route = cas.interactions[0].request.route or ""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", route).strip("-")[:60] or "root"
    return f"{stamp}-{os.getpid()}-{next(_SEQUENCE):05d}-{why}-{slug}.yaml"


def _after_fork_in_child() -> None:
    for capture in list(_CAPTURES):
        capture._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
