"""The recorder: a pass-through proxy that tees every response, with its timing, into a cassette.

Point a client's ``base_url`` at ``rec.url``. A request the cassette cannot answer goes to
``upstream`` with its headers (minus hop-by-hop ones, and asking for an uncompressed body);
the response comes back to the client chunk by chunk as it arrives, never buffered, while
every SSE event is decoded with its arrival time in ms from the request. A non-streaming
response (a JSON message, a 429 with ``retry-after``) is kept as ``body:``.

A stream that fails is kept as far as it got: an upstream that drops gives
``end.reason: upstream_disconnect`` (and the client is cut the same way, close or reset),
a client that hangs up gives ``client_cancel``, an upstream silent for ``timeout`` seconds
gives ``timeout``; stopping the recorder finishes streams in flight as ``client_cancel``.
A client that leaves just after the provider's final event (the openai SDK does, at
``[DONE]``) has seen the whole stream, which is then kept as ``complete``.
The cassette is rewritten atomically after every finished interaction, scrubbed first, so
a killed recorder leaves a valid file with no secret in it, and a write that fails (a read-only
directory, a full disk) leaves the previous file as it was, is logged and raised on exit naming
the path, while the recorder goes on serving. The credentials a request carries (its key
headers, ``?key=``, secret JSON keys) are blanked wherever else they turn up: in the
cassette, the upstream's error bodies, log lines and error messages.

A ``Recorder`` is a :class:`~streamreel.replayer.Replayer`: requests its cassette answers
are served by the same replay path (timing, faults, ground truth in ``.responses``).
Record modes follow vcrpy: ``none`` replays only, ``once`` records only when the cassette
does not exist yet, ``new_episodes`` replays what matches and records the rest, ``all``
records everything and overwrites the cassette.
"""

from __future__ import annotations

import asyncio
import base64
import glob
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from . import cassette as _cassette
from .cassette import Cassette, End, Interaction, Request, Response
from .errors import CassetteError, NoMatchError, StreamreelError
from .providers import is_complete, provider_of_events, stream_decoder
from .matching import MATCH_ON, SDK_QUERY_PARAMS, ReceivedRequest
from .library import CASSETTE_HEADER
from .replayer import _CORS, FAULTS_HEADER, HOP_BY_HOP, CassetteLike, Replayer, _Live, _reset_when_delivered, _State
from .scrub import Scrubber, safe_url
from .sse import Event

__all__ = ["Recorder", "MODES", "DEFAULT_UPSTREAM", "DEFAULT_TIMEOUT"]

MODES = ("none", "once", "new_episodes", "all")
"""Record modes, as in vcrpy."""

DEFAULT_UPSTREAM = "https://api.anthropic.com"
DEFAULT_TIMEOUT = 120.0
"""Seconds without a byte from upstream (before or during a response) before giving up."""

_log = logging.getLogger("streamreel.recorder")

_REQUEST_DROP = HOP_BY_HOP | {"host", "content-length", "accept-encoding", "expect", FAULTS_HEADER, CASSETTE_HEADER}
"""Request headers neither forwarded nor stored: per-hop ones the proxy sets itself, and streamreel's own."""
_RESPONSE_DROP = HOP_BY_HOP | {"content-length", "content-encoding"}
"""Response headers not stored: the cassette holds the decoded body, re-framed on replay."""


@dataclass
class _Take:
    """What came back for one recorded request, filled in as it arrives."""

    status: int
    headers: dict[str, str]
    headers_at: float
    stream: bool
    events: list[Event]
    body: bytearray
    end_t: float = 0.0
    reason: str = "complete"


class Recorder(Replayer):
    """Record what ``upstream`` answers into ``cassette``; replay what the cassette already holds.

    All arguments are keyword-only. ``scrub`` names extra headers and body patterns to blank
    (credential headers are always blanked); ``timeout`` is how long the upstream may stay
    silent; ``speed``, ``faults`` and the matching options apply to replayed interactions
    (a recorded stream passes through untouched).
    """

    def __init__(
        self,
        *,
        cassette: str | os.PathLike[str],
        upstream: str = DEFAULT_UPSTREAM,
        mode: str = "once",
        host: str = "127.0.0.1",
        port: int = 0,
        scrub: Scrubber | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        speed: float = 1.0,
        faults: Sequence[Any] | str = (),
        match_on: Iterable[str] = MATCH_ON,
        ignore_query: Iterable[str] = SDK_QUERY_PARAMS,
        ignore_body_keys: Iterable[str] = (),
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown record mode {mode!r}; choose one of: {', '.join(MODES)}")
        if not timeout > 0:
            raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        self.mode = mode
        self.upstream = _upstream_url(upstream)
        self.scrubber = scrub if scrub is not None else Scrubber()
        self.timeout = float(timeout)
        self.path = Path(os.fspath(cassette))
        exists = self.path.exists()
        if mode == "none" and not exists:
            raise CassetteError("no such file; mode 'none' only replays, record it first with mode 'once'", path=str(self.path))
        self._base = _cassette.load(self.path) if exists and mode != "all" else Cassette(path=str(self.path))
        self.recording = mode in ("new_episodes", "all") or (mode == "once" and not exists)
        """Whether requests the cassette does not answer go upstream (else they get a 404)."""
        if self.recording:
            _remove_stale_temps(self.path)
        self._takes: list[Interaction | None] = []
        self._session: aiohttp.ClientSession | None = None
        self._writer: asyncio.Task[None] | None = None
        self._dirty = False
        self._write_error: StreamreelError | None = None
        self._scrub = self.scrubber
        self._origin = safe_url(str(self.upstream.origin()))
        self._auth = _basic_auth(self.upstream)
        self._base_url = str(self.upstream.with_user(None)).rstrip("/")
        super().__init__(
            self._base,
            speed=speed,
            faults=faults,
            host=host,
            port=port,
            match_on=match_on,
            ignore_query=ignore_query,
            ignore_body_keys=ignore_body_keys,
        )

    def _make_state(self, cassette: CassetteLike, *, faults: Sequence[Any] | str, speed: float, match: Mapping[str, Any] | None = None) -> _State:
        state = super()._make_state(cassette, faults=faults, speed=speed, match=match)
        # new_episodes records a repeat of a request once its recordings are used up (as vcrpy does).
        state.matcher.repeat_last = self.mode != "new_episodes"
        return state

    def load(self, cassette: CassetteLike, **options: Any) -> None:
        raise StreamreelError("a Recorder's cassette is fixed when it is created; make a new Recorder for another one")

    @property
    def recorded(self) -> list[Interaction]:
        """The interactions recorded so far by this recorder, in request order, as written (scrubbed)."""
        return [take for take in self._takes if take is not None]

    @property
    def cassette(self) -> Cassette:
        """What the cassette file holds (or will hold): the loaded interactions plus the recorded ones."""
        base = self._base
        return Cassette(interactions=(*base.interactions, *self.recorded), faults=base.faults, path=str(self.path))

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._runner is not None:
            return
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=self.timeout),
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent",),
                auto_decompress=True,
            )
        await super().start()

    async def stop(self) -> None:
        """Finish streams in flight as ``client_cancel``, write the cassette, stop serving."""
        if self._runner is None:
            return
        current = asyncio.current_task()
        tasks = [t for t in self._inflight if t is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
        await super().stop()
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        await self._flush()
        if self._dirty:  # a write failed earlier: one last try with everything recorded
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())
            await self._flush()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        self._raise_write_error()

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self._raise_write_error()

    async def _settled(self, timeout: float) -> None:
        """A settle also waits until the cassette file is written (and raises a failed write)."""
        await asyncio.wait_for(self._flush(), timeout)
        self._raise_write_error()

    # ------------------------------------------------------------ writing

    def _commit(self, slot: int, received: ReceivedRequest, take: _Take) -> None:
        """Keep a finished (or broken-off) interaction and schedule the atomic rewrite."""
        scrub = self._scrub
        request = Request(
            method=received.method.upper(),
            path=scrub.target(received.target),
            headers=scrub.header_map((k, v) for k, v in received.headers.items() if k not in _REQUEST_DROP),
            body=scrub.request_body(received.body),
        )
        end = End(t=round(take.end_t, 3), reason=take.reason)
        if take.stream:
            response = Response(
                status=take.status,
                headers=take.headers,
                headers_at=round(take.headers_at, 3),
                events=tuple(scrub.event(e) for e in take.events),
                end=end,
            )
        else:
            response = Response(status=take.status, headers=take.headers, headers_at=round(take.headers_at, 3), body=scrub.body(bytes(take.body)), end=end)
        self._takes[slot] = Interaction(request=request, response=response)
        what = f"{len(take.events)} events" if take.stream else f"{len(take.body)} bytes"
        _log.info("recorded %s %s -> %d, %s, %s at %.0f ms", request.method, request.path, take.status, what, take.reason, take.end_t)
        self._dirty = True
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def _write_loop(self) -> None:
        """Rewrite the file until it holds every committed interaction; on failure keep the old file,
        report, and leave the rest for the next commit or :meth:`stop` to try again."""
        loop = asyncio.get_running_loop()
        comment = f"recorded by streamreel from {self._origin}"
        while self._dirty:
            self._dirty = False
            snapshot = self.cassette
            try:
                await loop.run_in_executor(None, lambda: _cassette.save(snapshot, self.path, comment=comment))
            except Exception as e:  # a write that fails must not take the proxy down with it
                self._dirty = True
                reason = e.strerror or str(e) if isinstance(e, OSError) else f"{type(e).__name__}: {e}"
                self._write_error = StreamreelError(self._scrub.message(f"could not write the cassette {self.path}: {reason}"))
                _log.error("%s (the file is left as it was; recording goes on)", self._write_error)
                return
            self._write_error = None
            _log.info("wrote %s (%d interactions)", self.path, len(snapshot))

    async def _flush(self) -> None:
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    @property
    def write_error(self) -> StreamreelError | None:
        """Why the cassette could not be written, if its last write failed (also raised on exit and by settle).

        The file then holds what it held before (or does not exist); a later successful write clears this."""
        return self._write_error

    def _raise_write_error(self) -> None:
        if self._write_error is not None:
            raise self._write_error

    # ------------------------------------------------------------ proxying

    async def _unmatched(self, request: web.Request, received: ReceivedRequest, live: _Live, start: float, error: NoMatchError) -> web.StreamResponse:
        self._scrub = self._scrub.also(self._scrub.found(received.headers, received.target, received.body))
        if not self.recording:
            hint = ""
            if self.mode == "once":
                hint = "\n(mode 'once': the cassette exists, so nothing is recorded; use mode 'new_episodes' to add to it or 'all' to re-record)"
            return self._error(live, 404, "not_found_error", self._scrub.message(f"streamreel: {error}{hint}"))
        return await self._record(request, received, live, start)

    def _upstream_error(self, live: _Live, status: int, message: str) -> web.StreamResponse:
        text = self._scrub.message(message)
        _log.warning("%s", text)
        return self._error(live, status, "api_error" if status == 502 else "timeout_error", f"streamreel: {text}")

    async def _record(self, request: web.Request, received: ReceivedRequest, live: _Live, start: float) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        session = self._session
        if session is None:
            raise StreamreelError("the recorder is not running")
        drop = _REQUEST_DROP | _connection_tokens(request.headers)
        headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in drop)
        headers["Accept-Encoding"] = "identity"
        slot = len(self._takes)
        self._takes.append(None)
        url = URL(self._base_url + request.raw_path, encoded=True)
        try:
            if self._auth is not None and "authorization" not in headers:
                headers["Authorization"] = self._auth
            upstream = await session.request(received.method, url, headers=headers, data=received.body or None, allow_redirects=False)
        except asyncio.TimeoutError:
            return self._upstream_error(live, 504, f"no response from upstream {self._origin} within {self.timeout:g} s")
        except aiohttp.ClientError as e:
            return self._upstream_error(live, 502, f"upstream {self._origin} failed: {type(e).__name__}: {e}")
        headers_at = (loop.time() - start) * 1000.0
        try:
            return await self._relay(request, received, upstream, live, start, headers_at, slot)
        finally:
            upstream.release()

    async def _relay(
        self,
        request: web.Request,
        received: ReceivedRequest,
        upstream: aiohttp.ClientResponse,
        live: _Live,
        start: float,
        headers_at: float,
        slot: int,
    ) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        decoder = stream_decoder(upstream.content_type)
        stream = decoder is not None
        decoded = upstream.headers.get("content-encoding", "identity").lower() != "identity"
        out_headers = CIMultiDict((k, v) for k, v in upstream.headers.items() if k.lower() not in _RESPONSE_DROP)
        for k, v in _CORS.items():
            out_headers.setdefault(k, v)
        resp = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=out_headers)
        if not stream and not decoded and upstream.content_length is not None:
            resp.content_length = upstream.content_length
        take = _Take(
            status=upstream.status,
            headers=self._scrub.header_map((k, v) for k, v in upstream.headers.items() if k.lower() not in _RESPONSE_DROP),
            headers_at=headers_at,
            stream=stream,
            events=[],
            body=bytearray(),
        )
        live.status = upstream.status
        live.headers = self._scrub.header_map(out_headers.items())
        events = take.events
        content = upstream.content
        cut: str | None = None
        try:
            await resp.prepare(request)
            while True:
                try:
                    chunk = await content.readany()
                except asyncio.TimeoutError:
                    take.reason, cut = "timeout", "close"
                    break
                except aiohttp.ClientError as e:
                    take.reason, cut = "upstream_disconnect", "reset" if _was_reset(e) else "close"
                    break
                if not chunk:
                    break
                t = (loop.time() - start) * 1000.0
                live.data += chunk
                await resp.write(chunk)
                if decoder is not None:
                    new = decoder.feed(chunk, t)
                    if new:
                        events.extend(new)
                        live.events_done = len(events)
                else:
                    take.body += chunk
            take.end_t = (loop.time() - start) * 1000.0
            if cut is None:
                if decoder is not None:
                    events.extend(decoder.flush(take.end_t))
                    live.events_done = len(events)
                live.ending = "end"
                await resp.write_eof()
            else:
                upstream.close()
                live.ending = cut
                if cut == "reset":
                    await _reset_when_delivered(request, loop)
                elif request.transport is not None:
                    request.transport.close()  # sends what is buffered, then FIN
        except asyncio.CancelledError:
            self._hung_up(upstream, live, take, loop.time() - start)
            self._commit(slot, received, take)
            raise
        except ConnectionError:
            self._hung_up(upstream, live, take, loop.time() - start)
        self._commit(slot, received, take)
        return resp

    @staticmethod
    def _hung_up(upstream: aiohttp.ClientResponse, live: _Live, take: _Take, elapsed_s: float) -> None:
        """The client left (or the recorder is stopping): keep what arrived, tell the upstream.

        A client that leaves right after the provider's final event (``message_stop``,
        ``[DONE]``, ``response.completed``), as the openai SDK does, saw the whole stream:
        that recording is complete, ending where its last event did.
        """
        upstream.close()
        if take.reason == "complete" and live.ending is None:
            provider = provider_of_events(take.events)
            if take.stream and provider != "sse" and is_complete(take.events, provider):
                take.end_t = take.events[-1].t
            else:
                take.reason = "client_cancel"
                take.end_t = elapsed_s * 1000.0
        if live.ending is None:
            live.ending = "client_hung_up"
            live.client_hung_up = True


def _remove_stale_temps(path: Path, age_s: float = 60.0) -> None:
    """Remove the temp files of this cassette that a killed recorder left mid-write (a write takes
    milliseconds: one older than ``age_s`` is no live writer's)."""
    cutoff = time.time() - age_s
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()
                _log.info("removed %s, left by a recorder stopped mid-write", tmp)
        except OSError:
            pass


def _upstream_url(upstream: str) -> URL:
    try:
        url = URL(upstream)
    except (TypeError, ValueError) as e:
        raise ValueError(f"upstream must be an http(s) URL such as {DEFAULT_UPSTREAM}: {e}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"upstream must be an http(s) URL such as {DEFAULT_UPSTREAM}, got {safe_url(upstream)!r}")
    if url.query_string or url.fragment:
        raise ValueError("upstream must not have a query or fragment; give the base URL, e.g. https://api.anthropic.com")
    return url


def _basic_auth(url: URL) -> str | None:
    """``user:password@`` in the upstream URL becomes a Basic header, used when the client sends none."""
    if url.user is None:
        return None
    return "Basic " + base64.b64encode(f"{url.user}:{url.password or ''}".encode()).decode("ascii")


def _connection_tokens(headers: Any) -> frozenset[str]:
    """Headers named in ``Connection:`` are hop-by-hop too."""
    value = headers.get("connection")
    return frozenset(t.strip().lower() for t in value.split(",")) if value else frozenset()


def _was_reset(error: BaseException) -> bool:
    """Whether the upstream connection ended with a TCP reset rather than a plain close.

    aiohttp keeps the socket error only in the payload error's text, so the message is checked too.
    """
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ConnectionResetError) or "ConnectionResetError" in str(seen) or "reset by peer" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
