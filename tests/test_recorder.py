"""The recorder, driven by the real anthropic and openai SDKs against a local upstream (a replayer or a scripted server)."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import socket
import statistics
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from _recorder_helpers import (
    ANTHROPIC_CAPTURE,
    MESSAGE,
    OPENAI_CAPTURE,
    ScriptedUpstream,
    capture,
    cassette,
    files_under,
    json_reply,
    raw_request,
    reset_connection,
    served_in_subprocess,
)
from aiohttp import web

from streamreel import Replayer, load, save
from streamreel.cassette import Cassette, Request
from streamreel.errors import CassetteError, StreamreelError
from streamreel.recorder import Recorder
from streamreel.scrub import SCRUBBED, Scrubber
from streamreel.sse import decode

KEY = "sk-ant-test-not-a-key-RECORDER-9f8e7d6c5b4a"


def anthropic_stream(url: str, *, body: dict[str, Any] = MESSAGE, limit: int | None = None, timeout: float = 10.0) -> tuple[list[dict[str, Any]], BaseException | None]:
    """The events the SDK yields for one streamed message, and the error that ended it early, if any."""
    client = anthropic.Anthropic(base_url=url, api_key=KEY, max_retries=0, timeout=timeout)
    seen: list[dict[str, Any]] = []
    try:
        with client.messages.create(**body, stream=True) as stream:
            for event in stream:
                seen.append(event.model_dump())
                if limit is not None and len(seen) >= limit:
                    break
    except Exception as e:  # the test compares which error, and where
        return seen, e
    finally:
        client.close()
    return seen, None


def ask(text: str) -> dict[str, Any]:
    return {**MESSAGE, "messages": [{"role": "user", "content": text}]}


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:])]


# ---------------------------------------------------------------- record, then replay


def test_anthropic_stream_records_its_timing_and_replays_the_same_events_and_bytes(tmp_path: Path) -> None:
    upstream_cassette = cassette(capture(seed=1, gaps_ms=(20.0, 60.0)))
    source = upstream_cassette.interactions[0].response
    out = tmp_path / "recorded.yaml"
    with served_in_subprocess(upstream_cassette, tmp_path) as upstream_url:
        direct, error = anthropic_stream(upstream_url)  # also warms the SDK up: its first parse is slow
        assert error is None
        with Recorder(upstream=upstream_url, cassette=out, mode="all") as rec:
            live, error = anthropic_stream(rec.url)
            rec.settle()
    assert error is None
    recorded = load(out).interactions[0]
    with Replayer(out) as again:
        replayed, error = anthropic_stream(again.url)
        again.settle()
    assert error is None
    assert live == direct == replayed
    assert live[-1]["type"] == "message_stop"
    # byte for byte: what the upstream sends, what the client got through the proxy, what the replay sends
    assert rec.responses[0].data == b"".join(e.wire for e in source.events or ()) == again.responses[0].data
    assert rec.responses[0].headers["content-type"].startswith("text/event-stream")

    events = recorded.response.events or ()
    assert [(e.event, e.data) for e in events] == [(e.event, e.data) for e in source.events or ()]
    assert recorded.response.end.reason == "complete"
    assert recorded.response.headers_at <= events[0].t <= events[-1].t <= (recorded.response.end.t or 0)
    # one late timestamp on a busy machine makes one gap longer and the next shorter: judge the bulk
    want, got = gaps([e.t for e in source.events or ()]), gaps([e.t for e in events])
    errors = sorted(abs(a - b) for a, b in zip(want, got))
    assert statistics.median(errors) < 6.0, (want, got)  # gaps are 20-60 ms: ignoring them fails by far
    assert errors[int(len(errors) * 0.8)] < 12.0, (want, got)
    span = (events[-1].t - events[0].t) - ((source.events or ())[-1].t - (source.events or ())[0].t)
    assert abs(span) < 25.0


async def test_the_stream_reaches_the_client_before_the_upstream_has_finished_it(tmp_path: Path) -> None:
    release = asyncio.Event()

    async def upstream_handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b"event: first\ndata: 1\n\n")
        await release.wait()  # only the client seeing the first event lets the stream go on
        await resp.write(b"event: second\ndata: 2\n\n")
        await resp.write_eof()
        return resp

    async def client_saw(_: bytes) -> None:
        release.set()

    async with ScriptedUpstream(upstream_handler) as up, Recorder(upstream=up.url, cassette=tmp_path / "c.yaml", mode="all") as rec:
        reply = await raw_request(rec.url, "GET", "/events", read_timeout=5.0, on_data=client_saw)
        await rec.asettle()
    assert reply.ended == "end", "the recorder held the first event back until the stream ended"
    assert reply.body == b"event: first\ndata: 1\n\nevent: second\ndata: 2\n\n"
    method, target, headers, _ = up.requests[0]
    assert (method, target) == ("GET", "/events")
    assert headers["accept-encoding"] == "identity"
    assert headers["host"] == up.url.removeprefix("http://")
    events = load(tmp_path / "c.yaml").interactions[0].response.events or ()
    assert [e.event for e in events] == ["first", "second"]


def test_openai_sdk_data_only_stream_records_and_replays(tmp_path: Path) -> None:
    upstream_cassette = cassette(capture(OPENAI_CAPTURE, seed=2, gaps_ms=(1.0, 3.0)))
    out = tmp_path / "openai.yaml"

    def chunks(url: str) -> list[dict[str, Any]]:
        client = openai.OpenAI(base_url=url + "/v1", api_key="sk-proj-OPENAITESTKEY", max_retries=0, timeout=10.0)
        with client:
            stream = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True)
            return [c.model_dump() for c in stream]

    with Replayer(upstream_cassette) as up, Recorder(upstream=up.url, cassette=out, mode="all") as rec:
        live = chunks(rec.url)
        rec.settle()
        up.settle()
    recorded = load(out).interactions[0]
    assert recorded.request.path == "/v1/chat/completions"
    events = recorded.response.events or ()
    assert events[-1].data == "[DONE]"
    assert all(e.event is None for e in events)
    assert recorded.response.end.reason == "complete"
    with Replayer(out) as again:
        replayed = chunks(again.url)
        again.settle()
    assert replayed == live
    assert len(live) == len(events) - 1
    assert rec.responses[0].data == up.responses[0].data == again.responses[0].data
    assert "OPENAITESTKEY" not in out.read_text()


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_any_sse_endpoint_records_and_replays_byte_for_byte(tmp_path: Path, method: str) -> None:
    """A user's relay re-streaming plain text lines, with a comment keep-alive, an id and a retry."""
    wire = b": keep-alive\n\nretry: 1500\n\nid: 1\ndata: The Moon\n\nid: 2\ndata: passes between\ndata: two lines\n\ndata: [END]\n\n"

    async def relay(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream; charset=utf-8"})
        await resp.prepare(request)
        for part in wire.split(b"\n\n")[:-1]:
            await resp.write(part + b"\n\n")
        await resp.write_eof()
        return resp

    body = json.dumps({"q": "eclipse"}).encode() if method == "POST" else b""
    target = "/relay/stream?q=eclipse&lang=en"
    out = tmp_path / "relay.yaml"
    async with ScriptedUpstream(relay) as up, Recorder(upstream=up.url, cassette=out, mode="all") as rec:
        live = await raw_request(rec.url, method, target, body=body, headers={"accept": "text/event-stream"})
        await rec.asettle()
    assert live.body == wire
    recorded = load(out).interactions[0]
    assert (recorded.request.method, recorded.request.path) == (method, target)
    assert recorded.request.body == ({"q": "eclipse"} if method == "POST" else None)
    async with Replayer(out, speed=0) as again:
        replayed = await raw_request(again.url, method, target, body=body)
        other = await raw_request(again.url, method, "/relay/stream?q=tides&lang=en", body=body)
    assert replayed.body == wire
    assert replayed.ended == "end"
    assert other.status == 404


async def test_upstream_base_path_is_kept_in_front_of_the_request_path(tmp_path: Path) -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path_qs})

    async with ScriptedUpstream(echo) as up, Recorder(upstream=up.url + "/base/", cassette=tmp_path / "c.yaml", mode="all") as rec:
        reply = await raw_request(rec.url, "GET", "/v1/models?limit=2")
    assert json.loads(reply.body) == {"path": "/base/v1/models?limit=2"}


# ---------------------------------------------------------------- faults while recording


def test_upstream_drop_mid_stream_cuts_the_client_and_replays_as_the_same_cut(tmp_path: Path) -> None:
    upstream_cassette = cassette(capture(seed=3, gaps_ms=(1.0, 2.0), keep=6, end="upstream_disconnect"))
    out = tmp_path / "dropped.yaml"
    with Replayer(upstream_cassette) as up, Recorder(upstream=up.url, cassette=out, mode="all") as rec:
        live, live_error = anthropic_stream(rec.url)
        rec.settle()
    direct_count = 6
    recorded = load(out).interactions[0].response
    assert recorded.end.reason == "upstream_disconnect"
    assert len(recorded.events or ()) == direct_count
    assert isinstance(live_error, httpx2.RemoteProtocolError)
    with Replayer(out) as again:
        replayed, replay_error = anthropic_stream(again.url)
        again.settle()
    assert replayed == live
    assert type(replay_error) is type(live_error)
    assert again.responses[0].ending == "close"
    assert again.responses[0].data == up.responses[0].data


@pytest.mark.parametrize("how", ["close", "reset"])
async def test_upstream_drop_reaches_the_client_the_same_way_close_or_reset(tmp_path: Path, how: str) -> None:
    seen = asyncio.Event()

    async def dropping(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b"event: a\ndata: 1\n\nevent: b\ndata: 2\n\nevent: c\ndata: 3\n\nevent: d\ndata: half")
        await seen.wait()  # the client holds the first events before the connection goes
        if how == "reset":
            reset_connection(request)
        else:
            assert request.transport is not None
            request.transport.close()
        return resp

    async def on_data(_: bytes) -> None:
        seen.set()

    out = tmp_path / f"{how}.yaml"
    async with ScriptedUpstream(dropping) as up:
        direct = await raw_request(up.url, "GET", "/s", on_data=on_data)
        seen.clear()
        async with Recorder(upstream=up.url, cassette=out, mode="all") as rec:
            through = await raw_request(rec.url, "GET", "/s", on_data=on_data)
            await rec.asettle()
    assert direct.ended == how
    assert through.ended == how
    assert through.body == direct.body
    recorded = load(out).interactions[0].response
    assert recorded.end.reason == "upstream_disconnect"
    assert [e.event for e in recorded.events or ()] == ["a", "b", "c"]  # the half event never completed
    async with Replayer(out) as again:
        replayed = await raw_request(again.url, "GET", "/s")
    assert replayed.ended == "close"
    assert decode(replayed.body) == decode(direct.body)[:3]


def test_client_hanging_up_keeps_the_events_so_far_as_client_cancel(tmp_path: Path) -> None:
    upstream_cassette = cassette(capture(seed=4, gaps_ms=(20.0, 40.0)))
    out = tmp_path / "cancelled.yaml"
    with Replayer(upstream_cassette) as up, Recorder(upstream=up.url, cassette=out, mode="all") as rec:
        live, error = anthropic_stream(rec.url, limit=3)
        rec.settle()
        up.settle()
    assert error is None and len(live) == 3
    recorded = load(out).interactions[0].response
    assert recorded.end.reason == "client_cancel"
    total = len(upstream_cassette.interactions[0].response.events or ())
    assert 3 <= len(recorded.events or ()) < total
    assert up.responses[0].client_hung_up, "the upstream request was not cancelled with the client"
    assert rec.responses[0].client_hung_up


def test_upstream_stalling_past_timeout_records_timeout_and_replays_as_silence(tmp_path: Path) -> None:
    upstream_cassette = cassette(capture(seed=5, gaps_ms=(1.0, 2.0), keep=5, end="timeout"))
    out = tmp_path / "stalled.yaml"
    with Replayer(upstream_cassette) as up, Recorder(upstream=up.url, cassette=out, mode="all", timeout=0.3) as rec:
        live, live_error = anthropic_stream(rec.url, timeout=10.0)
        rec.settle()
        up.settle()
    assert isinstance(live_error, httpx2.RemoteProtocolError)  # the recorder gave up and cut the client
    recorded = load(out).interactions[0].response
    events = recorded.events or ()
    assert recorded.end.reason == "timeout"
    assert len(events) == 5
    assert (recorded.end.t or 0) - events[-1].t >= 250.0
    assert up.responses[0].client_hung_up
    with Replayer(out) as again:
        replayed, replay_error = anthropic_stream(again.url, timeout=0.5)
        again.settle()
    assert replayed == live
    assert isinstance(replay_error, httpx2.ReadTimeout)  # the replay goes silent where the upstream did
    assert again.responses[0].client_hung_up and again.responses[0].ending not in ("end", "close")


async def test_stopping_the_recorder_keeps_streams_in_flight_as_client_cancel(tmp_path: Path) -> None:
    first = asyncio.Event()

    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b"data: 1\n\ndata: 2\n\n")
        await asyncio.Event().wait()
        return resp

    async def on_data(_: bytes) -> None:
        first.set()

    out = tmp_path / "stopped.yaml"
    async with ScriptedUpstream(endless) as up:
        rec = Recorder(upstream=up.url, cassette=out, mode="all")
        await rec.start()
        client = asyncio.ensure_future(raw_request(rec.url, "GET", "/forever", on_data=on_data))
        await first.wait()
        await rec.stop()
        reply = await client
    assert reply.ended == "close"
    recorded = load(out).interactions[0].response
    assert recorded.end.reason == "client_cancel"
    assert [e.data for e in recorded.events or ()] == ["1", "2"]


def test_concurrent_streams_are_each_recorded_in_request_order(tmp_path: Path) -> None:
    upstream_cassette = cassette(
        capture(seed=6, gaps_ms=(5.0, 10.0), request=Request(method="POST", path="/v1/messages", body={**ask("one"), "stream": True})),
        capture(ANTHROPIC_CAPTURE, seed=7, gaps_ms=(1.0, 2.0), keep=8, end="upstream_disconnect", request=Request(method="POST", path="/v1/messages", body={**ask("two"), "stream": True})),
    )
    out = tmp_path / "both.yaml"

    async def both(url: str) -> list[Any]:
        client = anthropic.AsyncAnthropic(base_url=url, api_key=KEY, max_retries=0)
        first_arrived = asyncio.Event()  # "one" has reached the recorder: "two" starts, and ends first

        async def one(text: str, after: asyncio.Event | None = None) -> int:
            if after is not None:
                await after.wait()
            n = 0
            try:
                async for _ in await client.messages.create(**ask(text), stream=True):
                    n += 1
                    first_arrived.set()
            except httpx2.RemoteProtocolError:
                pass
            return n

        async with client:
            return await asyncio.gather(one("one"), one("two", after=first_arrived))

    with Replayer(upstream_cassette) as up, Recorder(upstream=up.url, cassette=out, mode="all") as rec:
        asyncio.run(both(rec.url))
        rec.settle()
    recorded = load(out).interactions
    assert [i.request.body["messages"][0]["content"] for i in recorded] == ["one", "two"]
    assert [i.response.end.reason for i in recorded] == ["complete", "upstream_disconnect"]
    assert len(recorded[1].response.events or ()) == 8


def test_unreachable_upstream_answers_502_and_records_nothing(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "none.yaml"
    with Recorder(upstream=f"http://admin:hunter2@127.0.0.1:{port}", cassette=out, mode="all") as rec:
        _, error = anthropic_stream(rec.url)
        rec.settle()
    assert isinstance(error, anthropic.InternalServerError)
    assert error.status_code == 502
    message = str(error)
    assert f"127.0.0.1:{port}" in message
    assert "hunter2" not in message and KEY not in message
    assert not out.exists()


async def test_compressed_upstream_body_is_decoded_for_client_and_cassette(tmp_path: Path) -> None:
    wire = b"event: message\ndata: compressed\n\n"

    async def gzipping(request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(wire), headers={"content-type": "text/event-stream", "content-encoding": "gzip"})

    async with ScriptedUpstream(gzipping) as up, Recorder(upstream=up.url, cassette=tmp_path / "c.yaml", mode="all") as rec:
        reply = await raw_request(rec.url, "GET", "/z")
        await rec.asettle()
    assert reply.body == wire
    assert "content-encoding" not in reply.headers
    recorded = load(tmp_path / "c.yaml").interactions[0].response
    assert [e.data for e in recorded.events or ()] == ["compressed"]
    assert "content-encoding" not in recorded.headers


# ---------------------------------------------------------------- non-streaming responses


def test_429_with_retry_after_is_recorded_and_replayed_before_the_stream(tmp_path: Path) -> None:
    error_body = {"type": "error", "error": {"type": "rate_limit_error", "message": "Number of request tokens has exceeded your per-minute rate limit."}}
    upstream_cassette = cassette(
        json_reply(429, error_body, {"retry-after": "1", "retry-after-ms": "20", "x-should-retry": "true"}),
        capture(seed=8, gaps_ms=(1.0, 2.0)),
    )
    out = tmp_path / "ratelimited.yaml"
    with Replayer(upstream_cassette) as up, Recorder(upstream=up.url, cassette=out, mode="all") as rec:
        client = anthropic.Anthropic(base_url=rec.url, api_key=KEY, max_retries=1)
        with client.messages.create(**MESSAGE, stream=True) as stream:
            live = [e.model_dump() for e in stream]
        rec.settle()
    limited, streamed = load(out).interactions
    assert limited.response.status == 429
    assert limited.response.body == error_body
    assert limited.response.headers["retry-after"] == "1"
    assert limited.response.headers["retry-after-ms"] == "20"
    assert streamed.response.status == 200 and streamed.response.end.reason == "complete"
    with Replayer(out, speed=0) as again:
        client = anthropic.Anthropic(base_url=again.url, api_key=KEY, max_retries=0)
        with pytest.raises(anthropic.RateLimitError) as caught:
            client.messages.create(**MESSAGE, stream=True)
        with client.messages.create(**MESSAGE, stream=True) as stream:
            replayed = [e.model_dump() for e in stream]
    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.body == error_body
    assert replayed == live


def test_json_body_that_does_not_reserialise_identically_is_kept_verbatim(tmp_path: Path) -> None:
    padded = '{"id": "msg_1",  "type": "message"}'
    upstream_cassette = cassette(json_reply(200, padded))
    out = tmp_path / "json.yaml"
    with Replayer(upstream_cassette) as up, Recorder(upstream=up.url, cassette=out, mode="all") as rec:
        reply = asyncio.run(raw_request(rec.url, "POST", "/v1/messages", body=b"{}"))
        rec.settle()
    assert reply.body.decode() == padded
    assert load(out).interactions[0].response.body == padded


# ---------------------------------------------------------------- scrubbing


def test_no_secret_reaches_any_written_file_or_log_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    upstream_cassette = cassette(
        capture(seed=9, gaps_ms=(1.0, 2.0)),
    )
    leaky = upstream_cassette.interactions[0]
    leaky = type(leaky)(
        request=leaky.request,
        response=type(leaky.response)(
            status=200,
            headers={**leaky.response.headers, "set-cookie": f"session={KEY}", "anthropic-organization-id": "org-SECRETORG"},
            headers_at=leaky.response.headers_at,
            events=leaky.response.events,
            end=leaky.response.end,
        ),
    )
    out_dir = tmp_path / "cassettes"
    out = out_dir / "secret.yaml"
    with Replayer(cassette(leaky), ignore_query=("beta", "key")) as up, Recorder(upstream=up.url, cassette=out, mode="all") as rec:
        _, error = anthropic_stream(rec.url)  # Authorization: Bearer KEY
        assert error is None
        old_style = asyncio.run(
            raw_request(rec.url, "POST", "/v1/messages", body=json.dumps(MESSAGE).encode(), headers={"x-api-key": KEY, "cookie": f"c={KEY}", "content-type": "application/json"})
        )
        in_query = asyncio.run(raw_request(rec.url, "POST", f"/v1/messages?beta=true&key={KEY}", body=json.dumps(MESSAGE).encode(), headers={"content-type": "application/json"}))
        rec.settle()
    assert old_style.status == 200 and in_query.status == 200
    written = files_under(tmp_path)
    assert written == [out]
    for path in written:
        data = path.read_bytes()
        assert KEY.encode() not in data, path
        assert b"SECRETORG" not in data
    text = out.read_text()
    first, second, third = load(out).interactions
    assert third.request.path == f"/v1/messages?beta=true&key={SCRUBBED}"
    assert first.request.headers["authorization"] == SCRUBBED
    assert second.request.headers["x-api-key"] == SCRUBBED and second.request.headers["cookie"] == SCRUBBED
    assert first.response.headers["set-cookie"] == SCRUBBED
    assert text.count(SCRUBBED) >= 6
    # the proxy's own logging (the test's SDK client logs its headers at DEBUG, which is its business)
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.split(".")[0] in ("streamreel", "aiohttp", "asyncio"))
    assert "recorded POST /v1/messages" in logged
    assert KEY not in logged and "SECRETORG" not in logged


def test_user_headers_and_body_patterns_are_scrubbed_and_the_replay_still_matches(tmp_path: Path) -> None:
    email = "ada.lovelace@example.com"
    body = ask(f"My address is {email}, write to me")
    upstream_cassette = cassette(capture(seed=10, gaps_ms=(1.0, 2.0)))
    it = upstream_cassette.interactions[0]
    events = tuple(e if e.event != "content_block_delta" else type(e)(t=e.t, event=e.event, data=e.data.replace("Happy", email)) for e in it.response.events or ())
    leaky = cassette(type(it)(request=it.request, response=type(it.response)(status=200, headers=it.response.headers, headers_at=15.0, events=events, end=it.response.end)))
    out = tmp_path / "scrubbed.yaml"
    scrub = Scrubber(headers=["X-Customer-Token"], patterns=[r"[\w.]+@example\.com"])
    with Replayer(leaky) as up, Recorder(upstream=up.url, cassette=out, mode="all", scrub=scrub) as rec:
        client = anthropic.Anthropic(base_url=rec.url, api_key=KEY, max_retries=0, default_headers={"x-customer-token": "tok-CUSTOMER"})
        with client.messages.create(**body, stream=True) as stream:
            live = [e.model_dump() for e in stream]
        rec.settle()
    assert email in json.dumps(live)  # the client got the real stream
    text = out.read_text()
    assert email not in text and "tok-CUSTOMER" not in text and KEY not in text
    recorded = load(out).interactions[0]
    assert recorded.request.headers["x-customer-token"] == SCRUBBED
    assert recorded.request.body["messages"][0]["content"] == f"My address is {SCRUBBED}, write to me"
    assert any(SCRUBBED in (e.data or "") for e in recorded.response.events or ())
    with Replayer(out, speed=0) as again:
        replayed, error = anthropic_stream(again.url, body=body)
        _, mismatch = anthropic_stream(again.url, body=ask("My address is somewhere else"))
    assert error is None and len(replayed) == len(live)
    assert isinstance(mismatch, anthropic.NotFoundError)


def test_bad_scrub_pattern_is_named_by_position_without_echoing_it() -> None:
    with pytest.raises(ValueError, match=r"scrub pattern #2 is not a valid regular expression") as caught:
        Scrubber(patterns=["ok", "sk-ant-[unclosed"])
    assert "sk-ant" not in str(caught.value)


# ---------------------------------------------------------------- record modes


@pytest.fixture
def upstream() -> Any:
    with Replayer(cassette(capture(seed=11, gaps_ms=(1.0, 2.0))), speed=0) as up:
        yield up


def recorded_questions(path: Path) -> list[str]:
    return [i.request.body["messages"][0]["content"] for i in load(path).interactions]


def test_mode_all_records_everything_and_overwrites(tmp_path: Path, upstream: Replayer) -> None:
    out = tmp_path / "c.yaml"
    with Recorder(upstream=upstream.url, cassette=out, mode="all", speed=0) as rec:
        anthropic_stream(rec.url, body=ask("a"))
        anthropic_stream(rec.url, body=ask("b"))
        rec.settle()
    with Recorder(upstream=upstream.url, cassette=out, mode="all", speed=0) as rec:
        anthropic_stream(rec.url, body=ask("b"))
        rec.settle()
    assert len(upstream.requests) == 3
    assert recorded_questions(out) == ["b"]


def test_mode_once_records_a_missing_cassette_then_only_replays_it(tmp_path: Path, upstream: Replayer) -> None:
    out = tmp_path / "c.yaml"
    with Recorder(upstream=upstream.url, cassette=out, mode="once") as rec:
        assert rec.recording
        first, _ = anthropic_stream(rec.url, body=ask("a"))
        rec.settle()
    assert len(upstream.requests) == 1
    with Recorder(upstream=upstream.url, cassette=out, mode="once", speed=0) as rec:
        assert not rec.recording
        again, error = anthropic_stream(rec.url, body=ask("a"))
        _, unknown = anthropic_stream(rec.url, body=ask("b"))
    assert error is None and again == first
    assert isinstance(unknown, anthropic.NotFoundError)
    assert "mode 'once'" in str(unknown) and "closest recorded" in str(unknown)
    assert len(upstream.requests) == 1
    assert recorded_questions(out) == ["a"]


def test_mode_new_episodes_replays_matches_and_appends_the_rest(tmp_path: Path, upstream: Replayer) -> None:
    out = tmp_path / "c.yaml"
    with Recorder(upstream=upstream.url, cassette=out, mode="all") as rec:
        anthropic_stream(rec.url, body=ask("a"))
        rec.settle()
    with Recorder(upstream=upstream.url, cassette=out, mode="new_episodes", speed=0) as rec:
        anthropic_stream(rec.url, body=ask("a"))  # replayed
        anthropic_stream(rec.url, body=ask("b"))  # new: recorded
        anthropic_stream(rec.url, body=ask("a"))  # its recording is used up: recorded again
        rec.settle()
    assert [r.json["messages"][0]["content"] for r in upstream.requests] == ["a", "b", "a"]
    assert recorded_questions(out) == ["a", "b", "a"]
    assert [i.response.end.reason for i in load(out).interactions] == ["complete"] * 3


def test_mode_none_replays_and_answers_unknown_requests_with_a_404(tmp_path: Path, upstream: Replayer) -> None:
    out = tmp_path / "c.yaml"
    with Recorder(upstream=upstream.url, cassette=out, mode="all") as rec:
        anthropic_stream(rec.url, body=ask("a"))
        rec.settle()
    before = out.read_bytes()
    with Recorder(upstream=upstream.url, cassette=out, mode="none", speed=0) as rec:
        replayed, error = anthropic_stream(rec.url, body=ask("a"))
        _, unknown = anthropic_stream(rec.url, body=ask("b"))
    assert error is None and replayed[-1]["type"] == "message_stop"
    assert isinstance(unknown, anthropic.NotFoundError)
    assert "no recorded interaction matches POST /v1/messages" in str(unknown)
    assert len(upstream.requests) == 1
    assert out.read_bytes() == before


def test_mode_none_without_a_cassette_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(CassetteError, match=r"missing\.yaml: no such file; mode 'none' only replays"):
        Recorder(cassette=tmp_path / "missing.yaml", mode="none")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "sometimes"}, r"unknown record mode 'sometimes'; choose one of: none, once, new_episodes, all"),
        ({"upstream": "ftp://example.com"}, r"upstream must be an http\(s\) URL"),
        ({"upstream": "https://api.anthropic.com/?key=1"}, r"must not have a query"),
        ({"timeout": 0}, r"timeout must be a number of seconds > 0"),
    ],
)
def test_bad_arguments_are_rejected_up_front(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Recorder(cassette=tmp_path / "c.yaml", **kwargs)


def test_recorder_arguments_are_keyword_only(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        Recorder(tmp_path / "c.yaml")  # type: ignore[misc]


def test_new_episodes_keeps_the_loaded_cassettes_faults(tmp_path: Path, upstream: Replayer) -> None:
    out = tmp_path / "c.yaml"
    save(Cassette(interactions=(capture(seed=12, request=Request(method="POST", path="/v1/messages", body=ask("a"))),), faults=("speed:0",)), out)
    with Recorder(upstream=upstream.url, cassette=out, mode="new_episodes") as rec:
        anthropic_stream(rec.url, body=ask("b"))
        rec.settle()
    saved = load(out)
    assert saved.faults == ("speed:0",)
    assert recorded_questions(out) == ["a", "b"]


async def test_upstream_silent_before_its_headers_gets_a_504_and_nothing_is_recorded(tmp_path: Path) -> None:
    async def silent(request: web.Request) -> web.StreamResponse:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    out = tmp_path / "c.yaml"
    async with ScriptedUpstream(silent) as up, Recorder(upstream=up.url, cassette=out, mode="all", timeout=0.2) as rec:
        reply = await raw_request(rec.url, "POST", "/v1/messages", body=b"{}")
        await rec.asettle()
    assert reply.status == 504
    assert json.loads(reply.body)["error"]["type"] == "timeout_error"
    assert "within 0.2 s" in json.loads(reply.body)["error"]["message"]
    assert not out.exists()


def test_a_cassette_that_cannot_be_written_is_reported_not_lost_silently(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    out = tmp_path / "not-a-dir" / "c.yaml"
    with Replayer(cassette(capture(seed=13, gaps_ms=(1.0, 2.0))), speed=0) as up:
        rec = Recorder(upstream=up.url, cassette=out, mode="all")
        with pytest.raises(StreamreelError, match=r"could not write the cassette .*not-a-dir/c\.yaml"):
            with rec:
                live, error = anthropic_stream(rec.url)
                assert error is None and live[-1]["type"] == "message_stop"  # the client is served regardless
    assert rec.write_error is not None
    assert KEY not in str(rec.write_error)


@pytest.mark.parametrize(("final", "reason"), [(b"data: [DONE]\n\n", "complete"), (b"data: not the end\n\n", "client_cancel")])
async def test_a_client_leaving_right_after_the_final_event_leaves_a_complete_recording(tmp_path: Path, final: bytes, reason: str) -> None:
    chunk = b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[]}\n\n'

    async def holds_the_end_back(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(chunk + final)
        await asyncio.Event().wait()  # the end of body never comes: the client leaves first
        return resp

    async def leave(data: bytes) -> None:
        if final in data or data.endswith(final):
            raise ConnectionAbortedError("client leaves")

    out = tmp_path / "c.yaml"
    async with ScriptedUpstream(holds_the_end_back) as up, Recorder(upstream=up.url, cassette=out, mode="all") as rec:
        with pytest.raises(ConnectionAbortedError):
            await raw_request(rec.url, "POST", "/v1/chat/completions", body=b"{}", on_data=leave)
        await rec.asettle()
    recorded = load(out).interactions[0].response
    assert recorded.end.reason == reason
    assert len(recorded.events or ()) == 2


# ---------------------------------------------------------------- new episodes: only the new ones are dumped

import time as _time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamreel.cassette import dumps


def _layouts(base: Cassette) -> dict[str, str]:
    """The same cassette in the layouts a file may have: as written, hand-commented, indented entries, flow style, faults first."""
    written = dumps(base, comment="recorded by hand\nline two")
    body = written.split("interactions:\n", 1)[1]
    indented = "".join(f"  {line}\n" if line else "\n" for line in body.rstrip("\n").split("\n"))
    flow = "streamreel: 1\ninteractions: " + json.dumps([{"request": {"method": "POST", "path": "/flow"}, "response": {"status": 200, "body": "x"}}]) + "\n"
    return {
        "written": written,
        "comments between entries": written.replace("\n- request:", "\n# an entry\n\n- request:"),
        "no final newline": written.rstrip("\n"),
        "indented entries": written.split("interactions:\n", 1)[0] + "interactions:\n" + indented,
        "faults after": written + "faults:\n- latency:first=1ms\n",
        "faults first": "streamreel: 1\nfaults: [latency:first=1ms]\ninteractions:\n" + body,
        "flow style": flow,
        "document end": written + "...\n",
    }


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(layout=st.sampled_from(["written", "comments between entries", "no final newline", "indented entries", "faults after", "faults first", "flow style", "document end"]), new=st.integers(min_value=1, max_value=3), seed=st.integers(0, 50))
def test_new_episodes_add_to_the_file_as_it_was_in_any_layout(tmp_path_factory: pytest.TempPathFactory, layout: str, new: int, seed: int) -> None:
    """Whatever the layout of the cassette on disk, the file after each new episode loads as the old
    interactions (and faults) followed by the new ones; where the layout allows, the old text is kept byte for byte."""
    out = tmp_path_factory.mktemp("episodes") / "c.yaml"
    base = cassette(capture(seed=seed, gaps_ms=(0.5, 1.0), keep=4, request=Request(method="POST", path="/v1/old")))
    text = _layouts(base)[layout]
    out.write_text(text, encoding="utf-8")
    before = load(out)
    item = capture(seed=seed + 1, gaps_ms=(0.5, 1.0), keep=3, request=Request(method="POST", path="/v1/messages"))

    async def main() -> None:
        async with Replayer(cassette(item), speed=0, match_on=("method", "path")) as up:
            async with Recorder(upstream=up.url, cassette=out, mode="new_episodes") as rec:
                for i in range(new):
                    body = json.dumps({**MESSAGE, "stream": True, "metadata": {"user_id": str(i)}}).encode()
                    assert (await raw_request(rec.url, "POST", "/v1/messages", body=body, headers={"content-type": "application/json"})).status == 200
                    await rec.asettle()
                    after = load(out)
                    assert after.interactions[: len(before.interactions)] == before.interactions
                    assert [x.request.body["metadata"]["user_id"] for x in after.interactions[len(before.interactions) :]] == [str(j) for j in range(i + 1)]
                    assert after.faults == before.faults
                    if layout in ("written", "comments between entries", "faults after", "faults first", "document end"):
                        head = text.split("\n...\n")[0].split("\nfaults:\n- ")[0]
                        assert out.read_text(encoding="utf-8").startswith(head)

    asyncio.run(main())


def _big_cassette_text(events: int) -> str:
    """A cassette of one long stream, written directly (dumping it would take longer than the test)."""
    lines = ["streamreel: 1", "interactions:", "- request:", "    method: POST", "    path: /v1/old", "  response:", "    status: 200", "    headers:", "      content-type: text/event-stream", "    headers_at: 1", "    events:"]
    lines += [f"    - {{t: {i + 2}, event: content_block_delta, data: '{{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"w{i} \"}}}}'}}" for i in range(events)]
    lines += ["    end:", f"      t: {events + 2}", "      reason: complete"]
    return "\n".join(lines) + "\n"


async def test_a_new_episode_costs_the_same_on_a_small_and_a_large_cassette(tmp_path: Path) -> None:
    """Each rewrite dumps the new interactions and copies the old text: on a 40,000-event cassette it
    takes about as long as on a 10-event one (dumping the old events would take seconds)."""
    item = capture(seed=3, gaps_ms=(0.5, 1.0), keep=3, request=Request(method="POST", path="/v1/messages"))
    times = {}
    async with Replayer(cassette(item), speed=0, match_on=("method", "path")) as up:
        for events in (10, 40_000):
            out = tmp_path / f"c{events}.yaml"
            out.write_text(_big_cassette_text(events), encoding="utf-8")
            async with Recorder(upstream=up.url, cassette=out, mode="new_episodes") as rec:
                spent = []
                for i in range(3):
                    body = json.dumps({**MESSAGE, "stream": True, "metadata": {"user_id": str(i)}}).encode()
                    await raw_request(rec.url, "POST", "/v1/messages", body=body, headers={"content-type": "application/json"})
                    started = _time.perf_counter()
                    await rec.asettle()
                    spent.append(_time.perf_counter() - started)
            times[events] = min(spent)
            assert len(load(out).interactions) == 4 and len(load(out).interactions[0].response.events or ()) == events
    # the large file is copied (~4 MB), not dumped: well under a second, where a full dump takes several
    assert times[40_000] < 0.5 + 5 * times[10], times
