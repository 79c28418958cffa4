"""Synthetic streams: token-like pieces, seeded timing, and protocol validity through the real SDKs."""

from __future__ import annotations

import json
import random

import anthropic
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamreel import Replayer
from streamreel.cassette import dumps
from streamreel.metrics import cassette_metrics, delta_text
from streamreel.synth import group_tokens, split_like_tokens, synth_cassette, synth_events, timing

TEXT = (
    "Crossing the street safely takes three steps. First, find a crosswalk or an intersection; "
    "drivers expect pedestrians there. Second, look left, right and left again.\n\n"
    "Finally, keep looking while you cross — distracted walking causes 1,234 accidents a year."
)


@given(st.text(max_size=300))
@settings(max_examples=200, deadline=None)
def test_token_pieces_join_back_to_the_text(text):
    pieces = split_like_tokens(text, random.Random(1))
    assert "".join(pieces) == text
    assert all(pieces)


def test_token_pieces_are_token_sized():
    pieces = split_like_tokens(TEXT, random.Random(0))
    sizes = [len(p) for p in pieces]
    assert 2.5 <= sum(sizes) / len(sizes) <= 6
    assert max(sizes) <= 8
    assert " pedest" in pieces or any(p.startswith(" pedes") and len(p) < len(" pedestrians") for p in pieces)
    assert "." in pieces and "\n\n" in pieces


def test_grouping_keeps_the_text_and_counts_tokens():
    tokens = split_like_tokens(TEXT)
    groups = group_tokens(tokens, random.Random(3), fewest=1, most=5)
    assert "".join(text for text, _ in groups) == TEXT
    assert sum(n for _, n in groups) == len(tokens)
    assert {n for _, n in groups} <= set(range(1, 6))
    with pytest.raises(ValueError, match="fewest"):
        group_tokens(tokens, fewest=3, most=2)


def test_timing_hits_ttft_exactly_and_the_rate_over_the_window():
    counts = [2, 3, 1, 4, 2, 3]
    times = timing(counts, ttft_ms=250, tps=40)
    assert times[0] == 250
    assert sum(counts) * 1000 / (times[-1] - times[0]) == pytest.approx(40)
    assert times == sorted(times)
    jittered = timing(counts, ttft_ms=250, tps=40, jitter_ms=30, rng=random.Random(5))
    assert jittered[0] == 250 and jittered == sorted(jittered) and jittered != times
    for bad, match in (({"tps": 0}, "tps"), ({"ttft_ms": -1}, "ttft_ms"), ({"jitter_ms": -2}, "jitter_ms")):
        with pytest.raises(ValueError, match=match):
            timing(counts, **{"ttft_ms": 1, "tps": 1, **bad})


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_inspect_reads_back_the_synthesized_ttft_and_rate(provider):
    cas = synth_cassette(TEXT, provider=provider, ttft_ms=350, tps=45, seed=2)
    m = cassette_metrics(cas)[0]
    assert m.ttft_ms == 350
    assert m.tokens_from == "usage"
    assert m.tps == pytest.approx(45, rel=1e-3)
    assert m.end_reason == "complete"
    assert m.headers_ms == pytest.approx(350 * 0.6)


def test_jitter_moves_times_but_keeps_the_rate_close():
    m = cassette_metrics(synth_cassette(TEXT, ttft_ms=200, tps=60, jitter_ms=15, seed=9))[0]
    assert m.ttft_ms == 200
    assert m.tps == pytest.approx(60, rel=0.1)
    assert m.gap_p95_ms > m.gap_p50_ms


def test_the_same_seed_gives_the_same_bytes_and_another_seed_does_not():
    a = dumps(synth_cassette(TEXT, seed=4, jitter_ms=5))
    assert a == dumps(synth_cassette(TEXT, seed=4, jitter_ms=5))
    assert a != dumps(synth_cassette(TEXT, seed=5, jitter_ms=5))


def test_anthropic_deltas_batch_tokens_and_openai_sends_one_per_chunk():
    _, a_events = synth_events(TEXT, provider="anthropic")
    _, o_events = synth_events(TEXT, provider="openai")
    a_deltas = [delta_text(e) for e in a_events if delta_text(e)]
    o_deltas = [delta_text(e) for e in o_events if delta_text(e)]
    assert "".join(a_deltas) == "".join(o_deltas) == TEXT
    assert len(a_deltas) < len(o_deltas)


def test_bad_options_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="provider"):
        synth_events("x", provider="mistral")
    with pytest.raises(ValueError, match="nothing to stream"):
        synth_events("")
    with pytest.raises(ValueError, match="Anthropic"):
        synth_events("x", provider="openai", thinking="hmm")
    with pytest.raises(ValueError, match="headers_ms"):
        synth_events("x", ttft_ms=100, headers_ms=200)


def test_anthropic_stream_is_valid_for_the_sdk_with_thinking_text_and_a_tool_call():
    tool_input = {"city": "Paris", "days": [1, 2, 3], "note": 'say "hi"\n'}
    cas = synth_cassette(TEXT, thinking="Let me think about streets.", tool_input=tool_input, tool_name="weather", seed=1)
    with Replayer(cas, speed=0) as r:
        client = anthropic.Anthropic(base_url=r.url, api_key="test", max_retries=0)
        with client.messages.stream(model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}]) as stream:
            message = stream.get_final_message()
    kinds = [b.type for b in message.content]
    assert kinds == ["thinking", "text", "tool_use"]
    assert message.content[0].thinking == "Let me think about streets."
    assert message.content[1].text == TEXT
    assert message.content[2].name == "weather" and message.content[2].input == tool_input
    assert message.stop_reason == "tool_use"
    assert message.usage.output_tokens == cassette_metrics(cas)[0].output_tokens


def test_openai_stream_is_valid_for_the_sdk_with_text_and_a_tool_call():
    cas = synth_cassette(TEXT, provider="openai", tool_input={"q": "streets"}, tool_name="search", seed=1)
    with Replayer(cas, speed=0) as r:
        client = openai.OpenAI(base_url=r.url + "/v1", api_key="test", max_retries=0)
        text, args, finish, usage = "", "", None, None
        for chunk in client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True):
            if chunk.usage:
                usage = chunk.usage.completion_tokens
            for choice in chunk.choices:
                text += choice.delta.content or ""
                for call in choice.delta.tool_calls or ():
                    args += call.function.arguments or ""
                finish = choice.finish_reason or finish
    assert text == TEXT
    assert json.loads(args) == {"q": "streets"}
    assert finish == "tool_calls"
    assert usage == cassette_metrics(cas)[0].output_tokens


def test_cli_synth_writes_a_cassette_that_loads_and_measures_as_asked(tmp_path):
    from click.testing import CliRunner

    from streamreel.cassette import load
    from streamreel.cli import main

    (tmp_path / "reply.md").write_text(TEXT, encoding="utf-8")
    out = tmp_path / "s.yaml"
    args = ["synth", "--text", str(tmp_path / "reply.md"), "--ttft-ms", "250", "--tps", "30", "--seed", "3", "-o", str(out)]
    result = CliRunner().invoke(main, [*args, "--tool-input", '{"x": [1, 2]}', "--provider", "openai"])
    assert result.exit_code == 0, result.output
    m = cassette_metrics(load(out))[0]
    assert m.ttft_ms == 250 and m.tps == pytest.approx(30, rel=1e-3)
    assert out.read_text().startswith("# synthesized by `streamreel synth`")

    from_stdin = CliRunner().invoke(main, ["synth", "--text", "-", "-o", str(tmp_path / "in.yaml")], input="hello from stdin")
    assert from_stdin.exit_code == 0, from_stdin.output
    assert "".join(delta_text(e) for e in load(tmp_path / "in.yaml").interactions[0].response.events) == "hello from stdin"

    bad = CliRunner().invoke(main, [*args, "--tool-input", "{nope"])
    assert bad.exit_code == 2 and "--tool-input" in bad.output and "not valid JSON" in bad.output
    nothing = CliRunner().invoke(main, ["synth", "-o", str(tmp_path / "n.yaml")])
    assert nothing.exit_code == 2 and "nothing to stream" in nothing.output
    assert not (tmp_path / "n.yaml").exists()


def test_non_ascii_runs_split_into_small_pieces_and_survive_the_sdk():
    text = "東京の天気は晴れ 😀🎉 — naïve café."
    pieces = split_like_tokens(text, random.Random(2))
    assert "".join(pieces) == text
    assert max(len(p.strip()) for p in pieces if not p.isascii()) <= 2
    cas = synth_cassette(text, seed=2)
    with Replayer(cas, speed=0) as r:
        client = anthropic.Anthropic(base_url=r.url, api_key="test", max_retries=0)
        with client.messages.stream(model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}]) as stream:
            assert stream.get_final_message().content[0].text == text
