"""The SDK side of a stream, in process: transports for the official SDKs' ``http_client=``.

:class:`ReplayTransport` serves what a :class:`~streamreel.Replayer` serves (its cassette,
matching, faults and ground truth) to an ``httpx2`` client, the HTTP library the anthropic
and openai SDKs are built on, with no socket and no monkeypatching::

    transport = ReplayTransport("cassette.yaml")
    client = anthropic.Anthropic(base_url="http://streamreel.local", api_key="...",
                                 http_client=httpx2.Client(transport=transport))

Each response follows the same plan the socket server writes (see :mod:`streamreel.pipeline`),
and every way it can end reaches the SDK as it would over a socket: a cut as
``RemoteProtocolError``, a reset as ``ReadError``, silence longer than the client's read
timeout as ``ReadTimeout``, after the same bytes. Time is virtual by default: chunks arrive
at once, and a gap longer than the read timeout raises at once, so a stalled stream costs no
wall time (``realtime=True`` waits as the socket server would).

The other direction lives here too: :class:`TeeTransport` wraps the transport an app already
uses (its connection pool, proxies and timeouts untouched) and shows each response to a tap,
which may watch its body through a :class:`TeeStream` as the app reads it, chunk by chunk;
:func:`tee_client` does that to every transport of an httpx2 client. :class:`streamreel.capture.Capture`
keeps production streams this way. :func:`ending_error` is the exception httpx2 raises for
each way a body ends on a real socket, which both directions agree on.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Iterator, Optional, Protocol, TypeVar, Union

import anyio
import httpx2

from .cassette import Cassette
from .errors import StreamreelError
from .matching import ReceivedRequest
from .pipeline import EventChunks, Plan
from .replayer import MAX_REQUEST_BYTES, Refusal, Replayer, _Live, sent_headers

_log = logging.getLogger("streamreel.transport")

if TYPE_CHECKING:
    from .matching import ReceivedRequest as _Received

__all__ = ["ReplayTransport", "TeeTransport", "TeeStream", "StreamObserver", "Tap", "tee_client", "ending_error", "BASE_URL"]

BASE_URL = "http://streamreel.local"
"""A base URL for clients on an in-process transport (any URL works; the path is what matches)."""
READ_SIZE = 65536
"""Bytes due together that one read hands over (httpx2's socket reads are this size)."""

_ENDING_ERRORS: dict[str, tuple[type[httpx2.TransportError], str]] = {
    "close": (httpx2.RemoteProtocolError, "peer closed connection without sending complete message body (incomplete chunked read)"),
    "reset": (httpx2.ReadError, "[Errno 104] Connection reset by peer"),
    "hang": (httpx2.ReadTimeout, "timed out"),
}
"""What httpx2 raises, over a real socket, when a chunked body ends each way (measured)."""


def ending_error(how: str, request: httpx2.Request) -> httpx2.TransportError | None:
    """The exception a client reading a body meets when it ends ``how`` (see
    :data:`streamreel.pipeline.ENDINGS`): None for a clean end."""
    if how == "end":
        return None
    kind, message = _ENDING_ERRORS[how]
    return kind(message, request=request)


def _read_timeout_ms(request: httpx2.Request) -> float | None:
    timeout = request.extensions.get("timeout", {}).get("read")
    return None if timeout is None else timeout * 1000.0


CassetteSource = Union[Replayer, Cassette, str, "os.PathLike[str]", None]


class ReplayTransport(httpx2.BaseTransport, httpx2.AsyncBaseTransport):
    """Serve a replayer's cassette to an httpx2 client in process, sync or async.

    ``source`` is a :class:`~streamreel.Replayer` (its cassette, faults and ground truth
    are shared: requests through the transport show in its ``requests`` and
    ``responses``, whether or not its server runs) or what a ``Replayer`` takes (a
    cassette, a path), with the other keyword arguments of ``Replayer``. ``realtime``
    waits out every gap the plan has, as the socket server does; by default time is
    virtual and nothing sleeps.
    """

    def __init__(self, source: CassetteSource = None, *, realtime: bool = False, **replayer_options: Any) -> None:
        if isinstance(source, Replayer):
            if replayer_options:
                raise TypeError(f"options {sorted(replayer_options)} are for a new Replayer; this one serves the replayer given, as it is")
            self.replayer = source
        else:
            replayer_options.setdefault("speed", 0.0)
            self.replayer = Replayer(source, **replayer_options)
        self.realtime = realtime

    def __repr__(self) -> str:
        return f"<ReplayTransport {self.replayer.cassette.path or 'cassette'}{' realtime' if self.realtime else ''}>"

    @property
    def requests(self) -> list[_Received]:
        return self.replayer.requests

    @property
    def responses(self) -> list[Any]:
        return self.replayer.responses

    def load(self, cassette: Cassette | str | os.PathLike[str] | None, **options: Any) -> None:
        """Serve another cassette (see :meth:`Replayer.load`)."""
        self.replayer.load(cassette, **options)

    # ------------------------------------------------------------ httpx2

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        body = request.read()
        started = time.monotonic()
        response, wait_s = self._respond(request, body, started)
        if wait_s and self.realtime:
            time.sleep(wait_s)
        if isinstance(response, BaseException):
            raise response
        return response

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = await request.aread()
        started = time.monotonic()
        response, wait_s = self._respond(request, body, started)
        if wait_s and self.realtime:
            await anyio.sleep(wait_s)
        if isinstance(response, BaseException):
            raise response
        return response

    def _respond(self, request: httpx2.Request, body: bytes, started: float) -> tuple[httpx2.Response | BaseException, float]:
        """The response (or the exception waiting for it raises) and how long its headers take."""
        url = request.url
        received = ReceivedRequest(
            method=request.method,
            path=url.path,
            query=url.query.decode("ascii", "replace"),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            at=started,
        )
        server = self.replayer
        live = _Live(0, started)
        server._admit(received, live)
        if len(body) > MAX_REQUEST_BYTES:
            answer: Plan | Refusal | Any = Refusal(413, "request_too_large", f"streamreel: {len(body)} bytes (the Messages API takes {MAX_REQUEST_BYTES // 2**20} MB)")
        else:
            answer = server._answer(received, live)
        if not isinstance(answer, (Plan, Refusal)):
            answer = server._no_match(received, answer)
        report = self._reporter(received, live)
        if isinstance(answer, Refusal):
            headers, payload = answer.response(live)
            live.finished = started
            report()
            return _whole(answer.status, headers, payload, request), 0.0
        p = answer
        timeout = _read_timeout_ms(request)
        if timeout is not None and p.headers_at_ms > timeout:
            _left(live)
            report()
            return httpx2.ReadTimeout("timed out", request=request), timeout / 1000.0
        headers = sent_headers(p)
        live.status = p.status
        live.headers = headers
        if p.body is not None:
            live.data += p.body
            live.ending = "end"
            live.finished = started
            report()
            return _whole(p.status, headers, p.body, request), p.headers_at_ms / 1000.0
        stream = _PlanStream(p, live, request, timeout, self.realtime, started, report)
        return httpx2.Response(p.status, headers=headers, stream=stream, request=request), p.headers_at_ms / 1000.0

    def _reporter(self, received: ReceivedRequest, live: _Live) -> Callable[[], None]:
        """Tells the replayer's ``on_response`` hook (if it has one) about a finished response, as its server does."""
        hook = self.replayer.on_response
        if hook is None:
            return _nothing
        return lambda: hook(received, live.snapshot())


def _nothing() -> None:
    pass


def _whole(status: int, headers: dict[str, str], body: bytes, request: httpx2.Request) -> httpx2.Response:
    """A response with a whole body, still to be read (as from a socket), with its length."""
    return httpx2.Response(status, headers={**headers, "content-length": str(len(body))}, stream=httpx2.ByteStream(body), request=request)


def _left(live: _Live) -> None:
    """The client gave up on the response (a read timeout, or it stopped reading): as the server records it."""
    live.client_hung_up = live.ending in (None, "hang")
    if live.ending is None:
        live.ending = "client_hung_up"
    if live.finished is None:
        live.finished = time.monotonic()


class _GiveUp(float):
    """The plan time (ms) at which the client's read timeout gives up on a silence."""


class _PlanStream(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    """A plan's body as the client reads it: its chunks, then its ending, against a virtual clock.

    :meth:`_script` yields each chunk's bytes, or a float: the plan time (ms) the next one
    is due, which only a realtime stream waits for; a :class:`_GiveUp` time is when the
    client's read timeout ends a silence (a gap longer than it, or a hang), and reading
    raises ``ReadTimeout`` there. The ground truth is written as the server writes it.
    """

    def __init__(self, p: Plan, live: _Live, request: httpx2.Request, timeout_ms: float | None, realtime: bool, started: float, report: Callable[[], None] = _nothing) -> None:
        self.report = report
        self.plan = p
        self.live = live
        self.request = request
        self.timeout_ms = timeout_ms
        self.realtime = realtime
        self.started = started

    def _script(self) -> Iterator[bytes | float]:
        p, live, timeout = self.plan, self.live, self.timeout_ms
        last = p.headers_at_ms
        chunks = p.chunks
        if type(chunks) is EventChunks:
            # The unfaulted stream: the events due together go out as one read, as a socket
            # client finds them waiting in its buffer (at speed 0, the whole stream at once).
            live.view = chunks.events
            k = 1.0 / chunks.factor if chunks.factor else 0.0
            delays = chunks.delays() if chunks.delays is not None else None
            shift = chunks.start_ms
            n = 0
            batch: list[bytes] = []
            size = 0
            for ev in chunks.events:
                if delays is not None:
                    shift += next(delays)
                at = ev.t * k + shift
                if at > last:
                    if batch:
                        live.events_done = n
                        yield b"".join(batch)
                        batch, size = [], 0
                    if timeout is not None and at - last > timeout:
                        yield _GiveUp(last + timeout)
                    yield at
                    last = at
                wire = ev.wire
                batch.append(wire)
                size += len(wire)
                n += 1
                if size >= READ_SIZE:
                    live.events_done = n
                    yield b"".join(batch)
                    batch, size = [], 0
            if batch:
                live.events_done = n
                yield b"".join(batch)
        else:
            data = live.data
            for c in chunks:
                at = c.at_ms
                if at > last:
                    if timeout is not None and at - last > timeout:
                        yield _GiveUp(last + timeout)
                    yield at
                    last = at
                data += c.data
                live.events_done = c.events_done
                yield c.data
        ending = p.ending
        if ending.at_ms is not None and ending.at_ms > last:
            if timeout is not None and ending.at_ms - last > timeout:
                yield _GiveUp(last + timeout)
            yield ending.at_ms
            last = ending.at_ms
        if ending.how == "hang":
            live.ending = "hang"
            if timeout is None:
                _left(live)
                raise StreamreelError(
                    "the response goes silent with the connection open (a stall or a recorded timeout), and the client has no read "
                    "timeout, so it would wait forever; give the client one (httpx2.Timeout(..., read=...))"
                )
            yield _GiveUp(last + timeout)
        live.ending = ending.how
        live.finished = time.monotonic()
        error = ending_error(ending.how, self.request)
        if error is not None:
            raise error

    def _give_up(self) -> httpx2.ReadTimeout:
        self._script_left = None
        _left(self.live)
        return httpx2.ReadTimeout("timed out", request=self.request)

    def _begin(self) -> Iterator[bytes | float]:
        script = self._script_left = self._script()
        return script

    def __iter__(self) -> Iterator[bytes]:
        for item in self._begin():
            if type(item) is bytes:
                yield item
                continue
            if self.realtime:
                delay = self.started + item / 1000.0 - time.monotonic()  # type: ignore[operator]
                if delay > 0:
                    time.sleep(delay)
            if type(item) is _GiveUp:
                raise self._give_up()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for item in self._begin():
            if type(item) is bytes:
                yield item
                continue
            if self.realtime:
                delay = self.started + item / 1000.0 - time.monotonic()  # type: ignore[operator]
                if delay > 0:
                    await anyio.sleep(delay)
            if type(item) is _GiveUp:
                raise self._give_up()

    _script_left: Iterator[bytes | float] | None = None

    def close(self) -> None:
        """The client is done with the body. Over a socket the server has meanwhile sent all that
        was due by then (kernel buffers take it unread), so the ground truth runs on to the first
        wait: the response ended if it got that far, else the client left while it waited."""
        if self.report is _nothing and self.live.finished is not None and self.live.ending is not None:
            return
        self._settle()
        report, self.report = self.report, _nothing
        report()

    def _settle(self) -> None:
        if self.live.ending is not None and self.live.finished is not None:
            return
        script = self._script_left if self._script_left is not None else (self._script() if self.live.ending is None else None)
        self._script_left = None
        if script is not None:
            try:
                for item in script:
                    if type(item) is not bytes:
                        break
            except (httpx2.TransportError, StreamreelError):
                return
            else:
                if self.live.finished is not None:
                    return
        _left(self.live)

    async def aclose(self) -> None:
        self.close()


# ---------------------------------------------------------------- tee


class StreamObserver(Protocol):
    """What :class:`TeeStream` tells about a response body as the app reads it."""

    def on_chunk(self, data: bytes) -> None:
        """A chunk the app just read."""

    def on_end(self, outcome: str, error: BaseException | None) -> None:
        """The body ended: ``complete``, ``error`` (``error`` says what the app met), or
        ``stopped`` (the app closed it before the end)."""


class TeeStream(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    """A response body that hands each chunk to ``observer`` as the app reads it, then says
    how it ended. The app gets the same chunks and the same exception, at the same moment."""

    def __init__(self, inner: httpx2.SyncByteStream | httpx2.AsyncByteStream, observer: StreamObserver) -> None:
        self.inner = inner
        self.observer = observer
        self._ended = False

    def _end(self, outcome: str, error: BaseException | None) -> None:
        if not self._ended:
            self._ended = True
            self.observer.on_end(outcome, error)

    def __iter__(self) -> Iterator[bytes]:
        on_chunk = self.observer.on_chunk
        try:
            for data in self.inner:  # type: ignore[union-attr]
                on_chunk(data)
                yield data
        except BaseException as e:
            self._end("error" if isinstance(e, Exception) else "stopped", e if isinstance(e, Exception) else None)
            raise
        self._end("complete", None)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        on_chunk = self.observer.on_chunk
        try:
            async for data in self.inner:  # type: ignore[union-attr]
                on_chunk(data)
                yield data
        except BaseException as e:
            self._end("error" if isinstance(e, Exception) else "stopped", e if isinstance(e, Exception) else None)
            raise
        self._end("complete", None)

    def close(self) -> None:
        self._end("stopped", None)
        self.inner.close()  # type: ignore[union-attr]

    async def aclose(self) -> None:
        self._end("stopped", None)
        await self.inner.aclose()  # type: ignore[union-attr]


Tap = Callable[[httpx2.Request, httpx2.Response, float], Optional[StreamObserver]]
"""Shown each response as its headers arrive (with the ``time.monotonic()`` its request went out
at): returns an observer to watch its body through a :class:`TeeStream`, or None to leave the
response untouched."""


class TeeTransport(httpx2.BaseTransport, httpx2.AsyncBaseTransport):
    """Wrap ``inner`` (sync, async, or both like :class:`ReplayTransport`): every request goes to it
    as it is, and every response comes back as it is, except that ``tap`` sees it first and may
    watch its body as the app reads it. Closing this closes ``inner``.

    A tap that raises never reaches the app: the error is logged once and the response goes
    back untouched.
    """

    def __init__(self, inner: httpx2.BaseTransport | httpx2.AsyncBaseTransport, tap: Tap) -> None:
        if not isinstance(inner, (httpx2.BaseTransport, httpx2.AsyncBaseTransport)):
            raise TypeError(f"TeeTransport wraps an httpx2 transport (httpx2.HTTPTransport, httpx2.AsyncHTTPTransport, ...), not {type(inner).__name__}")
        self.inner = inner
        self.tap = tap
        self._tap_failed = False

    def __repr__(self) -> str:
        return f"<TeeTransport around {self.inner!r}>"

    def _tee(self, request: httpx2.Request, response: httpx2.Response, started: float) -> httpx2.Response:
        try:
            observer = self.tap(request, response, started)
        except Exception:
            if not self._tap_failed:
                self._tap_failed = True
                _log.exception("streamreel: a tap failed; its responses go to the app untouched")
            return response
        if observer is not None:
            response.stream = TeeStream(response.stream, observer)  # type: ignore[arg-type]
        return response

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        inner = self.inner
        if not isinstance(inner, httpx2.BaseTransport):
            raise TypeError(f"{inner!r} is an async transport: give this TeeTransport to an httpx2.AsyncClient")
        started = time.monotonic()
        return self._tee(request, inner.handle_request(request), started)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        inner = self.inner
        if not isinstance(inner, httpx2.AsyncBaseTransport):
            raise TypeError(f"{inner!r} is a sync transport: give this TeeTransport to an httpx2.Client")
        started = time.monotonic()
        return self._tee(request, await inner.handle_async_request(request), started)

    def close(self) -> None:
        if isinstance(self.inner, httpx2.BaseTransport):
            self.inner.close()

    async def aclose(self) -> None:
        if isinstance(self.inner, httpx2.AsyncBaseTransport):
            await self.inner.aclose()


_Client = TypeVar("_Client", httpx2.Client, httpx2.AsyncClient)


def tee_client(client: _Client, tap: Tap) -> _Client:
    """``client`` with each of its transports (the default one, every proxy and every mount, as
    httpx2 built them from its options) wrapped in a :class:`TeeTransport` for ``tap``; returned
    for chaining. A transport already wrapped for this tap is left as it is."""
    if not isinstance(client, (httpx2.Client, httpx2.AsyncClient)):
        raise TypeError(f"expected an httpx2.Client or httpx2.AsyncClient, got {type(client).__name__}")
    try:
        transport, mounts = client._transport, client._mounts
    except AttributeError:  # pragma: no cover - a future httpx2 that stores them elsewhere
        raise StreamreelError(
            f"httpx2 {httpx2.__version__} keeps its client's transports where streamreel cannot find them; "
            "wrap your transport instead: httpx2.Client(transport=capture.transport(httpx2.HTTPTransport()))"
        ) from None

    def wrap(t: Any) -> Any:
        return t if t is None or (isinstance(t, TeeTransport) and t.tap == tap) else TeeTransport(t, tap)

    client._transport = wrap(transport)
    client._mounts = {pattern: wrap(t) for pattern, t in mounts.items()}
    return client
