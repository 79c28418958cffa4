"""`streamreel inspect`: the figures of one cassette or a directory, as a table or JSON lines."""

from __future__ import annotations

import json

from click.testing import CliRunner

from streamreel.cassette import Cassette, save
from streamreel.cli import main
from streamreel.synth import synth_cassette

TEXT = "A short reply that streams in a few deltas, enough to measure. " * 3


def run(*args: str):
    return CliRunner().invoke(main, ["inspect", *args])


def test_json_has_one_object_per_interaction_with_the_documented_keys(tmp_path):
    one = synth_cassette(TEXT, ttft_ms=250, tps=40, seed=1).interactions[0]
    two = synth_cassette(TEXT, provider="openai", ttft_ms=500, tps=80, seed=1).interactions[0]
    save(Cassette(interactions=(one, two)), tmp_path / "c.yaml")
    result = run(str(tmp_path / "c.yaml"), "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    rows, summary = lines[:-1], lines[-1]["summary"]
    assert [r["index"] for r in rows] == [0, 1]
    for key in ("ttft_ms", "headers_ms", "tps", "output_tokens", "gap_p50_ms", "gap_p95_ms", "gap_max_ms", "longest_stall_ms", "events", "end_reason"):
        assert all(key in r for r in rows)
    assert [r["ttft_ms"] for r in rows] == [250, 500]
    assert rows[0]["tps"] == 40.0 and rows[1]["tps"] == 80.0
    assert rows[1]["events"]["[DONE]"] == 1
    assert summary["ttft_p50_ms"] == 375 and summary["tps_p50"] == 60.0


def test_a_directory_is_summarized_and_foreign_yaml_is_reported_not_fatal(tmp_path):
    for i, ttft in enumerate((100, 200, 300, 400, 1000)):
        save(synth_cassette(TEXT, ttft_ms=ttft, tps=50, seed=i), tmp_path / "sub" / f"c{i}.yaml")
    (tmp_path / "vcr.yaml").write_text("interactions: []\nversion: 1\n")
    result = CliRunner().invoke(main, ["inspect", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    summary = lines[-1]["summary"]
    assert summary["interactions"] == 5
    assert summary["ttft_p50_ms"] == 300
    assert summary["ttft_p95_ms"] == 880
    assert "vcr.yaml" in result.stderr and "streamreel import" in result.stderr


def test_table_shows_the_figures(tmp_path):
    save(synth_cassette(TEXT, ttft_ms=321, tps=40, seed=1), tmp_path / "c.yaml")
    result = run(str(tmp_path / "c.yaml"))
    assert result.exit_code == 0, result.output
    for text in ("TTFT", "321", "40.0", "content_block_delta", "complete", "end_turn", "POST /v1/messages"):
        assert text in result.output


def test_a_bad_file_names_itself(tmp_path):
    (tmp_path / "bad.yaml").write_text("streamreel: 1\ninteractions:\n- response: {status: 999}\n")
    result = run(str(tmp_path / "bad.yaml"))
    assert result.exit_code == 1
    assert "bad.yaml:3" in result.output and "status" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run(str(empty))
    assert result.exit_code == 1 and "no streamreel cassettes" in result.output
