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

A recorder that records holds a lock on its cassette path (:mod:`streamreel.lockfile`): a
second recorder of the same file is refused, naming the first, rather than silently losing
one's interactions. Each rewrite dumps only the interactions recorded this session (each once)
and copies the rest of the file as it was, so in ``new_episodes`` mode a new episode costs the
same on a cassette of ten events or of two hundred thousand.
"""

from __future__ import annotations

import asyncio
import base64
import glob
import logging
import os
import re
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
from .guard import drain
from .library import CASSETTE_HEADER
from .lockfile import CassetteLock
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
        self._base_stat = _stat(self.path) if exists and mode != "all" else None
        self.recording = mode in ("new_episodes", "all") or (mode == "once" and not exists)
        """Whether requests the cassette does not answer go upstream (else they get a 404)."""
        self._lock = CassetteLock(self.path) if self.recording else None
        self._file: _FileText | None = None
        self._entries: dict[int, str] = {}
        self._options = {"faults": faults, "speed": speed}
        self._takes: list[Interaction | None] = []
        self._session: aiohttp.ClientSession | None = None
        self._writer: asyncio.Task[None] | None = None
        self._building: set[asyncio.Future[Interaction]] = set()
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
        """Take the cassette's lock (when recording), then serve; raises, leaving nothing open, if either fails."""
        if self._runner is not None:
            return
        locked = self._lock is not None and self._lock.acquire()
        try:
            if self.recording:
                _remove_stale_temps(self.path, age_s=0.0 if locked else 60.0)
            if locked:
                self._reload_if_changed()
            if self._session is None:
                self._session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=0),
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=self.timeout),
                    cookie_jar=aiohttp.DummyCookieJar(),
                    skip_auto_headers=("User-Agent",),
                    auto_decompress=True,
                )
            await super().start()
        except BaseException:
            session, self._session = self._session, None
            if session is not None:
                await session.close()
            if self._lock is not None:
                self._lock.release()
            raise

    def _reload_if_changed(self) -> None:
        """Now that no other recorder can write the file: if one wrote it since it was loaded, start from what it holds."""
        if self.mode == "all" or _stat(self.path) == self._base_stat:
            return
        if not self.path.exists():
            return
        self._base = _cassette.load(self.path)
        self._base_stat = _stat(self.path)
        self._state = self._make_state(self._base, **self._options)

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
        if self._lock is not None:
            self._lock.release()

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
        """Keep a finished (or broken-off) interaction and schedule the atomic rewrite.

        Scrubbing reads the whole stream again (the text of each block, joined): it runs on a
        worker thread, so a long recording does not hold up the streams still in flight."""
        future = asyncio.get_running_loop().run_in_executor(None, _scrubbed, self._scrub, received, take)
        self._building.add(future)
        future.add_done_callback(lambda done: self._built(slot, take, done))

    def _built(self, slot: int, take: _Take, done: asyncio.Future[Interaction]) -> None:
        self._building.discard(done)
        if done.cancelled():
            return
        error = done.exception()
        if error is not None:  # a bug, not the user's input: say so, never lose the session's other recordings
            self._write_error = StreamreelError(self._scrub.message(f"could not scrub the recording of request #{slot}: {type(error).__name__}: {error}"))
            _log.error("%s", self._write_error)
            return
        item = done.result()
        self._takes[slot] = item
        request = item.request
        what = f"{len(take.events)} events" if take.stream else f"{len(take.body)} bytes"
        _log.info("recorded %s %s -> %d, %s, %s at %.0f ms", request.method, request.path, take.status, what, take.reason, take.end_t)
        self._dirty = True
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def _write_loop(self) -> None:
        """Rewrite the file until it holds every committed interaction; on failure keep the old file,
        report, and leave the rest for the next commit or :meth:`stop` to try again."""
        loop = asyncio.get_running_loop()
        while self._dirty:
            self._dirty = False
            done = [(slot, take) for slot, take in enumerate(self._takes) if take is not None]
            try:
                await loop.run_in_executor(None, self._write, done)
            except Exception as e:  # a write that fails must not take the proxy down with it
                self._dirty = True
                reason = e.strerror or str(e) if isinstance(e, OSError) else f"{type(e).__name__}: {e}"
                self._write_error = StreamreelError(self._scrub.message(f"could not write the cassette {self.path}: {reason}"))
                _log.error("%s (the file is left as it was; recording goes on)", self._write_error)
                return
            self._write_error = None
            _log.info("wrote %s (%d interactions)", self.path, len(self._base) + len(done))

    def _write(self, done: list[tuple[int, Interaction]]) -> None:
        """Write the file (on a worker thread): the loaded file's text with this session's interactions
        spliced in, each dumped once; the whole cassette dumped only when the loaded file's layout
        does not allow a splice."""
        if self._file is None:
            self._file = _FileText.of(self._base, self._base_text(), f"recorded by streamreel from {self._origin}")
        entries = self._entries
        for slot, take in done:
            if slot not in entries:
                entries[slot] = _entry_text(take)
        _cassette.write_atomic(self.path, self._file.with_entries(entries[slot] for slot, _ in done))

    def _base_text(self) -> str | None:
        """The text of the file the recording adds to (new_episodes), or None when it starts afresh."""
        if self.mode == "all" or self._base_stat is None or not self._base.interactions:
            return None
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        return text if _stat(self.path) == self._base_stat else None

    async def _flush(self) -> None:
        """Wait until every finished interaction is scrubbed and written (or its write has failed)."""
        while self._building or (self._writer is not None and not self._writer.done()):
            if self._building:
                await asyncio.wait(list(self._building))
                await asyncio.sleep(0)  # let the done callbacks run
            elif self._writer is not None:
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
        unsendable = next((k for k, v in request.headers.items() if k.lower() not in drop and not _utf8(v)), None)
        if unsendable is not None:
            return self._error(
                live, 400, "invalid_request_error", f"streamreel: the {unsendable.lower()} header holds bytes that are not UTF-8 text; the recorder cannot forward it as sent"
            )
        headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in drop)
        headers["Accept-Encoding"] = "identity"
        slot = len(self._takes)
        self._takes.append(None)
        url = URL(self._base_url + request.raw_path, encoded=True)
        start = loop.time()  # the upstream's timing counts from when the request goes to it, not from any wait here
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
                await request.writer.write(chunk, drain=False)
                if request.protocol.writing_paused:
                    await drain(request, self.idle_timeout)
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


def _scrubbed(scrub: Scrubber, received: ReceivedRequest, take: _Take) -> Interaction:
    """The interaction as the cassette keeps it: request and response scrubbed, the stream as its client read it."""
    request = Request(
        method=received.method.upper(),
        path=scrub.target(received.target),
        headers=scrub.header_map((k, v) for k, v in received.headers.items() if k not in _REQUEST_DROP),
        body=scrub.request_body(received.body),
    )
    end = End(t=round(take.end_t, 3), reason=take.reason)
    if take.stream:
        response = Response(status=take.status, headers=take.headers, headers_at=round(take.headers_at, 3), events=scrub.events(take.events), end=end)
    else:
        response = Response(status=take.status, headers=take.headers, headers_at=round(take.headers_at, 3), body=scrub.body(bytes(take.body)), end=end)
    return Interaction(request=request, response=response)


_ENTRIES = re.compile(r"^interactions:[ \t]*(?:#[^\n]*)?\n(?:[ \t]*(?:#[^\n]*)?\n)*(?=-[ \n])", re.MULTILINE)
"""The ``interactions:`` key of a block-style cassette whose entries start at column 0 (as ``dumps`` writes them)."""
_TOP_LEVEL = re.compile(r"^(?![-#\s])", re.MULTILINE)
"""A line at column 0 that is neither an entry, a comment nor blank: the next top-level key (or ``...``)."""


class _FileText:
    """A cassette's text cut where new entries go: ``head`` + entries + ``tail`` is the file."""

    def __init__(self, head: str, tail: str) -> None:
        self.head, self.tail = head, tail

    @classmethod
    def of(cls, base: Cassette, text: str | None, comment: str) -> _FileText:
        """Cut the loaded file's own ``text`` when its layout allows it (entries at column 0 after
        ``interactions:``, ending in a newline); otherwise dump ``base`` once and cut that."""
        cut = _cut(text) if text is not None else None
        if cut is not None:
            return cls(*cut)
        if base.interactions:
            cut = _cut(_cassette.dumps(base, comment=comment))
            if cut is not None:
                return cls(*cut)
        skeleton = _cassette.dumps(Cassette(faults=base.faults), comment=comment)
        head, sep, tail = skeleton.partition("interactions: []\n")
        if not sep:
            raise StreamreelError("cannot lay out a cassette file: its writer changed its format")
        return cls(head + "interactions:\n", tail)

    def with_entries(self, entries: Iterable[str]) -> str:
        return self.head + "".join(entries) + self.tail


def _cut(text: str) -> tuple[str, str] | None:
    """``text`` split after its last interaction, or None when its layout cannot take entries appended there."""
    if not text.endswith("\n") or "\r" in text:
        return None
    found = list(_ENTRIES.finditer(text))
    if len(found) != 1:
        return None
    after = _TOP_LEVEL.search(text, found[0].end())
    at = after.start() if after is not None else len(text)
    if text.startswith("---", at) or text.find("\n---", at) != -1:
        return None  # a second YAML document
    return text[:at], text[at:]


def _entry_text(item: Interaction) -> str:
    """One interaction as it sits in the file: a ``- request: ...`` entry at column 0."""
    cut = _cut(_cassette.dumps(Cassette(interactions=(item,))))
    if cut is None:
        raise StreamreelError("cannot lay out a cassette entry: its writer changed its format")
    head = cut[0]
    return head[_ENTRIES.search(head).end() :]  # type: ignore[union-attr]


def _stat(path: Path) -> tuple[int, int, int] | None:
    """What says a file was rewritten: its inode, size and modification time."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _utf8(value: str) -> bool:
    """Whether a header value (non-UTF-8 bytes arrive as surrogates) can be sent on as it came."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _remove_stale_temps(path: Path, age_s: float = 60.0) -> None:
    """Remove the temp files of this cassette that a killed recorder left mid-write: all of them
    once this recorder holds the cassette's lock (no other can be writing), else those older
    than ``age_s`` (a write takes milliseconds)."""
    cutoff = time.time() - age_s
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if tmp.stat().st_mtime <= cutoff:
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
