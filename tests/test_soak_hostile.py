"""A soak with hostile clients mixed in: slow headers, clients that never read, huge bodies, bad
bytes, tiny throttles. ``streamreel serve`` runs in its own process; while the hostile clients
come and go, a good client streams a paced cassette, and afterwards the server's RSS, descriptors
and CPU are back where they were, and the good client's timing too.

The default run lasts a few seconds; the ``slow`` variant keeps the hostile clients coming for longer.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from streamreel.cassette import Cassette, Interaction, Request, Response, save
from streamreel.sse import Event

IDLE_S = 1.0
"""The server's idle timeout: short, so the hostile clients it cuts come and go within the test."""
GAP_MS = 10.0
PACED_EVENTS = 40
CASSETTE_HEADER = "x-streamreel-cassette"


def _paced() -> Cassette:
    events = tuple(Event(t=GAP_MS * (i + 1), event="content_block_delta", data=json.dumps({"i": i})) for i in range(PACED_EVENTS))
    response = Response(status=200, headers={"content-type": "text/event-stream"}, headers_at=0.0, events=events)
    return Cassette(interactions=(Interaction(request=Request(method="POST", path="/v1/messages"), response=response),))


def _big_text() -> str:
    """A stream far larger than the kernel's socket buffers (8 MB), written as YAML directly (dumping it is slow)."""
    pad = "p" * 2000
    lines = ["streamreel: 1", "interactions:", "- request: {method: POST, path: /v1/messages}", "  response:", "    status: 200", "    headers: {content-type: text/event-stream}", "    headers_at: 0", "    events:"]
    lines += [f"    - {{t: 0, event: content_block_delta, data: '{{\"i\": {i}, \"pad\": \"{pad}\"}}'}}" for i in range(4000)]
    return "\n".join(lines) + "\n    end: {t: 0, reason: complete}\n"


class Server:
    """``streamreel serve`` of a directory, in its own process, and what the kernel says about it."""

    def __init__(self, directory: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamreel", "serve", str(directory), "--idle-timeout", str(IDLE_S)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline().rsplit(":", 1)[1])

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024

    def cpu_s(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> str:
        self.proc.terminate()
        _, stderr = self.proc.communicate(timeout=20)
        return stderr


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    save(_paced(), tmp_path / "paced.yaml")
    (tmp_path / "big.yaml").write_text(_big_text(), encoding="utf-8")
    s = Server(tmp_path)
    try:
        yield s
    finally:
        s.stop()


def _request(name: str, *, body: bytes = b"{}", extra: bytes = b"") -> bytes:
    return (
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"{CASSETTE_HEADER}: {name}\r\nContent-Length: {len(body)}\r\n".encode()
        + extra
        + b"\r\n"
        + body
    )


_GOOD_CLIENT = r"""
import json, socket, sys, time
port, events, request = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].encode("latin-1")
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(10)
s.sendall(request.decode("unicode_escape").encode("latin-1"))
began = time.monotonic()
buf, seen, arrivals = b"", 0, []
while seen < events:
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
    now = (time.monotonic() - began) * 1000.0
    new = buf.count(b"\n\n") - seen
    arrivals += [now] * new
    seen += new
s.close()
print(json.dumps({"seen": seen, "head": buf[:300].decode("latin-1"), "gaps": [b - a for a, b in zip(arrivals, arrivals[1:])]}))
"""


async def good_client(port: int) -> list[float]:
    """Stream the paced cassette from a client in its own process (so the hostile clients in this one
    cannot delay its reads); the gap in ms before each event, as the bytes arrived."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _GOOD_CLIENT, str(port), str(PACED_EVENTS), _request("paced").decode("latin-1").encode("unicode_escape").decode("latin-1"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    got = json.loads(out)
    assert got["seen"] == PACED_EVENTS, f"the good client got {got['seen']} events: {got['head']!r}"
    return got["gaps"]


async def _open(port: int, rcvbuf: int | None = None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return await asyncio.open_connection(sock=sock)


async def slow_headers(port: int, rng: random.Random) -> None:
    reader, writer = await _open(port)
    try:
        for b in _request("paced"):
            writer.write(bytes([b]))
            await writer.drain()
            try:
                if await asyncio.wait_for(reader.read(1), rng.uniform(0.05, 0.2)) == b"":
                    return  # cut by the server
            except asyncio.TimeoutError:
                continue
    except ConnectionError:
        return
    finally:
        writer.close()


async def never_reads(port: int, rng: random.Random) -> None:
    """Ask for a stream far larger than the kernel's buffers and read none of it, for a while."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", port))
        await loop.sock_sendall(sock, _request("big"))
        await asyncio.sleep(rng.uniform(IDLE_S * 1.5, IDLE_S * 3))
    except ConnectionError:
        pass
    finally:
        sock.close()


async def huge_body(port: int, rng: random.Random) -> None:
    size = rng.choice([33 << 20, 34 << 20, 8 << 20])
    body = b'{"pad": "' + b"x" * (size - 11) + b'"}'
    reader, writer = await _open(port)
    try:
        writer.write(_request("paced", body=body))
        await writer.drain()
        await asyncio.wait_for(reader.read(200), 10)
    except (ConnectionError, asyncio.TimeoutError):
        pass
    finally:
        writer.close()


async def bad_bytes(port: int, rng: random.Random) -> None:
    choices = [
        _request("paced", extra=b"x-api-key: sk-\xff\xfe" + bytes(rng.randrange(0x80, 0x100) for _ in range(8)) + b"\r\n"),
        _request("paced", extra=b"Authorization: Bearer " + b"A" * 9000 + b"\r\n"),
        _request("paced", extra=b"x-a: \x01\x02\r\n"),
        bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400))) + b"\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
        _request("../../etc/passwd"),
        _request("paced", body=b"\xff\xfe{\x00}\x00"),
    ]
    reader, writer = await _open(port)
    try:
        writer.write(rng.choice(choices))
        await writer.drain()
        await asyncio.wait_for(reader.read(), 5)
    except (ConnectionError, asyncio.TimeoutError):
        pass
    finally:
        writer.close()


async def tiny_throttle(port: int, rng: random.Random) -> None:
    spec = rng.choice(["throttle:bytes_per_s=1e-300", "throttle:bytes_per_s=1e-9", "latency:each=1e300ms", "throttle:bytes_per_s=0.5"])
    reader, writer = await _open(port)
    try:
        writer.write(_request("paced", extra=f"x-streamreel-faults: {spec}\r\n".encode()))
        await writer.drain()
        await asyncio.wait_for(reader.read(65536), 1.0)
    except (ConnectionError, asyncio.TimeoutError):
        pass
    finally:
        writer.close()


HOSTILE = [slow_headers, never_reads, huge_body, bad_bytes, tiny_throttle]


async def _soak(server: Server, seconds: float, seed: int) -> tuple[list[float], list[list[float]], list[float]]:
    rng = random.Random(seed)
    before = await good_client(server.port)
    during: list[list[float]] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    running: set[asyncio.Task[None]] = set()
    kinds: dict[asyncio.Task[None], object] = {}
    while loop.time() < end:
        while len(running) < 24:
            kind = rng.choice(HOSTILE)
            if kind is huge_body and sum(k is huge_body for t, k in kinds.items() if t in running) >= 2:
                continue  # two 33 MB uploads at a time: more is a test of the loopback, not of the server
            task = asyncio.ensure_future(kind(server.port, random.Random(rng.random())))
            kinds[task] = kind
            running.add(task)
        good = asyncio.ensure_future(good_client(server.port))
        done, running = await asyncio.wait(running | {good}, timeout=0.6, return_when=asyncio.FIRST_COMPLETED)
        during.append(await good)
        running -= {good}
        for task in done - {good}:
            task.result()
    await asyncio.wait_for(asyncio.gather(*running), IDLE_S * 4 + 20)
    after = await good_client(server.port)
    return before, during, after


async def _settle(check: "callable[[], bool]", timeout: float) -> bool:  # type: ignore[valid-type]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.1)
    return check()


async def _run(server: Server, seconds: float, seed: int) -> None:
    await good_client(server.port)  # warm: the paced cassette is loaded
    fds0, rss0 = server.fds(), server.rss_mb()
    before, during, after = await _soak(server, seconds, seed)
    # every hostile connection is gone once the idle timeout has passed
    assert await _settle(lambda: server.fds() <= fds0 + 1, IDLE_S * 4 + 10), (fds0, server.fds())
    cpu0 = server.cpu_s()
    await asyncio.sleep(1.0)
    idle_cpu = server.cpu_s() - cpu0
    rss = server.rss_mb()
    spans = [sum(gaps) for gaps in during]
    print(f"fds {fds0} -> {server.fds()}, rss {rss0:.0f} -> {rss:.0f} MB, idle CPU {idle_cpu:.2f} s/s; good stream "
          f"({(PACED_EVENTS - 1) * GAP_MS:.0f} ms recorded): before {sum(before):.0f} ms, during {min(spans):.0f}-{max(spans):.0f} ms "
          f"over {len(spans)} streams, after {sum(after):.0f} ms; gap p50 before/after {statistics.median(before):.1f}/{statistics.median(after):.1f} ms")
    assert idle_cpu < 0.1, f"the server kept {idle_cpu:.2f} s of CPU busy per idle second: something spins"
    assert rss < rss0 + 80, (rss0, rss)
    # During the storm one event loop also reads 33 MB bodies and parses 8 MB ones: the good stream
    # may bunch up, but it gets every event and does not fall far behind. Afterwards it is as before.
    assert len(spans) >= 2 and max(spans) < (PACED_EVENTS - 1) * GAP_MS + 1500, spans
    for gaps in (before, after):
        assert abs(statistics.median(gaps) - GAP_MS) < 3.0, gaps
    assert sum(after) == pytest.approx(sum(before), abs=60.0)


def test_hostile_clients_leave_the_server_and_a_good_stream_as_they_were(server: Server) -> None:
    asyncio.run(_run(server, seconds=3.0, seed=1))
    stderr = server.stop()
    assert "Traceback" not in stderr, stderr[-3000:]


@pytest.mark.slow
def test_hostile_clients_for_longer(server: Server) -> None:
    asyncio.run(_run(server, seconds=30.0, seed=2))
    stderr = server.stop()
    assert "Traceback" not in stderr, stderr[-3000:]
