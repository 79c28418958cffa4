"""What keeps one careless or hostile client from hurting the server or leaking into its logs.

A replayer (and a recorder) serves tests, but also long ``serve`` sessions that anything on the
machine can reach. Here are the guards around aiohttp's server:

- **Idle timeout** (:data:`DEFAULT_IDLE_TIMEOUT_S`): a connection must deliver a complete request
  head within it (from the connection, or from the end of the previous response), a request body
  may go that long without a byte, and a response may wait that long for a client that reads
  nothing. Slow-header ("slowloris") and never-reading clients are cut, not held forever.
- **Requests aiohttp's parser refuses** get an Anthropic-shaped 400 that does not quote the
  request, and one log line that names the problem, never a header value.
- **HTTP versions** other than 1.0 and 1.1 get a 505, with an HTTP/1.1 status line.
- **Out of file descriptors**, the failure to accept is logged once per
  :data:`ACCEPT_LOG_INTERVAL_S` (asyncio retries every second), and once more when connections
  are accepted again. ``serve`` first raises the open-file limit as far as the system lets it
  (:func:`raise_open_files`): every open stream is a socket.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import re
import sys
from typing import Any, Callable

from aiohttp import web
from aiohttp.http import HttpProcessingError, HttpVersion11
from aiohttp.http_exceptions import BadHttpMethod, BadStatusLine, InvalidHeader, InvalidURLError, LineTooLong, PayloadEncodingError

from .providers.anthropic import error_body, error_headers

__all__ = ["DEFAULT_IDLE_TIMEOUT_S", "ACCEPT_LOG_INTERVAL_S", "BodyTooLarge", "safe_reason", "read_body", "drain", "harden", "api_error", "SERVER_LOG", "AcceptErrors", "VERSION_KEY", "ARRIVED_KEY", "raise_open_files"]

DEFAULT_IDLE_TIMEOUT_S = 60.0
"""Seconds a connection may take to send a request head, a body may pause, and a response may wait for a client that does not read."""

ACCEPT_LOG_INTERVAL_S = 10.0
"""At most one log line per this many seconds while the process has no descriptor left to accept a connection."""

QUIET_S = 2.5
"""Accepting counts as working again once no accept has failed for this long (asyncio retries every second)."""

_RequestKey = getattr(web, "RequestKey", None)  # aiohttp >= 3.12
VERSION_KEY: Any = _RequestKey("streamreel.http_version", str) if _RequestKey is not None else "streamreel.http_version"
"""Where a request that asked for an HTTP version other than 1.0/1.1 keeps it (``request[VERSION_KEY]``)."""

ARRIVED_KEY: Any = _RequestKey("streamreel.arrived", float) if _RequestKey is not None else "streamreel.arrived"
"""Where a request keeps the loop time its head arrived (``request[ARRIVED_KEY]``): under a burst a
handler may start well after its bytes came in, and a replay is timed from their arrival, not from it."""

_log = logging.getLogger("streamreel.server")

_QUOTED = re.compile(r"""b?'(?:[^'\\]|\\.)*'?|b?"(?:[^"\\]|\\.)*"?""")


def safe_reason(exc: BaseException) -> str:
    """What is wrong with a request aiohttp's parser refused, without any of the request's bytes.

    aiohttp's messages quote the offending line (``Got more than 8190 bytes when reading:
    b'Authorization: Bearer ...'``) or, for a bad target, are the target itself; here the quotes
    and what follows a colon-and-newline are dropped, and a bad target or method gets a fixed text."""
    if isinstance(exc, LineTooLong):
        return "a request line or header is too long (aiohttp reads at most 8190 bytes per line)"
    if isinstance(exc, InvalidURLError):
        return "the request target is not a valid URL path"
    if isinstance(exc, BadHttpMethod):
        text = str(getattr(exc, "message", ""))
        return "HTTPS traffic on an HTTP port" if "HTTPS" in text else "the request line does not start with an HTTP method"
    if isinstance(exc, BadStatusLine):
        return "the request line is not METHOD TARGET HTTP/1.x"
    if isinstance(exc, InvalidHeader):
        return "a header line is malformed"
    if isinstance(exc, PayloadEncodingError):
        return f"the body's framing is broken ({type(exc).__name__})"
    text = str(getattr(exc, "message", "") or "").split("\n", 1)[0]
    text = _QUOTED.sub("...", text).rstrip(" :")
    return text or "the request is malformed"


class ServerLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server logger, except that a request aiohttp's parser refused (the client's fault,
    answered with a 400) is one warning line naming the problem, at any level: never a traceback,
    never a byte of the request (its messages quote header lines, Authorization included)."""

    def log(self, level: int, msg: object, *args: object, exc_info: Any = None, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            where = str(msg) % args if args else str(msg)
            self.logger.log(min(level, logging.WARNING), "%s: HTTP %s: %s", where, exc_info.code, safe_reason(exc_info))
            return
        self.logger.log(level, msg, *args, exc_info=exc_info, **kwargs)


SERVER_LOG = ServerLog(logging.getLogger("aiohttp.server"), {})


def api_error(status: int, kind: str, message: str) -> web.Response:
    """An error answered as the Anthropic API answers it (status, ``{"type":"error",...}`` body, headers)."""
    headers = error_headers(status)
    headers.update({"access-control-allow-origin": "*", "access-control-expose-headers": "*"})
    return web.Response(status=status, body=json.dumps(error_body(status, message=message, error_type=kind)).encode(), headers=headers)


class _Protocol(web.RequestHandler):
    """aiohttp's connection handler; an error it answers itself is Anthropic-shaped and quotes nothing,
    and each request head is stamped with the loop time it arrived (see :data:`ARRIVED_KEY`)."""

    __slots__ = ("_arrival",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._arrival: tuple[Any, float] | None = None

    def data_received(self, data: bytes) -> None:
        messages = self._messages
        idle = not messages and getattr(self, "_current_request", None) is None
        now = self._loop.time() if idle else 0.0
        super().data_received(data)
        if idle and messages:
            self._arrival = (messages[0][0], now)

    def arrived(self, message: Any) -> float | None:
        """When ``message``'s head arrived, if the connection was idle then (None otherwise: a
        pipelined request starts when the one before it has been answered, as upstream)."""
        stamped, self._arrival = self._arrival, None
        return stamped[1] if stamped is not None and stamped[0] is message else None

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None, message: str | None = None) -> web.StreamResponse:
        plain = super().handle_error(request, status, exc, message)  # logs (through ServerLog), and refuses when a response is under way
        if isinstance(exc, HttpProcessingError):
            response = api_error(status, "invalid_request_error", f"streamreel: aiohttp could not parse the request: {safe_reason(exc)}")
        elif status >= 500:
            response = api_error(status, "api_error", "streamreel: internal error (see the server's log)")
        else:
            return plain
        response.force_close()
        return response


class _Server(web.Server):
    """aiohttp's server, making :class:`_Protocol` connections (and noting that connections are accepted)."""

    accepted: Callable[[], None] | None = None

    def __call__(self) -> web.RequestHandler:
        handler = _Protocol(self, loop=self._loop, **self._kwargs)
        if self.accepted is not None:
            self.accepted()
        return handler


def harden(runner: web.AppRunner, accepted: Callable[[], None] | None = None) -> None:
    """Apply the guards to a set-up runner: parser errors and 500s answered in the API's shape,
    other HTTP versions marked for a 505 (and answered as HTTP/1.1), ``accepted`` called per connection."""
    server = runner.server
    if server is None or not isinstance(server, web.Server):
        raise RuntimeError("harden() needs a runner that is set up")
    server.__class__ = _Server
    server.accepted = accepted  # type: ignore[attr-defined]
    make = server.request_factory

    def factory(message: Any, payload: Any, protocol: Any, *args: Any) -> web.BaseRequest:
        version = message.version
        at = protocol.arrived(message) if isinstance(protocol, _Protocol) else None
        if version[0] == 1 and version[1] in (0, 1):
            request = make(message, payload, protocol, *args)
        else:
            request = make(message._replace(version=HttpVersion11, should_close=True), payload, protocol, *args)
            request[VERSION_KEY] = f"{version[0]}.{version[1]}"
        if at is not None:
            request[ARRIVED_KEY] = at
        return request

    server.request_factory = factory


class BodyTooLarge(Exception):
    """A request body over the limit (the 413 says so; the rest of the body is not read)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(limit)


async def read_body(request: web.BaseRequest, *, limit: int, idle_s: float) -> bytes:
    """The request body, refusing one over ``limit`` bytes and one that stalls for ``idle_s`` seconds
    (:class:`asyncio.TimeoutError`). What has arrived is taken without waiting; only a read that must
    wait is timed."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(limit)
    if not request.body_exists:
        return b""
    content = request.content
    body = bytearray()
    while True:
        chunk = content.read_nowait()
        if not chunk:
            if content.at_eof():
                break
            chunk = await asyncio.wait_for(content.readany(), idle_s)
            if not chunk:
                break
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(limit)
    return bytes(body)


async def drain(request: web.BaseRequest, idle_s: float) -> None:
    """Wait until the client has taken what was written; cut the connection (and raise
    ``ConnectionResetError``) if it reads nothing for ``idle_s`` seconds meanwhile. A client
    that reads, however slowly, is never cut. Call it only when writing is paused: nothing is
    armed for a client that keeps up."""
    transport, protocol, writer = request.transport, request.protocol, request.writer
    while transport is not None and protocol.writing_paused:
        left = transport.get_write_buffer_size()
        try:
            await asyncio.wait_for(writer.drain(), idle_s)
            return
        except asyncio.TimeoutError:
            if transport.get_write_buffer_size() >= left:
                _log.info("cut a response: its client read nothing for %g s while %d bytes waited", idle_s, left)
                transport.abort()
                raise ConnectionResetError(f"the client read nothing for {idle_s:g} s") from None


_OUT_OF = {errno.EMFILE: "EMFILE", errno.ENFILE: "ENFILE", errno.ENOBUFS: "ENOBUFS", errno.ENOMEM: "ENOMEM"}


class AcceptErrors:
    """The loop's exception handler while a server runs: asyncio reports every failed ``accept()``
    (out of descriptors) with a traceback, many per second; this logs one line per
    :data:`ACCEPT_LOG_INTERVAL_S` for the server's own socket, one when no accept has failed for
    :data:`QUIET_S` (connections are accepted again), and passes everything else on to the
    handler that was there before."""

    def __init__(self, loop: asyncio.AbstractEventLoop, port: int, interval_s: float = ACCEPT_LOG_INTERVAL_S) -> None:
        self.loop = loop
        self.port = port
        self.interval_s = interval_s
        self.refused = 0
        self._unlogged = 0
        self._next_log = 0.0
        self._quiet: asyncio.TimerHandle | None = None
        self._previous: Any = None

    def install(self) -> None:
        self._previous = self.loop.get_exception_handler()
        self.loop.set_exception_handler(self)

    def uninstall(self) -> None:
        if self._quiet is not None:
            self._quiet.cancel()
        if self.loop.get_exception_handler() is self:
            self.loop.set_exception_handler(self._previous)

    def ours(self, context: dict[str, Any]) -> bool:
        exc, sock = context.get("exception"), context.get("socket")
        if not isinstance(exc, OSError) or exc.errno not in _OUT_OF or sock is None:
            return False
        try:
            return bool(sock.getsockname()[1] == self.port)
        except (OSError, IndexError, TypeError):
            return False

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if not self.ours(context):
            if self._previous is not None:
                self._previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        exc = context["exception"]
        self.refused += 1
        self._unlogged += 1
        now = loop.time()
        if now >= self._next_log:
            more = f" ({self._unlogged - 1} more since the last report)" if self._unlogged > 1 else ""
            _log.warning(
                "cannot accept connections on port %d: %s (%s); retrying every second, next report in %g s%s",
                self.port, exc.strerror or exc, _OUT_OF[exc.errno], self.interval_s, more,
            )
            self._unlogged = 0
            self._next_log = now + self.interval_s
        if self._quiet is not None:
            self._quiet.cancel()
        self._quiet = loop.call_later(QUIET_S, self._recovered)

    def _recovered(self) -> None:
        self._quiet = None
        if self.refused:
            _log.warning("accepting connections on port %d again (%d accepts failed before)", self.port, self.refused)
        self.refused = self._unlogged = 0
        self._next_log = 0.0

    def accepted(self) -> None:
        """A connection was accepted (nothing to do: recovery is said once failures stop)."""


_DARWIN_OPEN_MAX = 10240
"""macOS refuses a soft open-file limit above OPEN_MAX even when the hard limit is unlimited."""


def raise_open_files() -> str | None:
    """Raise this process's soft limit on open files (``RLIMIT_NOFILE``) to its hard limit, as far as
    the system allows: each open stream holds a socket, and the usual soft limit of 1024 caps a
    server near a thousand streams. Returns None, or what stops it, for a warning."""
    try:
        import resource
    except ImportError:  # Windows: no such limit to raise
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard
    if hard == resource.RLIM_INFINITY or (sys.platform == "darwin" and hard > _DARWIN_OPEN_MAX):
        wanted = _DARWIN_OPEN_MAX if sys.platform == "darwin" else 1 << 20
    if soft != resource.RLIM_INFINITY and soft >= wanted:
        return None
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError) as e:
        return (
            f"open files are limited to {soft:,} (ulimit -n) and the system refused to raise that to the hard limit "
            f"{'unlimited' if hard == resource.RLIM_INFINITY else f'{hard:,}'} ({e}): about {max(soft - 64, 0):,} streams can be open at once; "
            "raise the limit before starting (ulimit -n, or LimitNOFILE= for a systemd service) to serve more"
        )
    return None
