"""Faults while recording: the cassette file is the previous one byte for byte or a valid new one, never half of one.

Each fault (a clean end for reference, an upstream that closes or resets mid-stream, a client
that hangs up mid-stream) is recorded with a previous cassette in place, in mode ``all`` (which
replaces it) and ``new_episodes`` (which appends), into a directory that takes the write or
refuses it. No temp file may be left behind; a refused write keeps the old file, names the path,
and the client is served regardless.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from _recorder_helpers import MESSAGE, ScriptedUpstream, capture, cassette, files_under, raw_request, refusing_writes, reset_connection
from aiohttp import web

from streamreel import load, save
from streamreel.cassette import Request
from streamreel.errors import StreamreelError
from streamreel.recorder import Recorder

WIRE = b"event: a\ndata: 1\n\nevent: b\ndata: 2\n\nevent: c\ndata: 3\n\n"
HALF = b"event: d\ndata: ha"
REASONS = {"complete": "complete", "close": "upstream_disconnect", "reset": "upstream_disconnect", "client_cancel": "client_cancel"}


class Leave(Exception):
    """The test's client hanging up mid-stream."""


def upstream_for(fault: str) -> ScriptedUpstream:
    """Three whole events, then the fault; the upstream waits until the client holds the events before it acts."""
    seen = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        if fault == "complete":
            await resp.write(WIRE)
            await resp.write_eof()
            return resp
        await resp.write(WIRE + HALF)
        if fault == "client_cancel":
            await asyncio.Event().wait()  # until the client leaves (and the recorder cancels this request)
        await seen.wait()
        if fault == "reset":
            reset_connection(request)
        else:
            assert request.transport is not None
            request.transport.close()
        return resp

    up = ScriptedUpstream(handler)
    up.seen = seen  # type: ignore[attr-defined]
    return up


async def stream_through(url: str, up: ScriptedUpstream, fault: str) -> bytes:
    """One streamed request through the recorder; returns the body the client got (whole events only for a hang-up)."""
    got = bytearray()

    async def on_data(data: bytes) -> None:
        got.extend(data)
        if WIRE in got:
            up.seen.set()  # type: ignore[attr-defined]
            if fault == "client_cancel":
                raise Leave

    if fault == "client_cancel":
        with pytest.raises(Leave):
            await raw_request(url, "POST", "/v1/stream", body=b'{"q": "now"}', on_data=on_data)
        return bytes(got)
    reply = await raw_request(url, "POST", "/v1/stream", body=b'{"q": "now"}', on_data=on_data)
    assert reply.ended == {"complete": "end", "close": "close", "reset": "reset"}[fault]
    return reply.body


def write_previous(out: Path) -> bytes:
    save(cassette(capture(seed=30, gaps_ms=(1.0, 2.0), request=Request(method="POST", path="/v1/messages", body=MESSAGE))), out)
    return out.read_bytes()


@pytest.mark.parametrize("mode", ["all", "new_episodes"])
@pytest.mark.parametrize("fault", list(REASONS))
async def test_a_fault_mid_stream_leaves_a_valid_cassette_with_the_events_so_far(tmp_path: Path, fault: str, mode: str) -> None:
    out = tmp_path / "c.yaml"
    before = write_previous(out)
    async with upstream_for(fault) as up, Recorder(upstream=up.url, cassette=out, mode=mode) as rec:
        got = await stream_through(rec.url, up, fault)
        await rec.asettle()
    assert got.startswith(WIRE)
    saved = load(out)
    assert len(saved) == (1 if mode == "all" else 2)
    if mode == "new_episodes":
        assert out.read_bytes() != before and saved.interactions[0].request.body == MESSAGE
    new = saved.interactions[-1].response
    assert [e.event for e in new.events or ()] == ["a", "b", "c"]  # the half event is not kept
    assert new.end.reason == REASONS[fault]
    assert (new.end.t or 0) >= (new.events or ())[-1].t
    assert files_under(tmp_path) == [out]
    assert rec.write_error is None


@pytest.mark.parametrize("mode", ["all", "new_episodes"])
@pytest.mark.parametrize("fault", list(REASONS))
async def test_a_refused_write_keeps_the_previous_cassette_byte_for_byte_and_says_why(tmp_path: Path, fault: str, mode: str) -> None:
    out = tmp_path / "c.yaml"
    before = write_previous(out)
    with refusing_writes(tmp_path) as how:
        async with upstream_for(fault) as up:
            rec = Recorder(upstream=up.url, cassette=out, mode=mode)
            with pytest.raises(StreamreelError) as raised:
                async with rec:
                    got = await stream_through(rec.url, up, fault)
                    up.seen.clear()  # type: ignore[attr-defined]
                    again = await stream_through(rec.url, up, fault)  # still serving after the failed write
                    await rec.asettle()
    assert got.startswith(WIRE) and again.startswith(WIRE), how
    assert out.read_bytes() == before, how
    assert files_under(tmp_path) == [out], how  # the temp file of the failed write is gone
    assert str(raised.value) == str(rec.write_error)
    assert f"could not write the cassette {out}: " in str(rec.write_error), how
    assert len(rec.recorded) == 2 and {i.response.end.reason for i in rec.recorded} == {REASONS[fault]}


async def test_a_write_that_failed_is_made_at_stop_once_the_directory_takes_it(tmp_path: Path) -> None:
    out = tmp_path / "c.yaml"
    before = write_previous(out)
    async with upstream_for("complete") as up:
        rec = Recorder(upstream=up.url, cassette=out, mode="new_episodes")
        await rec.start()
        try:
            with refusing_writes(tmp_path):
                await stream_through(rec.url, up, "complete")
                with pytest.raises(StreamreelError, match="could not write the cassette"):
                    await rec.asettle()
            assert out.read_bytes() == before
        finally:
            await rec.stop()
    assert rec.write_error is None
    assert len(load(out)) == 2
    assert files_under(tmp_path) == [out]


def test_write_atomic_keeps_the_files_permissions(tmp_path: Path) -> None:
    out = tmp_path / "c.yaml"
    write_previous(out)
    out.chmod(0o640)
    save(cassette(capture(seed=31)), out)
    assert out.stat().st_mode & 0o777 == 0o640
    fresh = tmp_path / "fresh.yaml"
    save(cassette(capture(seed=31)), fresh)
    assert fresh.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("age_s", [0.0, 1.0, 59.0, 3600.0])
async def test_temp_files_a_killed_recorder_left_are_removed_at_once_whatever_their_age(tmp_path: Path, age_s: float) -> None:
    """The next recorder of a cassette holds its lock: no live writer can own a temp file of it,
    so every one is a leftover, however fresh. Another cassette's temp files are left alone."""
    out = tmp_path / "c.yaml"
    write_previous(out)
    leftovers = [tmp_path / f".c.yaml.k1ll3d{i}.tmp" for i in range(3)]
    for tmp in leftovers:
        tmp.write_text("streamreel: 1\ninteractions:\n- request: {meth")
        os.utime(tmp, (time.time() - age_s, time.time() - age_s))
    other = tmp_path / ".other.yaml.k1ll3d.tmp"
    other.write_text("not this cassette's")
    async with upstream_for("complete") as up, Recorder(upstream=up.url, cassette=out, mode="new_episodes") as rec:
        assert sorted(files_under(tmp_path)) == sorted([out, other, tmp_path / ".c.yaml.lock"])
        await stream_through(rec.url, up, "complete")
        await rec.asettle()
    assert sorted(files_under(tmp_path)) == sorted([out, other])
    assert len(load(out)) == 2