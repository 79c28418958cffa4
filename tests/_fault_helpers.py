"""Shared helpers for the fault tests: bundled captures as cassettes, a raw HTTP/1.1 client, plan utilities."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamreel import Cassette, Event
from streamreel.cassette import Interaction
from streamreel.importer import import_file
from streamreel.pipeline import Plan, plan
from streamreel.sse import decode

DATA = Path(__file__).parent / "data"


def anthropic_cassette(name: str = "anthropic-basic-response.sse", **options: Any) -> Cassette:
    """A real Anthropic capture (9 events, text deltas at 3-5) with 20 ms synthetic gaps."""
    return import_file(DATA / name, **options)


def openai_cassette(**options: Any) -> Cassette:
    """A real OpenAI Chat Completions capture (6 events, ends with ``data: [DONE]``)."""
    return import_file(DATA / "openai-chat-foo.sse", **options)


def interaction(cassette: Cassette) -> Interaction:
    return cassette.interactions[0]


def run(cassette: Cassette, faults: Any, **options: Any) -> tuple[Plan, list[Any]]:
    """The plan and its chunks (materialised) for the first interaction."""
    p = plan(interaction(cassette), faults, **options)
    return p, list(p.chunks)


def wire(chunks: list[Any]) -> bytes:
    return b"".join(c.data for c in chunks)


def events_of(chunks: list[Any]) -> list[Event]:
    return decode(wire(chunks))


@dataclass
class RawReply:
    """What a raw socket client read: status line and headers, the de-chunked body, how it ended."""

    head: bytes
    body: bytes
    terminated: bool
    ended_by: str  # "terminator" | "eof" | "reset" | "timeout"
    reads: int


def raw_request(url: str, *, path: str = "/v1/messages", body: bytes = b"{}", headers: dict[str, str] | None = None, timeout: float = 5.0, rcvbuf: int | None = None, before_reading: Any = None) -> RawReply:
    """POST with a plain socket and read until the chunk terminator, EOF, a reset or ``timeout``.

    ``before_reading`` is called after the request is sent and before the first read (a
    test uses it to let the server finish first); ``rcvbuf`` shrinks the receive buffer.
    """
    host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect((host, int(port)))
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body)
    if before_reading is not None:
        before_reading()
    parts: list[bytes] = []
    tail = b""
    reads = 0
    ended_by = "eof"
    try:
        while True:
            try:
                got = sock.recv(65536)
            except ConnectionResetError:
                ended_by = "reset"
                break
            except socket.timeout:
                ended_by = "timeout"
                break
            if not got:
                break
            reads += 1
            parts.append(got)
            tail = (tail + got)[-7:]
            if tail.endswith(b"\r\n0\r\n\r\n"):
                ended_by = "terminator"
                break
    finally:
        sock.close()
    head, body, terminated = dechunk(b"".join(parts))
    return RawReply(head, body, terminated, ended_by, reads)


def dechunk(raw: bytes) -> tuple[bytes, bytes, bool]:
    """Split a raw HTTP/1.1 response into head and de-chunked body (a partial last chunk kept)."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" not in head.lower():
        return head, rest, True
    out: list[bytes] = []
    pos = 0
    while pos < len(rest):
        j = rest.find(b"\r\n", pos)
        if j < 0:
            break
        size = int(rest[pos:j], 16)
        if size == 0:
            return head, b"".join(out), True
        out.append(rest[j + 2 : j + 2 + size])
        pos = j + 2 + size + 2
    return head, b"".join(out), False


def shape(events: Any) -> list[tuple[Any, ...]]:
    """Events without their times, to compare what went out with what was recorded."""
    return [(e.event, e.data, e.id, e.retry, e.comment) for e in events]
