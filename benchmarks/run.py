"""Run every benchmark in this directory, one after another, each in a process of its own.

    python benchmarks/run.py            # about 3 minutes on a 2-core machine
    python benchmarks/run.py --quick    # smoke run, under 30 s: every benchmark still runs (figures mean little)
    python benchmarks/run.py --full     # each benchmark at its own defaults (the issue's sizes; several minutes)
    python benchmarks/run.py --only timing,scale

Each ``bench_*.py`` prints its own ratios against a baseline measured in the same run; this
prints each one's output under a heading, with its wall time, and exits 1 if any failed.
The default run trims repeat counts (and the scale benchmark's client counts) so the whole
run fits in about 3 minutes; the sizes the issue names (2,000 events at 5 ms, 200 streams,
100,000 events) are kept.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

ARGS: dict[str, tuple[list[str], list[str]]] = {
    # name: (arguments of the default run, arguments of --quick); --full passes none
    "bench_sse": (["--repeat", "3"], ["--events", "2000", "--repeat", "1"]),
    "bench_bedrock": (["--repeat", "3"], ["--events", "2000", "--repeat", "1"]),
    "bench_replay": (["--repeat", "3"], ["--events", "2000", "--repeat", "1"]),
    "bench_faults": (["--repeats", "3"], ["--events", "1000", "--repeats", "1"]),
    "bench_browser_ids": (["--runs", "5"], ["--words", "2000", "--runs", "1"]),
    "bench_plugin": (["--examples", "200", "--rounds", "2"], ["--examples", "10", "--rounds", "1"]),
    "bench_inprocess": (["--examples", "200", "--rounds", "3"], ["--examples", "20", "--rounds", "1"]),
    "bench_recorder": (["--rounds", "50", "--streams", "6"], ["--rounds", "3", "--streams", "2"]),
    "bench_timing": ([], ["--events", "100", "--gap", "2", "--no-sdk"]),
    "bench_concurrency": ([], ["--streams", "10", "--events", "20", "--gap", "5"]),
    "bench_capture": (["--rounds", "5"], ["--events", "2000", "--rounds", "1"]),
    "bench_scale": (["--clients", "1,4", "--sequential", "0"], ["--events", "2000", "--clients", "1,2", "--sequential", "1"]),
}


def benchmarks() -> list[Path]:
    return sorted(HERE.glob("bench_*.py"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="tiny sizes: check that every benchmark runs")
    size.add_argument("--full", action="store_true", help="every benchmark at its own defaults")
    parser.add_argument("--only", default="", help="comma-separated names, with or without bench_ (e.g. timing,scale)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds any one benchmark may take")
    args = parser.parse_args()
    wanted = {n if n.startswith("bench_") else f"bench_{n}" for n in args.only.split(",") if n}
    paths = [p for p in benchmarks() if not wanted or p.stem in wanted]
    unknown = wanted - {p.stem for p in paths}
    if unknown:
        parser.error(f"no such benchmark: {', '.join(sorted(unknown))}; there are {', '.join(p.stem for p in benchmarks())}")
    mode = "quick" if args.quick else "full" if args.full else "default"
    failed: list[str] = []
    began = time.perf_counter()
    for path in paths:
        default, quick = ARGS.get(path.stem, ([], []))
        extra = quick if args.quick else [] if args.full else default
        command = [sys.executable, str(path), *extra]
        print(f"\n=== {path.stem} ({' '.join(['python', f'benchmarks/{path.name}', *extra])}) ===", flush=True)
        start = time.perf_counter()
        try:
            code = subprocess.run(command, timeout=args.timeout, check=False).returncode
        except subprocess.TimeoutExpired:
            code = -1
            print(f"timed out after {args.timeout:g} s")
        print(f"--- {path.stem}: {'ok' if code == 0 else f'FAILED (exit {code})'}, {time.perf_counter() - start:.1f} s", flush=True)
        if code != 0:
            failed.append(path.stem)
    print(f"\n{len(paths) - len(failed)}/{len(paths)} benchmarks ran ({mode} run) in {time.perf_counter() - began:.0f} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
