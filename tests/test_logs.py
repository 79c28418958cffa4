"""Logs with a timestamp on each SSE line: the prefix goes, each event keeps the time it was logged at."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from streamreel.logs import looks_like_log, parse_log

STAMPS = {
    "iso-z": lambda at: at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z",
    "iso-offset": lambda at: at.strftime("%Y-%m-%dT%H:%M:%S.%f") + "+00:00",
    "iso-space": lambda at: at.strftime("%Y-%m-%d %H:%M:%S.") + f"{at.microsecond // 1000:03d}",
    "python-logging": lambda at: at.strftime("[%Y-%m-%d %H:%M:%S,") + f"{at.microsecond // 1000:03d}]",
}
LEVELS = ["", "INFO ", "DEBUG ", "[INFO] ", "WARNING: ", "info ", "- INFO - "]


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    style=st.sampled_from(sorted(STAMPS)),
    level=st.sampled_from(LEVELS),
    gaps=st.lists(st.integers(0, 5000), min_size=1, max_size=30),
    blank_lines=st.booleans(),
    named=st.booleans(),
)
def test_every_event_gets_the_time_of_its_line_within_a_millisecond(style: str, level: str, gaps: list[int], blank_lines: bool, named: bool) -> None:
    start = datetime(2026, 11, 30, 23, 59, 58, 999000, tzinfo=timezone.utc)  # crosses midnight and a day
    stamp = STAMPS[style]
    lines, at = [], start
    for i, gap in enumerate(gaps):
        at += timedelta(milliseconds=gap)
        if named:
            lines.append(f"{stamp(at)} {level}event: e{i}")
        lines.append(f"{stamp(at)} {level}data: {{\"i\": {i}}}")
        if blank_lines:
            lines.append(stamp(at))
    parsed = parse_log("\n".join(lines).encode())
    assert looks_like_log("\n".join(lines))
    assert [e.data for e in parsed.events] == [f'{{"i": {i}}}' for i in range(len(gaps))]
    assert [e.event for e in parsed.events] == ([f"e{i}" for i in range(len(gaps))] if named else [None] * len(gaps))
    expected = [sum(gaps[1 : i + 1]) for i in range(len(gaps))]
    assert all(abs(e.t - want) < 1.0 for e, want in zip(parsed.events, expected)), [(e.t, want) for e, want in zip(parsed.events, expected)]
    assert parsed.skipped == 0


def test_lines_that_are_not_sse_are_skipped_and_counted() -> None:
    log = (
        "2026-11-30T14:02:10.700Z INFO httpx: HTTP Request: POST https://api.anthropic.com/v1/messages\n"
        "2026-11-30T14:02:11.000Z DEBUG data: {\"type\":\"ping\"}\n"
        "Traceback (most recent call last):\n"
        "2026-11-30T14:02:11.250Z DEBUG data: {\"type\":\"message_stop\"}\n"
    )
    parsed = parse_log(log.encode())
    assert [e.t for e in parsed.events] == [300.0, 550.0]  # ms from the log's first timestamp
    assert parsed.skipped == 2


def test_a_file_of_plain_sse_or_json_is_not_a_log() -> None:
    assert not looks_like_log('event: ping\ndata: {"type": "ping"}\n\n')
    assert not looks_like_log('{"type":"message_start"}\n{"type":"message_stop"}\n')
    assert not looks_like_log("2026-11-30T14:02:11.000Z INFO starting up\n2026-11-30T14:02:11.100Z INFO ready\n")
