"""The Gemini dialect: chunks spaced as the API writes them, Google's errors, usage and thinking."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from google import genai
from google.genai import types

from streamreel import Cassette, Replayer
from streamreel.importer import import_file
from streamreel.metrics import interaction_metrics
from streamreel.pipeline import timed_chunks
from streamreel.providers import get
from streamreel.providers.gemini import CRLF, chunk_data, content_events, error_body, error_bytes
from streamreel.synth import synth_cassette

PATH = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"


def test_chunks_are_spaced_after_colons_and_not_after_commas_like_the_real_capture():
    real = import_file("tests/data/pydantic-ai/test_google_model_stream.yaml").interactions[0].response.events[0].data
    assert chunk_data(json.loads(real)) == real
    assert chunk_data({"a": [1, 2], "b": {"c": "d"}}) == '{"a": [1,2],"b": {"c": "d"}}'


def test_thoughts_text_and_a_whole_function_call_stream_in_order_with_the_final_usage():
    events = content_events(("The", " answer"), thought_deltas=("Thinking",), function_call=("lookup", {"q": 1}), output_tokens=20, thoughts_tokens=5)
    parts = [json.loads(e.data)["candidates"][0]["content"]["parts"][0] for e in events]
    assert parts == [{"text": "Thinking", "thought": True}, {"text": "The"}, {"text": " answer"}, {"functionCall": {"name": "lookup", "args": {"q": 1}}}]
    last = json.loads(events[-1].data)
    assert last["candidates"][0]["finishReason"] == "STOP"
    assert (last["usageMetadata"]["candidatesTokenCount"], last["usageMetadata"]["thoughtsTokenCount"]) == (15, 5)
    assert all("finishReason" not in json.loads(e.data)["candidates"][0] for e in events[:-1])
    m = interaction_metrics(Cassette.from_events(events, path=PATH).interactions[0])
    assert (m.provider, m.output_tokens, m.stop_reason) == ("gemini", 20, "STOP")


def test_errors_are_googles_shape_indented_and_mid_stream_a_last_chunk():
    assert error_body(429) == {"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}}
    assert error_body(529)["error"]["status"] == "UNAVAILABLE"
    assert error_bytes(error_body(404)).startswith(b'{\n  "error": {\n    "code": 404,')
    with_retry = error_body(429, retry_after_s=7)["error"]["details"]
    assert with_retry == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]
    cas = synth_cassette("Hello there.", provider="gemini")
    body = b"".join(c.data for c in timed_chunks(cas, "error:after=1,type=overloaded_error;speed:0"))
    last = body.split(b"data: ")[-1]
    assert json.loads(last) == {"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}
    assert get("gemini").is_complete(list(cas.interactions[0].response.events))


def test_an_imported_chunk_file_gets_a_path_naming_its_model():
    item = import_file("tests/data/vercel-ai/google-text.chunks.txt").interactions[0]
    assert item.request.path == "/v1/models/gemini-3-pro-preview:streamGenerateContent?alt=sse"
    assert item.response.end.reason == "complete"
    m = interaction_metrics(item)
    assert (m.output_tokens, m.tokens_from) == (23 + 185, "usage")


HAS_LINE_ENDINGS = bool(CRLF)
needs_line_endings = pytest.mark.xfail(not HAS_LINE_ENDINGS, strict=True, reason="CRLF replays as CRLF once events keep their line ending (sse.Event.line_ending)")


@needs_line_endings
def test_a_synthesised_stream_and_its_mid_stream_error_go_out_with_crlf_line_ends():
    body = b"".join(c.data for c in timed_chunks(synth_cassette("Hello there, how are you?", provider="gemini"), "error:after=1;speed:0"))
    assert body.count(b"\r\n\r\n") == body.count(b"data: ") == 2
    assert b"\n" not in body.replace(b"\r\n", b"")


@needs_line_endings
def test_an_imported_chunk_file_replays_with_the_crlf_the_api_sends():
    body = b"".join(c.data for c in timed_chunks(import_file("tests/data/vercel-ai/google-text.chunks.txt"), "speed:0"))
    lines = Path("tests/data/vercel-ai/google-text.chunks.txt").read_text().splitlines()
    assert body == b"".join(b"data: " + line.encode() + b"\r\n\r\n" for line in lines)


@needs_line_endings
def test_the_real_crlf_capture_replays_byte_for_byte_to_the_sdk():
    path = Path("tests/data/pydantic-ai/test_google_model_stream.yaml")
    original = yaml.safe_load(path.read_text())["interactions"][0]["response"]["body"]["string"].encode()
    item = import_file(path).interactions[0]
    with Replayer(Cassette(interactions=(replace(item, request=replace(item.request, body=None)),)), speed=0) as r:
        client = genai.Client(api_key="test", http_options=types.HttpOptions(base_url=r.url, api_version="v1beta"))
        text = "".join(c.text for c in client.models.generate_content_stream(model="gemini-2.0-flash-exp", contents="What is the capital of France?"))
        sent = r.settle()[0]
    assert sent.data == original and text == "The capital of France is Paris.\n"
