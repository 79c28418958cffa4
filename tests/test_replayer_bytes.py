"""Replay is byte for byte: a capture, imported or recorded, goes back on the wire as it came, line ends included.

Every raw SSE capture and every streamed body of a vcrpy cassette in ``tests/data`` is
imported, saved, loaded and replayed over a real socket, and the body read by a raw HTTP
client is compared with the original bytes: LF, CRLF (the Gemini capture) and CR line ends
all come back as they were. The one change allowed is a final blank line restored (in the
stream's own line ending) when a capture stops without one, since a client would never
dispatch that last event otherwise. Files of JSON chunks per line have no wire bytes to
compare with (their SSE framing was stripped): each line comes back as one ``data:`` line
(with the line ends its API uses: CRLF for Gemini).

Set ``STREAMREEL_CORPUS`` to a directory laid out like ``tests/data`` to run the same
checks over a larger corpus of captures too.
"""

from __future__ import annotations

import asyncio
import gzip
import os
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from _recorder_helpers import ScriptedUpstream, raw_request
from aiohttp import web

from streamreel import Replayer, load, save
from streamreel.cassette import Cassette, Interaction, Request
from streamreel.importer import import_file
from streamreel.recorder import Recorder
from streamreel.sse import LINE_ENDINGS

DATA = Path(__file__).parent / "data"
ROOTS = [DATA] + ([Path(os.environ["STREAMREEL_CORPUS"])] if os.environ.get("STREAMREEL_CORPUS") else [])
ARTIFACTS = DATA / "artifacts"
"""Logs, HAR files and data-only captures as a user has them: not the bytes that went over the wire."""
FILES = sorted(p for root in ROOTS for p in root.rglob("*") if p.is_file() and p.name != "README.md" and ARTIFACTS not in p.parents)
CAPTURES = [p for p in FILES if ".chunks." not in p.name]
CHUNKS = [p for p in FILES if ".chunks." in p.name]
GEMINI = DATA / "pydantic-ai" / "test_google_model_stream.yaml"

_BLANK_ENDINGS = tuple(a + b for a in LINE_ENDINGS for b in LINE_ENDINGS if (a, b) != ("\r", "\n"))


def ends_with_blank_line(wire: bytes) -> bool:
    return wire.endswith(tuple(e.encode() for e in _BLANK_ENDINGS))


def streamed_bodies(path: Path) -> list[bytes]:
    """The SSE bodies a capture holds, read without streamreel: the file itself, or each streamed vcrpy body."""
    if path.suffix != ".yaml":
        return [path.read_bytes()]
    out = []
    for item in yaml.safe_load(path.read_text(encoding="utf-8"))["interactions"]:
        body = item["response"].get("body", {}).get("string")
        if isinstance(body, bytes):
            body = gzip.decompress(body).decode("utf-8")
        if body and ("data:" in body[:200] or "event:" in body[:200]):
            out.append(body.encode("utf-8"))
    return out


async def replayed(item: Interaction) -> bytes:
    """The body a raw HTTP client reads when ``item`` is replayed alone (matching any request)."""
    async with Replayer(Cassette(interactions=(replace(item, request=Request()),)), speed=0) as reel:
        reply = await raw_request(reel.url, "POST", "/", body=b"{}")
    assert reply.ended == "end"
    return reply.body


def assert_same_wire(got: bytes, original: bytes, line_ending: str) -> None:
    if ends_with_blank_line(original):
        assert got == original
    else:
        assert got == original.rstrip(b"\r\n") + line_ending.encode() * 2


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: f"{p.parent.name}/{p.name[:32]}")
async def test_every_capture_replays_byte_for_byte_after_import_save_and_load(path: Path, tmp_path: Path) -> None:
    save(import_file(path), tmp_path / "c.yaml")
    streams = [i for i in load(tmp_path / "c.yaml").interactions if i.response.is_stream]
    originals = streamed_bodies(path)
    assert len(streams) == len(originals) > 0
    for item, original in zip(streams, originals):
        assert_same_wire(await replayed(item), original, item.response.line_ending)


@pytest.mark.parametrize("path", CHUNKS, ids=lambda p: f"{p.parent.name}/{p.name[:32]}")
async def test_every_json_chunk_line_replays_as_one_data_line_verbatim(path: Path) -> None:
    lines = [line.rstrip(b"\r") for line in path.read_bytes().split(b"\n") if line.strip()]
    sent = []
    for item in import_file(path).interactions:
        body = await replayed(item)
        sent += [line[6:] for line in body.splitlines() if line.startswith(b"data: ") and line != b"data: [DONE]"]
    assert sent == lines


def test_the_gemini_capture_is_crlf_and_its_cassette_says_so_once(tmp_path: Path) -> None:
    save(import_file(GEMINI), tmp_path / "g.yaml")
    text = (tmp_path / "g.yaml").read_text(encoding="utf-8")
    assert text.count("line_ending: crlf") == 1
    events = load(tmp_path / "g.yaml").interactions[0].response.events or ()
    assert {e.line_ending for e in events} == {"\r\n"}


def test_old_cassettes_without_line_endings_load_unchanged_as_lf() -> None:
    from streamreel.cassette import bundled, bundled_names

    for name in bundled_names():
        for item in load(bundled(name)).interactions:
            assert all(e.line_ending == "\n" for e in item.response.events or ())


def gemini_wire() -> bytes:
    return streamed_bodies(GEMINI)[0]


MIXED = (
    b": hello\r\n\r\n"
    b"event: a\r\ndata: 1\r\n\r\n"  # CRLF
    b"event: b\rdata: 2\r\r"  # CR
    b"data: 3\n\n"  # LF
    b"id: 4\r\ndata: x\ndata: y\r\r\n"  # one event mixing all three
    b"data: [DONE]\r\n\r\n"
)


def pieces(wire: bytes, how: str) -> list[bytes]:
    if how == "whole":
        return [wire]
    if how == "byte by byte":
        return [wire[i : i + 1] for i in range(len(wire))]
    # every CR at the end of a piece, its LF at the start of the next
    out, last = [], 0
    for i, b in enumerate(wire):
        if b == 13:
            out.append(wire[last : i + 1])
            last = i + 1
    return [*out, wire[last:]]


@pytest.mark.parametrize("how", ["whole", "byte by byte", "split after every CR"])
@pytest.mark.parametrize("name", ["gemini CRLF", "CR only", "mixed"])
async def test_a_recording_replays_the_bytes_the_upstream_sent_whatever_its_line_ends(tmp_path: Path, name: str, how: str) -> None:
    wire = {"gemini CRLF": gemini_wire, "CR only": lambda: gemini_wire().replace(b"\r\n", b"\r"), "mixed": lambda: MIXED}[name]()
    parts = pieces(wire, how)

    async def upstream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for part in parts:
            await resp.write(part)
            await asyncio.sleep(0.001 if len(parts) < 100 else 0)  # pieces apart, so the recorder reads them apart
        await resp.write_eof()
        return resp

    out = tmp_path / "rec.yaml"
    async with ScriptedUpstream(upstream) as up, Recorder(upstream=up.url, cassette=out, mode="all") as rec:
        live = await raw_request(rec.url, "POST", "/v1beta/models/m:streamGenerateContent?alt=sse", body=b"{}")
        await rec.asettle()
    assert live.body == wire
    async with Replayer(out, speed=0) as reel:
        again = await raw_request(reel.url, "POST", "/v1beta/models/m:streamGenerateContent?alt=sse", body=b"{}")
    assert again.body == wire


async def test_events_a_fault_adds_end_their_lines_like_the_recording(tmp_path: Path) -> None:
    item = load_gemini(tmp_path)
    async with Replayer(Cassette(interactions=(item,)), speed=0, faults="pings:every=1ms,style=comment") as reel:
        body = (await raw_request(reel.url, "POST", "/", body=b"{}")).body
    assert b": ping\r\n\r\n" in body
    assert b"\n" not in body.replace(b"\r\n", b"")


def load_gemini(tmp_path: Path) -> Interaction:
    save(import_file(GEMINI), tmp_path / "g.yaml")
    item = load(tmp_path / "g.yaml").interactions[0]
    events = item.response.events or ()
    spread = tuple(replace(e, t=float(i * 5)) for i, e in enumerate(events))  # room for pings between events
    return replace(item, request=Request(), response=replace(item.response, events=spread))


@pytest.mark.parametrize("fault", ["latency:first=1ms,each=0ms,jitter=0.5ms,seed=4", "fragment:size=7", "throttle:bytes_per_s=2000000", "disconnect:after=30,how=close"])
async def test_ground_truth_of_a_faulted_stream_is_what_the_client_read_kept_as_a_count(fault: str) -> None:
    import gc
    import hashlib
    import tracemalloc

    from streamreel.providers.anthropic import TextBlock, message_events

    events = [replace(e, t=0.0) for e in message_events([TextBlock(tuple(f" word{i}" for i in range(200)))])]
    stream_size = sum(len(e.wire) for e in events)
    async with Replayer(Cassette.from_events(events), speed=0, faults=fault) as reel:
        await raw_request(reel.url, "POST", "/v1/messages", body=b"{}")  # encodes the events once, for every later response
        reel.clear()
        reads = []
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(10):
            body = (await raw_request(reel.url, "POST", "/v1/messages", body=b"{}")).body
            reads.append((len(body), hashlib.sha256(body).digest()))
            del body
        await reel.asettle()
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        sent = reel.responses
    assert [(len(r.data), hashlib.sha256(r.data).digest()) for r in sent] == reads
    assert all(size > 0 for size, _ in reads)
    assert held / 10 < stream_size / 4, f"{held / 10:.0f} bytes held per response for a {stream_size}-byte stream"
