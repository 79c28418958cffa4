"""Server-sent events out of an application log that wrote each SSE line with a timestamp.

What production leaves behind is often a log, not a capture::

    2026-11-30T14:02:11.123Z data: {"type":"message_start",...}
    [2026-11-30 14:02:11,123] INFO event: content_block_delta

Each line is a timestamp (ISO 8601 with ``T`` or a space, ``.`` or ``,`` before the
fraction, ``Z`` or an offset, optionally in brackets), an optional level word
(``INFO``, ``[DEBUG]``, ``WARNING:``...), then the SSE line as the client read it. The
prefix is stripped and each event takes its time from the timestamp of the line that
completed it (a logger name before the SSE line, ``sse: data: ...``, goes too), so the gaps a cassette replays are the ones production saw. Lines that are
not SSE (a request line, a retry message) are skipped and counted. A log that wrote no
blank lines between events (one ``data:`` line per event) gets them back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from .sse import Decoder, Event

__all__ = ["LogEvents", "looks_like_log", "parse_log", "TIMESTAMPED_LINE"]

TIMESTAMPED_LINE = re.compile(
    r"""^\s*\[?(?P<ts>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)\]?
        (?:\s*[-|]?\s*\[?(?:TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|CRITICAL|FATAL)\]?:?)?
        (?:\s*[-|])?(?:[ \t](?P<rest>.*))?$""",
    re.X | re.I,
)
"""A log line: its timestamp, an optional level word, and the rest (the SSE line)."""

_SSE_FIELD = re.compile(r"^(?:event|data|id|retry)(?::|$)|^:")
_LOGGER = re.compile(r"^[\w.\-]+:\s+(.*)$")
"""A logger name before the SSE line (``sse: data: {...}``), stripped when what follows is SSE."""


@dataclass(frozen=True)
class LogEvents:
    """The events of a log, timed in ms from its first timestamp, and how many lines were not SSE."""

    events: tuple[Event, ...]
    skipped: int
    lines: int


def _ms(stamp: str) -> float:
    text = stamp.replace(",", ".")
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    when = datetime.fromisoformat(text)
    return when.timestamp() * 1000.0 if when.tzinfo is not None else (when - datetime(1970, 1, 1)).total_seconds() * 1000.0


def looks_like_log(text: str) -> bool:
    """Whether most of the first lines are timestamped and some of them carry an SSE line."""
    lines = [line for line in text.splitlines()[:50] if line.strip()]
    if not lines:
        return False
    stamped = [m for m in map(TIMESTAMPED_LINE.match, lines) if m]
    sse = [m for m in stamped if _is_sse(m.group("rest") or "")]
    return len(stamped) * 2 >= len(lines) and len(sse) >= 1


def _is_sse(rest: str) -> bool:
    named = _LOGGER.match(rest)
    return bool(_SSE_FIELD.match(rest) or (named and _SSE_FIELD.match(named.group(1))))


def parse_log(data: bytes) -> LogEvents:
    """Every SSE event in a timestamped log, stamped with the time of the line that completed it.

    Times are ms from the log's first timestamp (the caller moves them where the response
    starts). A line without a timestamp is an SSE blank line if it is empty, else skipped.
    """
    text = data.decode("utf-8", "replace").lstrip("\ufeff")
    parsed: list[tuple[float, str]] = []
    skipped = 0
    origin: float | None = None
    last = 0.0
    for line in text.splitlines():
        m = TIMESTAMPED_LINE.match(line)
        if m is None:
            if not line.strip() and parsed:
                parsed.append((last, ""))
            elif line.strip():
                skipped += 1
            continue
        try:
            ms = _ms(m.group("ts"))
        except ValueError:
            skipped += 1
            continue
        if origin is None:
            origin = ms
        last = ms - origin
        rest = (m.group("rest") or "").rstrip("\r")
        if rest and not _SSE_FIELD.match(rest):
            named = _LOGGER.match(rest)
            if named is None or not _SSE_FIELD.match(named.group(1)):
                skipped += 1
                continue
            rest = named.group(1)
        parsed.append((last, rest))
    framed = any(not rest for _, rest in parsed)
    decoder = Decoder()
    events: list[Event] = []
    for t, rest in parsed:
        events += decoder.feed(rest.encode("utf-8") + b"\n", t)
        if not framed and rest.startswith("data:"):
            events += decoder.feed(b"\n", t)
    events += decoder.flush(last)
    return LogEvents(tuple(events), skipped, len(text.splitlines()))
