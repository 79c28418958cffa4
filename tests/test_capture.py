"""The flight recorder, through the real SDKs against a real upstream on 127.0.0.1 that cuts,
stalls and errors mid-stream: what the app saw is dumped with its timing, and the dump replays
the same failure (the same exception after the same events)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import anthropic
import httpx2
import openai
import pytest

from streamreel import Cassette, Replayer, load
from streamreel.capture import SDK_CLIENT_DEFAULTS, Capture, CapturedStream
from streamreel.cassette import End, Interaction, Request, Response, save
from streamreel.providers.anthropic import TextBlock, message_events
from streamreel.providers.openai import chat_events
from streamreel.replayer import FAULTS_HEADER
from streamreel.transport import BASE_URL, ReplayTransport, TeeStream, TeeTransport

KEY = "sk-" + "test"
MESSAGE: dict[str, Any] = {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
CHAT: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
GAP_MS = 4.0
READ_TIMEOUT_S = 0.5
"""The app's read timeout: a stall trips it; a loaded machine's 4 ms gaps never do."""
TOLERANCE_MS = 2.0


def timed(events: tuple[Any, ...], gap_ms: float = GAP_MS) -> tuple[Any, ...]:
    return tuple(replace(e, t=20.0 + i * gap_ms) for i, e in enumerate(events))


ANTHROPIC = Cassette.from_events(timed(message_events([TextBlock(tuple(f"word{i} " for i in range(12)))])), headers_at=10.0)
OPENAI = Cassette.from_events(timed(chat_events([f"word{i} " for i in range(12)])), path="/v1/chat/completions", headers_at=10.0)

FAULTS = {
    # name: (fault on the upstream, what the capture calls the ending)
    "reset": ("disconnect:after=10,how=reset", "upstream_disconnect"),
    "close": ("disconnect:after=10,how=close", "upstream_disconnect"),
    "cut inside an event": ("disconnect:inside=11,how=close", "upstream_disconnect"),
    "stall": ("stall:after=10,seconds=30", "timeout"),
    "error event": ("error:after=10", "error_event"),
}


def error_name(e: BaseException) -> str:
    return f"{type(e).__module__.partition('.')[0]}.{type(e).__name__}"


class Read:
    """What the app saw: each event the SDK yielded (as a dict) with when, and what it raised."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.error: str | None = None

    def saw(self, event: Any) -> None:
        self.times.append(time.monotonic())
        self.events.append(event.to_dict())


def client_for(sdk: str, url: str, http_client: Any = None, *, is_async: bool = False) -> Any:
    timeout = httpx2.Timeout(5.0, read=READ_TIMEOUT_S)
    options: dict[str, Any] = {"api_key": KEY, "max_retries": 0, "timeout": timeout}
    if http_client is not None:
        options["http_client"] = http_client
    if sdk == "anthropic":
        return (anthropic.AsyncAnthropic if is_async else anthropic.Anthropic)(base_url=url, **options)
    return (openai.AsyncOpenAI if is_async else openai.OpenAI)(base_url=url + "/v1", **options)


def read(sdk: str, url: str, capture: Capture | None = None, *, is_async: bool = False, fault: str | None = None) -> Read:
    """One streamed call through the SDK, sync or async, with the capture's client if given
    (``fault``: for this request only, as the upstream's ``x-streamreel-faults`` header)."""
    seen = Read()
    extra = {"extra_headers": {FAULTS_HEADER: fault}} if fault else {}
    if not is_async:
        client = client_for(sdk, url, capture.http_client() if capture else None)
        try:
            stream = client.messages.create(**MESSAGE, **extra, stream=True) if sdk == "anthropic" else client.chat.completions.create(**CHAT, **extra, stream=True)
            with stream:
                for event in stream:
                    seen.saw(event)
        except Exception as e:
            seen.error = error_name(e)
        finally:
            client.close()
        return seen

    async def go() -> None:
        client = client_for(sdk, url, capture.async_http_client() if capture else None, is_async=True)
        try:
            stream = await (client.messages.create(**MESSAGE, **extra, stream=True) if sdk == "anthropic" else client.chat.completions.create(**CHAT, **extra, stream=True))
            async with stream:
                async for event in stream:
                    seen.saw(event)
        except Exception as e:
            seen.error = error_name(e)
        finally:
            await client.close()

    asyncio.run(go())
    return seen


def yielded(events: Any) -> list[Any]:
    """The dumped events an SDK hands to the app: all but pings and ``[DONE]``."""
    return [e for e in events if e.data is not None and e.data != "[DONE]" and e.event != "ping"]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``streamreel serve`` in a process of its own, serving both SDKs' streams (each request
    names its fault): the app's timing then owes nothing to a server sharing its GIL. One read
    of each SDK first, so no first-call set-up falls between two timed events."""
    path = tmp_path_factory.mktemp("upstream") / "upstream.yaml"
    save(Cassette(interactions=(ANTHROPIC.interactions[0], OPENAI.interactions[0])), path)
    proc = subprocess.Popen([sys.executable, "-m", "streamreel", "serve", "-q", str(path)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on "), line
        url = line.split()[-1]
        read("anthropic", url)
        read("openai", url)
        yield url
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


# ---------------------------------------------------------------- failures, dumped and replayed


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("sdk", ["anthropic", "openai"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_stream_that_fails_is_dumped_as_the_app_saw_it_and_replays_the_same_failure(upstream: str, tmp_path: Path, fault: str, sdk: str, is_async: bool) -> None:
    spec, why = FAULTS[fault]
    capture = Capture(dump_dir=tmp_path / "dumps", on_error=True)
    seen = read(sdk, upstream, capture, is_async=is_async, fault=spec)
    assert seen.error is not None and 6 <= len(seen.events) < 12, (seen.error, len(seen.events))  # the upstream failed mid-stream
    assert capture.flush(10)

    [dump] = sorted((tmp_path / "dumps").iterdir())
    assert re.fullmatch(rf"\d{{8}}T\d{{6}}\.\d{{6}}Z-\d+-\d+-{why}-v1-(messages|chat-completions)\.yaml", dump.name), dump.name
    kept = load(dump).interactions[0].response
    got = yielded(kept.events)
    assert len(got) >= len(seen.events)
    for dumped, app in zip(got, seen.events):
        assert json.loads(dumped.data or "")["type" if sdk == "anthropic" else "object"] == app["type" if sdk == "anthropic" else "object"]
    gaps_dumped = [b.t - a.t for a, b in zip(got, got[1 : len(seen.events)])]
    gaps_seen = [(b - a) * 1000.0 for a, b in zip(seen.times, seen.times[1:])]
    # Each event is stamped as it reaches the app's client. A busy machine may hold the app up
    # once between the stamp and its own clock (that moves the two gaps around one event), so:
    # all but those two within 2 ms, the typical one far closer (bench_capture measures it exactly).
    off = sorted(abs(d - s) for d, s in zip(gaps_dumped, gaps_seen))
    assert statistics.median(off) <= 0.5 and all(d <= TOLERANCE_MS for d in off[:-2]) and off[-1] <= 50.0, list(zip(gaps_dumped, gaps_seen))
    if why != "error_event":
        assert kept.end.reason == why and len(got) == len(seen.events)

    with Replayer(dump) as replay:
        again = read(sdk, replay.url, is_async=is_async)
    assert (again.events, again.error) == (seen.events, seen.error)


def test_a_dump_replays_under_streamreel_serve(tmp_path: Path) -> None:
    capture = Capture()
    with Replayer(ANTHROPIC, faults=["disconnect:after=5,how=reset"]) as upstream:
        seen = read("anthropic", upstream.url, capture)
    dump = capture.dump(tmp_path / "cut.yaml")
    assert dump == tmp_path / "cut.yaml" and seen.error == "httpx2.ReadError"
    proc = subprocess.Popen([sys.executable, "-m", "streamreel", "serve", str(dump)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on "), line + (proc.stderr.read() if proc.stderr else "")
        again = read("anthropic", line.split()[-1])
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert (again.events, again.error) == (seen.events, seen.error)


def test_a_healthy_stream_is_kept_whole_and_replays_the_same(tmp_path: Path) -> None:
    capture = Capture(dump_dir=tmp_path, on_error=True)
    with Replayer(OPENAI) as upstream:
        seen = read("openai", upstream.url, capture)
    assert capture.flush(10) and not list(tmp_path.iterdir())  # nothing failed, nothing written
    [held] = capture.streams
    assert (held.ending, held.error, held.status, held.method, held.path) == ("complete", None, 200, "POST", "/v1/chat/completions")
    assert held.events == len(OPENAI.interactions[0].response.events or ()) and held.streaming
    with Replayer(capture.cassette()) as replay:
        again = read("openai", replay.url)
    assert (again.events, again.error) == (seen.events, None)


# ---------------------------------------------------------------- the app's own code raising


def test_the_apps_own_error_while_reading_dumps_what_it_had_read_and_replays_into_the_same_error(tmp_path: Path) -> None:
    """Truncated JSON: the wire ends cleanly, the SDK raises in the app's loop; a watched block keeps it."""
    capture = Capture()
    seen = Read()
    with Replayer(ANTHROPIC, faults=["truncate:event=8,keep=0.5"]) as upstream:
        with pytest.raises(json.JSONDecodeError):
            with capture.watch(tmp_path):
                client = client_for("anthropic", upstream.url, capture.http_client())
                with client.messages.create(**MESSAGE, stream=True) as stream:
                    for event in stream:
                        seen.saw(event)
    assert capture.flush(10)
    [dump] = list(tmp_path.iterdir())
    assert "-app_error-v1-messages.yaml" in dump.name
    text = dump.read_text()
    assert "# the app raised json.decoder.JSONDecodeError: Unterminated string" in text
    again = Read()
    with Replayer(dump) as replay:
        client = client_for("anthropic", replay.url)
        with pytest.raises(json.JSONDecodeError):
            with client.messages.create(**MESSAGE, stream=True) as stream:
                for event in stream:
                    again.saw(event)
    assert len(again.events) == 7 and again.events == seen.events


def test_a_watched_coroutine_that_raises_dumps_every_stream_of_the_call_as_one_cassette(tmp_path: Path) -> None:
    """An agent turn: two streamed calls, the second read by code with a bug; the dump replays the turn."""
    capture = Capture(dump_dir=tmp_path)
    script = Cassette(interactions=(ANTHROPIC.interactions[0], OPENAI.interactions[0]))

    def handler_for(http_client: Any) -> Any:
        async def turn(url: str) -> list[str]:
            said: list[str] = []
            async with client_for("anthropic", url, http_client, is_async=True) as claude, client_for("openai", url, http_client, is_async=True) as gpt:
                async with claude.messages.stream(**MESSAGE) as stream:
                    said.append(await stream.get_final_text())
                chunks = await gpt.chat.completions.create(**CHAT, stream=True)
                async for chunk in chunks:
                    said.append(chunk.choices[0].delta.content or "")
                    if "word5" in said[-1]:
                        raise KeyError("word5")  # the app's bug, half way through the second stream
            return said

        return turn

    turn = capture.watch()(handler_for(capture.async_http_client()))
    with Replayer(script) as upstream:
        with pytest.raises(KeyError):
            asyncio.run(turn(upstream.url))
    assert capture.flush(10)
    [dump] = list(tmp_path.iterdir())
    assert "-app_error-" in dump.name and "# the app raised builtins.KeyError: 'word5'" in dump.read_text()
    dumped = load(dump)
    assert [i.request.path for i in dumped.interactions] == ["/v1/messages", "/v1/chat/completions"]
    assert [i.response.end.reason for i in dumped.interactions] == ["complete", "client_cancel"]
    with Replayer(dump) as replay:
        with pytest.raises(KeyError, match="word5"):
            asyncio.run(handler_for(None)(replay.url))
        assert [r.path for r in replay.requests] == ["/v1/messages", "/v1/chat/completions"]


def test_a_watched_async_generator_handler_dumps_when_its_consumer_meets_the_error(tmp_path: Path) -> None:
    capture = Capture(dump_dir=tmp_path)

    @capture.watch()
    async def relay(url: str) -> Any:
        async with client_for("anthropic", url, capture.async_http_client(), is_async=True) as client:
            async with client.messages.stream(**MESSAGE) as stream:
                async for text in stream.text_stream:
                    yield text

    async def consume(url: str) -> list[str]:
        return [text async for text in relay(url)]

    with Replayer(ANTHROPIC, faults=["disconnect:after=8,how=close"]) as upstream:
        with pytest.raises(httpx2.RemoteProtocolError):
            asyncio.run(consume(upstream.url))
    assert capture.flush(10)
    [dump] = list(tmp_path.iterdir())
    assert "-app_error-" in dump.name and "the app raised httpx2.RemoteProtocolError" in dump.read_text()
    assert load(dump).interactions[0].response.end.reason == "upstream_disconnect"


def test_a_watched_block_that_ends_cleanly_writes_nothing_and_one_that_caught_a_cut_writes_it_once(tmp_path: Path) -> None:
    capture = Capture(dump_dir=tmp_path, on_error=True)
    with Replayer(ANTHROPIC, faults=["disconnect:after=4,how=close,times=1"]) as upstream:

        @capture.watch()
        def with_one_retry() -> int:
            for attempt in range(2):
                seen = read("anthropic", upstream.url, capture)
                if seen.error is None:
                    return attempt
            raise AssertionError("the retry failed too")

        assert with_one_retry() == 1
        assert capture.flush(10)
        [dump] = list(tmp_path.iterdir())  # the cut, once, though it was read inside the block
        assert "-upstream_disconnect-" in dump.name
        with capture.watch():
            read("anthropic", upstream.url, capture)
    assert capture.flush(10) and len(list(tmp_path.iterdir())) == 1
    assert [s.ending for s in capture.streams] == ["upstream_disconnect", "complete", "complete"]


def test_watch_without_a_directory_says_where_to_give_one() -> None:
    with pytest.raises(ValueError, match="dump_dir"):
        Capture().watch()


# ---------------------------------------------------------------- writing


def test_dumps_are_named_to_sort_by_when_their_stream_started(tmp_path: Path) -> None:
    capture = Capture(dump_dir=tmp_path, sample=1.0, seed=1)
    transport = ReplayTransport(ANTHROPIC)
    with httpx2.Client(transport=capture.transport(transport), base_url=BASE_URL) as client:
        started = []
        for _ in range(5):
            started.append(time.time())
            with client.stream("POST", "/v1/messages", json={**MESSAGE, "stream": True}) as response:
                response.read()
    assert capture.flush(10)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 5 and all("-sample-v1-messages.yaml" in n for n in names)
    assert [s.dump.name for s in capture.streams if s.dump] == names  # in the order the streams started
    assert not list(tmp_path.glob(".*"))  # no temp file left behind


def test_a_dump_that_cannot_be_written_never_reaches_the_app_and_is_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the dumps should go")
    capture = Capture(dump_dir=blocked, on_error=True)
    caplog.set_level(logging.INFO, logger="streamreel.capture")
    with Replayer(ANTHROPIC, faults=["disconnect:after=4,how=close"]) as upstream:
        outcomes = [read("anthropic", upstream.url, capture).error for _ in range(3)]
        assert capture.flush(10)
        assert outcomes == ["httpx2.RemoteProtocolError"] * 3  # the app met its own error, nothing else
        assert capture.write_error is not None and str(blocked) in str(capture.write_error)
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and "could not write a capture dump" in errors[0].getMessage()
        assert capture.dump(blocked / "x.yaml") is None  # on demand too: logged, not raised
        blocked.unlink()
        read("anthropic", upstream.url, capture)
        assert capture.flush(10)
    assert capture.write_error is None and len(list(blocked.iterdir())) == 1
    assert any("written again" in r.getMessage() for r in caplog.records)


def test_dump_on_demand_picks_streams_and_says_when_there_is_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    capture = Capture()
    assert capture.dump(tmp_path / "none.yaml") is None and not (tmp_path / "none.yaml").exists()
    with httpx2.Client(transport=capture.transport(ReplayTransport(Cassette(interactions=(ANTHROPIC.interactions[0], OPENAI.interactions[0]))))) as client:
        for path in ("/v1/messages", "/v1/chat/completions"):
            with client.stream("POST", BASE_URL + path, json={**(MESSAGE if "messages" in path else CHAT), "stream": True}) as response:
                response.read()
    first, second = capture.streams
    assert isinstance(first, CapturedStream) and first.path == "/v1/messages" and second.path == "/v1/chat/completions"
    assert load(capture.dump(tmp_path / "last.yaml")).interactions[0].request.path == "/v1/chat/completions"  # type: ignore[arg-type]
    assert load(capture.dump(tmp_path / "first.yaml", which=0)).interactions[0].request.path == "/v1/messages"  # type: ignore[arg-type]
    both = load(capture.dump(tmp_path / "both.yaml", which=[second, first]))  # type: ignore[arg-type]
    assert [i.request.path for i in both.interactions] == ["/v1/messages", "/v1/chat/completions"]
    into_dir = capture.dump(tmp_path)
    assert into_dir is not None and into_dir.parent == tmp_path and into_dir.name.endswith("-dump-v1-chat-completions.yaml")
    assert capture.dump(tmp_path / "x.yaml", which=5) is None
    assert "out of range: the capture holds 2 stream(s)" in caplog.text
    with pytest.raises(ValueError, match="needs a path"):
        capture.dump()


# ---------------------------------------------------------------- what is captured, and how


def test_non_streaming_calls_pass_through_untouched_and_are_not_kept() -> None:
    reply = Interaction(
        request=Request(method="POST", path="/v1/messages"),
        response=Response(status=200, headers={"content-type": "application/json"}, body={"type": "message", "id": "msg_1", "role": "assistant", "content": [], "model": "m", "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 1}}),
    )
    inner = ReplayTransport(Cassette(interactions=(reply,)))
    capture = Capture()
    tee = capture.transport(inner)
    request = httpx2.Request("POST", BASE_URL + "/v1/messages", json=MESSAGE)
    plain = inner.handle_request(httpx2.Request("POST", BASE_URL + "/v1/messages", json=MESSAGE))
    response = tee.handle_request(request)
    assert type(response.stream) is type(plain.stream) and not isinstance(response.stream, TeeStream)
    client = anthropic.Anthropic(base_url=BASE_URL, api_key=KEY, http_client=capture.http_client(transport=inner))
    assert client.messages.create(**MESSAGE).id == "msg_1"
    assert capture.streams == ()

    asked = Capture(non_streaming=True)
    client = anthropic.Anthropic(base_url=BASE_URL, api_key=KEY, http_client=asked.http_client(transport=inner))
    assert client.messages.create(**MESSAGE).id == "msg_1"
    [kept] = asked.streams
    assert (kept.streaming, kept.ending, kept.events) == (False, "complete", 0)
    dumped = asked.cassette().interactions[0].response
    assert dumped.body == reply.response.body and dumped.events is None
    replayed = anthropic.Anthropic(base_url=BASE_URL, api_key=KEY, http_client=httpx2.Client(transport=ReplayTransport(asked.cassette())))
    assert replayed.messages.create(**MESSAGE).id == "msg_1"


def test_a_compressed_stream_is_kept_as_the_client_decoded_it() -> None:
    """The capture never changes the request: a gzip'd event stream is undone as httpx2 undid it for the app."""
    import gzip

    body = b"".join(e.wire for e in ANTHROPIC.interactions[0].response.events or ())
    packed = gzip.compress(body)
    pieces = [packed[i : i + 37] for i in range(0, len(packed), 37)]

    class Gzipped(httpx2.BaseTransport):
        def handle_request(self, request: httpx2.Request) -> httpx2.Response:
            return httpx2.Response(200, headers={"content-type": "text/event-stream", "content-encoding": "gzip"}, stream=_Pieces(pieces), request=request)

    capture = Capture()
    client = anthropic.Anthropic(base_url=BASE_URL, api_key=KEY, http_client=capture.http_client(transport=Gzipped()))
    with client.messages.stream(**MESSAGE) as stream:
        text = stream.get_final_text()
    assert text == "".join(f"word{i} " for i in range(12))
    kept = capture.cassette().interactions[0].response
    assert [e.data for e in kept.events or ()] == [e.data for e in ANTHROPIC.interactions[0].response.events or ()]
    assert "content-encoding" not in kept.headers and kept.end.reason == "complete"


class _Pieces(httpx2.SyncByteStream):
    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    def __iter__(self) -> Iterator[bytes]:
        yield from self.pieces


def test_sampling_keeps_the_share_of_healthy_streams_its_seed_draws(tmp_path: Path) -> None:
    import random

    def sampled(seed: int, share: float) -> list[int]:
        directory = tmp_path / f"{seed}-{share}"
        capture = Capture(dump_dir=directory, sample=share, seed=seed)
        with httpx2.Client(transport=capture.transport(ReplayTransport(ANTHROPIC)), base_url=BASE_URL) as client:
            for _ in range(30):
                with client.stream("POST", "/v1/messages", json={**MESSAGE, "stream": True}) as response:
                    response.read()
        assert capture.flush(10)
        return [s.id for s in capture.streams if s.dump is not None]

    draws = random.Random(7)
    expected = [i + 1 for i in range(30) if draws.random() < 0.3]
    assert sampled(7, 0.3) == expected == sampled(7, 0.3)
    assert 3 <= len(expected) <= 20
    assert sampled(7, 0.0) == [] and sampled(8, 1.0) == list(range(1, 31))


def test_options_that_cannot_take_effect_are_refused() -> None:
    for bad, message in (
        ({"streams": 0}, "streams must be"),
        ({"max_bytes": 1000}, "max_bytes must be"),
        ({"sample": 1.5}, "sample is the share"),
        ({"on_error": True}, "on_error writes dumps into dump_dir"),
        ({"sample": 0.1}, "sample writes dumps into dump_dir"),
    ):
        with pytest.raises(ValueError, match=message):
            Capture(**bad)
    capture = Capture()
    with pytest.raises(TypeError, match="not both"):
        capture.http_client(httpx2.Client(), timeout=3)
    with pytest.raises(TypeError, match="httpx2.Client"):
        capture.http_client(httpx2.AsyncClient())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="AsyncClient"):
        capture.async_http_client(httpx2.Client())  # type: ignore[arg-type]


# ---------------------------------------------------------------- the client it hands out


def test_the_client_keeps_the_sdks_defaults_and_an_existing_clients_own_transports() -> None:
    capture = Capture()
    client = capture.http_client()
    assert client.timeout == SDK_CLIENT_DEFAULTS["timeout"] and client.follow_redirects
    mine = anthropic.DefaultHttpxClient()
    pool = mine._transport
    assert capture.http_client(mine) is mine and isinstance(mine._transport, TeeTransport) and mine._transport.inner is pool
    assert capture.http_client(mine)._transport.inner is pool  # wrapped once, however often it is asked


def test_a_proxy_and_a_mount_still_carry_the_requests_and_their_streams_are_kept(tmp_path: Path) -> None:
    """The capture wraps the transports httpx2 made from the options: the proxy is still used."""
    capture = Capture()
    with Replayer(ANTHROPIC) as proxy:
        client = anthropic.Anthropic(base_url="http://api.example.test", api_key=KEY, max_retries=0, http_client=capture.http_client(proxy=proxy.url))
        with client.messages.stream(**MESSAGE) as stream:
            assert stream.get_final_text().startswith("word0 ")
        assert len(proxy.requests) == 1
    mounted = capture.http_client(mounts={"http://mounted.test": ReplayTransport(OPENAI)})
    gpt = openai.OpenAI(base_url="http://mounted.test/v1", api_key=KEY, http_client=mounted)
    assert len(list(gpt.chat.completions.create(**CHAT, stream=True))) == 14
    assert [s.path for s in capture.streams] == ["/v1/messages", "/v1/chat/completions"]
    assert "captured by streamreel from http://api.example.test" in capture.dump(tmp_path / "a.yaml", which=0).read_text()  # type: ignore[union-attr]


def test_a_capture_wraps_the_in_process_replay_transport_too() -> None:
    """The same plumbing both ways: a cut served in process is kept as a cut."""
    capture = Capture()
    replay = ReplayTransport(ANTHROPIC, faults=["disconnect:after=5,how=reset"])
    client = anthropic.Anthropic(base_url=BASE_URL, api_key=KEY, max_retries=0, http_client=httpx2.Client(transport=capture.transport(replay)))
    with pytest.raises(httpx2.ReadError):
        list(client.messages.create(**MESSAGE, stream=True))
    cas = capture.cassette()
    assert cas.faults == ("disconnect:after=5,how=reset,times=1",) and cas.interactions[0].response.end.reason == "upstream_disconnect"
    again = anthropic.Anthropic(base_url=BASE_URL, api_key=KEY, max_retries=0, http_client=httpx2.Client(transport=ReplayTransport(cas)))
    with pytest.raises(httpx2.ReadError):
        list(again.messages.create(**MESSAGE, stream=True))


def test_a_stream_still_being_read_dumps_as_far_as_it_got(tmp_path: Path) -> None:
    capture = Capture()
    with httpx2.Client(transport=capture.transport(ReplayTransport(ANTHROPIC, speed=1.0)), base_url=BASE_URL) as client:
        with client.stream("POST", "/v1/messages", json={**MESSAGE, "stream": True}) as response:
            it = response.iter_raw()
            for _ in range(3):
                next(it)
            [held] = capture.streams
            assert (held.ending, held.duration_ms, held.events) == (None, None, 3)
            kept = capture.cassette().interactions[0].response
            assert kept.end.reason == "client_cancel" and len(kept.events or ()) == 3
    assert capture.streams[0].ending == "client_cancel"  # the app left after three reads


def test_save_and_load_round_trip_a_dump_with_its_reset(tmp_path: Path) -> None:
    capture = Capture()
    replay = ReplayTransport(OPENAI, faults=["disconnect:after=3,how=reset"])
    with httpx2.Client(transport=capture.transport(replay), base_url=BASE_URL) as client:
        with pytest.raises(httpx2.ReadError):
            with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as response:
                response.read()
    cas = capture.cassette()
    save(cas, tmp_path / "c.yaml")
    assert load(tmp_path / "c.yaml") == cas
    assert cas.interactions[0].response.end == End(t=cas.interactions[0].response.end.t, reason="upstream_disconnect")


# ---------------------------------------------------------------- other dialects


def _bedrock_read(url: str, http_client: Any) -> Read:
    from _dialects_matrix import AWS, BEDROCK_MODEL

    seen = Read()
    client = anthropic.AnthropicBedrock(base_url=url, max_retries=0, http_client=http_client, **AWS)
    try:
        with client.messages.create(model=BEDROCK_MODEL, max_tokens=64, messages=MESSAGE["messages"], stream=True) as stream:
            for event in stream:
                seen.saw(event)
    except Exception as e:
        seen.error = error_name(e)
    return seen


def _gemini_read(url: str, http_client: Any) -> Read:
    from google import genai
    from google.genai import types

    seen = Read()
    options = types.HttpOptions(base_url=url, api_version="v1beta", retry_options=types.HttpRetryOptions(attempts=1), httpx_client=http_client)
    client = genai.Client(api_key=KEY, http_options=options)
    try:
        for chunk in client.models.generate_content_stream(model="gemini-2.0-flash-exp", contents="What is the capital of France?"):
            seen.times.append(time.monotonic())
            seen.events.append(chunk.model_dump(mode="json", exclude={"sdk_http_response"}))
    except Exception as e:
        seen.error = error_name(e)
    return seen


@pytest.mark.parametrize("dialect", ["bedrock", "gemini"])
def test_bedrock_and_gemini_streams_are_kept_in_their_own_framing_and_replay_the_same_cut(tmp_path: Path, dialect: str) -> None:
    """Bedrock's binary event stream and Gemini's SSE, through their own SDKs, cut part way."""
    from _dialects_matrix import bedrock_capture, gemini_capture

    upstream_cassette, read_with = (bedrock_capture(), _bedrock_read) if dialect == "bedrock" else (gemini_capture(), _gemini_read)
    events = upstream_cassette.interactions[0].response.events or ()
    capture = Capture()
    with Replayer(upstream_cassette, speed=0, faults=[f"disconnect:after={len(events) // 2},how=close"]) as upstream:
        seen = read_with(upstream.url, capture.http_client())
    assert seen.error == "httpx2.RemoteProtocolError" and seen.events
    [held] = capture.streams
    assert held.ending == "upstream_disconnect" and held.events == len(events) // 2
    dump = capture.dump(tmp_path / f"{dialect}.yaml")
    assert dump is not None
    kept = load(dump).interactions[0].response
    assert kept.headers["content-type"].startswith("application/vnd.amazon.eventstream" if dialect == "bedrock" else "text/event-stream")
    with Replayer(dump, speed=0) as replay:
        again = read_with(replay.url, None)
    assert (again.events, again.error) == (seen.events, seen.error)
