"""The dialect registry: one name per dialect, detection from path, headers and events, clear errors."""

from __future__ import annotations

import pytest

from streamreel import Cassette
from streamreel.importer import import_file
from streamreel.providers import REGISTRY, Dialect, decode_body, detect_provider, get, names, provider_of_events, stream_decoder, synthesisable
from streamreel.providers.bedrock import CONTENT_TYPE, FrameDecoder, encode_frame
from streamreel.sse import Decoder, Event
from streamreel.synth import PROVIDERS, synth_cassette
from streamreel.cli import _SYNTH_PROVIDERS


def test_every_dialect_module_registers_one_named_dialect():
    assert names() == ["anthropic", "openai", "openai-responses", "gemini", "anthropic-vertex", "anthropic-bedrock", "sse"]
    assert all(isinstance(d, Dialect) and d.name == name for name, d in REGISTRY.items())
    assert get("sse").name == "sse"


def test_an_unknown_dialect_is_an_error_listing_the_known_ones():
    with pytest.raises(ValueError, match="unknown provider 'mistral'; known: anthropic, openai, openai-responses, gemini"):
        get("mistral")


def test_synth_and_its_cli_offer_every_dialect_that_can_synthesise():
    assert PROVIDERS == tuple(synthesisable()) == _SYNTH_PROVIDERS


@pytest.mark.parametrize("name", PROVIDERS)
def test_each_dialect_recognises_its_own_synthesised_stream(name):
    interaction = synth_cassette("Hi there.", provider=name).interactions[0]
    assert detect_provider(interaction) == name
    assert get(name).is_complete(interaction.response.events)
    assert not get(name).is_complete(interaction.response.events[:-1])


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/v1/messages", "anthropic"),
        ("/v1/chat/completions", "openai"),
        ("/v1/responses", "openai-responses"),
        ("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", "gemini"),
        ("/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-pro:streamGenerateContent?alt=sse", "gemini"),
        ("/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict", "anthropic-vertex"),
        ("/model/anthropic.claude-sonnet-4-5-20250929-v1:0/invoke-with-response-stream", "anthropic-bedrock"),
        ("/events", "sse"),
    ],
)
def test_the_request_path_names_the_dialect(path, name):
    assert detect_provider(Cassette.from_events((Event(data="x"),), path=path).interactions[0]) == name


def test_without_a_known_path_the_events_or_the_content_type_tell():
    anthropic = import_file("tests/data/anthropic-sdk-python/basic_response.txt").interactions[0].response.events
    assert provider_of_events(anthropic) == "anthropic"
    assert provider_of_events(import_file("tests/data/vercel-ai/google-text.chunks.txt").interactions[0].response.events) == "gemini"
    relayed = Cassette.from_events(anthropic, path="/relay", headers={"content-type": CONTENT_TYPE}).interactions[0]
    assert detect_provider(relayed) == "anthropic-bedrock"


def test_bodies_decode_by_their_content_type():
    assert isinstance(stream_decoder("text/event-stream; charset=utf-8"), Decoder)
    assert isinstance(stream_decoder(CONTENT_TYPE), FrameDecoder)
    assert stream_decoder("application/json") is None
    frame = encode_frame(Event(event="ping", data='{"type": "ping"}'))
    assert [e.data for e in decode_body({"content-type": CONTENT_TYPE}, frame)] == ['{"type": "ping"}']
    assert [e.data for e in decode_body({}, b"data: x\n\n")] == ["x"]


@pytest.mark.parametrize("name", PROVIDERS)
def test_synth_and_inspect_on_the_command_line_for_every_dialect(name, tmp_path):
    import json
    import subprocess
    import sys

    out = tmp_path / "s.yaml"
    made = subprocess.run([sys.executable, "-m", "streamreel", "synth", "--provider", name, "--tool-input", '{"city": "Paris"}', "--ttft-ms", "300", "-o", str(out)], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    shown = subprocess.run([sys.executable, "-m", "streamreel", "inspect", "--json", str(out)], capture_output=True, text=True, timeout=60)
    figures = json.loads(shown.stdout.splitlines()[0])
    assert (figures["provider"], figures["ttft_ms"], figures["tokens_from"]) == (name, 300.0, "usage")
    table = subprocess.run([sys.executable, "-m", "streamreel", "inspect", str(out)], capture_output=True, text=True, timeout=60, env={"COLUMNS": "300", "PATH": ""})
    assert name in table.stdout
