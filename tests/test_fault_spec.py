"""The fault spec grammar: every DESIGN example, round trips, and errors that name the spec, key and choices."""

from __future__ import annotations

import pytest
from _fault_strategies import any_fault
from hypothesis import given, settings

from streamreel import FaultSpecError, load
from streamreel.fault_injection import REGISTRY, Disconnect, Drop, Error, Fragment, Http, Latency, Pings, Speed, Stall, Throttle, Truncate, parse, parse_one

DESIGN_EXAMPLES = [
    ("latency:first=300ms,each=20ms,jitter=5ms,seed=7", Latency(first_ms=300, each_ms=20, jitter_ms=5, seed=7)),
    ("speed:0", Speed(factor=0)),
    ("speed:2", Speed(factor=2)),
    ("stall:after=3,seconds=30", Stall(after_events=3, seconds=30)),
    ("disconnect:after=5,how=reset", Disconnect(after_events=5, how="reset")),
    ("disconnect:after_bytes=1200,how=close", Disconnect(after_bytes=1200, how="close")),
    ("fragment:size=1", Fragment(size_bytes=1)),
    ("fragment:random,seed=3", Fragment(random=True, seed=3)),
    ("throttle:bytes_per_s=2000", Throttle(bytes_per_s=2000)),
    ("truncate:event=4,keep=0.5", Truncate(events=(4,), keep_fraction=0.5)),
    ("error:after=6,type=overloaded_error", Error(after_events=6, error_type="overloaded_error")),
    ("drop:event=message_stop", Drop(events=("message_stop",))),
    ("http:status=529,times=2,retry_after=1", Http(status=529, times=2, retry_after_s=1.0)),
    ("pings:every=100ms", Pings(every_ms=100)),
]


@pytest.mark.parametrize(("spec", "built"), DESIGN_EXAMPLES, ids=[s for s, _ in DESIGN_EXAMPLES])
def test_each_design_example_parses_to_what_the_constructor_builds_and_round_trips(spec: str, built: object) -> None:
    parsed = parse_one(spec)
    assert parsed == built
    assert parse_one(str(parsed)) == parsed


def test_every_fault_of_the_design_table_is_registered() -> None:
    assert set(REGISTRY) >= {"latency", "speed", "stall", "disconnect", "fragment", "throttle", "truncate", "error", "drop", "http", "pings"}


@settings(max_examples=300, deadline=None)
@given(any_fault())
def test_str_of_any_fault_parses_back_to_an_equal_fault(fault: object) -> None:
    assert parse_one(str(fault)) == fault


def test_the_spec_string_shows_the_primary_field_and_what_differs_from_defaults() -> None:
    assert str(Http(status=529)) == "http:status=529"
    assert str(Speed(factor=0)) == "speed:0"
    assert str(Fragment(random=True, seed=3)) == "fragment:random,seed=3"
    assert str(Stall(after_events=3, seconds=30)) == "stall:after=3,seconds=30s"
    assert str(Drop(events=(-1, "[DONE]"))) == "drop:event=-1|[DONE]"


def test_durations_take_units_and_bare_numbers_take_the_field_unit() -> None:
    assert parse_one("latency:first=1.5s").first_ms == 1500
    assert parse_one("latency:first=250").first_ms == 250
    assert parse_one("stall:seconds=500ms").seconds == 0.5
    assert parse_one("http:retry_after=10ms").retry_after_s == 0.01


def test_several_specs_join_with_semicolons_newlines_or_lists() -> None:
    expected = (Speed(factor=0), Disconnect(after_events=2))
    assert parse("speed:0; disconnect:after=2") == expected
    assert parse("speed:0\ndisconnect:after=2") == expected
    assert parse(["speed:0", Disconnect(after_events=2)]) == expected


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("disconnect:after=x", ["'disconnect:after=x'", "after", "whole number", "'x'"]),
        ("nosuchfault", ["'nosuchfault'", "known faults", "disconnect", "latency", "truncate"]),
        ("latency:delay=3", ["'latency:delay=3'", "no key 'delay'", "valid keys: first, each, jitter, headers, seed, times"]),
        ("disconnect:after=2,how=kill", ["how", "reset, close, eof", "'kill'"]),
        ("error:type=oops", ["type", "overloaded_error", "api_error"]),
        ("disconnect", ["after=N", "after_bytes=B"]),
        ("stall:after=1,after_bytes=10", ["after", "after_bytes", "not both"]),
        ("fragment:size=0", ["size must be between 1 and 1048576, got 0"]),
        ("throttle:bytes_per_s=0", ["bytes_per_s must be between 1 and 1000000000, got 0"]),
        ("throttle:bytes_per_s=1e-300", ["bytes_per_s must be between 1 and 1000000000, got 1e-300"]),
        ("speed:1e-308", ["speed must be 0 (no waiting) or between 0.001 and 1000, got 1e-308"]),
        ("speed:1e308", ["speed must be 0 (no waiting) or between 0.001 and 1000"]),
        ("stall:after=1,seconds=99999999999", ["seconds must be between 0s and 3600s"]),
        ("stall:after=1,seconds=0", ["seconds must be > 0"]),
        ("latency:first=1e400ms", ["first", "duration"]),
        ("latency:each=" + "9" * 400 + "ms", ["each must be between 0ms and 3600000ms"]),
        ("latency", ["every delay is 0"]),
        ("disconnect:after=" + "9" * 30, ["after must be between 0 and 1000000000"]),
        ("disconnect:inside=0", ["inside must be between 1 and 1000000000, got 0"]),
        ("disconnect:after=2,keep=3", ["keep=B", "inside=N"]),
        ("disconnect:after=2,inside=3", ["after=N", "inside=N", "not after and inside"]),
        ("pings:every=0.5ms", ["every must be between 1ms and 3600000ms"]),
        ("error:after=1,times=0", ["times must be between 1 and 1000000000, got 0"]),
        ("http:retry_after=7200", ["retry_after must be between 0s and 3600s"]),
        ("drop:event=99999999999", ["an event index must be between"]),
        ("truncate:keep=0.5", ["event="]),
        ("truncate:event=1,keep=1.5", ["keep must be between 0 and 1, got 1.5"]),
        ("truncate:event=1,keep=1", ["keep", "[0, 1)"]),
        ("http:status=200", ["status must be between 400 and 599, got 200"]),
        ("latency:first=-1ms", ["first", "duration"]),
        ("latency:first", ["first", "needs a value"]),
        ("drop:event=1,event=2", ["given twice"]),
    ],
)
def test_a_bad_spec_fails_at_parse_time_naming_the_spec_the_key_and_the_choices(spec: str, says: list[str]) -> None:
    with pytest.raises(FaultSpecError) as info:
        parse(spec)
    message = str(info.value)
    assert f"{spec!r}" in message
    for part in says:
        assert part in message


def test_a_bad_spec_in_a_cassette_fails_at_load_naming_the_file_line_and_entry(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("streamreel: 1\ninteractions: []\nfaults:\n- speed:0\n- disconnect:after=x\n")
    with pytest.raises(ValueError) as info:
        load(path)
    message = str(info.value)
    assert str(path) in message and "faults[1]" in message and "whole number" in message
