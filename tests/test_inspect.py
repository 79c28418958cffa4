"""`streamreel inspect`: the figures of one cassette or a directory, as a table or JSON lines."""

from __future__ import annotations

import io
import json
import re
import shutil
from dataclasses import replace

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len
from rich.console import Console

from streamreel.cassette import Cassette, End, bundled, bundled_names, save
from streamreel._inspect_table import render
from streamreel.cli import main
from streamreel.metrics import cassette_metrics
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


# ---------------------------------------------------------------- the table at a terminal's width


def _shown_ms(value: float | None) -> str:
    """How a time reads: whole ms from 100 up (with thousands separators), one decimal below."""
    return "-" if value is None else (f"{value:,.0f}" if value >= 100 else f"{value:.1f}")


def _varied_cassettes(tmp_path):
    """The bundled captures, and streams that make wide cells: a long path, a cut, estimated tokens, a slow stream."""
    for name in bundled_names():
        shutil.copy(bundled(name), tmp_path / f"{name}.yaml")
    long = synth_cassette(TEXT * 4, ttft_ms=12345.6, tps=3.25, seed=2)
    item = long.interactions[0]
    request = replace(item.request, path="/v1beta/models/gemini-2.0-flash-thinking-exp:streamGenerateContent?alt=sse")
    save(Cassette(interactions=(replace(item, request=request),)), tmp_path / "long_path.yaml")
    cut = synth_cassette(TEXT, provider="openai", ttft_ms=80, tps=120, seed=3).interactions[0]
    events = cut.response.events[:5]
    response = replace(cut.response, events=events, end=End(t=events[-1].t + 1500, reason="upstream_disconnect"))
    save(Cassette(interactions=(replace(cut, response=response), long.interactions[0])), tmp_path / "cut.yaml")
    return tmp_path


@pytest.mark.parametrize("width", [80, 100, 160])
def test_every_figure_is_printed_whole_at_the_terminal_width(tmp_path, width):
    folder = _varied_cassettes(tmp_path)
    rows = [json.loads(line) for line in run(str(folder), "--json").stdout.splitlines()]
    result = CliRunner().invoke(main, ["inspect", str(folder)], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(cell_len(line.rstrip()) for line in lines) <= width
    assert "…" not in result.output
    text = result.output
    for row in (r for r in rows if "summary" not in r):
        figures = [
            _shown_ms(row["headers_ms"]), _shown_ms(row["ttft_ms"]), _shown_ms(row["longest_stall_ms"]),
            f"{_shown_ms(row['gap_p50_ms'])}/{_shown_ms(row['gap_p95_ms'])}/{_shown_ms(row['gap_max_ms'])}",
            str(row["status"]), row["end_reason"], "-" if row["output_tokens"] is None else f"{row['output_tokens']}{'~' if row['tokens_from'] == 'estimate' else ''}",
        ]  # fmt: skip
        figures += [row["stop_reason"]] if row["stop_reason"] else []
        figures += [row["provider"]] if row["stream"] else []
        patterns = [re.escape(f) for f in figures]
        if row["tps"] is not None:  # --json rounds it to 0.01 first
            patterns.append("|".join(re.escape(f"{row['tps'] + d:.1f}") for d in (-0.01, 0, 0.01)))
        for pattern in patterns:
            assert re.search(rf"(?<![\w.,])({pattern})(?!\w|[.,]\d)", text), f"{pattern!r} missing at {width} columns:\n{text}"
        for name, count in row["events"].items():
            assert re.search(rf"\b{count} {re.escape(name)}(?!\w)", text), f"{count} {name} missing at {width} columns"
    assert ("┃" in text) == (width >= 160), "the table where it fits, stacked lines where it does not"


def test_the_request_path_folds_rather_than_being_cut(tmp_path):
    folder = _varied_cassettes(tmp_path)
    result = CliRunner().invoke(main, ["inspect", str(folder / "long_path.yaml")], env={"COLUMNS": "60"})
    joined = "".join(line.strip() for line in result.output.splitlines())
    assert "/v1beta/models/gemini-2.0-flash-thinking-exp:streamGenerateContent?alt=sse" in joined


@settings(max_examples=60, deadline=None, derandomize=True)
@given(path=st.text(alphabet="ab[]/\\=:?#@", min_size=1, max_size=24), name=st.text(alphabet="ab[]/\\=", min_size=1, max_size=12))
def test_text_from_the_cassette_prints_as_it_is_never_as_markup(path: str, name: str) -> None:
    item = synth_cassette(TEXT, ttft_ms=200, tps=50, seed=1).interactions[0]
    events = (*item.response.events[:-1], replace(item.response.events[-1], event=name))
    cas = Cassette(interactions=(replace(item, request=replace(item.request, path="/" + path), response=replace(item.response, events=events)),))
    for width in (80, 200):
        console = Console(width=width, record=True, file=io.StringIO())
        render([(cas, cassette_metrics(cas))], None, console=console)
        text = console.export_text()
        joined = "".join(line.strip() for line in text.splitlines())
        assert "/" + path in joined and f"1 {name}" in text
