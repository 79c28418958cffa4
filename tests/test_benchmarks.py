"""The benchmarks still run: ``benchmarks/run.py --quick`` runs every ``bench_*.py`` at tiny sizes.

Slow (about 40 s on a quiet 2-core machine, more than the suite can spend on it), so it is
marked ``slow`` and runs with ``pytest -m slow tests/test_benchmarks.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_every_benchmark_runs_at_quick_sizes_and_prints_its_ratios() -> None:
    names = sorted(p.stem for p in (ROOT / "benchmarks").glob("bench_*.py"))
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick"], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for name in names:
        assert f"--- {name}: ok" in out.stdout, name
    assert f"{len(names)}/{len(names)} benchmarks ran (quick run)" in out.stdout
    assert "all 50 streams completed: yes" in out.stdout
    table = out.stdout.split("each ratio is streamreel / its baseline in the same run")[1]
    for bench in ("concurrency", "scale", "timing", "replay", "sse"):  # each prints its figures as ratios, gathered in one table
        assert any(line.startswith(bench) and "x  " in line for line in table.splitlines()), bench
    assert "figures met their targets" in out.stdout
    assert "quick run:" in out.stdout and "documented" in out.stdout


def test_run_names_an_unknown_benchmark() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--only", "nosuch"], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 2
    assert "no such benchmark: bench_nosuch" in out.stderr
    assert "bench_timing" in out.stderr


def test_run_refuses_a_benchmark_it_has_no_sizes_for(tmp_path: Path) -> None:
    bench = ROOT / "benchmarks" / "bench_zz_unsized_for_test.py"
    bench.write_text("print('never run')\n")
    try:
        out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--only", "zz_unsized_for_test"], capture_output=True, text=True, timeout=60, check=False)
    finally:
        bench.unlink()
    assert out.returncode == 2
    assert "no sizes for bench_zz_unsized_for_test" in out.stderr
    assert "never run" not in out.stdout


def test_a_figure_prints_its_ratio_target_verdict_and_the_load(tmp_path: Path) -> None:
    figures = tmp_path / "figures.jsonl"
    code = "import sys; sys.path.insert(0, 'benchmarks'); from _harness import figure; figure('x', 3.0, 2.0, 'ms', baseline='naive', target='<= 1.2x', ok=False)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True, cwd=ROOT, env={**os.environ, "STREAMREEL_BENCH_FIGURES": str(figures)})
    assert "figure: x: 3 ms; naive 2; ratio 1.50x; target <= 1.2x: MISS  (load " in out.stdout
    (record,) = [json.loads(line) for line in figures.read_text().splitlines()]
    assert (record["ratio"], record["verdict"]) == (1.5, "MISS")
    assert record["load"].startswith("load ")
