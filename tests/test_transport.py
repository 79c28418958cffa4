"""The in-process transport: through the real SDKs, every fault ends as it does over a socket
(the same exception after the same events), with no socket and no wall time spent waiting."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Callable, Iterator

import anthropic
import httpx2
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamreel import Cassette, Replayer, StreamreelError
from streamreel.providers.anthropic import TextBlock, message_events
from streamreel.strategies import FAULT_KINDS, StreamCassette, anthropic_messages, faulted, openai_chat_streams
from streamreel.transport import BASE_URL, ReplayTransport, TeeStream, TeeTransport, ending_error

KEY = "sk-" + "test"
MESSAGE: dict[str, Any] = {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
CHAT: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
READ_TIMEOUT_S = 1.0
"""The socket client's read timeout: long enough that a loaded machine never trips it by
accident, short enough that a stall (which waits it out) keeps the test quick."""

TEXT = Cassette.from_events(message_events([TextBlock(("Hello", ", ", "world"))]))


def outcome(read: Callable[[], Iterator[Any]]) -> tuple[list[Any], str | None]:
    """The events an SDK stream delivered, and the class of what it raised (None: it ended)."""
    seen: list[Any] = []
    try:
        for event in read():
            seen.append(event.to_dict())
    except Exception as e:
        return seen, f"{type(e).__module__.partition('.')[0]}.{type(e).__name__}"
    return seen, None


def anthropic_reader(client: anthropic.Anthropic) -> Callable[[], Iterator[Any]]:
    def read() -> Iterator[Any]:
        with client.messages.create(**MESSAGE, stream=True) as stream:
            yield from stream

    return read


def openai_reader(client: openai.OpenAI) -> Callable[[], Iterator[Any]]:
    def read() -> Iterator[Any]:
        with client.chat.completions.create(**CHAT, stream=True) as stream:
            yield from stream

    return read


@pytest.fixture(scope="module")
def both() -> Iterator[tuple[Replayer, ReplayTransport, dict[str, Any]]]:
    """One replayer, served over loopback and in process, with a client of each SDK on each."""
    timeout = httpx2.Timeout(5.0, read=READ_TIMEOUT_S)
    with Replayer(None, speed=0.0) as server:
        transport = ReplayTransport(server)
        clients = {
            "anthropic socket": anthropic.Anthropic(base_url=server.url, api_key=KEY, max_retries=0, timeout=timeout),
            "anthropic inprocess": anthropic.Anthropic(base_url=BASE_URL, api_key=KEY, max_retries=0, timeout=timeout, http_client=anthropic.DefaultHttpxClient(transport=transport)),
            "openai socket": openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0, timeout=timeout),
            "openai inprocess": openai.OpenAI(base_url=BASE_URL + "/v1", api_key=KEY, max_retries=0, timeout=timeout, http_client=openai.DefaultHttpxClient(transport=transport)),
        }
        yield server, transport, clients
        for client in clients.values():
            client.close()


def served_both_ways(server: Replayer, stream: Cassette, faults: list[str], read: Callable[[Any], Callable[[], Iterator[Any]]], socket: Any, inprocess: Any) -> tuple[Any, Any]:
    """What the SDK met each way, and the ground truth each way: how the response ended.

    When the SDK raised from its own code (bad JSON, an error event), it stopped reading
    while the socket server may still have been writing, so the socket's ending is a race;
    the ground truth is compared only for streams the SDK read to their end."""
    server.load(stream, faults=faults)
    over_socket = outcome(read(socket))
    socket_truth = [(r.status, r.ending, r.client_hung_up) for r in server.settle()]
    server.load(stream, faults=faults)
    in_process = outcome(read(inprocess))
    process_truth = [(r.status, r.ending, r.client_hung_up) for r in server.responses]
    raised = in_process[1]
    if raised is not None and not raised.startswith("httpx2."):
        socket_truth = [t[:1] for t in socket_truth]
        process_truth = [t[:1] for t in process_truth]
    return (over_socket, socket_truth), (in_process, process_truth)


@settings(max_examples=50, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(stream=faulted(anthropic_messages(max_blocks=3), max_faults=2))
def test_every_fault_plan_ends_the_anthropic_sdk_the_same_in_process_as_over_a_socket(both: Any, stream: StreamCassette) -> None:
    """``faulted`` draws plans that apply to the stream (the replayer refuses the others)."""
    server, _, clients = both
    socket, in_process = served_both_ways(server, stream, [], anthropic_reader, clients["anthropic socket"], clients["anthropic inprocess"])
    assert in_process == socket


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_each_kind_of_fault_ends_the_sdks_the_same_in_process_as_over_a_socket(both: Any, kind: str) -> None:
    """Each fault on its own, drawn at every strength, so every ending is met (a mixed plan may miss a rare one)."""
    server, _, clients = both

    @settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None)
    @given(stream=faulted(st.one_of(anthropic_messages(max_blocks=3), openai_chat_streams(max_choices=2)), kinds=[kind], max_faults=1))
    def check(stream: StreamCassette) -> None:
        read = anthropic_reader if stream.provider == "anthropic" else openai_reader
        socket, in_process = served_both_ways(server, stream, [], read, clients[f"{stream.provider} socket"], clients[f"{stream.provider} inprocess"])
        assert in_process == socket

    check()


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(stream=faulted(openai_chat_streams(max_choices=2), max_faults=2))
def test_every_fault_plan_ends_the_openai_sdk_the_same_in_process_as_over_a_socket(both: Any, stream: StreamCassette) -> None:
    server, _, clients = both
    socket, in_process = served_both_ways(server, stream, [], openai_reader, clients["openai socket"], clients["openai inprocess"])
    assert in_process == socket


@pytest.mark.parametrize(
    ("fault", "raised"),
    [
        ("disconnect:after=4,how=close", "httpx2.RemoteProtocolError"),
        ("disconnect:after=4,how=reset", "httpx2.ReadError"),
        ("stall:after=4", "httpx2.ReadTimeout"),
        ("truncate:event=4,keep=0.5", "json.JSONDecodeError"),
        ("error:after=4", "anthropic.APIStatusError"),
        ("http:status=529", "anthropic.OverloadedError"),
        ("disconnect:after=4,how=eof", None),
    ],
)
def test_each_kind_of_ending_reaches_the_sdk_after_the_same_events(both: Any, fault: str, raised: str | None) -> None:
    server, _, clients = both
    (socket, _), (in_process, _) = served_both_ways(server, TEXT, [fault], anthropic_reader, clients["anthropic socket"], clients["anthropic inprocess"])
    assert in_process == socket
    assert in_process[1] == raised
    assert len(in_process[0]) == (0 if fault.startswith("http") else 3)  # the ping before event 4 is not an SDK event


def test_a_stall_against_a_long_read_timeout_costs_no_wall_time() -> None:
    transport = ReplayTransport(TEXT, faults=["stall:after=3"])
    client = anthropic.Anthropic(base_url=BASE_URL, api_key=KEY, max_retries=0, timeout=httpx2.Timeout(5.0, read=600.0), http_client=httpx2.Client(transport=transport))
    started = time.monotonic()
    seen, raised = outcome(anthropic_reader(client))
    assert raised == "httpx2.ReadTimeout" and len(seen) == 2
    assert time.monotonic() - started < 5.0, "a ten-minute read timeout resolved in virtual time"
    (sent,) = transport.responses
    assert (sent.ending, sent.client_hung_up, sent.events_done) == ("hang", True, 3)


def test_a_gap_longer_than_the_read_timeout_times_out_where_it_starts() -> None:
    transport = ReplayTransport(TEXT, faults=["stall:after=5,seconds=30"])
    client = anthropic.Anthropic(base_url=BASE_URL, api_key=KEY, max_retries=0, timeout=httpx2.Timeout(5.0, read=10.0), http_client=httpx2.Client(transport=transport))
    seen, raised = outcome(anthropic_reader(client))
    assert raised == "httpx2.ReadTimeout" and [e["type"] for e in seen] == ["message_start", "content_block_start", "content_block_delta", "content_block_delta"]
    (sent,) = transport.responses
    assert (sent.ending, sent.client_hung_up) == ("client_hung_up", True)
    shorter = transport.replayer
    shorter.load(TEXT, faults=["stall:after=5,seconds=9"])
    assert outcome(anthropic_reader(client))[1] is None, "a gap shorter than the read timeout is only a wait"


def test_slow_headers_time_out_as_the_sdk_sees_them_over_a_socket() -> None:
    transport = ReplayTransport(Cassette.from_events(TEXT.interactions[0].response.events or (), headers_at=2000.0), speed=1.0)
    client = anthropic.Anthropic(base_url=BASE_URL, api_key=KEY, max_retries=0, timeout=httpx2.Timeout(5.0, read=1.0), http_client=httpx2.Client(transport=transport))
    with pytest.raises(anthropic.APITimeoutError):
        client.messages.create(**MESSAGE, stream=True)
    assert transport.responses[0].ending == "client_hung_up"


def test_realtime_waits_as_the_socket_server_does() -> None:
    transport = ReplayTransport(TEXT, faults=["latency:first=300ms"], realtime=True)
    client = anthropic.Anthropic(base_url=BASE_URL, api_key=KEY, max_retries=0, http_client=httpx2.Client(transport=transport))
    started = time.monotonic()
    assert outcome(anthropic_reader(client))[1] is None
    assert time.monotonic() - started >= 0.25
    virtual = ReplayTransport(TEXT, faults=["latency:first=300ms"])
    client = anthropic.Anthropic(base_url=BASE_URL, api_key=KEY, max_retries=0, http_client=httpx2.Client(transport=virtual))
    started = time.monotonic()
    assert outcome(anthropic_reader(client))[1] is None
    assert time.monotonic() - started < 0.25


def test_a_hang_with_no_read_timeout_is_an_error_that_says_so() -> None:
    transport = ReplayTransport(TEXT, faults=["stall:after=3"])
    with httpx2.Client(transport=transport, timeout=httpx2.Timeout(None)) as client:
        with client.stream("POST", BASE_URL + "/v1/messages", json={}) as response:
            with pytest.raises(StreamreelError, match="has no read timeout, so it would wait forever"):
                response.read()


async def test_the_async_sdk_meets_the_same_endings() -> None:
    transport = ReplayTransport(TEXT)
    client = anthropic.AsyncAnthropic(base_url=BASE_URL, api_key=KEY, max_retries=0, timeout=httpx2.Timeout(5.0, read=30.0), http_client=httpx2.AsyncClient(transport=transport))
    for fault, raised in [("disconnect:after=4,how=reset", httpx2.ReadError), ("stall:after=4", httpx2.ReadTimeout), ("disconnect:after=4,how=close", httpx2.RemoteProtocolError)]:
        transport.load(TEXT, faults=[fault])
        seen = []
        with pytest.raises(raised):
            async with await client.messages.create(**MESSAGE, stream=True) as stream:
                async for event in stream:
                    seen.append(event.type)
        assert seen == ["message_start", "content_block_start", "content_block_delta"]
    transport.load(TEXT)
    async with client.messages.stream(**MESSAGE) as stream:
        assert (await stream.get_final_message()).content[0].text == "Hello, world"
    await client.close()


def test_an_unmatched_request_gets_the_servers_error_and_shows_in_the_ground_truth() -> None:
    transport = ReplayTransport(Cassette.from_events(message_events([TextBlock(("hi",))]), path="/v1/other"))
    client = anthropic.Anthropic(base_url=BASE_URL, api_key=KEY, max_retries=0, http_client=httpx2.Client(transport=transport))
    with pytest.raises(anthropic.NotFoundError, match="POST /v1/messages"):
        client.messages.create(**MESSAGE)
    (request,) = transport.requests
    assert (request.method, request.path, json.loads(request.body)["model"]) == ("POST", "/v1/messages", "claude-haiku-4-5")
    assert transport.responses[0].status == 404


def test_a_client_that_stops_reading_during_a_wait_left(both: Any) -> None:
    server, _, clients = both
    truth = []
    for client in (clients["anthropic socket"], clients["anthropic inprocess"]):
        server.load(TEXT, faults=["stall:after=3,seconds=5"])
        with client.messages.create(**MESSAGE, stream=True) as stream:
            next(iter(stream))
        (sent,) = server.settle()
        truth.append((sent.ending, sent.client_hung_up, sent.events_done))
    assert truth[0] == truth[1] == ("client_hung_up", True, 3)


def test_a_client_that_stops_reading_leaves_what_was_due_sent() -> None:
    """Over a socket the server goes on writing what is due while the client stops reading (the
    kernel takes it unread); in process the ground truth runs on the same way, to the first wait."""
    transport = ReplayTransport(TEXT)
    client = anthropic.Anthropic(base_url=BASE_URL, api_key=KEY, max_retries=0, http_client=httpx2.Client(transport=transport))
    with client.messages.create(**MESSAGE, stream=True) as stream:
        next(iter(stream))
    (sent,) = transport.responses
    assert (sent.ending, sent.client_hung_up, sent.events_done) == ("end", False, len(TEXT.interactions[0].response.events or ()))


def test_a_running_replayer_serves_both_ways_with_one_ground_truth(reel: Any, inprocess_anthropic_client: anthropic.Anthropic, anthropic_client: anthropic.Anthropic) -> None:
    reel.load(TEXT)
    for client in (anthropic_client, inprocess_anthropic_client):
        with client.messages.stream(**MESSAGE) as stream:
            assert stream.get_final_text() == "Hello, world"
    assert [r.ending for r in reel.responses] == ["end", "end"]
    assert len(reel.requests) == 2


def test_a_transport_takes_a_replayer_as_it_is() -> None:
    with pytest.raises(TypeError, match="serves the replayer given, as it is"):
        ReplayTransport(Replayer(TEXT), faults=["stall"])


class Seen:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.ends: list[tuple[str, str | None]] = []

    def on_chunk(self, data: bytes) -> None:
        self.chunks.append(data)

    def on_end(self, outcome: str, error: BaseException | None) -> None:
        self.ends.append((outcome, type(error).__name__ if error else None))


class Tee(httpx2.BaseTransport):
    """A transport wrapping another, teeing each response body to an observer."""

    def __init__(self, inner: httpx2.BaseTransport) -> None:
        self.inner = inner
        self.seen: list[Seen] = []

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = self.inner.handle_request(request)
        self.seen.append(Seen())
        return httpx2.Response(response.status_code, headers=response.headers, stream=TeeStream(response.stream, self.seen[-1]), request=request)


@pytest.mark.parametrize(
    ("fault", "ending"),
    [(None, ("complete", None)), ("disconnect:after=4,how=close", ("error", "RemoteProtocolError")), ("stall:after=4", ("error", "ReadTimeout"))],
)
def test_a_tee_sees_what_the_app_read_and_how_it_ended(fault: str | None, ending: tuple[str, str | None]) -> None:
    tee = Tee(ReplayTransport(TEXT, faults=[fault] if fault else []))
    client = anthropic.Anthropic(base_url=BASE_URL, api_key=KEY, max_retries=0, http_client=httpx2.Client(transport=tee))
    outcome(anthropic_reader(client))
    (seen,) = tee.seen
    (sent,) = tee.inner.responses  # type: ignore[attr-defined]
    assert b"".join(seen.chunks) == sent.data
    assert seen.ends == [ending]


def test_a_tee_says_when_the_app_stopped_reading() -> None:
    tee = Tee(ReplayTransport(TEXT))
    client = anthropic.Anthropic(base_url=BASE_URL, api_key=KEY, max_retries=0, http_client=httpx2.Client(transport=tee))
    with client.messages.create(**MESSAGE, stream=True) as stream:
        next(iter(stream))
    assert tee.seen[0].ends == [("stopped", None)]


def test_ending_errors_are_the_ones_httpx2_raises_over_a_socket() -> None:
    request = httpx2.Request("POST", BASE_URL)
    assert ending_error("end", request) is None
    assert isinstance(ending_error("close", request), httpx2.RemoteProtocolError)
    assert isinstance(ending_error("reset", request), httpx2.ReadError)
    assert isinstance(ending_error("hang", request), httpx2.ReadTimeout)


def test_the_replayers_response_hook_hears_of_every_in_process_response() -> None:
    server = Replayer(TEXT)
    heard: list[tuple[str, str | None]] = []
    server.on_response = lambda request, sent: heard.append((request.path, sent.ending))
    client = anthropic.Anthropic(base_url=BASE_URL, api_key=KEY, max_retries=0, http_client=httpx2.Client(transport=ReplayTransport(server)))
    outcome(anthropic_reader(client))
    with pytest.raises(anthropic.NotFoundError):
        client.models.list()
    assert heard == [("/v1/messages", "end"), ("/v1/models", "end")]


# ---------------------------------------------------------------- the other direction: TeeTransport


def test_a_tee_transport_shows_each_streamed_body_to_its_tap_as_the_sdk_reads_it() -> None:
    seen: list[tuple[str, Any]] = []

    class Watcher:
        def on_chunk(self, data: bytes) -> None:
            seen.append(("chunk", data))

        def on_end(self, outcome: str, error: BaseException | None) -> None:
            seen.append((outcome, type(error).__name__ if error else None))

    def tap(request: httpx2.Request, response: httpx2.Response, started: float) -> Watcher:
        assert started <= time.monotonic()
        return Watcher()

    inner = ReplayTransport(TEXT, faults=["disconnect:after=4,how=reset"])
    client = anthropic.Anthropic(base_url=BASE_URL, api_key=KEY, max_retries=0, http_client=httpx2.Client(transport=TeeTransport(inner, tap)))
    with pytest.raises(httpx2.ReadError):
        list(client.messages.create(**MESSAGE, stream=True))
    assert seen[-1] == ("error", "ReadError") and b"".join(d for k, d in seen if k == "chunk").count(b"\n\n") == 4


def test_a_tap_that_fails_leaves_the_response_untouched_and_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    def broken(request: httpx2.Request, response: httpx2.Response, started: float) -> None:
        raise RuntimeError("a bug in the tap")

    client = anthropic.Anthropic(base_url=BASE_URL, api_key=KEY, max_retries=0, http_client=httpx2.Client(transport=TeeTransport(ReplayTransport(TEXT), broken)))
    for _ in range(3):
        with client.messages.stream(**MESSAGE) as stream:
            assert stream.get_final_text() == "Hello, world"
    assert caplog.text.count("a tap failed") == 1


def test_a_tee_transport_says_which_client_its_inner_transport_belongs_to() -> None:
    with pytest.raises(TypeError, match="AsyncClient"):
        httpx2.Client(transport=TeeTransport(httpx2.AsyncHTTPTransport(), lambda *a: None)).get("http://127.0.0.1:9/")

    async def go() -> None:
        async with httpx2.AsyncClient(transport=TeeTransport(httpx2.HTTPTransport(), lambda *a: None)) as client:
            await client.get("http://127.0.0.1:9/")

    with pytest.raises(TypeError, match="httpx2.Client"):
        asyncio.run(go())
    with pytest.raises(TypeError, match="wraps an httpx2 transport"):
        TeeTransport(object(), lambda *a: None)  # type: ignore[arg-type]
