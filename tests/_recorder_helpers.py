"""Helpers for the recorder tests: corpus captures with realistic gaps, a raw HTTP client, a scripted upstream."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator
from urllib.parse import urlsplit

from aiohttp import web

from streamreel.cassette import Cassette, End, Interaction, Request, Response, save
from streamreel.importer import import_sse

DATA = Path(__file__).parent / "data"
ANTHROPIC_CAPTURE = DATA / "anthropic-sdk-python" / "stream-b-fallback.sse"
OPENAI_CAPTURE = DATA / "openai-python" / "7e5ea4d12e7cc064399b6631415e65923f182256b6e6b752950a3aaa2ad2320a.bin"

MESSAGE = {"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": [{"role": "user", "content": "Explain eclipses"}]}


def capture(
    path: Path = ANTHROPIC_CAPTURE,
    *,
    seed: int = 0,
    gaps_ms: tuple[float, float] = (20.0, 60.0),
    headers_ms: float = 15.0,
    keep: int | None = None,
    end: str | None = None,
    request: Request | None = None,
) -> Interaction:
    """A real capture as one interaction, with seeded random gaps; ``keep`` events only, ending ``end``."""
    imported = import_sse(path.read_bytes()).interactions[0]
    rng = random.Random(seed)
    t = headers_ms
    events = []
    for ev in imported.response.events or ():
        t += rng.uniform(*gaps_ms)
        events.append(replace(ev, t=round(t, 3)))
    if keep is not None:
        events = events[:keep]
    reason = end or imported.response.end.reason
    last = events[-1].t if events else headers_ms
    response = replace(imported.response, headers_at=headers_ms, events=tuple(events), end=End(t=last, reason=reason))
    return Interaction(request=request or Request(method=imported.request.method, path=imported.request.path), response=response)


def cassette(*interactions: Interaction) -> Cassette:
    return Cassette(interactions=tuple(interactions))


def json_reply(status: int, body: Any, headers: dict[str, str] | None = None, *, path: str = "/v1/messages") -> Interaction:
    return Interaction(
        request=Request(method="POST", path=path),
        response=Response(status=status, headers={"content-type": "application/json", **(headers or {})}, body=body),
    )


@dataclass
class RawReply:
    """What a raw HTTP/1.1 client saw: status, headers, the de-chunked body, and how the body ended."""

    status: int
    headers: dict[str, str]
    body: bytes
    ended: str  # "end" (chunked terminator or full length), "close" (FIN before the end), "reset" (RST)
    read_timed_out: bool = False


async def raw_request(
    url: str,
    method: str = "GET",
    target: str = "/",
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    read_timeout: float = 10.0,
    on_data: Callable[[bytes], Awaitable[None]] | None = None,
) -> RawReply:
    """One request on a fresh connection, reading to the end; the bytes are seen exactly as sent."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    head = [f"{method} {target} HTTP/1.1", f"Host: {parts.hostname}:{parts.port}", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    await writer.drain()
    raw = bytearray()
    ended = "close"
    timed_out = False
    parser = _Dechunker()
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), read_timeout)
            except asyncio.TimeoutError:
                timed_out = True
                break
            if not chunk:
                break
            raw += chunk
            new = parser.feed(bytes(chunk))
            if new and on_data is not None:
                await on_data(new)
            if parser.done:
                ended = "end"
                break
    except ConnectionResetError:
        ended = "reset"
    finally:
        writer.close()
    if timed_out:
        ended = "hang"
    return RawReply(status=parser.status, headers=parser.headers, body=bytes(parser.body), ended=ended, read_timed_out=timed_out)


class _Dechunker:
    """Incremental HTTP/1.1 response parser (status line, headers, chunked or sized body)."""

    def __init__(self) -> None:
        self.buf = b""
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.done = False
        self._head = False
        self._length: int | None = None
        self._chunked = False

    def feed(self, data: bytes) -> bytes:
        self.buf += data
        before = len(self.body)
        if not self._head:
            if b"\r\n\r\n" not in self.buf:
                return b""
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            self.status = int(lines[0].split()[1])
            for line in lines[1:]:
                k, _, v = line.partition(":")
                self.headers[k.strip().lower()] = v.strip()
            self._head = True
            self._chunked = "chunked" in self.headers.get("transfer-encoding", "")
            if "content-length" in self.headers:
                self._length = int(self.headers["content-length"])
        if self._chunked:
            while True:
                line, sep, rest = self.buf.partition(b"\r\n")
                if not sep:
                    break
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    if rest.startswith(b"\r\n"):
                        self.done = True
                    break
                if len(rest) < size + 2:
                    break
                self.body += rest[:size]
                self.buf = rest[size + 2 :]
        else:
            self.body += self.buf
            self.buf = b""
            if self._length is not None and len(self.body) >= self._length:
                self.done = True
        return bytes(self.body[before:])


class ScriptedUpstream:
    """A tiny aiohttp upstream whose handler a test writes, for what a replayer cannot do (RST, gzip, waiting on the test)."""

    def __init__(self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> None:
        self.handler = handler
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs, {k.lower(): v for k, v in request.headers.items()}, await request.read()))
        return await self.handler(request)

    async def __aenter__(self) -> ScriptedUpstream:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def reset_connection(request: web.Request) -> None:
    """Abort with a TCP RST (SO_LINGER 0)."""
    transport = request.transport
    assert transport is not None
    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def files_under(root: Path) -> list[Path]:
    """Every file below ``root``, hidden temp files included."""
    return [p for p in root.rglob("*") if p.is_file()]


@contextlib.contextmanager
def served_in_subprocess(cas: Cassette, directory: Path) -> Iterator[str]:
    """``streamreel serve`` in its own process (its timing then owes nothing to this process's GIL); yields its URL."""
    path = directory / "upstream-served.yaml"
    save(cas, path)
    proc = subprocess.Popen([sys.executable, "-m", "streamreel", "serve", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on "), line
        yield line.split()[-1]
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


@contextlib.contextmanager
def refusing_writes(directory: Path) -> Iterator[str]:
    """Make writing a file in ``directory`` fail for real; yields how.

    A read-only directory (mode 0o555) when that stops this process. Root ignores the mode
    (CAP_DAC_OVERRIDE, as in CI containers), so then the file-size limit (RLIMIT_FSIZE, which
    binds root too) is set to 100 bytes for this process: the write of the temp file gets a
    partial write and then EFBIG, as on a full disk. SIGXFSZ is ignored meanwhile so the write
    fails instead of killing the process.
    """
    import os
    import resource
    import signal

    mode = directory.stat().st_mode
    directory.chmod(0o555)
    try:
        probe = directory / ".probe"
        try:
            probe.write_text("x")
        except PermissionError:
            yield "read-only directory (0o555)"
            return
        probe.unlink()
        directory.chmod(mode)
        old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, hard))
        try:
            yield f"file size limit of 100 bytes (uid {os.geteuid()} writes through 0o555)"
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            signal.signal(signal.SIGXFSZ, old_handler)
    finally:
        directory.chmod(mode)
