"""Resilience verdicts: each check flags a misbehaving real client and passes a well-behaved one.

The clients are the real anthropic and openai SDKs and raw httpx2/aiohttp clients, against a
real replayer on 127.0.0.1; the verdicts come from the server's ground truth only.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace
from typing import Any

import aiohttp
import anthropic
import httpx2
import openai
import pytest

from streamreel import Cassette, Replayer, providers
from streamreel.cassette import bundled, load
from streamreel.fault_injection import Context, Error
from streamreel.synth import synth_cassette
from streamreel.verdicts import CHECKS, RETRYABLE_ERRORS, Exchange, Verdicts, ajudge, assert_resilient, assess, exchanges, judge

from _browser_helpers import CutAfter, event_source

KEY = "sk-ant-api03-" + "VerdictTestKey" * 3
REQUEST = {"model": "claude-test", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


def failed(verdicts: Verdicts) -> list[str]:
    return [v.check for v in verdicts.failed]


def sdk(url: str, **options: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key=KEY, **{"max_retries": 0, **options})


def read_all(client: anthropic.Anthropic) -> str:
    with client.messages.stream(**REQUEST) as stream:
        return stream.get_final_text()


# ---------------------------------------------------------------- gave_up


def errored_then_clean() -> Cassette:
    """Two recordings of the same request: the first failed mid-stream with overloaded_error, the second did not."""
    item = load(bundled("text")).interactions[0]
    item = replace(item, request=replace(item.request, body=None))
    events = Error(after_events=4).apply_events(item.response.events or (), Context(interaction=item, provider="anthropic"))
    failing = replace(item, response=replace(item.response, events=events))
    return Cassette(interactions=(failing, item))


def test_gave_up_flags_a_client_that_does_not_retry_an_overloaded_error_event() -> None:
    with Replayer(errored_then_clean(), speed=0) as r:
        with sdk(r.url) as client, pytest.raises(anthropic.APIStatusError):
            read_all(client)
        verdicts = judge(r)
    assert failed(verdicts) == ["gave_up"]
    (evidence,) = verdicts["gave_up"].evidence
    assert evidence.requests == (0,) and "overloaded_error sent mid-stream" in evidence.detail
    assert evidence.at_ms >= 0


def test_gave_up_passes_a_client_that_retries_the_stream() -> None:
    def with_retry(client: anthropic.Anthropic, attempts: int = 3) -> str:
        for attempt in range(attempts):
            try:
                return read_all(client)
            except anthropic.APIStatusError as e:
                if attempt == attempts - 1 or e.type not in ("overloaded_error", "api_error"):
                    raise
        raise AssertionError("unreachable")

    with Replayer(errored_then_clean(), speed=0) as r:
        with sdk(r.url) as client:
            assert with_retry(client).startswith("Hello! I'm doing well")
        verdicts = judge(r)
    assert verdicts.ok, verdicts.report()
    assert verdicts.requests == 2


def test_gave_up_reads_the_openai_error_chunk_too_and_ignores_errors_not_worth_retrying() -> None:
    with Replayer(bundled("openai_chat"), speed=0, faults="error:after=2,type=overloaded_error") as r:
        with openai.OpenAI(base_url=r.url + "/v1", api_key="test", max_retries=0) as client, pytest.raises(openai.APIError):
            for _ in client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True):
                pass
        assert failed(judge(r)) == ["gave_up"]
        r.load(bundled("text"), faults="error:after=4,type=invalid_request_error")
        with sdk(r.url) as client, pytest.raises(anthropic.APIStatusError):
            read_all(client)
        assert judge(r).ok, "an invalid_request_error is not worth retrying"


# ---------------------------------------------------------------- ignored_retry_after


def raw_retries(url: str, *, attempts: int, wait_s: Any) -> list[int]:
    """A hand-written client: POSTs until it gets a 200, waiting ``wait_s(attempt)`` between tries."""
    statuses = []
    with httpx2.Client(timeout=10) as client:
        for attempt in range(attempts):
            resp = client.post(url + "/v1/messages", json=REQUEST)
            statuses.append(resp.status_code)
            if resp.status_code == 200:
                break
            time.sleep(wait_s(attempt))
    return statuses


def test_ignored_retry_after_flags_a_client_that_retries_sooner() -> None:
    with Replayer(bundled("text"), speed=0, faults="http:status=429,times=2,retry_after=300ms") as r:
        assert raw_retries(r.url, attempts=3, wait_s=lambda _: 0.0) == [429, 429, 200]
        verdicts = judge(r)
    assert "ignored_retry_after" in failed(verdicts)
    first = verdicts["ignored_retry_after"].evidence[0]
    assert first.requests == (0, 1) and "retry-after 300 ms" in first.detail


def test_ignored_retry_after_passes_the_sdk_which_honours_it() -> None:
    with Replayer(bundled("text"), speed=0, faults="http:status=429,times=2,retry_after=300ms") as r:
        with sdk(r.url, max_retries=2) as client:
            read_all(client)
        verdicts = judge(r)
        waits = [b.arrived_ms - a.end_ms for a, b in zip(exchanges(r.requests, r.responses, epoch=r.epoch), exchanges(r.requests, r.responses, epoch=r.epoch)[1:]) if a.end_ms]
    assert verdicts.ok, verdicts.report()
    assert verdicts.requests == 3 and all(w >= 299 for w in waits)


# ---------------------------------------------------------------- retry_storm


def test_retry_storm_flags_retries_at_a_fixed_pace() -> None:
    with Replayer(bundled("text"), speed=0, faults="http:status=529,times=3") as r:
        assert raw_retries(r.url, attempts=5, wait_s=lambda _: 0.03) == [529, 529, 529, 200]
        verdicts = judge(r)
    assert failed(verdicts) == ["retry_storm"]
    (evidence,) = verdicts["retry_storm"].evidence
    assert evidence.requests == (0, 1, 2, 3) and "not growing" in evidence.detail


def test_retry_storm_passes_exponential_backoff_by_hand_and_by_the_sdk() -> None:
    with Replayer(bundled("text"), speed=0, faults="http:status=529,times=2") as r:
        assert raw_retries(r.url, attempts=5, wait_s=lambda k: 0.08 * 3**k) == [529, 529, 200]
        assert judge(r).ok, judge(r).report()
        r.load(bundled("text"), faults="http:status=529,times=2")
        with sdk(r.url, max_retries=2) as client:
            read_all(client)
        verdicts = judge(r)
    assert verdicts.ok, verdicts.report()
    assert verdicts.requests == 3


def test_retries_honouring_retry_after_are_no_storm() -> None:
    with Replayer(bundled("text"), speed=0, faults="http:status=529,times=3,retry_after=20ms") as r:
        with sdk(r.url, max_retries=3) as client:
            read_all(client)
        verdicts = judge(r)
    assert verdicts.ok and verdicts.requests == 4, verdicts.report()


# ---------------------------------------------------------------- waited_on_silence


def test_waited_on_silence_passes_a_client_with_a_read_timeout_under_the_bound() -> None:
    with Replayer(bundled("text"), speed=0, faults="stall:after=4") as r:
        with sdk(r.url, timeout=0.3) as client, pytest.raises(httpx2.ReadTimeout):
            read_all(client)
        verdicts = judge(r, silence_s=1.0)
    assert verdicts.ok, verdicts.report()
    assert 250 < exchanges(r.requests, r.responses)[0].silent_ms < 1000


def test_waited_on_silence_flags_a_read_timeout_longer_than_the_bound() -> None:
    with Replayer(bundled("text"), speed=0, faults="stall:after=4") as r:
        with sdk(r.url, timeout=1.2) as client, pytest.raises(httpx2.ReadTimeout):
            read_all(client)
        verdicts = judge(r, silence_s=0.5)
    assert failed(verdicts) == ["waited_on_silence"]
    (evidence,) = verdicts["waited_on_silence"].evidence
    assert evidence.requests == (0,) and "until the client left; the bound is 500 ms" in evidence.detail


def reads_until_silent(url: str, reached: threading.Event, outcome: list[BaseException]) -> None:
    """A client with no read timeout at all: reads the stream's first events, then waits forever."""
    try:
        with httpx2.Client(timeout=httpx2.Timeout(10, read=None)) as client, client.stream("POST", url + "/v1/messages", json=REQUEST) as resp:
            for line in resp.iter_lines():
                if line.startswith("event: content_block_delta"):
                    reached.set()
    except httpx2.HTTPError as e:
        outcome.append(e)


def test_waited_on_silence_flags_a_stream_still_open_and_silent_when_checked() -> None:
    with Replayer(bundled("text"), speed=0, faults="stall:after=4") as r:
        reached, outcome = threading.Event(), []
        worker = threading.Thread(target=reads_until_silent, args=(r.url, reached, outcome))
        worker.start()
        try:
            assert reached.wait(20)
            verdicts = judge(r, grace_s=0.1)
        finally:
            r.cut_inflight()
            worker.join(20)
    assert "waited_on_silence" in failed(verdicts)
    assert "still open after" in verdicts["waited_on_silence"].evidence[0].detail
    assert outcome, "the cut ended the client's wait"


# ---------------------------------------------------------------- dangling_stream


def test_dangling_stream_flags_a_stream_left_open_when_the_client_moves_on() -> None:
    with Replayer(bundled("text"), speed=0, faults="stall:after=4") as r:
        with sdk(r.url, timeout=0.3) as client:
            stream = client.messages.create(**REQUEST, stream=True)
            events = iter(stream)
            for _ in range(3):
                next(events)  # the app has what it wanted and stops reading, but never closes the stream
            with pytest.raises(httpx2.ReadTimeout):
                read_all(client)
            verdicts = judge(r)
            stream.close()
    assert "dangling_stream" in failed(verdicts)
    evidence = verdicts["dangling_stream"].evidence[0]
    assert evidence.requests == (0, 1) and "left the stream still open" in evidence.detail


def test_dangling_stream_passes_a_client_that_closes_what_it_stops_reading() -> None:
    with Replayer(bundled("text"), speed=0, faults="stall:after=4") as r:
        with sdk(r.url, timeout=0.3) as client:
            with client.messages.stream(**REQUEST) as stream:
                events = iter(stream)
                for _ in range(3):
                    next(events)
            with pytest.raises(httpx2.ReadTimeout):
                read_all(client)
        verdicts = judge(r)
    assert "dangling_stream" not in failed(verdicts), verdicts.report()
    assert all(x.client_hung_up for x in r.responses)


async def test_dangling_stream_flags_a_raw_aiohttp_response_never_released() -> None:
    async with Replayer(bundled("text"), speed=0, faults="stall:after=4") as r, aiohttp.ClientSession() as session:
        resp = await session.post(r.url + "/v1/messages", json=REQUEST)
        while not (await resp.content.readline()).startswith(b"event: content_block_delta"):
            pass
        async with session.get(r.url + "/v1/models") as other:
            assert other.status == 404
        verdicts = await ajudge(r)
        resp.close()
    assert set(failed(verdicts)) == {"dangling_stream", "waited_on_silence"}, "left open, it is also a silent stream still open"


# ---------------------------------------------------------------- too_many_streams


async def streams_at_once(url: str, n: int, limit: int | None) -> None:
    gate = asyncio.Semaphore(limit or n)

    async def one(client: anthropic.AsyncAnthropic) -> None:
        async with gate:
            async with client.messages.stream(**REQUEST) as stream:
                await stream.get_final_message()

    async with anthropic.AsyncAnthropic(base_url=url, api_key=KEY, max_retries=0) as client:
        await asyncio.gather(*(one(client) for _ in range(n)))


async def test_too_many_streams_flags_more_at_once_than_the_limit() -> None:
    async with Replayer(bundled("text"), speed=0, faults="stall:after=2,seconds=0.3") as r:
        await streams_at_once(r.url, 4, None)
        verdicts = await ajudge(r, max_streams=2)
    assert failed(verdicts) == ["too_many_streams"]
    (evidence,) = verdicts["too_many_streams"].evidence
    assert len(evidence.requests) == 3 and "the limit is 2" in evidence.detail and "at most 4" in evidence.detail


async def test_too_many_streams_passes_a_client_that_keeps_to_the_limit_and_is_skipped_without_one() -> None:
    async with Replayer(bundled("text"), speed=0, faults="stall:after=2,seconds=0.3") as r:
        await streams_at_once(r.url, 4, 2)
        verdicts = await ajudge(r, max_streams=2)
        unbounded = await ajudge(r)
    assert verdicts.ok, verdicts.report()
    assert unbounded["too_many_streams"].skipped == "give max_streams=N to check"


# ---------------------------------------------------------------- reconnect_without_last_event_id


def browser_cassette() -> Cassette:
    return synth_cassette("One two three four five six seven eight nine ten eleven twelve.", ttft_ms=20, tps=2000, seed=3)


async def test_reconnect_without_last_event_id_passes_a_client_that_resumes() -> None:
    async with Replayer(browser_cassette(), speed=0, ids=True, retry_ms=20, faults=[CutAfter(after=4)]) as r:
        connections, _ = await event_source(r.url + "/v1/messages")
        verdicts = await ajudge(r)
    assert len(connections) >= 3
    assert verdicts.ok, verdicts.report()


async def test_reconnect_without_last_event_id_flags_a_client_that_starts_over() -> None:
    async with Replayer(browser_cassette(), speed=0, ids=True, retry_ms=20, faults=[CutAfter(after=4)]) as r, aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.get(r.url + "/v1/messages", headers={"accept": "text/event-stream"}) as resp:
                with pytest.raises(aiohttp.ClientPayloadError):
                    await resp.read()  # cut after 4 events; then it starts over, with no Last-Event-ID
            await asyncio.sleep(0.02)  # after the `retry: 20` the server sent, as an EventSource would
        verdicts = await ajudge(r)
    assert failed(verdicts) == ["reconnect_without_last_event_id"]
    first = verdicts["reconnect_without_last_event_id"].evidence[0]
    assert first.requests == (0, 1) and "was cut (close) at id '3', without Last-Event-ID" in first.detail


# ---------------------------------------------------------------- the pieces


def test_assert_resilient_lists_every_failed_check_with_its_evidence() -> None:
    with Replayer(bundled("text"), speed=0, faults="http:status=429,times=3,retry_after=200ms") as r:
        raw_retries(r.url, attempts=5, wait_s=lambda _: 0.01)
        verdicts = judge(r)
    with pytest.raises(AssertionError) as caught:
        assert_resilient(verdicts)
    text = str(caught.value)
    assert text.startswith("the client failed 2 resilience check(s) over 4 request(s):")
    assert "ignored_retry_after: FAILED, expected " + CHECKS["ignored_retry_after"] in text
    assert "retry_storm: FAILED" in text and "requests 0, 1 at " in text
    assert_resilient(verdicts, ignore=["ignored_retry_after", "retry_storm"])
    with pytest.raises(ValueError, match="unknown check"):
        assert_resilient(verdicts, ignore=["retry_storms"])


def test_exchanges_round_trip_through_json_and_give_the_same_verdicts() -> None:
    with Replayer(bundled("text"), speed=0, faults="http:status=429,times=2,retry_after=100ms") as r:
        raw_retries(r.url, attempts=3, wait_s=lambda _: 0.0)
        seen = exchanges(r.requests, r.settle(), epoch=r.epoch)
    again = tuple(Exchange.from_dict(e.as_dict()) for e in seen)
    assert again == seen
    assert assess(again, now_ms=10_000).as_dict() == assess(seen, now_ms=10_000).as_dict()


def test_concurrent_requests_are_not_retries() -> None:
    """Parallel calls that each failed once with a retry-after are not judged as retries of one another."""
    base = dict(method="POST", path="/v1/messages", status=429, retry_after_ms=500.0, stream=False, ending="end")
    seen = [Exchange(request=i, arrived_ms=i * 1.0, start_ms=i * 1.0, end_ms=50.0 + i, **base) for i in range(4)]
    verdicts = assess(seen, now_ms=1000)
    assert verdicts.ok, verdicts.report()


@pytest.mark.parametrize(("bounds", "message"), [({"silence_s": 0}, "silence_s must be"), ({"silence_s": True}, "silence_s must be"), ({"max_streams": 0}, "max_streams must be"), ({"max_streams": 1.5}, "max_streams must be")])
def test_bounds_are_checked_up_front(bounds: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        assess([], now_ms=0, **bounds)


@pytest.mark.parametrize("dialect", providers.names())
@pytest.mark.parametrize(("error_type", "retryable"), [("overloaded_error", True), ("api_error", True), ("invalid_request_error", False), ("authentication_error", False)])
def test_every_dialects_mid_stream_error_is_read_and_judged_by_its_type(dialect: str, error_type: str, retryable: bool) -> None:
    """The error each dialect writes mid-stream (what the ``error`` fault sends) is recognised, and only a retryable one fails a client that gives up."""
    if dialect == "anthropic-bedrock" and error_type == "authentication_error":
        retryable = True  # Bedrock has no such stream exception: it sends modelStreamErrorException, which AWS says to retry
    speaks = providers.get(dialect)
    injected = speaks.framed(speaks.stream_error((), 0.0, error_type))
    sent = replace(judge_inputs(), headers=speaks.response_headers(), data=b"".join(ev.wire for ev in injected), events_done=len(injected))
    request = sent_request()
    (seen,) = exchanges([request], [sent])
    assert seen.error_event is not None
    assert (seen.error_event in RETRYABLE_ERRORS) is retryable, seen.error_event
    assert failed(assess([seen], now_ms=1000)) == (["gave_up"] if retryable else [])


def judge_inputs() -> Any:
    from streamreel.replayer import SentResponse

    return SentResponse(request_index=0, interaction=0, status=200, data=b"", events_done=0, ending="end", client_hung_up=False, faults=(), started=1.0, finished=1.1, headers={"content-type": "text/event-stream"})


def sent_request() -> Any:
    from streamreel.matching import ReceivedRequest

    return ReceivedRequest(method="POST", path="/v1/messages", at=1.0)
