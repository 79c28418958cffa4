"""The benchmarks still run: ``benchmarks/run.py --quick`` runs every ``bench_*.py`` at tiny sizes.

Slow (about 30 s on a loaded 2-core machine, more than the suite can spend on it), so it is
marked ``slow`` and runs with ``pytest -m slow tests/test_benchmarks.py``.
"""

from __future__ import annotations

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
    assert "ratio streamreel / naive" in out.stdout  # the new benchmarks compare against their baseline
    assert "all 10 streams completed: yes" in out.stdout


def test_run_names_an_unknown_benchmark() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--only", "nosuch"], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 2
    assert "no such benchmark: bench_nosuch" in out.stderr
    assert "bench_timing" in out.stderr
