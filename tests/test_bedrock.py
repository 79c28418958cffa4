"""Anthropic on Bedrock: AWS event-stream frames checked by botocore's parser, the real
AnthropicBedrock SDK end to end, faults on frames, recording and importing byte for byte."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import replace
from pathlib import Path

import anthropic
import httpx2
import pytest
import yaml
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer
from hypothesis import given, settings
from hypothesis import strategies as st

from streamreel import Cassette, Recorder, Replayer
from streamreel.cassette import dumps, load, loads
from streamreel.importer import detect_format, import_file, import_vcr
from streamreel.metrics import interaction_metrics
from streamreel.pipeline import timed_chunks
from streamreel.providers import detect_provider, get
from streamreel.providers.bedrock import (
    CONTENT_TYPE,
    RAW_FRAME,
    Frame,
    FrameDecoder,
    FrameError,
    decode_frames,
    encode_frame,
    exception_event,
    padding,
)
from streamreel.sse import Event
from streamreel.synth import synth_cassette

DATA = Path(__file__).parent / "data"
MODEL = "anthropic.claude-sonnet-4-5-20250929-v1:0"
PATH = f"/model/{MODEL}/invoke-with-response-stream"
ACCESS, SECRET = "AKIA" + "STREAMREELTEST", "fake" + "secret" * 4


def bedrock_cassette(capture: str = "anthropic-sdk-python/stream-b-fallback.sse") -> Cassette:
    """A real Messages capture as Bedrock frames it: the same events, each padded as Bedrock pads them."""
    imported = import_file(DATA / capture).interactions[0]
    events = tuple(replace(ev, comment=padding(ev.data or "")) for ev in imported.response.events or ())
    return Cassette.from_events(events, path=PATH, headers={"content-type": CONTENT_TYPE})


def client(url: str, **options) -> anthropic.AnthropicBedrock:
    return anthropic.AnthropicBedrock(aws_access_key=ACCESS, aws_secret_key=SECRET, aws_region="us-east-1", base_url=url, max_retries=0, **options)


REQUEST = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


def botocore_frames(data: bytes) -> list:
    buf = EventStreamBuffer()
    buf.add_data(data)
    return list(buf)


# ---------------------------------------------------------------- the frames


EVENT = st.builds(
    Event,
    event=st.one_of(st.none(), st.sampled_from(["message_start", "content_block_delta", "throttlingException", "modelStreamErrorException"])),
    data=st.text(max_size=300),
    comment=st.one_of(st.none(), st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC0123", max_size=60)),
)


@given(EVENT)
@settings(max_examples=300, derandomize=True)
def test_every_frame_parses_in_botocore_and_decodes_back_to_the_same_event(ev):
    wire = encode_frame(ev)
    (message,) = botocore_frames(wire)
    headers = message.headers
    if (ev.event or "").endswith("Exception"):
        assert headers == {":exception-type": ev.event, ":content-type": "application/json", ":message-type": "exception"}
        assert message.payload == ev.data.encode()
    else:
        assert headers == {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
        body = json.loads(message.payload)
        assert base64.b64decode(body["bytes"]).decode() == ev.data
        assert body.get("p") == ev.comment
    (back,) = decode_frames(wire)
    assert back.wire == wire
    assert (back.data, back.comment if not (ev.event or "").endswith("Exception") else None) == (ev.data, None if (ev.event or "").endswith("Exception") else ev.comment)


@given(st.lists(EVENT, max_size=6), st.lists(st.integers(1, 40), max_size=30))
@settings(max_examples=150, derandomize=True)
def test_the_decoder_takes_frames_in_any_split(events, sizes):
    wire = b"".join(encode_frame(e) for e in events)
    dec = FrameDecoder()
    out, at = [], 0
    for size in sizes:
        out += dec.feed(wire[at : at + size])
        at += size
    out += dec.feed(wire[at:])
    assert not dec.pending and dec.flush() == []
    assert b"".join(e.wire for e in out) == wire
    assert [e.data for e in out] == [e.data for e in events]


def test_a_frame_that_fits_neither_form_is_kept_whole_and_a_cut_tail_too():
    odd = encode_frame(Event(data="{}")).replace(b":content-type\x07\x00\x10application/json", b":content-type\x07\x00\x10application/jsom")
    odd = odd[:-4] + __import__("struct").pack(">I", __import__("zlib").crc32(odd[:-4]))
    cut = encode_frame(Event(data='{"type":"ping"}'))[:20]
    events = decode_frames(odd + cut)
    assert [e.event for e in events] == [RAW_FRAME, RAW_FRAME]
    assert b"".join(e.wire for e in events) == odd + cut


def test_a_comment_cannot_become_a_frame():
    with pytest.raises(FrameError, match="no comments"):
        encode_frame(Event(comment="keep-alive"))


# ---------------------------------------------------------------- the SDK end to end


def test_a_real_capture_framed_by_bedrock_reads_the_same_through_the_sdk_sync_and_async():
    cas = bedrock_cassette()
    expected = "".join(json.loads(e.data)["delta"]["text"] for e in cas.interactions[0].response.events if e.event == "content_block_delta")

    with Replayer(cas, speed=0) as r:
        with client(r.url).messages.stream(**REQUEST) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        sent = r.settle()[0]
        request = r.requests[0]

    async def run():
        async with Replayer(cas, speed=0) as r:
            async with anthropic.AsyncAnthropicBedrock(aws_access_key=ACCESS, aws_secret_key=SECRET, aws_region="us-east-1", base_url=r.url, max_retries=0) as c:
                stream = await c.messages.create(**REQUEST, stream=True)
                return [ev async for ev in stream]

    raw = asyncio.run(run())
    assert text == expected and final.stop_reason == "end_turn"
    assert "".join(ev.delta.text for ev in raw if ev.type == "content_block_delta") == expected
    assert request.path == PATH and request.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=" + ACCESS)
    assert sent.headers["content-type"] == CONTENT_TYPE
    assert sent.data == b"".join(encode_frame(e) for e in cas.interactions[0].response.events)
    assert [e.data for e in sent.events] == [e.data for e in cas.interactions[0].response.events]


def test_an_exception_frame_mid_stream_is_an_api_status_error_naming_the_exception():
    with Replayer(bedrock_cassette(), speed=0, faults="error:after=5,type=rate_limit_error") as r:
        with pytest.raises(anthropic.APIStatusError) as info:
            with client(r.url).messages.stream(**REQUEST) as stream:
                for _ in stream:
                    pass
        sent = r.settle()[0]
    assert info.value.status_code == 200
    assert info.value.body == {"type": "error", "error": {"type": "throttlingException", "message": "Too many requests, please wait before trying again."}}
    assert [e.event for e in sent.events][-1] == "throttlingException"


def test_a_truncated_event_is_a_damaged_frame_the_client_rejects_by_its_checksum():
    with Replayer(bedrock_cassette(), speed=0, faults="truncate:event=4") as r:
        with pytest.raises(ChecksumMismatch):
            with client(r.url).messages.stream(**REQUEST) as stream:
                for _ in stream:
                    pass


def test_byte_faults_cut_frames_anywhere():
    cas = bedrock_cassette()
    whole = b"".join(encode_frame(e) for e in cas.interactions[0].response.events)
    pieces = list(timed_chunks(cas, "fragment:size=7;speed:0"))
    assert b"".join(c.data for c in pieces) == whole and max(len(c.data) for c in pieces) == 7
    with Replayer(cas, speed=0, faults="disconnect:after_bytes=300,how=close") as r:
        with pytest.raises(httpx2.RemoteProtocolError):
            with client(r.url).messages.stream(**REQUEST) as stream:
                for _ in stream:
                    pass
        sent = r.settle()[0]
    assert sent.data == whole[:300] and sent.ending == "close"


def test_pings_have_no_place_in_an_event_stream():
    with pytest.raises(FrameError, match="no keep-alives"):
        list(timed_chunks(bedrock_cassette(), "pings:every=1ms"))


@pytest.mark.parametrize(("status", "exception", "error"), [(429, "ThrottlingException", anthropic.RateLimitError), (503, "ServiceUnavailableException", anthropic.InternalServerError), (400, "ValidationException", anthropic.BadRequestError)])
def test_http_errors_carry_the_aws_body_and_exception_header(status, exception, error):
    with Replayer(bedrock_cassette(), faults=f"http:status={status}") as r:
        with pytest.raises(error) as info:
            client(r.url).messages.create(**REQUEST, stream=True)
        sent = r.settle()[0]
    assert set(info.value.body) == {"message"}
    assert sent.headers["x-amzn-errortype"].startswith(exception + ":")
    assert len(sent.headers["x-amzn-requestid"]) == 36


# ---------------------------------------------------------------- recording, importing, metrics, synthesis


async def test_the_recorder_keeps_bedrock_frames_as_events_and_replays_them_byte_for_byte(tmp_path):
    upstream = bedrock_cassette()
    out = tmp_path / "bedrock.yaml"
    async with Replayer(upstream, speed=0) as up:
        async with Recorder(upstream=up.url, cassette=out, mode="all") as rec:
            c = anthropic.AsyncAnthropicBedrock(aws_access_key=ACCESS, aws_secret_key=SECRET, aws_region="us-east-1", base_url=rec.url, max_retries=0)
            async with c.messages.stream(**REQUEST) as stream:
                recorded_text = "".join([t async for t in stream.text_stream])
            await c.close()
            await rec.asettle()
        source = await up.asettle()
    text = out.read_text()
    assert ACCESS not in text and SECRET not in text
    recorded = load(out).interactions[0]
    assert detect_provider(recorded) == "anthropic-bedrock"
    assert [(e.event, e.data, e.comment) for e in recorded.response.events] == [(e.event, e.data, e.comment) for e in upstream.interactions[0].response.events]
    async with Replayer(out, speed=0) as again:
        c = anthropic.AsyncAnthropicBedrock(aws_access_key=ACCESS, aws_secret_key=SECRET, aws_region="us-east-1", base_url=again.url, max_retries=0)
        async with c.messages.stream(**REQUEST) as stream:
            replayed_text = "".join([t async for t in stream.text_stream])
        await c.close()
        replayed = await again.asettle()
    assert recorded_text == replayed_text
    assert replayed[0].data == source[0].data


def test_a_raw_event_stream_body_and_a_vcrpy_cassette_of_one_import_byte_for_byte(tmp_path):
    body = b"".join(encode_frame(e) for e in bedrock_cassette().interactions[0].response.events)
    raw = tmp_path / "bedrock.bin"
    raw.write_bytes(body)
    assert detect_format(body) == "eventstream"
    imported = import_file(raw).interactions[0]
    assert imported.request.path.endswith("/invoke-with-response-stream")
    assert imported.response.end.reason == "complete"
    assert b"".join(e.wire for e in get("anthropic-bedrock").framed(imported.response.events)) == body
    doc = yaml.safe_dump(  # a vcrpy cassette stores a binary body as !!binary
        {
            "interactions": [
                {
                    "request": {"method": "POST", "uri": "https://bedrock-runtime.us-east-1.amazonaws.com" + PATH, "body": "", "headers": {"authorization": ["AWS4-HMAC-SHA256 Credential=AKIA" + "XYZ"]}},
                    "response": {"status": {"code": 200, "message": "OK"}, "headers": {"content-type": [CONTENT_TYPE]}, "body": {"string": body}},
                }
            ],
            "version": 1,
        }
    )
    assert "!!binary" in doc
    cas = import_vcr(doc)
    assert "AKIAXYZ" not in dumps(cas)
    with Replayer(cas, speed=0) as r:
        with client(r.url).messages.stream(**REQUEST) as stream:
            assert stream.get_final_message().stop_reason == "end_turn"
        assert r.settle()[0].data == body


def test_metrics_read_the_first_token_and_the_bedrock_usage():
    cas = synth_cassette("The quick brown fox jumps over the lazy dog.", provider="anthropic-bedrock", ttft_ms=250)
    m = interaction_metrics(cas.interactions[0])
    assert (m.provider, m.ttft_ms, m.tokens_from, m.stop_reason) == ("anthropic-bedrock", 250.0, "usage", "end_turn")
    events = cas.interactions[0].response.events
    no_delta_usage = tuple(e for e in events if e.event != "message_delta")
    m = interaction_metrics(Cassette.from_events(no_delta_usage, path=PATH, headers={"content-type": CONTENT_TYPE}).interactions[0])
    assert m.output_tokens == json.loads(events[-1].data)["amazon-bedrock-invocationMetrics"]["outputTokenCount"]
    failed = (*events[:3], exception_event(events[3].t, "overloaded_error"))
    assert interaction_metrics(Cassette.from_events(failed, path=PATH, headers={"content-type": CONTENT_TYPE}).interactions[0]).stop_reason == "error: modelStreamErrorException"


def test_a_synthesised_stream_round_trips_through_a_cassette_file():
    cas = synth_cassette("Hello from Bedrock.", provider="anthropic-bedrock", tool_input={"city": "Paris"})
    again = loads(dumps(cas))
    framed = get("anthropic-bedrock").framed(again.interactions[0].response.events)
    assert all(isinstance(e, Frame) for e in framed)
    assert b"".join(e.wire for e in framed) == b"".join(e.wire for e in cas.interactions[0].response.events)
    with Replayer(again, speed=0) as r:
        final = client(r.url).messages.stream(**REQUEST).__enter__().get_final_message()
    assert final.stop_reason == "tool_use" and final.content[-1].input == {"city": "Paris"}
