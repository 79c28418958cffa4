"""Run every benchmark in this directory, one after another, each in a process of its own.

    python benchmarks/run.py            # the issues' sizes with fewer repeats: about 5 minutes on a quiet 2-core machine
    python benchmarks/run.py --quick    # every benchmark at small sizes, about 75 s: the same figures, noisier
    python benchmarks/run.py --full     # each benchmark at its own defaults (more repeats and clients)
    python benchmarks/run.py --only timing,scale
    python benchmarks/run.py --check    # exit 1 if a figure misses its target

Each ``bench_*.py`` prints its figures as ratios against a baseline measured in the same run,
with PASS or MISS against its target and the machine's load (other processes on a shared
machine move timing figures; the load says how much to trust them). This prints each
benchmark's output under a heading with its wall time and the load before and after, then
one table of every figure, and exits 1 if a benchmark failed (or, with ``--check``, if a
figure missed its target). Every benchmark needs its sizes in :data:`ARGS`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _harness import FIGURES_ENV, load  # noqa: E402

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
    "bench_episodes": (["--events", "50000"], ["--events", "2000", "--episodes", "1"]),
    "bench_library": ([], ["--events", "30000", "--tries", "2"]),
    "bench_timing": ([], ["--events", "100", "--gap", "2", "--no-sdk"]),
    "bench_concurrency": (["--events", "100", "--rounds", "3"], ["--streams", "50", "--events", "20", "--gap", "10", "--rounds", "1"]),
    "bench_capture": (["--rounds", "5"], ["--events", "2000", "--rounds", "3"]),
    "bench_scale": (["--repeat", "2", "--clients", "1,4", "--sequential", "0"], ["--events", "5000", "--repeat", "1", "--clients", "1,2", "--sequential", "0"]),
    "bench_workers": ([], ["--events", "20", "--ladder", "50,100,200,400,800", "--streams", "200", "--many", "0"]),
    "bench_soak": (["--streams", "4000", "--every", "1000"], ["--streams", "400", "--every", "200"]),
}

QUICK_SECONDS = 75.0
"""What ``--quick`` is documented to take on a quiet 2-core machine; the run says if it took longer."""


def benchmarks() -> list[Path]:
    return sorted(HERE.glob("bench_*.py"))


def table(figures: list[dict[str, object]]) -> list[str]:
    """Every figure of the run, one line each: what, ours, the baseline, the ratio, the target and PASS/MISS, the load."""
    lines = [f"{'benchmark':<18}{'figure':<58}{'streamreel':>16}{'baseline':>12}{'ratio':>9}  {'target':<22}{'':<5} load"]
    for f in figures:
        show = str(f.get("show") or "{:,.3g}")
        ours = f"{show.format(f['ours'])} {f['unit']}".strip()
        lines.append(
            f"{str(f['bench']).removeprefix('bench_'):<18}{str(f['what'])[:57]:<58}{ours:>16}{show.format(f['base']):>12}"
            f"{float(str(f['ratio'])):>8.2f}x  {str(f['target'] or '-'):<22}{str(f['verdict']):<5} {str(f['load']).removeprefix('load ')}"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes: every benchmark and figure, noisier")
    size.add_argument("--full", action="store_true", help="every benchmark at its own defaults")
    parser.add_argument("--only", default="", help="comma-separated names, with or without bench_ (e.g. timing,scale)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a figure misses its target")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds any one benchmark may take")
    args = parser.parse_args()
    wanted = {n if n.startswith("bench_") else f"bench_{n}" for n in args.only.split(",") if n}
    paths = [p for p in benchmarks() if not wanted or p.stem in wanted]
    unknown = wanted - {p.stem for p in paths}
    if unknown:
        parser.error(f"no such benchmark: {', '.join(sorted(unknown))}; there are {', '.join(p.stem for p in benchmarks())}")
    unsized = [p.stem for p in paths if p.stem not in ARGS]
    if unsized and not args.full:
        parser.error(f"no sizes for {', '.join(unsized)}: add its default and --quick arguments to ARGS in benchmarks/run.py")
    mode = "quick" if args.quick else "full" if args.full else "default"
    failed: list[str] = []
    began = time.perf_counter()
    print(f"{mode} run of {len(paths)} benchmarks, Python {sys.version.split()[0]}; {load()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="streamreel-bench-") as tmp:
        figures_file = Path(tmp) / "figures.jsonl"
        env = {**os.environ, FIGURES_ENV: str(figures_file)}
        for path in paths:
            default, quick = ARGS.get(path.stem, ([], []))
            extra = quick if args.quick else [] if args.full else default
            print(f"\n=== {path.stem} ({' '.join(['python', f'benchmarks/{path.name}', *extra])}); {load()} ===", flush=True)
            start = time.perf_counter()
            try:
                code = subprocess.run([sys.executable, str(path), *extra], timeout=args.timeout, check=False, env=env).returncode
            except subprocess.TimeoutExpired:
                code = -1
                print(f"timed out after {args.timeout:g} s")
            print(f"--- {path.stem}: {'ok' if code == 0 else f'FAILED (exit {code})'}, {time.perf_counter() - start:.1f} s; {load()}", flush=True)
            if code != 0:
                failed.append(path.stem)
        figures = [json.loads(line) for line in figures_file.read_text().splitlines()] if figures_file.exists() else []
    took = time.perf_counter() - began
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = use.ru_utime + use.ru_stime
    missed = [f for f in figures if f["verdict"] == "MISS"]
    print(f"\nfigures ({mode} run{', small sizes: noisier' if args.quick else ''}); each ratio is streamreel / its baseline in the same run")
    print("\n".join(table(figures)))
    print(f"\n{len(paths) - len(failed)}/{len(paths)} benchmarks ran ({mode} run) in {took:.0f} s, {cpu:.0f} s of CPU" + (f"; failed: {', '.join(failed)}" if failed else ""))
    print(f"{len(figures) - len(missed)}/{len(figures)} figures met their targets" + (f"; MISS: {'; '.join(str(f['what']) for f in missed)}" if missed else "") + f"  ({load()})")
    if args.quick and not wanted:
        print(f"quick run: {took:.0f} s against about {QUICK_SECONDS:g} s documented on a quiet 2-core machine: {'PASS' if took <= QUICK_SECONDS else 'MISS'} ({load()})")
    return 1 if failed or (args.check and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
