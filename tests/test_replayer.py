from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import httpx2
import openai
import pytest

from streamreel import Cassette, End, Event, Interaction, Replayer, Request, Response
from streamreel.errors import StreamreelError
from streamreel.importer import import_file

DATA = Path(__file__).parent / "data"
ANTHROPIC_CAPTURES = sorted((DATA / "anthropic-sdk-python").glob("*"))
OPENAI_CAPTURES = sorted((DATA / "openai-python").glob("*.bin"))
PROMPT: Any = [{"role": "user", "content": "hi"}]


def expected_message(raw: bytes) -> dict[str, Any]:
    """What a capture holds, accumulated straight from its data lines (independent of the replayer)."""
    msg: dict[str, Any] = {"blocks": {}, "types": []}
    for line in raw.decode().splitlines():
        if not line.startswith("data:"):
            continue
        payload = json.loads(line[5:])
        kind = payload["type"]
        if kind != "ping":
            msg["types"].append(kind)
        if kind == "message_start":
            msg["id"], msg["model"] = payload["message"]["id"], payload["message"]["model"]
        elif kind == "content_block_start":
            msg["blocks"][payload["index"]] = {"type": payload["content_block"]["type"], "text": "", "json": "", "signature": None}
        elif kind == "content_block_delta":
            block, delta = msg["blocks"][payload["index"]], payload["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["text"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            elif delta["type"] == "input_json_delta":
                block["json"] += delta["partial_json"]
        elif kind == "message_delta":
            msg["stop_reason"] = payload["delta"]["stop_reason"]
            msg["output_tokens"] = payload["usage"]["output_tokens"]
    return msg


def assert_final_message_matches(message: Any, want: dict[str, Any]) -> None:
    assert message.id == want["id"]
    assert message.model == want["model"]
    assert message.stop_reason == want["stop_reason"]
    assert message.usage.output_tokens == want["output_tokens"]
    assert [b.type for b in message.content] == [want["blocks"][i]["type"] for i in sorted(want["blocks"])]
    for block, i in zip(message.content, sorted(want["blocks"])):
        expect = want["blocks"][i]
        if block.type == "text":
            assert block.text == expect["text"]
        elif block.type == "thinking":
            assert block.thinking == expect["text"]
            assert block.signature == expect["signature"]
        elif block.type == "tool_use":
            try:
                assert block.input == json.loads(expect["json"])
            except json.JSONDecodeError:  # a capture cut inside the tool input: the SDK keeps a partial parse
                assert set(block.input) and all(f'"{k}"' in expect["json"] for k in block.input)


@pytest.fixture(params=ANTHROPIC_CAPTURES, ids=lambda p: p.stem)
def capture(request: pytest.FixtureRequest) -> Path:
    return request.param


def test_sync_stream_helper_final_message_equals_capture(capture: Path) -> None:
    with Replayer(import_file(capture), speed=0) as reel:
        client = anthropic.Anthropic(base_url=reel.url, api_key="sk-test")
        with client.messages.stream(model="m", max_tokens=64, messages=PROMPT) as stream:
            message = stream.get_final_message()
    assert_final_message_matches(message, expected_message(capture.read_bytes()))


def test_sync_create_stream_yields_every_capture_event(capture: Path) -> None:
    want = expected_message(capture.read_bytes())
    with Replayer(import_file(capture), speed=0) as reel:
        client = anthropic.Anthropic(base_url=reel.url, api_key="sk-test")
        events = list(client.messages.create(model="m", max_tokens=64, messages=PROMPT, stream=True))
    assert [e.type for e in events] == want["types"]
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta")
    assert text == "".join(b["text"] for b in want["blocks"].values() if b["type"] == "text")


async def test_async_stream_helper_final_message_equals_capture(capture: Path) -> None:
    async with Replayer(import_file(capture), speed=0) as reel:
        client = anthropic.AsyncAnthropic(base_url=reel.url, api_key="sk-test")
        async with client.messages.stream(model="m", max_tokens=64, messages=PROMPT) as stream:
            message = await stream.get_final_message()
        await client.close()
    assert_final_message_matches(message, expected_message(capture.read_bytes()))


async def test_async_create_stream_yields_every_capture_event(capture: Path) -> None:
    want = expected_message(capture.read_bytes())
    async with Replayer(import_file(capture), speed=0) as reel:
        client = anthropic.AsyncAnthropic(base_url=reel.url, api_key="sk-test")
        stream = await client.messages.create(model="m", max_tokens=64, messages=PROMPT, stream=True)
        events = [e async for e in stream]
        await client.close()
    assert [e.type for e in events] == want["types"]


async def test_wire_bytes_equal_the_capture_byte_for_byte(capture: Path) -> None:
    raw = capture.read_bytes()
    async with Replayer(import_file(capture), speed=0) as reel, aiohttp.ClientSession() as http:
        async with http.post(f"{reel.url}/v1/messages", json={}) as resp:
            body = await resp.read()
            assert resp.headers["content-type"].startswith("text/event-stream")
    data_lines = [line for line in raw.splitlines() if line.startswith(b"data: ")]
    assert [line for line in body.splitlines() if line.startswith(b"data: ")] == data_lines
    assert body == raw.rstrip(b"\n") + b"\n\n"  # the same framing; a missing final blank line is restored


@pytest.mark.parametrize("path", OPENAI_CAPTURES, ids=lambda p: p.stem[:10])
def test_openai_sdk_reads_openai_captures(path: Path) -> None:
    raw = path.read_bytes()
    chunks = [json.loads(line[6:]) for line in raw.decode().splitlines() if line.startswith("data: {")]
    want: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            want[choice["index"]] = want.get(choice["index"], "") + (choice["delta"].get("content") or "")
    with Replayer(import_file(path), speed=0) as reel:
        client = openai.OpenAI(base_url=f"{reel.url}/v1", api_key="sk-test")
        got: dict[int, str] = {}
        n = 0
        for chunk in client.chat.completions.create(model="gpt-4o", messages=PROMPT, stream=True):
            n += 1
            for choice in chunk.choices:
                got[choice.index] = got.get(choice.index, "") + (choice.delta.content or "")
    assert n == len(chunks)
    assert got == want


def timed_cassette(times: list[float], *, headers_at: float = 40.0) -> Cassette:
    events = [Event(t=t, event="content_block_delta", data=json.dumps({"i": i})) for i, t in enumerate(times)]
    return Cassette.from_events(events, headers_at=headers_at)


async def read_event_times(url: str) -> tuple[float, list[float]]:
    """Time to headers and arrival time of each event, in ms from sending the request."""
    async with aiohttp.ClientSession() as http:
        start = time.monotonic()
        async with http.post(f"{url}/v1/messages", json={}) as resp:
            headers_ms = (time.monotonic() - start) * 1000
            arrivals = []
            while True:
                block = await resp.content.readuntil(b"\n\n")
                if not block:
                    break
                arrivals.append((time.monotonic() - start) * 1000)
    return headers_ms, arrivals


async def test_speed_1_follows_recorded_times_without_drift() -> None:
    times = [100 + 30 * i + 7 * (i % 3) for i in range(20)]
    async with Replayer(timed_cassette(times), speed=1) as reel:
        headers_ms, arrivals = await read_event_times(reel.url)
    assert len(arrivals) == len(times)
    assert 35 <= headers_ms <= 40 + 60
    gap_errors = sorted(abs((b - a) - (tb - ta)) for a, b, ta, tb in zip(arrivals, arrivals[1:], times, times[1:]))
    assert gap_errors[len(gap_errors) // 2] < 8, f"median gap error {gap_errors[len(gap_errors) // 2]:.1f} ms"
    errors = [got - want for got, want in zip(arrivals, times)]
    assert all(e >= -2 for e in errors), "an event went out before its time"
    assert errors[-1] - min(errors) < 40, "delays accumulated drift"


async def test_speed_scales_gaps() -> None:
    times = [0, 200, 400]
    async with Replayer(timed_cassette(times, headers_at=0), speed=2) as reel:
        _, arrivals = await read_event_times(reel.url)
    assert 180 <= arrivals[-1] <= 400  # 400 ms recorded; at speed 1 it would be >= 400


def test_speed_0_replays_1000_events_in_well_under_a_second() -> None:
    times = [float(i * 50) for i in range(1000)]  # 50 s of recorded time
    events = [Event(t=t, event="content_block_delta", data=json.dumps({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}})) for t in times]
    from streamreel.providers.anthropic import TextBlock, message_events

    head, *_, stop_delta, stop = message_events([TextBlock(("",))])
    cas = Cassette.from_events([head, *events, stop_delta, stop])
    with Replayer(cas, speed=0) as reel:
        client = anthropic.Anthropic(base_url=reel.url, api_key="sk-test")
        start = time.monotonic()
        n = sum(1 for _ in client.messages.create(model="m", max_tokens=5, messages=PROMPT, stream=True))
        elapsed = time.monotonic() - start
    assert n == 1003
    assert elapsed < 0.5, f"1,000 events took {elapsed:.3f}s"


def test_accepts_any_auth_header_version_and_sdk_query() -> None:
    with Replayer(import_file(ANTHROPIC_CAPTURES[0]), speed=0) as reel:
        bearer = anthropic.Anthropic(base_url=reel.url, api_key="sk-bearer")
        assert list(bearer.messages.create(model="m", max_tokens=5, messages=PROMPT, stream=True))
        with bearer.beta.messages.stream(model="m", max_tokens=5, messages=PROMPT, extra_query={"beta": "true"}) as stream:
            assert stream.get_final_message().stop_reason
        legacy = httpx2.post(f"{reel.url}/v1/messages", json={}, headers={"x-api-key": "sk-legacy", "anthropic-version": "2099-01-01"})
        assert legacy.status_code == 200
        seen = reel.requests
    assert seen[0].headers["authorization"] == "Bearer sk-bearer"
    assert seen[1].query == "beta=true"
    assert seen[2].headers["x-api-key"] == "sk-legacy"


def test_request_bodies_up_to_the_api_limit_are_accepted() -> None:
    image = "A" * (20 * 1024 * 1024)
    with Replayer(import_file(ANTHROPIC_CAPTURES[0]), speed=0) as reel:
        client = anthropic.Anthropic(base_url=reel.url, api_key="sk-test")
        content: Any = [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": image}}]
        with client.messages.stream(model="m", max_tokens=5, messages=[{"role": "user", "content": content}]) as stream:
            assert stream.get_final_message().stop_reason == "end_turn"
        assert len(reel.requests[0].body) > 20 * 1024 * 1024


def test_ground_truth_records_requests_and_what_was_sent() -> None:
    cas = import_file(ANTHROPIC_CAPTURES[0])
    with Replayer(cas, speed=0) as reel:
        client = anthropic.Anthropic(base_url=reel.url, api_key="sk-test")
        list(client.messages.create(model="claude-x", max_tokens=5, messages=PROMPT, stream=True))
        sent = reel.settle()
        assert reel.requests[0].json["model"] == "claude-x"
    recorded = cas.interactions[0].response.events
    assert recorded is not None
    assert sent[0].ending == "end" and not sent[0].client_hung_up
    assert [(e.event, e.data) for e in sent[0].events] == [(e.event, e.data) for e in recorded]
    assert sent[0].interaction == 0 and sent[0].status == 200


def cut_cassette(reason: str) -> Cassette:
    text = import_file(DATA / "anthropic-sdk-python" / "stream-b-fallback.sse")
    events = text.interactions[0].response.events
    assert events is not None
    return Cassette.from_events(events[:8], end=End(t=events[7].t, reason=reason))


def partial_text(events: list[Any]) -> str:
    return "".join(e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta")


def test_recorded_upstream_disconnect_replays_as_a_cut_after_the_last_event() -> None:
    cas = cut_cassette("upstream_disconnect")
    with Replayer(cas, speed=0) as reel:
        client = anthropic.Anthropic(base_url=reel.url, api_key="sk-test", max_retries=0)
        seen: list[Any] = []
        with pytest.raises(httpx2.RemoteProtocolError):
            for event in client.messages.create(model="m", max_tokens=5, messages=PROMPT, stream=True):
                seen.append(event)
        sent = reel.settle()[0]
    assert sent.ending == "close"
    assert len(seen) == 7  # the 8 recorded events less the ping the SDK skips
    assert partial_text(seen) == partial_text_of(cas)


def partial_text_of(cas: Cassette) -> str:
    events = cas.interactions[0].response.events or ()
    return "".join(e.json()["delta"]["text"] for e in events if e.event == "content_block_delta" and e.json()["delta"]["type"] == "text_delta")


def test_recorded_timeout_replays_as_silence_until_the_client_gives_up() -> None:
    cas = cut_cassette("timeout")
    with Replayer(cas, speed=0) as reel:
        client = anthropic.Anthropic(base_url=reel.url, api_key="sk-test", max_retries=0, timeout=httpx2.Timeout(5.0, read=0.3))
        seen: list[Any] = []
        with pytest.raises(httpx2.ReadTimeout):
            for event in client.messages.create(model="m", max_tokens=5, messages=PROMPT, stream=True):
                seen.append(event)
        sent = reel.settle()[0]
    assert len(seen) == 7
    assert sent.client_hung_up and sent.ending == "hang"
    assert sent.events_done == 8


def test_client_hanging_up_early_is_reported() -> None:
    cas = timed_cassette([10.0 * i for i in range(200)], headers_at=0)
    with Replayer(cas, speed=1) as reel:
        with httpx2.stream("POST", f"{reel.url}/v1/messages", json={}) as resp:
            lines = resp.iter_lines()
            assert next(lines).startswith("event:")
        sent = reel.settle()[0]
    assert sent.client_hung_up
    assert sent.ending == "client_hung_up"
    assert 1 <= sent.events_done < 200


def test_plain_json_response_is_served_as_recorded() -> None:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [{"type": "text", "text": "plain"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    cas = Cassette(interactions=(Interaction(request=Request(method="POST", path="/v1/messages"), response=Response(headers={"content-type": "application/json"}, body=json.dumps(message))),))
    with Replayer(cas, speed=0) as reel:
        got = anthropic.Anthropic(base_url=reel.url, api_key="k").messages.create(model="m", max_tokens=5, messages=PROMPT)
    assert got.content[0].text == "plain"  # type: ignore[union-attr]


def test_load_swaps_the_cassette_without_restarting() -> None:
    first, second = import_file(ANTHROPIC_CAPTURES[0]), import_file(ANTHROPIC_CAPTURES[-1])
    with Replayer(first, speed=0) as reel:
        url = reel.url
        client = anthropic.Anthropic(base_url=url, api_key="k")
        with client.messages.stream(model="m", max_tokens=5, messages=PROMPT) as stream:
            a = stream.get_final_message()
        reel.load(second)
        assert reel.requests == []
        with client.messages.stream(model="m", max_tokens=5, messages=PROMPT) as stream:
            b = stream.get_final_message()
        assert reel.url == url
    assert a.id != b.id


def test_binds_loopback_and_url_needs_a_running_server() -> None:
    reel = Replayer()
    with pytest.raises(StreamreelError, match="not running"):
        reel.url
    with reel:
        assert reel.url.startswith("http://127.0.0.1:")


def test_loads_a_cassette_from_a_path(tmp_path: Path) -> None:
    from streamreel.cassette import save

    save(import_file(ANTHROPIC_CAPTURES[0]), tmp_path / "c.yaml")
    with Replayer(tmp_path / "c.yaml", speed=0) as reel:
        with anthropic.Anthropic(base_url=reel.url, api_key="k").messages.stream(model="m", max_tokens=5, messages=PROMPT) as stream:
            assert stream.get_final_message().id


async def test_concurrent_streams_do_not_delay_each_other() -> None:
    cas = timed_cassette([50.0 * i for i in range(6)], headers_at=0)
    async with Replayer(cas, speed=1) as reel:
        start = time.monotonic()
        results = await asyncio.gather(*(read_event_times(reel.url) for _ in range(8)))
        elapsed = time.monotonic() - start
    assert all(len(arrivals) == 6 for _, arrivals in results)
    assert elapsed < 0.25 + 0.5  # one after another they would take 8 x 0.25 s


async def test_requests_whose_bodies_arrive_out_of_order_keep_distinct_indices() -> None:
    cas = Cassette.from_events([Event(t=0, event="message_stop", data='{"type":"message_stop"}')], path="/v1/messages", body=None)
    body = b'{"n": 1}'
    head = f"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
    async with Replayer(cas, speed=0) as reel:
        port = int(reel.url.rsplit(":", 1)[1])
        slow_reader, slow = await asyncio.open_connection("127.0.0.1", port)
        slow.write(head)  # headers only: the server waits for the body
        await slow.drain()
        fast_reader, fast = await asyncio.open_connection("127.0.0.1", port)
        fast.write(head + body)
        await fast.drain()
        assert (await fast_reader.read()).startswith(b"HTTP/1.1 200")
        slow.write(body)
        await slow.drain()
        assert (await slow_reader.read()).startswith(b"HTTP/1.1 200")
        for writer in (slow, fast):
            writer.close()
        sent = await reel.asettle(requests=2)
    assert sorted(r.request_index for r in sent) == [0, 1]
    assert [r.request_index for r in sent] == list(range(len(reel.requests)))


def test_faults_that_cannot_apply_to_a_response_answer_400_naming_them() -> None:
    events = [Event(t=0, event="message_start", data="{}"), Event(t=200_000, event="message_stop", data="{}")]
    with Replayer(Cassette.from_events(events), speed=0) as reel:
        resp = httpx2.post(f"{reel.url}/v1/messages", json={}, headers={"x-streamreel-faults": "pings:every=1ms"})
        ok = httpx2.post(f"{reel.url}/v1/messages", json={}, headers={"x-streamreel-faults": "pings:every=10s"})
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "pings:every=1ms" in error["message"] and "at most" in error["message"]
    assert ok.status_code == 200 and ok.text.count("event: ping") == 19


def test_history_keeps_only_the_last_requests_and_counts_on() -> None:
    with Replayer(import_file(ANTHROPIC_CAPTURES[0]), speed=0, history=2) as reel:
        for n in range(5):
            httpx2.post(f"{reel.url}/v1/messages", json={"n": n})
        sent = reel.settle(requests=5)
        seen = reel.requests
    assert [q.json["n"] for q in seen] == [3, 4]
    assert [r.request_index for r in sent] == [3, 4]


def test_load_takes_matching_options_for_that_cassette_only() -> None:
    cas = Cassette.from_events([Event(t=0, event="message_stop", data="{}")], body={"model": "m", "metadata": {"ts": 1}})
    with Replayer(speed=0) as reel:
        reel.load(cas, ignore_body_keys=["metadata"])
        assert httpx2.post(f"{reel.url}/v1/messages", json={"model": "m", "metadata": {"ts": 2}}).status_code == 200
        reel.load(cas)
        assert httpx2.post(f"{reel.url}/v1/messages", json={"model": "m", "metadata": {"ts": 2}}).status_code == 404


async def _raw_exchange(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return data


class _LateHandler(Replayer):
    """A replayer whose handlers start ``late_s`` after their request arrived, the loop busy
    meanwhile: what a burst of other requests does to the last ones in it."""

    late_s = 0.3

    async def _handle(self, request: Any) -> Any:
        busy_until = time.monotonic() + self.late_s
        while time.monotonic() < busy_until:
            pass
        return await super()._handle(request)


async def test_a_response_is_timed_from_its_request_arrival_not_from_when_its_handler_started() -> None:
    async with _LateHandler(timed_cassette([400.0, 450.0], headers_at=0)) as reel:
        _, arrivals = await read_event_times(reel.url)
        received = reel.requests[0]
    assert 380 <= arrivals[0] < 400 + 1000 * _LateHandler.late_s - 100, f"first event at {arrivals[0]:.0f} ms, planned at 400 ms from the request"
    assert 30 <= arrivals[1] - arrivals[0] <= 90


@pytest.mark.parametrize("faults", [[], ["fragment:size=7"]], ids=["whole events", "fragmented"])
async def test_a_stream_its_server_reached_too_late_for_its_first_event_keeps_the_recorded_gaps(faults: list[str]) -> None:
    """Overdue events are not sent in one clump: the first goes at once and the rest keep their gaps."""
    async with _LateHandler(timed_cassette([200.0, 350.0, 500.0], headers_at=0), faults=faults) as reel:
        _, arrivals = await read_event_times(reel.url)
    assert 1000 * _LateHandler.late_s - 20 <= arrivals[0] < 1000 * _LateHandler.late_s + 150  # timed from the handler: 500 ms
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert all(120 <= g <= 200 for g in gaps), f"gaps {gaps} ms, recorded 150 ms"


class _SlowStarts(Replayer):
    """A replayer that takes ``start_s`` of CPU to choose each answer: many such requests at
    once hold the loop as a burst of hundreds does."""

    start_s = 0.005

    def _answer(self, received: Any, live: Any) -> Any:
        busy_until = time.monotonic() + self.start_s
        while time.monotonic() < busy_until:
            pass
        return super()._answer(received, live)


async def test_a_burst_of_new_requests_does_not_hold_up_the_streams_already_under_way() -> None:
    cas = timed_cassette([10.0 * i for i in range(80)], headers_at=0)
    newcomers = 60  # 0.3 s of starting, in one turn of the loop if nothing stops it
    async with _SlowStarts(cas) as reel, aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        async with http.post(f"{reel.url}/v1/messages", json={}) as resp:
            for _ in range(5):
                await resp.content.readuntil(b"\n\n")
            others = [asyncio.ensure_future(http.post(f"{reel.url}/v1/messages", json={})) for _ in range(newcomers)]
            arrivals = []
            while True:
                block = await resp.content.readuntil(b"\n\n")
                if not block:
                    break
                arrivals.append(time.monotonic())
        for other in await asyncio.gather(*others):
            assert other.status == 200
            other.release()
    gaps = [(b - a) * 1000 for a, b in zip(arrivals, arrivals[1:])]
    assert max(gaps) < 100, f"a 10 ms gap took {max(gaps):.0f} ms while {newcomers} requests started"


async def test_requests_that_leave_while_waiting_their_turn_do_not_hold_up_the_others() -> None:
    cas = timed_cassette([10.0 * i for i in range(30)], headers_at=0)

    async def whole(http: aiohttp.ClientSession) -> int:
        async with http.post(f"{reel.url}/v1/messages", json={}) as resp:
            return (await resp.read()).count(b"\n\n")

    async with _SlowStarts(cas) as reel, aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        async with http.post(f"{reel.url}/v1/messages", json={}) as resp:  # a stream under way: newcomers wait their turn
            await resp.content.readuntil(b"\n\n")
            others = [asyncio.ensure_future(whole(http)) for _ in range(40)]
            deadline = time.monotonic() + 10
            while len(reel._turns.waiting) < 10 and time.monotonic() < deadline:
                await asyncio.sleep(0.001)
            assert len(reel._turns.waiting) >= 10, "the newcomers did not wait their turn"
            for leaver in others[::2]:
                leaver.cancel()
            await resp.read()
        done = await asyncio.wait_for(asyncio.gather(*others[1::2]), 30)  # not forever: a lost place in line would hang them
        await reel.asettle()
    assert done == [30] * 20
    assert not reel._turns.waiting


async def test_a_pipelined_request_is_timed_from_when_the_one_before_it_was_answered() -> None:
    """Its head arrived with the first one's, but an upstream starts on it only then: its events are not due at once."""
    cas = timed_cassette([200.0, 300.0], headers_at=0)
    request = b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
    last = request.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n")
    async with Replayer(cas) as reel:
        start = time.monotonic()
        raw = await _raw_exchange(reel.url, request + last)
        elapsed = time.monotonic() - start
        sent = await reel.asettle(requests=2)
    assert raw.count(b"HTTP/1.1 200") == 2
    assert [s.events_done for s in sent] == [2, 2]
    assert elapsed >= 0.55, f"both responses took {elapsed * 1000:.0f} ms; each lasts 300 ms (timed from the pipelined head's arrival: 400 ms)"


async def test_unfaulted_and_byte_faulted_streams_put_the_same_bytes_on_the_wire() -> None:
    """The hot path frames HTTP chunks itself; the generic path goes through aiohttp. Same bytes, same truth."""
    cas = timed_cassette([float(i) for i in range(50)], headers_at=0)
    wire = b"".join(e.wire for e in cas.interactions[0].response.events or ())
    request = b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    bodies = []
    for faults in ([], ["fragment:size=2000"]):  # at speed 0 the 50 events are one 2190-byte write: two pieces
        async with Replayer(cas, speed=0, faults=faults) as reel:
            raw = await _raw_exchange(reel.url, request)
            sent = (await reel.asettle())[0]
        head, _, body = raw.partition(b"\r\n\r\n")
        assert b"transfer-encoding: chunked" in head.lower()
        assert body.endswith(b"\r\n0\r\n\r\n")
        assert sent.data == wire and sent.events_done == 50 and sent.ending == "end"
        bodies.append(_dechunk(body))
    assert bodies[0] == bodies[1] == wire


async def test_an_http_1_0_client_gets_the_stream_unchunked() -> None:
    cas = timed_cassette([float(i) for i in range(20)], headers_at=0)
    wire = b"".join(e.wire for e in cas.interactions[0].response.events or ())
    async with Replayer(cas, speed=0) as reel:
        raw = await _raw_exchange(reel.url, b"POST /v1/messages HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}")
        sent = (await reel.asettle())[0]
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"chunked" not in head.lower()
    assert body == wire == sent.data


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    while True:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return bytes(out)
        out += rest[:size]
        assert rest[size : size + 2] == b"\r\n"
        body = rest[size + 2 :]


# ---------------------------------------------------------------- ground truth bounded by bytes

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(min_value=0, max_value=200_000), min_size=1, max_size=12), bound=st.integers(min_value=0, max_value=600_000), count=st.one_of(st.none(), st.integers(0, 6)))
def test_history_keeps_the_latest_requests_that_fit_its_bytes_and_its_count(sizes: list[int], bound: int, count: int | None) -> None:
    """Whatever the sizes: what is kept is the latest requests, as many as fit ``history_bytes`` (a body
    counts twice, raw and parsed) and ``history``; their responses with them."""
    import httpx2

    with Replayer(timed_cassette([1.0, 2.0], headers_at=0), speed=0, history=count, history_bytes=bound) as reel:
        with httpx2.Client() as client:
            for i, size in enumerate(sizes):
                client.post(f"{reel.url}/v1/messages", content=json.dumps({"i": i, "pad": "x" * size}).encode(), headers={"content-type": "application/json"})
        kept = reel.settle()
        requests = reel.requests
    held = sum(2 * len(r.body) + len(r.target) + sum(len(k) + len(v) for k, v in r.headers.items()) + 512 for r in requests) + sum(len(s.data) for s in kept if s.data)
    assert held <= bound and (count is None or len(requests) <= count)
    assert [json.loads(r.body)["i"] for r in requests] == list(range(len(sizes)))[len(sizes) - len(requests) :]
    assert [s.request_index for s in kept] == [len(sizes) - len(requests) + i for i in range(len(requests))]


def test_serve_keeps_its_memory_bounded_however_large_the_requests() -> None:
    """``streamreel serve`` bounds its history by bytes: eight 20 MiB requests do not stay in memory (they did: 40 MB each)."""
    import subprocess
    import sys

    import httpx2

    from streamreel.cassette import bundled

    proc = subprocess.Popen([sys.executable, "-m", "streamreel", "serve", str(bundled("text"))], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * (20 << 20)}]}).encode()

        def rss_mb() -> float:
            with open(f"/proc/{proc.pid}/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024

        with httpx2.Client(timeout=60) as client:
            client.post(f"{url}/v1/messages", content=b"{}", headers={"content-type": "application/json"})
            before = rss_mb()
            for _ in range(8):
                assert client.post(f"{url}/v1/messages", content=body, headers={"content-type": "application/json"}).status_code == 200
            after = rss_mb()
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
    assert after - before < 150, (before, after)


# ---------------------------------------------------------------- ground truth when the client leaves

_LEAVING_CLIENT = r'''
import socket, struct, sys
port, want, how, rcvbuf, by = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
s = socket.socket()
if rcvbuf:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
s.connect(("127.0.0.1", port))
s.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
raw = b""
def body():
    head, _, rest = raw.partition(b"\r\n\r\n")
    out = b""
    while True:
        size, sep, rest = rest.partition(b"\r\n")
        if not sep or len(rest) < int(size or b"0", 16):
            return out + rest[: int(size, 16)] if sep and size else out
        n = int(size, 16)
        out, rest = out + rest[:n], rest[n + 2 :]
        if n == 0:
            return out
while True:
    got = body()
    if (by == "bytes" and len(got) >= want) or (by == "events" and got.count(b"\n\n") >= want):
        break
    chunk = s.recv(1024 if rcvbuf else 65536)
    if not chunk:
        break
    raw += chunk
if how == "rst":
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
print(len(body()))
'''


def _leave(port: int, want: int, how: str, *, rcvbuf: int = 0, by: str = "events") -> int:
    """Run a client in its own process (its timing owes nothing to this one's GIL): it reads until it
    holds ``want`` events (or body bytes), then closes (FIN) or resets; returns the body bytes it read."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _LEAVING_CLIENT, str(port), str(want), how, str(rcvbuf), by], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(k=st.integers(min_value=1, max_value=7), how=st.sampled_from(["fin", "rst"]), faults=st.sampled_from([(), "latency:each=60ms", "latency:each=60ms|fragment:size=5"]))
def test_a_client_that_leaves_while_the_server_waits_gets_the_same_ground_truth_every_time(k: int, how: str, faults: Any) -> None:
    """``data`` is what was handed to the connection before the server saw the client go. A client that
    reads k events and leaves while the server waits for the next one's time: exactly those k events, every run."""
    cas = timed_cassette([60.0 * (i + 1) for i in range(9)], headers_at=0)
    spec = faults.split("|") if isinstance(faults, str) else faults
    with Replayer(cas, speed=1 if not faults else 0, faults=spec) as reel:
        outcomes = set()
        for run in range(3):
            read = _leave(reel.port, k, how)
            sent = reel.settle(requests=run + 1)[-1]
            outcomes.add((sent.events_done, sent.bytes_sent, sent.ending))
            assert read <= sent.bytes_sent
    want = sum(len(e.wire) for e in (cas.interactions[0].response.events or ())[:k])
    assert outcomes == {(k, want, "client_hung_up")}, outcomes


@settings(max_examples=10, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(want=st.integers(min_value=20_000, max_value=300_000), how=st.sampled_from(["fin", "rst"]), faulted=st.booleans())
def test_the_ground_truth_never_holds_less_than_a_slow_reader_got(want: int, how: str, faulted: bool) -> None:
    """A client with a small receive buffer keeps the server waiting for it to read; whatever it had read
    when it left, ``data`` holds at least that (a piece is counted once handed over, not once the wait ends)."""
    events = [Event(t=0.0, event="content_block_delta", data=json.dumps({"i": i, "pad": "p" * 2000})) for i in range(5000)]
    cas = Cassette.from_events(events, headers_at=0)
    with Replayer(cas, speed=0, faults="fragment:size=3000" if faulted else ()) as reel:
        read = _leave(reel.port, want, how, rcvbuf=4096, by="bytes")
        (sent,) = reel.settle()
    assert sent.ending == "client_hung_up" and read <= sent.bytes_sent, (read, sent.bytes_sent)
    assert sent.data == b"".join(e.wire for e in events)[: sent.bytes_sent]
