"""Hostile requests to a real Replayer: every answer is a 4xx (Anthropic-shaped JSON where
streamreel writes it) or the recording, never a 500 or a hang, nothing is logged as an
ERROR, and after every bad request a good one still streams the whole cassette."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import replace
from typing import Any, AsyncIterator

import aiohttp
import anthropic
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from streamreel import Replayer
from streamreel.cassette import Cassette, Request, load, bundled
from streamreel.errors import FaultSpecError
from streamreel.fault_injection import REGISTRY, parse
from streamreel.replayer import FAULTS_HEADER, MAX_REQUEST_BYTES

BODY: dict[str, Any] = {"model": "claude-opus-4-8", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}], "stream": True}
GOOD = json.dumps(BODY).encode()
TIMEOUT_S = 5.0

fuzz = settings(
    derandomize=True,
    deadline=None,
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def cassette() -> Cassette:
    """The bundled text stream, recorded for one exact request body (so matching runs on every request)."""
    text = load(bundled("text"))
    item = text.interactions[0]
    return replace(text, interactions=(replace(item, request=Request(method="POST", path="/v1/messages", body=BODY)),))


CASSETTE = cassette()
STREAM = b"".join(e.wire for e in CASSETTE.interactions[0].response.events or ())


@pytest.fixture
async def reel() -> AsyncIterator[Replayer]:
    async with Replayer(CASSETTE, speed=0) as r:
        yield r


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as s:
        yield s


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    return caplog


def no_server_errors(log: pytest.LogCaptureFixture) -> None:
    """aiohttp logged no ERROR (a handler crash or a traceback) and no traceback at any level above debug."""
    bad = [r for r in log.records if r.name.startswith("aiohttp") and (r.levelno >= logging.ERROR or (r.exc_info and r.levelno > logging.DEBUG))]
    assert not bad, [r.getMessage() for r in bad]


async def still_streams(r: Replayer, session: aiohttp.ClientSession) -> None:
    async with session.post(f"{r.url}/v1/messages", data=GOOD, headers={"content-type": "application/json"}) as resp:
        assert resp.status == 200
        assert await resp.read() == STREAM


def anthropic_error(status: int, body: bytes, kind: str, *, says: str) -> dict[str, Any]:
    assert 400 <= status < 500, (status, body[:300])
    payload = json.loads(body)
    assert payload["type"] == "error" and payload["error"]["type"] == kind, payload
    assert says in payload["error"]["message"], payload
    return payload


# ---------------------------------------------------------------- raw HTTP


async def raw(port: int, data: bytes, *, half_close: bool = False) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes (or TIMEOUT_S)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        if half_close:
            writer.write_eof()
        return await asyncio.wait_for(reader.read(), TIMEOUT_S)
    finally:
        writer.close()


def responses(wire: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """The responses in ``wire``: (status, headers, body), bodies de-chunked."""
    out = []
    while wire:
        head, _, rest = wire.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size, _, rest = rest.partition(b"\r\n")
                n = int(size, 16)
                body, rest = body + rest[:n], rest[n + 2 :]
                if n == 0:
                    break
        else:
            n = int(headers.get("content-length", len(rest)))
            body, rest = rest[:n], rest[n:]
        out.append((status, headers, body))
        wire = rest
    return out


def http(body: bytes = GOOD, *, path: bytes = b"/v1/messages", method: bytes = b"POST", headers: dict[bytes, bytes] | None = None, content_type: bytes | None = b"application/json") -> bytes:
    lines = [method + b" " + path + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close", b"Content-Length: " + str(len(body)).encode()]
    if content_type is not None:
        lines.append(b"Content-Type: " + content_type)
    lines += [k + b": " + v for k, v in (headers or {}).items()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


PARSER_400 = {
    "non-UTF-8 byte in the path": http(path=b"/v1/mess\xffages"),
    "header line without a colon": http().replace(b"Connection: close\r\n", b"Connection: close\r\nno colon here\r\n"),
    "header over 8 KiB": http(headers={b"x-big": b"a" * 9000}),
    "invalid chunk size": b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    "negative Content-Length": http().replace(f"Content-Length: {len(GOOD)}".encode(), b"Content-Length: -1"),
    "two Content-Lengths": http().replace(b"Connection: close\r\n", b"Connection: close\r\nContent-Length: 3\r\n"),
    "HTTP/9.9": http().replace(b"HTTP/1.1", b"HTTP/9.9"),
    "control byte in a header value": http(headers={b"x-a": b"a\x00b"}),
    "non-token method": http(method=b"P(ST"),
}


@pytest.mark.parametrize("name", sorted(PARSER_400))
async def test_malformed_http_gets_an_api_shaped_400_that_quotes_nothing_and_the_server_keeps_serving(
    reel: Replayer, session: aiohttp.ClientSession, server_log: pytest.LogCaptureFixture, name: str
) -> None:
    (status, headers, body), *_ = responses(await raw(reel.port, PARSER_400[name]))
    assert status == 400 and headers["content-type"].startswith("application/json"), (status, body)
    anthropic_error(status, body, "invalid_request_error", says="streamreel: aiohttp could not parse the request: ")
    assert b"aaaaaaaa" not in body and b"no colon" not in body and b"mess\\xff" not in body and b"P(ST" not in body  # none of the request's bytes
    assert reel.requests == []
    await still_streams(reel, session)
    [logged] = [r for r in server_log.records if r.name == "aiohttp.server" and "Error handling request" in r.getMessage()]
    if logged.levelno > logging.DEBUG:  # aiohttp logs a bad method on a connection's first request at DEBUG
        assert logged.levelno == logging.WARNING and "HTTP 400" in logged.getMessage() and not logged.exc_info
    assert "aaaaaaaa" not in logged.getMessage() and "no colon" not in logged.getMessage() and "mess" not in logged.getMessage()
    no_server_errors(server_log)


@fuzz
@given(
    name=st.one_of(st.sampled_from([b"x-a", b"content-type", b"accept", b"last-event-id", b"x-streamreel-faults", b"transfer-encoding", b"host"]), st.binary(min_size=1, max_size=12)),
    value=st.binary(max_size=60),
)
async def test_odd_headers_get_the_stream_or_a_400(reel: Replayer, session: aiohttp.ClientSession, server_log: pytest.LogCaptureFixture, name: bytes, value: bytes) -> None:
    assume(b"\r" not in name + value and b"\n" not in name + value and b":" not in name)
    got = responses(await raw(reel.port, http(headers={name: value})))
    assert got, "no response"
    status, headers, body = got[0]
    assert status < 500, (status, body[:300])
    if status >= 400:  # refused by aiohttp's parser, a credential that is not UTF-8, a bad faults header
        assert headers["content-type"].startswith("application/json")
        anthropic_error(status, body, json.loads(body)["error"]["type"], says="streamreel:")
    await still_streams(reel, session)
    no_server_errors(server_log)


async def test_non_utf8_header_values_are_kept_and_served(reel: Replayer, session: aiohttp.ClientSession, server_log: pytest.LogCaptureFixture) -> None:
    [(status, _, body)] = responses(await raw(reel.port, http(headers={b"x-note": b"caf\xe9 \xff"})))
    assert status == 200 and body == STREAM
    assert reel.requests[0].headers["x-note"].encode("utf-8", "surrogateescape") == b"caf\xe9 \xff"
    await still_streams(reel, session)
    no_server_errors(server_log)


async def test_a_body_shorter_than_its_content_length_waits_then_goes_quietly(reel: Replayer, session: aiohttp.ClientSession, server_log: pytest.LogCaptureFixture) -> None:
    short = http().replace(f"Content-Length: {len(GOOD)}".encode(), f"Content-Length: {len(GOOD) + 50}".encode())
    assert await raw(reel.port, short, half_close=True) == b""
    await still_streams(reel, session)
    assert len(reel.requests) == 1
    no_server_errors(server_log)


async def test_bytes_past_the_content_length_are_a_second_request_that_gets_a_400(reel: Replayer, session: aiohttp.ClientSession, server_log: pytest.LogCaptureFixture) -> None:
    """aiohttp parses what one read brought in at once: when the junk arrives with the request,
    the parse error answers for both (a lone 400); when it arrives later, the stream comes first."""
    wire = await raw(reel.port, http().replace(b"Connection: close\r\n", b"") + b"junk\r\n\r\n")
    got = responses(wire)
    assert [s for s, _, _ in got] in ([400], [200, 400]) and all(b == STREAM for s, _, b in got if s == 200)
    await still_streams(reel, session)
    no_server_errors(server_log)


# ---------------------------------------------------------------- bodies


@pytest.mark.parametrize(
    "body, says",
    [
        (b"not json", "not valid JSON"),
        (b'{"model": "claude-opus-4-8", "messages": [', "not valid JSON"),
        (b"\xc3\x28", "not UTF-8"),
        (b"\xff\xfe\x00{", "not UTF-8"),
        (json.dumps(BODY).encode("utf-16"), "not UTF-8"),
        (json.dumps(BODY).encode("utf-32"), "not UTF-8"),
        (json.dumps(BODY).encode("utf-16-le"), "not valid JSON"),  # no BOM: NUL bytes are UTF-8, the text is not JSON
        (b'{"model": "caf\xe9"}', "not UTF-8"),
        (b"", "empty"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
async def test_a_json_request_whose_body_does_not_parse_gets_the_apis_400(
    reel: Replayer, session: aiohttp.ClientSession, server_log: pytest.LogCaptureFixture, body: bytes, says: str
) -> None:
    async with session.post(f"{reel.url}/v1/messages", data=body, headers={"content-type": "application/json"}) as resp:
        anthropic_error(resp.status, await resp.read(), "invalid_request_error", says=says)
        assert resp.headers["content-type"].startswith("application/json")
    assert reel.requests[0].body == body
    await still_streams(reel, session)
    no_server_errors(server_log)


async def test_deep_but_readable_json_is_a_404_naming_the_difference(reel: Replayer, session: aiohttp.ClientSession, server_log: pytest.LogCaptureFixture) -> None:
    deep = {**BODY, "messages": json.loads("[" * 900 + "]" * 900)}
    async with session.post(f"{reel.url}/v1/messages", json=deep) as resp:
        anthropic_error(resp.status, await resp.read(), "not_found_error", says="body.messages")
    await still_streams(reel, session)
    no_server_errors(server_log)


async def test_a_non_json_body_without_a_json_content_type_is_matched_as_before(reel: Replayer, session: aiohttp.ClientSession) -> None:
    async with session.post(f"{reel.url}/v1/messages", data=b"not json", headers={"content-type": "text/plain"}) as resp:
        anthropic_error(resp.status, await resp.read(), "not_found_error", says="non-JSON body")


async def test_a_recorded_non_json_body_is_still_replayed(session: aiohttp.ClientSession) -> None:
    item = CASSETTE.interactions[0]
    raw_body = Cassette(interactions=(replace(item, request=replace(item.request, body="not json")),))
    async with Replayer(raw_body, speed=0) as r:
        async with session.post(f"{r.url}/v1/messages", data=b"not json", headers={"content-type": "application/json"}) as resp:
            assert resp.status == 200 and await resp.read() == STREAM


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_body_over_the_size_limit_gets_an_anthropic_413_that_reads_as_a_sentence(
    reel: Replayer, session: aiohttp.ClientSession, server_log: pytest.LogCaptureFixture, chunked: bool
) -> None:
    huge = b'{"pad": "' + b"a" * (MAX_REQUEST_BYTES + 1024 * 1024) + b'"}'

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(huge), 1 << 20):
            yield huge[i : i + (1 << 20)]

    async with session.post(f"{reel.url}/v1/messages", data=pieces() if chunked else huge, headers={"content-type": "application/json"}) as resp:
        payload = anthropic_error(resp.status, await resp.read(), "request_too_large", says="limit")
        assert resp.status == 413
    message = payload["error"]["message"]
    size = "" if chunked else f"{len(huge):,}-byte "
    assert message == f"streamreel: the {size}body is over the {MAX_REQUEST_BYTES + 2**20:,}-byte limit (the Messages API takes 32 MB)", message
    assert reel.responses[0].status == 413
    await still_streams(reel, session)
    no_server_errors(server_log)


async def test_a_body_at_the_size_limit_is_read_and_matched(reel: Replayer, session: aiohttp.ClientSession) -> None:
    big = json.dumps({**BODY, "metadata": {"pad": "a" * (MAX_REQUEST_BYTES - len(GOOD) - 40)}}).encode()
    assert len(big) <= MAX_REQUEST_BYTES
    async with session.post(f"{reel.url}/v1/messages", data=big, headers={"content-type": "application/json"}) as resp:
        anthropic_error(resp.status, await resp.read(), "not_found_error", says="body.metadata")


@fuzz
@given(body=st.one_of(st.binary(max_size=300), st.text(max_size=100).map(str.encode), st.sampled_from([b"null", b"[]", b"{}", b"1e999", b'"\\ud800"', b"NaN"])))
async def test_any_json_body_gets_the_stream_or_a_4xx_saying_why(reel: Replayer, session: aiohttp.ClientSession, server_log: pytest.LogCaptureFixture, body: bytes) -> None:
    async with session.post(f"{reel.url}/v1/messages", data=body, headers={"content-type": "application/json"}) as resp:
        data = await resp.read()
        assert resp.status < 500, (resp.status, data[:300])
        if resp.status != 200:
            kind = "invalid_request_error" if resp.status == 400 else "not_found_error"
            anthropic_error(resp.status, data, kind, says="streamreel:")
    await still_streams(reel, session)
    no_server_errors(server_log)


# ---------------------------------------------------------------- x-streamreel-faults

NAMES = sorted(REGISTRY)
SPEC_TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n\x00"), max_size=40),
    st.builds(
        lambda name, key, value, sep: f"{name}:{key}={value}{sep}",
        st.sampled_from([*NAMES, "nope", "", "Latency", "http "]),
        st.sampled_from(["", "ms", "at", "after", "every", "status", "size", "event", "times", "p", "ü"]),
        st.one_of(
            st.sampled_from(["", "-1", "0", "1e999", "inf", "-inf", "nan", "9" * 400, "1" * 5000, "0x10", "1_000", "½", "true", "300ms", "1.5s", "-5s", "a|b", "3|x"]),
            st.integers().map(str),
            st.floats().map(str),
        ),
        st.sampled_from(["", ";", ";;", ",", ",,", "; ;", "=", ":"]),
    ),
    st.lists(st.sampled_from([*NAMES, ";;", ":", "=", ",", "é", "\t"]), max_size=6).map("".join),
)


def invalid_spec(spec: str) -> bool:
    try:
        parse(spec)
    except FaultSpecError:
        return True
    return False


@fuzz
@given(spec=SPEC_TEXT)
async def test_a_malformed_faults_header_gets_a_400_naming_it(reel: Replayer, session: aiohttp.ClientSession, server_log: pytest.LogCaptureFixture, spec: str) -> None:
    control = bytes(c for c in range(32) if c != 9) + b"\x7f"  # aiohttp's parser refuses these (see PARSER_400)
    value = spec.encode("utf-8", "surrogatepass").translate(None, control).strip(b" \t")
    assume(invalid_spec(value.decode("utf-8", "surrogateescape")))
    [(status, headers, body)] = responses(await raw(reel.port, http(headers={FAULTS_HEADER.encode(): value})))
    assert headers["content-type"].startswith("application/json")
    anthropic_error(status, body, "invalid_request_error", says=f"bad {FAULTS_HEADER} header")
    await still_streams(reel, session)
    no_server_errors(server_log)


@pytest.mark.parametrize("spec", ["nope", ";;:", "latency:ms=1e999", "latency:ms=" + "9" * 5000, "stall:at=-1", "fragment:size=0", "drop:é", "http:status=99999"])
async def test_faults_header_examples_get_a_400(reel: Replayer, session: aiohttp.ClientSession, spec: str) -> None:
    async with session.post(f"{reel.url}/v1/messages", data=GOOD, headers={"content-type": "application/json", FAULTS_HEADER: spec}) as resp:
        anthropic_error(resp.status, await resp.read(), "invalid_request_error", says=FAULTS_HEADER)
    await still_streams(reel, session)


async def test_only_separators_in_the_faults_header_is_no_fault(reel: Replayer, session: aiohttp.ClientSession) -> None:
    async with session.post(f"{reel.url}/v1/messages", data=GOOD, headers={"content-type": "application/json", FAULTS_HEADER: " ;; ; "}) as resp:
        assert resp.status == 200 and await resp.read() == STREAM


# ---------------------------------------------------------------- the SDK after a barrage


async def test_the_anthropic_sdk_streams_after_a_barrage_of_bad_requests(reel: Replayer, session: aiohttp.ClientSession, server_log: pytest.LogCaptureFixture) -> None:
    for data in PARSER_400.values():
        await raw(reel.port, data)
    for body in (b"", b"{", b"\xff"):
        async with session.post(f"{reel.url}/v1/messages", data=body, headers={"content-type": "application/json"}) as resp:
            assert resp.status == 400
    client = anthropic.AsyncAnthropic(base_url=reel.url, api_key="sk-test", max_retries=0, timeout=TIMEOUT_S)
    async with client.messages.stream(**{k: v for k, v in BODY.items() if k != "stream"}) as stream:
        text = "".join([t async for t in stream.text_stream])
    await client.close()
    assert text.startswith("Hello! I'm doing well")
    assert [r.status for r in reel.responses][-1] == 200
    no_server_errors(server_log)
