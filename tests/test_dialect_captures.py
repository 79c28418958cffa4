"""Real captures of each dialect, imported and replayed to its official SDK, and recorded through the proxy.

Every OpenAI Responses and Gemini capture in ``tests/data`` (all of those in the shared
corpus are copied there; set ``STREAMREEL_CORPUS`` to add a directory laid out the same
way) replays to the SDK with the text and the stop reason its events hold. Every dialect
records through the recorder: the SDK sees what the upstream sent, the cassette keeps the
events with their timing and no credential, and its replay sends the upstream's bytes.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path

import anthropic
import openai
import pytest
from google import genai
from google.genai import types as genai_types

from streamreel import Cassette, Recorder, Replayer
from streamreel.cassette import load
from streamreel.importer import import_file
from streamreel.providers import detect_provider, get
from streamreel.synth import synth_cassette

DATA = Path(__file__).parent / "data"
ROOTS = [DATA] + ([Path(os.environ["STREAMREEL_CORPUS"])] if os.environ.get("STREAMREEL_CORPUS") else [])
KEY = "sk-" + "capturetest0123456789"


def captures(dialect: str) -> list[Path]:
    found = []
    for root in ROOTS:
        for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "README.md"):
            try:
                cas = import_file(path)
            except Exception:
                continue
            if any(i.response.is_stream and detect_provider(i) == dialect for i in cas.interactions):
                found.append(path)
    return found


def streams(path: Path, dialect: str) -> Cassette:
    """The capture's streams of ``dialect``, matched by method and path only (an SDK's body differs from the recorded one)."""
    items = [replace(i, request=replace(i.request, body=None, headers={})) for i in import_file(path).interactions if i.response.is_stream and detect_provider(i) == dialect]
    return Cassette(interactions=tuple(items))


def expected(dialect: str, cas: Cassette) -> list[tuple[str, str | None]]:
    out = []
    d = get(dialect)
    for item in cas.interactions:
        text, stop = "", None
        for ev in item.response.events or ():
            payload = ev.json(default=None)
            if dialect == "openai-responses":
                text += payload.get("delta", "") if isinstance(payload, dict) and payload.get("type") == "response.output_text.delta" else ""
            else:
                text += "".join(p.get("text", "") for c in (payload or {}).get("candidates", []) for p in c.get("content", {}).get("parts", []) if not p.get("thought"))
            stop = d.stop_reason(payload, ev.event) or stop
        out.append((text, stop))
    return out


RESPONSES = captures("openai-responses")
GEMINI = captures("gemini")


def test_the_corpus_has_captures_of_both_sse_dialects():
    assert len(RESPONSES) >= 10 and len(GEMINI) >= 2


@pytest.mark.parametrize("path", RESPONSES, ids=[p.name for p in RESPONSES])
def test_a_responses_capture_replays_to_the_openai_sdk_with_its_text_and_status(path):
    cas = streams(path, "openai-responses")
    seen = []
    with Replayer(cas, speed=0) as r, openai.OpenAI(base_url=r.url + "/v1", api_key=KEY, max_retries=0) as client:
        for _ in cas.interactions:
            text, status = "", None
            for ev in client.responses.create(model="gpt-5", input="hi", stream=True):
                if ev.type == "response.output_text.delta":
                    text += ev.delta
                elif ev.type in ("response.completed", "response.incomplete", "response.failed"):
                    status = ev.response.status
            seen.append((text, status))
    assert seen == expected("openai-responses", cas)


@pytest.mark.parametrize("path", GEMINI, ids=[p.name for p in GEMINI])
def test_a_gemini_capture_replays_to_google_genai_with_its_text_and_finish_reason_sync_and_async(path):
    cas = streams(path, "gemini")
    route = cas.interactions[0].request.route or ""
    version, model = route.split("/")[1], route.rsplit("/", 1)[1].split(":")[0]

    def read(chunks) -> tuple[str, str | None]:
        text, stop = "", None
        for chunk in chunks:
            text += "".join(p.text or "" for c in chunk.candidates or () for p in (c.content.parts if c.content else None) or () if not p.thought)
            stop = next((c.finish_reason.name for c in chunk.candidates or () if c.finish_reason), stop)
        return text, stop

    with Replayer(cas, speed=0) as r:
        client = genai.Client(api_key=KEY, http_options=genai_types.HttpOptions(base_url=r.url, api_version=version))
        sync = read(client.models.generate_content_stream(model=model, contents="hi"))

    async def run():
        async with Replayer(cas, speed=0) as r:
            client = genai.Client(api_key=KEY, http_options=genai_types.HttpOptions(base_url=r.url, api_version=version))
            return read([c async for c in await client.aio.models.generate_content_stream(model=model, contents="hi")])

    assert sync == asyncio.run(run()) == expected("gemini", cas)[0]


# ---------------------------------------------------------------- recording every dialect


def _responses(url: str) -> str:
    with openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0) as client:
        return "".join(ev.delta for ev in client.responses.create(model="gpt-5", input="hi", stream=True) if ev.type == "response.output_text.delta")


def _gemini(url: str) -> str:
    client = genai.Client(api_key=KEY, http_options=genai_types.HttpOptions(base_url=url))
    return "".join(c.text or "" for c in client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))


def _vertex(url: str) -> str:
    client = anthropic.AnthropicVertex(region="us-east5", project_id="my-project", access_token=KEY, base_url=url + "/v1", max_retries=0)
    with client.messages.stream(model="claude-sonnet-4-5@20250929", max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as stream:
        return stream.get_final_text()


def _bedrock(url: str) -> str:
    client = anthropic.AnthropicBedrock(aws_access_key="AKIA" + "CAPTURETEST", aws_secret_key=KEY, aws_session_token="session" + "CAPTURETEST", aws_region="us-east-1", base_url=url, max_retries=0)
    with client.messages.stream(model="anthropic.claude-sonnet-4-5-20250929-v1:0", max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as stream:
        return stream.get_final_text()


CLIENTS = {"openai-responses": _responses, "gemini": _gemini, "anthropic-vertex": _vertex, "anthropic-bedrock": _bedrock}


@pytest.mark.parametrize("dialect", list(CLIENTS))
def test_each_dialect_records_through_the_proxy_scrubbed_timed_and_replays_the_same_bytes(dialect, tmp_path):
    upstream = synth_cassette("The capital of France is Paris, on the Seine.", provider=dialect, ttft_ms=150, tps=200, seed=3)
    out = tmp_path / "recorded.yaml"
    call = CLIENTS[dialect]
    with Replayer(upstream) as up:
        with Recorder(upstream=up.url, cassette=out, mode="all") as rec:
            live = call(rec.url)
            rec.settle()
        sent = up.settle()[0]
    text = out.read_text(encoding="utf-8")
    assert KEY not in text and "CAPTURETEST" not in text
    recorded = load(out).interactions[0]
    assert detect_provider(recorded) == dialect
    source = upstream.interactions[0].response.events
    assert [(e.event, e.data, e.comment) for e in recorded.response.events] == [(e.event, e.data, e.comment) for e in source]
    assert recorded.response.end.reason == "complete"
    times = [e.t for e in recorded.response.events]
    # timed: no event arrives before the upstream sends it (however late a loaded machine makes it)
    assert times == sorted(times) and all(got >= sent.t - 1.0 for got, sent in zip(times, source))
    with Replayer(out, speed=0) as again:
        assert call(again.url) == live == "The capital of France is Paris, on the Seine."
        assert again.settle()[0].data == sent.data

