"""The guards around the servers: what one careless or hostile client sends is answered in the API's
shape, logged without a byte of its headers, and cut when it would hold a connection forever."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from dataclasses import replace
from typing import Any, AsyncIterator
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from streamreel import Replayer
from streamreel.cassette import Cassette, Request, bundled, load
from streamreel.recorder import Recorder
from streamreel.scrub import CREDENTIAL_HEADERS

BODY: dict[str, Any] = {"model": "claude-opus-4-8", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}], "stream": True}
GOOD = json.dumps(BODY).encode()

fuzz = settings(derandomize=True, deadline=None, max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")), suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def cassette(path: str = "/v1/messages") -> Cassette:
    text = load(bundled("text"))
    item = text.interactions[0]
    return replace(text, interactions=(replace(item, request=Request(method="POST", path=path, body=BODY)),))


STREAM = b"".join(e.wire for e in cassette().interactions[0].response.events or ())


def http(*, headers: list[bytes] = (), path: bytes = b"/v1/messages", version: bytes = b"HTTP/1.1", body: bytes = GOOD) -> bytes:  # type: ignore[assignment]
    lines = [b"POST " + path + b" " + version, b"Host: 127.0.0.1", b"Connection: close", b"Content-Type: application/json", b"Content-Length: " + str(len(body)).encode(), *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


def status_of(wire: bytes) -> tuple[str, int, dict[str, str], bytes]:
    head, _, body = wire.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, status = lines[0].split()[:2]
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return version, int(status), headers, body


def all_log_text(records: list[logging.LogRecord]) -> str:
    """Every log line as a handler would write it, tracebacks included."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(r) for r in records)


@pytest.fixture
async def servers() -> AsyncIterator[tuple[Replayer, Recorder]]:
    """A replayer, and a recorder whose upstream is another replayer (both real, on loopback)."""
    async with Replayer(cassette(), speed=0) as reel, Replayer(cassette(), speed=0) as up:
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as tmp:
            async with Recorder(upstream=up.url, cassette=Path(tmp) / "c.yaml", mode="all", speed=0) as rec:
                yield reel, rec


# ---------------------------------------------------------------- nothing of a header in a log line

_MARK = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789", min_size=12, max_size=24).map(lambda t: "Zq" + t)
"""A header value to look for in the logs (distinctive, so a hit is never chance)."""


def hostile(name: bytes, mark: bytes, form: str) -> list[bytes]:
    """Header lines carrying ``mark`` in one of the shapes aiohttp's parser or streamreel refuses."""
    return {
        "oversized": [name + b": " + mark + b"A" * 9000],
        "oversized after the mark": [name + b": Bearer " + mark + b" " + b"B" * 8200],
        "control byte": [name + b": " + mark + b"\x01x"],
        "NUL": [name + b": " + mark + b"\x00"],
        "not UTF-8": [name + b": " + mark + b"\xff\xfe"],
        "no colon": [name + b" " + mark],
        "name with a space": [name + b" x: " + mark],
        "many headers": [b"x-h%d: %b" % (i, mark) for i in range(200)],
        "bad content-length": [b"Content-Length: " + mark],
    }[form]


@fuzz
@given(
    name=st.sampled_from([b"Authorization", b"x-api-key", b"Cookie", b"proxy-authorization", b"x-goog-api-key", b"x-team-token"]),
    mark=_MARK,
    form=st.sampled_from(["oversized", "oversized after the mark", "control byte", "NUL", "not UTF-8", "no colon", "name with a space", "many headers", "bad content-length"]),
    target=st.sampled_from(["replayer", "recorder"]),
)
async def test_no_log_line_at_any_level_and_no_answer_holds_a_header_value(
    servers: tuple[Replayer, Recorder], caplog: pytest.LogCaptureFixture, name: bytes, mark: str, form: str, target: str
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level
    caplog.clear()
    reel, rec = servers
    server = reel if target == "replayer" else rec
    wire = await exchange(server.port, http(headers=hostile(name, mark.encode(), form)))
    _, status, headers, body = status_of(wire)
    if form == "not UTF-8" and name.decode().lower() not in CREDENTIAL_HEADERS and target == "replayer":
        assert status == 200  # kept and matched as usual: only a credential must be text
    else:
        assert 400 <= status < 500 and headers["content-type"].startswith("application/json"), wire[:300]
        assert json.loads(body)["error"]["type"] == "invalid_request_error"
        assert mark.encode() not in wire and mark[:12].encode() not in wire
    logged = all_log_text(caplog.records)
    assert mark[:12] not in logged, logged
    assert "Traceback" not in logged
    assert status_of(await exchange(server.port, http()))[1] == 200  # and the next request streams


# ---------------------------------------------------------------- credentials whose bytes are not UTF-8

_BAD_UTF8 = st.binary(min_size=1, max_size=40).filter(lambda b: not _decodes(b)).map(lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7F)).filter(lambda b: b and not _decodes(b))


def _decodes(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@fuzz
@given(name=st.sampled_from(sorted(CREDENTIAL_HEADERS)), value=_BAD_UTF8, prefix=st.sampled_from([b"", b"Bearer ", b"sk-ant-api03-"]), matched=st.booleans(), target=st.sampled_from(["replayer", "recorder"]))
async def test_a_credential_that_is_not_utf8_gets_the_apis_400_never_a_500(
    servers: tuple[Replayer, Recorder], caplog: pytest.LogCaptureFixture, name: str, value: bytes, prefix: bytes, matched: bool, target: str
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    reel, rec = servers
    server = reel if target == "replayer" else rec
    path = b"/v1/messages" if matched else b"/v1/nowhere"
    raw = prefix + value
    _, status, _, body = status_of(await exchange(server.port, http(headers=[name.encode() + b": " + raw], path=path)))
    assert status == 400, body[:300]
    error = json.loads(body)["error"]
    assert error["type"] == "invalid_request_error" and f"the {name} header holds bytes that are not UTF-8" in error["message"]
    assert raw not in body and "Traceback" not in all_log_text(caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@fuzz
@given(value=_BAD_UTF8)
async def test_other_headers_that_are_not_utf8_replay_but_cannot_be_forwarded(servers: tuple[Replayer, Recorder], value: bytes) -> None:
    """A replayer keeps them (they match as usual); a recorder cannot send them upstream as they came: a 400 naming the header."""
    reel, rec = servers
    _, status, _, body = status_of(await exchange(reel.port, http(headers=[b"x-note: " + value])))
    assert status == 200
    _, status, _, body = status_of(await exchange(rec.port, http(headers=[b"x-note: " + value], path=b"/v1/unrecorded")))
    assert status == 400 and "the x-note header holds bytes that are not UTF-8 text; the recorder cannot forward it" in json.loads(body)["error"]["message"]


# ---------------------------------------------------------------- HTTP versions, queries


@fuzz
@given(major=st.integers(0, 9), minor=st.integers(0, 9))
async def test_every_answer_has_an_http_1_status_line_whatever_version_was_asked(servers: tuple[Replayer, Recorder], major: int, minor: int) -> None:
    reel, _ = servers
    version, status, headers, body = status_of(await exchange(reel.port, http(version=f"HTTP/{major}.{minor}".encode())))
    assert version in ("HTTP/1.1", "HTTP/1.0")
    if (major, minor) in ((1, 0), (1, 1)):
        assert status == 200
    else:
        assert status in (400, 505) and headers["content-type"].startswith("application/json")
        if status == 505:
            assert json.loads(body)["error"]["message"] == f"streamreel: HTTP/{major}.{minor} is not supported; this server speaks HTTP/1.1"


@fuzz
@given(value=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12))
async def test_the_query_is_decoded_exactly_once(value: str) -> None:
    """A query recorded as ``q=<value>`` matches the request that sent that value percent-encoded once,
    and not one that sent the encoding itself (``%25``...): the replayer decodes once, as the API does."""
    recorded = cassette(path=f"/v1/messages?q={quote(value, safe='')}")
    async with Replayer(recorded, speed=0) as reel:
        once = quote(value, safe="")
        twice = quote(once, safe="")
        _, ok, _, _ = status_of(await exchange(reel.port, http(path=f"/v1/messages?q={once}".encode())))
        _, miss, _, _ = status_of(await exchange(reel.port, http(path=f"/v1/messages?q={twice}".encode())))
        assert reel.requests[0].query == f"q={once}" and reel.requests[1].query == f"q={twice}"
    assert ok == 200
    assert miss == (200 if once == twice else 404)


# ---------------------------------------------------------------- clients that would hold a connection forever

IDLE_S = 0.4


async def _good_stream_meanwhile(server: Replayer) -> None:
    version, status, _, body = status_of(await exchange(server.port, http()))
    assert status == 200 and STREAM.startswith(body[body.index(b"event:") :][:20])


@pytest.mark.parametrize("clients", [1, 40])
@pytest.mark.parametrize("byte_every_s", [0.05, 0.15])
async def test_slow_header_clients_are_cut_after_the_idle_timeout(clients: int, byte_every_s: float) -> None:
    """Slowloris: each sends a header one byte at a time and never finishes; each is closed once
    idle_timeout passes since it connected, while a good client streams as usual."""
    async with Replayer(cassette(), speed=0, idle_timeout=IDLE_S) as reel:
        request = http()
        loop = asyncio.get_running_loop()

        async def slow() -> float:
            began = loop.time()  # before connecting: the server counts from its accept
            reader, writer = await asyncio.open_connection("127.0.0.1", reel.port)
            try:
                for b in request[:-10]:
                    writer.write(bytes([b]))
                    await writer.drain()
                    try:
                        if await asyncio.wait_for(reader.read(1), byte_every_s) == b"":
                            return loop.time() - began
                    except asyncio.TimeoutError:
                        continue
                return float("inf")
            except ConnectionError:
                return loop.time() - began
            finally:
                writer.close()

        tasks = [asyncio.ensure_future(slow()) for _ in range(clients)]
        await asyncio.sleep(IDLE_S / 2)
        await _good_stream_meanwhile(reel)
        held = await asyncio.wait_for(asyncio.gather(*tasks), 20)
    assert all(IDLE_S * 0.9 <= s < IDLE_S + 3.0 for s in held), held


async def test_a_body_that_stops_arriving_gets_a_408_after_the_idle_timeout() -> None:
    async with Replayer(cassette(), speed=0, idle_timeout=IDLE_S) as reel:
        reader, writer = await asyncio.open_connection("127.0.0.1", reel.port)
        began = time.monotonic()
        writer.write(http()[:-5])
        await writer.drain()
        wire = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        _, status, headers, body = status_of(wire)
        assert status == 408 and json.loads(body)["error"]["type"] == "timeout_error"
        assert IDLE_S * 0.9 <= time.monotonic() - began < IDLE_S + 3.0
        await _good_stream_meanwhile(reel)


@pytest.mark.parametrize("faulted", [False, True])
async def test_a_client_that_reads_nothing_is_cut_after_the_idle_timeout(faulted: bool) -> None:
    """A response that no longer fits the kernel's buffers waits for the client; one that reads nothing
    for idle_timeout is cut (ending client_hung_up), on the hot path and the faulted one alike."""
    item = cassette().interactions[0]
    events = item.response.events or ()
    big = [replace(e, data=(e.data or "") + " " * 20000) if e.event == "content_block_delta" else e for e in events] * 40
    big = [replace(e, t=0.0) for e in big]
    huge = replace(cassette(), interactions=(replace(item, response=replace(item.response, events=tuple(big))),))
    async with Replayer(huge, speed=0, idle_timeout=IDLE_S, faults="fragment:size=65536" if faulted else ()) as reel:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", reel.port))
        await asyncio.get_running_loop().sock_sendall(sock, http())
        began = time.monotonic()
        (sent,) = await reel.asettle(10.0, requests=1)
        took = time.monotonic() - began
        sock.close()
        assert sent.ending == "client_hung_up" and sent.client_hung_up and sent.bytes_sent < sum(len(e.wire) for e in big)
        assert took < IDLE_S * 2 + 3.0, took
        await _good_stream_meanwhile(reel)


# ---------------------------------------------------------------- out of file descriptors


def test_out_of_descriptors_the_server_logs_once_per_interval_and_serves_again_when_they_return(tmp_path: Any) -> None:
    """``streamreel serve`` with a small descriptor limit, flooded with idle connections: accept()
    fails, which asyncio reports again and again; the server logs it once (per 10 s), and once
    the connections go it says so and streams to the next client."""
    import resource
    import select
    import subprocess
    import sys

    from streamreel.cassette import save

    path = tmp_path / "c.yaml"
    save(cassette(), path)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))

    proc = subprocess.Popen([sys.executable, "-m", "streamreel", "serve", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=limit, text=True)
    held: list[socket.socket] = []
    seen: list[str] = []
    try:
        assert proc.stdout is not None and proc.stderr is not None
        port = int(proc.stdout.readline().rsplit(":", 1)[1])
        for _ in range(80):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(3.0)  # asyncio retries accept() every second meanwhile
        for s in held:
            s.close()
        held.clear()
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(http())
                    s.settimeout(5)
                    got = b""
                    while chunk := s.recv(65536):
                        got += chunk
                if status_of(got)[1] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server did not serve again once descriptors returned"
            time.sleep(0.2)
        deadline = time.monotonic() + 15
        while not any("again" in line for line in seen) and time.monotonic() < deadline:  # the recovery is said once failures stop
            if select.select([proc.stderr], [], [], 1.0)[0]:
                seen.append(proc.stderr.readline())
    finally:
        for s in held:
            s.close()
        proc.terminate()
        _, rest = proc.communicate(timeout=20)
    stderr = "".join(seen) + rest
    lines = [line for line in stderr.splitlines() if line.strip()]
    refused = [line for line in lines if "cannot accept connections" in line]
    assert 1 <= len(refused) <= 2 and "Too many open files (EMFILE)" in refused[0], stderr[:2000]
    assert any("accepting connections on port" in line and "again" in line for line in lines), stderr[:2000]
    assert "Traceback" not in stderr and len(lines) <= 6, stderr[:2000]


@pytest.mark.skipif(os.name == "nt", reason="no open-file limit on Windows")
@pytest.mark.parametrize("hard", [None, 700])
def test_raise_open_files_lifts_the_soft_limit_to_the_hard_one(hard: int | None) -> None:
    import subprocess
    import sys

    script = (
        "import resource\n"
        "from streamreel.guard import raise_open_files\n"
        "_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        f"hard = {hard} or (hard if hard != resource.RLIM_INFINITY else 4096)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "said = raise_open_files()\n"
        "print(said, *resource.getrlimit(resource.RLIMIT_NOFILE), hard)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True).stdout.split()
    said, soft, now_hard, wanted = out[0], int(out[1]), int(out[2]), int(out[3])
    assert said == "None"
    assert soft == now_hard == wanted, "every stream is a socket: the soft limit goes as high as the hard one"
