"""Where faults come from (constructor, cassette ``faults:``, the request header, ``serve --fault``) and how the replayer ends under them."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time

import anthropic
import httpx2
import pytest
from _fault_helpers import anthropic_cassette, raw_request, wire

from streamreel import Replayer, load, save
from streamreel.fault_injection import FaultOutcome
from streamreel.pipeline import plan, timed_chunks

REQUEST = {"model": "claude-test", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def test_a_header_fault_applies_to_that_request_only() -> None:
    with Replayer(anthropic_cassette(), speed=0) as r:
        cut = raw_request(r.url, headers={"x-streamreel-faults": "disconnect:after=2,how=close"})
        whole = raw_request(r.url)
        first, second = r.settle(requests=2)
    assert (cut.ended_by, first.ending, first.events_done, first.fault_specs) == ("eof", "close", 2, ("disconnect:after=2,how=close",))
    assert first.faults == (FaultOutcome("disconnect:after=2,how=close", True, "close after event 2 of 9"),)
    assert (whole.ended_by, second.ending, second.events_done, second.faults) == ("terminator", "end", 9, ())


def test_a_bad_header_fault_is_a_400_the_sdk_raises_naming_the_spec_and_the_choices() -> None:
    with Replayer(anthropic_cassette(), speed=0) as r, anthropic.Anthropic(base_url=r.url, api_key="k", max_retries=2, default_headers={"x-streamreel-faults": "disconnect:after=2,how=kill"}) as client:
        with pytest.raises(anthropic.BadRequestError) as info:
            client.messages.create(**REQUEST, stream=True)
        assert len(r.requests) == 1
    message = info.value.body["error"]["message"]
    assert "x-streamreel-faults" in message and "disconnect:after=2,how=kill" in message and "reset, close, eof" in message


def test_cassette_faults_apply_on_every_replay_and_stack_with_the_replayers_and_the_headers(tmp_path) -> None:
    path = tmp_path / "cut.yaml"
    save(dataclasses.replace(anthropic_cassette(), faults=("drop:event=ping",)), path)
    cas = load(path)
    assert cas.faults == ("drop:event=ping",)
    with Replayer(path, speed=0, faults="disconnect:after=6,how=eof") as r:
        raw_request(r.url)
        raw_request(r.url, headers={"x-streamreel-faults": "truncate:event=0,keep=0.5"})
        plain, truncated = r.settle(requests=2)
    assert plain.fault_specs == ("drop:event=ping", "disconnect:after=6,how=eof")
    assert plain.fired == plain.fault_specs
    assert b"event: ping" not in plain.data and plain.events_done == 6 and plain.ending == "end"
    assert truncated.fault_specs == (*plain.fault_specs, "truncate:event=0")
    assert [o.fired for o in truncated.faults] == [True, True, True]
    assert truncated.events[0].json(default=None) is None


def test_timed_chunks_are_the_bytes_and_times_the_socket_gets() -> None:
    cas = anthropic_cassette()
    spec = "fragment:random,seed=9; disconnect:after_bytes=700,how=reset"
    chunks = list(timed_chunks(cas, spec, speed=0))
    assert [c.at_ms for c in chunks] == [0.0] * len(chunks)
    with Replayer(cas, speed=0, faults=spec) as r:
        reply = raw_request(r.url)
        (sent,) = r.settle()
    assert wire(chunks) == reply.body == sent.data and len(sent.data) == 700
    assert [(c.events_done) for c in chunks][-1] == sent.events_done == 5
    assert plan(cas.interactions[0], spec).ending.how == sent.ending == "reset"


def test_timed_chunks_of_an_http_fault_are_the_error_body() -> None:
    (chunk,) = timed_chunks(anthropic_cassette(), "http:status=429")
    assert b'"rate_limit_error"' in chunk.data and chunk.events_done == 0


def test_a_client_that_leaves_mid_stream_is_recorded_as_hung_up() -> None:
    with Replayer(anthropic_cassette(), speed=0, faults="latency:each=200ms") as r, httpx2.Client() as client:
        with client.stream("POST", r.url + "/v1/messages", content=b"{}") as resp:
            first = next(resp.iter_raw())
        (sent,) = r.settle()
    assert first and sent.ending == "client_hung_up" and sent.client_hung_up and sent.events_done < 9


def test_stopping_the_replayer_ends_a_hanging_response_at_once() -> None:
    with Replayer(anthropic_cassette(), speed=0, faults="stall:after=1") as r:
        import socket

        sock = socket.create_connection(("127.0.0.1", r.port))
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        assert sock.recv(65536)
        t0 = time.perf_counter()
    took = time.perf_counter() - t0
    sock.close()
    assert took < 2.0


async def test_async_replayer_reports_the_same_ground_truth() -> None:
    async with Replayer(anthropic_cassette(), speed=0, faults="disconnect:after=3,how=reset") as r:
        reply = await asyncio.to_thread(raw_request, r.url)
        (sent,) = await r.asettle(requests=1)
    assert reply.ended_by == "reset" and reply.body == sent.data and sent.events_done == 3


def _serve(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "streamreel", "serve", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_serve_fault_cuts_every_response_and_exits_cleanly(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    save(anthropic_cassette(), path)
    proc = _serve(str(path), "--speed", "0", "--fault", "disconnect:after=4,how=close", "--fault", "drop:event=ping")
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        reply = raw_request(line.removeprefix("listening on "))
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert reply.ended_by == "eof" and not reply.terminated
    assert b"event: ping" not in reply.body and reply.body.count(b"\n\n") == 4
    assert proc.returncode == 0, err


def test_serve_rejects_a_bad_fault_before_listening_with_the_valid_choices(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    save(anthropic_cassette(), path)
    proc = _serve(str(path), "--fault", "nosuchfault")
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 2 and out == ""
    assert "nosuchfault" in err and "known faults:" in err and "disconnect" in err
