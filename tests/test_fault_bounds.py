"""Every numeric fault parameter and every speed is bounded when it is parsed, so no spec can
ask for a timer deadline the clock cannot arm (a tiny rate, a huge wait, a speed of 1e-308)."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import pytest
from _fault_helpers import anthropic_cassette
from hypothesis import given, settings
from hypothesis import strategies as st

from streamreel import Cassette, Event, Replayer
from streamreel.errors import FaultSpecError
from streamreel.fault_injection import REGISTRY, parse_one
from streamreel.pipeline import MAX_SCHEDULE_MS, plan

pytest_plugins = ["pytester"]

NUMERIC = sorted(
    (name, f.metadata["key"], f.metadata["kind"], f.metadata["low"], f.metadata["high"])
    for name, cls in REGISTRY.items()
    for f in dataclasses.fields(cls)
    if "key" in f.metadata and f.metadata["kind"] in ("int", "float", "ms", "s")
)
"""(fault, key, kind, low, high) for every numeric spec key of every registered fault."""

_UNIT = {"ms": "ms", "s": "s", "int": "", "float": ""}


def test_every_numeric_key_has_a_finite_range() -> None:
    for name, key, kind, low, high in NUMERIC:
        if (name, key) == ("speed", "factor"):
            continue
        assert low is not None and high is not None and math.isfinite(high), (name, key)


def _outside(kind: str, low: float, high: float) -> st.SearchStrategy[float]:
    above = st.floats(min_value=high, exclude_min=True, allow_nan=False, allow_infinity=False)
    below = st.floats(max_value=low, exclude_max=True, allow_nan=False, allow_infinity=False)
    if kind == "int":
        return st.one_of(st.integers(min_value=int(high) + 1, max_value=10**30), st.integers(min_value=-(10**30), max_value=int(low) - 1)).map(float)
    if kind in ("ms", "s"):
        return above  # a duration has no sign to write
    return st.one_of(above, below)


@settings(max_examples=400, derandomize=True, deadline=None)
@given(data=st.data())
def test_a_value_outside_its_range_is_refused_naming_the_key_and_the_range(data: st.DataObject) -> None:
    name, key, kind, low, high = data.draw(st.sampled_from([row for row in NUMERIC if row[:2] != ("speed", "factor")]))
    value = data.draw(_outside(kind, low, high))
    text = str(int(value)) if kind == "int" else repr(value)
    spec = f"{name}:{key}={text}{_UNIT[kind]}"
    with pytest.raises(FaultSpecError) as info:
        parse_one(spec)
    message = str(info.value)
    assert repr(spec) in message
    assert f"{key} must be between" in message or "expected a duration" in message, message


@settings(max_examples=200, derandomize=True, deadline=None)
@given(value=st.one_of(st.floats(min_value=1e-320, max_value=0.001, exclude_max=True), st.floats(min_value=1000, exclude_min=True), st.floats(max_value=0, exclude_max=True), st.just(math.nan), st.just(math.inf)))
def test_a_speed_outside_its_range_is_refused_everywhere_it_is_given(value: float) -> None:
    expected = "must be 0 (no waiting) or between 0.001 and 1000"
    with pytest.raises(FaultSpecError) as info:
        parse_one(f"speed:{value!r}")
    assert expected in str(info.value) or (not math.isfinite(value) and "expected a finite number" in str(info.value))
    with pytest.raises(FaultSpecError) as info:
        Replayer(anthropic_cassette(), speed=value)
    assert f"speed {expected}, got {value!r}" in str(info.value)
    r = Replayer(anthropic_cassette())
    with pytest.raises(FaultSpecError) as info:
        r.load(anthropic_cassette(), speed=value)
    assert expected in str(info.value)


@settings(max_examples=150, derandomize=True, deadline=None)
@given(
    spec=st.sampled_from(
        [
            "throttle:bytes_per_s=1",
            "latency:each=3600s,jitter=3600s",
            "fragment:size=1,gap=3600s",
            "stall:after=2,seconds=3600",
            "speed:0.001",
            "pings:every=1ms",
        ]
    ),
    events=st.integers(2, 3000),
    gap_ms=st.sampled_from([1.0, 1000.0, 60_000.0]),
)
def test_no_accepted_spec_plans_a_byte_later_than_a_timer_can_be_armed(spec: str, events: int, gap_ms: float) -> None:
    cassette = Cassette.from_events([Event(t=i * gap_ms, data="x" * 40) for i in range(events)])
    try:
        p = plan(cassette.interactions[0], spec)
    except (FaultSpecError, ValueError) as e:
        assert "a replay may last at most 365 days" in str(e) or "pings" in str(e)
        return
    latest = max((c.at_ms for c in p.chunks), default=0.0)
    assert latest <= MAX_SCHEDULE_MS and (p.ending.at_ms or 0.0) <= MAX_SCHEDULE_MS


def test_the_cli_and_the_plugin_refuse_a_speed_with_one_line(tmp_path: Path, pytester: pytest.Pytester) -> None:
    from streamreel.cassette import bundled

    for args in (["serve", str(bundled("text")), "--speed", "1e-300"], ["demo", "--speed", "1e-308"], ["serve", str(bundled("text")), "--fault", "speed:1e-308"]):
        done = subprocess.run([sys.executable, "-m", "streamreel", *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert "must be 0 (no waiting) or between 0.001 and 1000" in done.stderr.splitlines()[-1]
    pytester.makepyfile("def test_x(reel):\n    pass\n")
    result = pytester.runpytest_subprocess("--reel-speed", "1e-300", "-p", "no:randomly")
    assert "--reel-speed must be 0 (no waiting) or between 0.001 and 1000" in result.stderr.str()
    assert result.ret != 0
