"""Incremental Server-Sent-Events codec, robust to any chunk split.

The decoder follows the WHATWG event-stream parsing rules (LF, CRLF and CR line ends,
a UTF-8 BOM at the start, ``:`` comments, ``event``/``data``/``id``/``retry`` fields,
multi-line ``data``), with one deliberate difference: it keeps everything on the wire.
A block is dispatched when *any* field was set (as the SDKs' decoders do, so an
``event: ping`` with no data is not lost), a missing ``data`` line is ``None`` rather
than ``""``, and comments come out as events of their own, so that a recording
replays as it was captured.

Line ends are kept too: each event remembers the ones its lines had on the wire
(:attr:`Event.line_ending`), so a CRLF stream (Gemini) or a CR one replays with the bytes
it was recorded with, while ``data`` holds the lines joined by ``\n`` as every SSE client
reads them.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable, Iterator

__all__ = ["Event", "Decoder", "decode", "iter_decode", "encode", "encode_all", "LINE_ENDINGS", "usual_line_ending"]

_BOM = "\ufeff"

LINE_ENDINGS = ("\n", "\r\n", "\r")
"""The line ends SSE allows: LF, CRLF and CR."""



@dataclass(frozen=True)
class Event:
    """One SSE event (or comment) as it went over the wire, with its time in ms from the request.

    ``data`` is kept verbatim as a string (real captures pad their JSON with spaces), so a
    recording replays byte for byte. A comment line (``: keep-alive``) is an ``Event`` with
    only ``comment`` set.

    ``line_ending`` is how its lines end on the wire: one of :data:`LINE_ENDINGS` for every
    line, the blank line that dispatches it included, or (an event whose lines mix them) a
    tuple with one per line in the order they are encoded: comment lines, ``id``,
    ``event``, ``retry``, each ``data`` line, the blank line. A ``\r`` or ``\r\n`` written
    inside ``data`` or ``comment`` ends that line as written; a ``\n`` there ends it with
    the event's line ending.
    """

    t: float = 0.0
    event: str | None = None
    data: str | None = None
    id: str | None = None
    retry: int | None = None
    comment: str | None = field(default=None)
    line_ending: str | tuple[str, ...] = "\n"

    @property
    def is_comment(self) -> bool:
        return self.comment is not None and self.event is None and self.data is None and self.id is None and self.retry is None

    @cached_property
    def type(self) -> str | None:
        """The event's name, or for data-only streams (OpenAI) the JSON payload's ``type``/``object``."""
        if self.event is not None:
            return self.event
        if self.data is None:
            return None
        payload = self.json(default=None)
        if isinstance(payload, dict):
            kind = payload.get("type") or payload.get("object")
            return kind if isinstance(kind, str) else None
        return None

    def json(self, default: Any = ...) -> Any:
        """The ``data`` parsed as JSON; ``default`` if given and the data is not JSON."""
        try:
            return json.loads(self.data) if self.data is not None else None
        except ValueError:
            if default is ...:
                raise
            return default

    @cached_property
    def wire(self) -> bytes:
        """The encoded bytes, computed once per event object (the replay hot path reuses them)."""
        return encode(self)


def encode(event: Event) -> bytes:
    """Encode one event as SSE bytes, ending with the blank line that dispatches it, each line
    ended as :attr:`Event.line_ending` says."""
    le = event.line_ending
    per_line = type(le) is tuple
    if not per_line and le not in LINE_ENDINGS:
        raise ValueError(f"line_ending must be one of {LINE_ENDINGS} or a tuple of them, got {le!r}")
    lines: list[str] = []
    ends: list[str | None] = []  # None: the event's line ending; else a break written in the text
    if event.comment is not None:
        _add(lines, ends, ": ", event.comment, blank=":")
    if event.id is not None:
        lines.append(f"id: {event.id}")
        ends.append(None)
    if event.event is not None:
        lines.append(f"event: {event.event}")
        ends.append(None)
    if event.retry is not None:
        lines.append(f"retry: {event.retry}")
        ends.append(None)
    if event.data is not None:
        _add(lines, ends, "data: ", event.data)
    lines.append("")
    ends.append(None)
    if per_line:
        if len(le) != len(lines) or any(e not in LINE_ENDINGS for e in le):
            raise ValueError(f"line_ending has {len(le)} line ends for an event of {len(lines)} lines (blank line included): {le!r}")
        return "".join([line + end for line, end in zip(lines, le)]).encode("utf-8")
    return "".join([line + (le if end is None else end) for line, end in zip(lines, ends)]).encode("utf-8")


_BREAKS = re.compile("(\r\n|\r|\n)")


def _add(lines: list[str], ends: list[str | None], prefix: str, text: str, blank: str | None = None) -> None:
    """One line per line of ``text``; a CR or CRLF in it is kept as that line's end."""
    if "\n" not in text and "\r" not in text:
        lines.append(prefix + text if text or blank is None else blank)
        ends.append(None)
        return
    parts = _BREAKS.split(text)
    for i in range(0, len(parts), 2):
        line = parts[i]
        lines.append(prefix + line if line or blank is None else blank)
        sep = parts[i + 1] if i + 1 < len(parts) else None
        ends.append(None if sep in (None, "\n") else sep)


def encode_all(events: Iterable[Event]) -> bytes:
    return b"".join(e.wire for e in events)


def usual_line_ending(events: Iterable[Event]) -> str:
    """The line ending most of ``events`` use throughout (the first such on a tie); LF if none do."""
    counts: Counter[str] = Counter(e.line_ending for e in events if type(e.line_ending) is str)  # type: ignore[misc]
    if not counts:
        return "\n"
    if len(counts) == 1:
        return next(iter(counts))
    best = max(counts.values())
    return next(le for le, n in counts.items() if n == best)


class Decoder:
    """Incremental SSE decoder: feed it bytes as they arrive, in any split, and get whole events.

    ``feed(chunk, t)`` stamps every event it completes with ``t`` (the recorder passes the
    arrival time). ``flush()`` ends the stream: a last event that was not closed by a blank
    line is returned too, so a capture's final event is never lost.

    Each event records its lines' ends (:attr:`Event.line_ending`). A chunk that ends in CR
    dispatches what that CR completes at once, as a browser does; if the next chunk starts
    with LF the two were one CRLF, and the line ending of the event already returned is
    corrected in place (a line end not written on the wire yet cannot be known sooner).
    Lines whose end is never seen (the last line of a stream) take the stream's usual one.
    """

    __slots__ = ("_parts", "_cr", "_started", "_event", "_data", "_id", "_retry", "_dirty", "_ends", "_usual", "_just_dispatched", "_last_field")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._cr: Event | bool = False  # the chunk before ended in CR: the event that CR completed, or True
        self._started = False
        self._usual = "\n"
        self._just_dispatched = False
        self._last_field: str | None = None
        self._reset()

    def _reset(self) -> None:
        self._event: str | None = None
        self._data: list[str] | None = None
        self._id: str | None = None
        self._retry: int | None = None
        self._dirty = False
        self._ends: _LineEnds | None = None  # once a line of this event did not end in LF

    def feed(self, chunk: bytes, t: float = 0.0) -> list[Event]:
        if self._cr is not False:
            cr, self._cr = self._cr, False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
                self._crlf(cr)
        if b"\n" not in chunk:
            if b"\r" in chunk:
                return self._feed_cr(chunk, t)
            if chunk:
                self._parts.append(chunk)
            return []
        if b"\r" in chunk:
            return self._feed_cr(chunk, t)
        parts = self._parts
        # Events dispatch only at a blank line, so until one arrives just keep the bytes.
        if b"\n\n" not in chunk and not (chunk[0] == 10 and (not parts or parts[-1][-1] == 10)):
            parts.append(chunk)
            return []
        if parts:
            parts.append(chunk)
            chunk = b"".join(parts)
        end = chunk.rfind(b"\n")
        self._parts = [chunk[end + 1 :]] if end + 1 < len(chunk) else []
        return self._lines(chunk[:end].decode("utf-8", "replace").split("\n"), t)

    def _feed_cr(self, chunk: bytes, t: float) -> list[Event]:
        """The rare path: CR or CRLF line ends, possibly a CR at the end of this chunk."""
        buf = b"".join((*self._parts, chunk))
        self._parts = []
        cut = max(buf.rfind(b"\n"), buf.rfind(b"\r"))
        if cut < 0:
            self._parts.append(buf)
            return []
        out = self._ended_lines(buf[: cut + 1].splitlines(keepends=True), t)
        if cut + 1 < len(buf):
            self._parts.append(buf[cut + 1 :])
        elif buf[cut] == 13:  # a CR that ends the chunk: an LF starting the next one belongs to it
            self._cr = out[-1] if out and self._just_dispatched else True
        return out

    def _crlf(self, cr: Event | bool) -> None:
        """The CR that ended the last chunk was half of a CRLF: correct what it ended."""
        if cr is True:
            ends = self._ends
            if ends is not None and self._last_field == "data" and ends.data:
                ends.data[-1] = "\r\n"
            elif ends is not None and self._last_field in ends.fields:
                ends.fields[self._last_field] = "\r\n"
            return
        assert isinstance(cr, Event)
        le = cr.line_ending
        if cr.is_comment:
            fixed: str | tuple[str, ...] = "\r\n"
        else:
            ends = le if type(le) is tuple else (le,) * _line_count(cr)
            fixed = _collapse((*ends[:-1], "\r\n"))
        cr.__dict__["line_ending"] = fixed
        cr.__dict__.pop("wire", None)
        if type(fixed) is str:
            self._usual = fixed

    def flush(self, t: float = 0.0) -> list[Event]:
        """End of stream: decode what is buffered, including a last unterminated line, and dispatch."""
        self._cr = False
        out: list[Event] = []
        if self._parts:
            raw = b"".join(self._parts)
            self._parts = []
            out = self._ended_lines(raw.splitlines(keepends=True), t)
        if self._dirty:
            out.append(self._dispatch(t, None))
        return out

    @property
    def pending(self) -> bool:
        """True when bytes of an unfinished event are buffered."""
        return bool(self._parts) or self._dirty

    def _lines(self, lines: list[str], t: float) -> list[Event]:
        """Lines that all ended in LF (the common case: nothing to record about their ends)."""
        if not self._started and lines:
            self._started = True
            if lines[0].startswith(_BOM):
                lines[0] = lines[0][1:]
        out: list[Event] = []
        for line in lines:
            if not line:
                if self._dirty:
                    out.append(self._dispatch(t))
            elif line.startswith("data:"):
                value = line[6:] if line[5:6] == " " else line[5:]
                if self._data is None:
                    self._data = [value]
                else:
                    self._data.append(value)
                self._dirty = True
            elif line[0] == ":":
                out.append(Event(t=t, comment=line[2:] if line[1:2] == " " else line[1:]))
            else:
                self._field(line)
        return out

    def _ended_lines(self, raw_lines: list[bytes], t: float) -> list[Event]:
        """Lines with their ends (CR, LF or CRLF; none for a last unterminated one), recorded per field."""
        out: list[Event] = []
        for raw in raw_lines:
            if raw[-2:] == b"\r\n":
                end: str | None = "\r\n"
                raw = raw[:-2]
            elif raw[-1:] in (b"\r", b"\n"):
                end = chr(raw[-1])
                raw = raw[:-1]
            else:
                end = None
            line = raw.decode("utf-8", "replace")
            if not self._started:
                self._started = True
                if line.startswith(_BOM):
                    line = line[1:]
            dispatched = False
            if not line:
                if self._dirty:
                    out.append(self._dispatch(t, end))
                    dispatched = True
            elif line[0] == ":":
                ev = Event(t=t, comment=line[2:] if line[1:2] == " " else line[1:], line_ending=end or self._usual)
                out.append(ev)
                dispatched = True
            else:
                name = line.partition(":")[0]
                before = len(self._data) if self._data is not None else 0
                if self._field(line):
                    if end is None:
                        end = self._fallback()
                    ends = self._ends
                    if ends is None:
                        ends = self._ends = _LineEnds()
                    if name == "data":
                        ends.data.extend(["\n"] * (before - len(ends.data)))
                        ends.data.append(end)
                    else:
                        ends.fields[name] = end
                    self._last_field = name
                else:
                    self._last_field = None
            self._just_dispatched = dispatched
        return out

    def _field(self, line: str) -> bool:
        """Apply one field line; False if it was ignored (an unknown field, a bad id or retry)."""
        name, sep, value = line.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            if self._data is None:
                self._data = []
            self._data.append(value)
        elif name == "id":
            if "\0" in value:
                return False
            self._id = value
        elif name == "retry":
            if not value.isascii() or not value.isdigit():
                return False
            self._retry = int(value)
        else:
            return False
        self._dirty = True
        return True

    def _dispatch(self, t: float, blank: str | None = "\n") -> Event:
        """The event the blank line ended by ``blank`` completes (None: the stream ended instead)."""
        data = self._data
        if self._ends is None and blank == "\n":
            le: str | tuple[str, ...] = "\n"
        else:
            le = self._line_ending(blank)
        # Filled through __dict__: a frozen dataclass's __init__ costs a call per field, and this
        # runs once per event on the recorder's hot path.
        ev = _new_event(Event)
        ev.__dict__.update(
            t=t,
            event=self._event,
            data=None if data is None else (data[0] if len(data) == 1 else "\n".join(data)),
            id=self._id,
            retry=self._retry,
            comment=None,
            line_ending=le,
        )
        self._reset()
        return ev

    def _line_ending(self, blank: str | None) -> str | tuple[str, ...]:
        """The current event's line ends in encoding order; a line whose end was not seen takes the stream's usual one."""
        known = self._ends.fields if self._ends is not None else {}
        ends: list[str] = []
        for name, value in (("id", self._id), ("event", self._event), ("retry", self._retry)):
            if value is not None:
                ends.append(known.get(name, "\n"))
        if self._data is not None:
            data_ends = self._ends.data if self._ends is not None else []
            ends.extend(data_ends[: len(self._data)])
            ends.extend(["\n"] * (len(self._data) - len(data_ends)))
        ends.append(self._fallback() if blank is None else blank)
        le = _collapse(tuple(ends))
        if type(le) is str:
            self._usual = le
        return le

    def _fallback(self) -> str:
        """The end of a line the stream ended without: like the event's last known line end, else the stream's usual one."""
        ends = self._ends
        if ends is not None and ends.data:
            return ends.data[-1]
        if ends is not None and ends.fields:
            return next(reversed(ends.fields.values()))
        return self._usual


class _LineEnds:
    """The line ends recorded for the event being read: per field, and per ``data`` line."""

    __slots__ = ("fields", "data")

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.data: list[str] = []


def _collapse(ends: tuple[str, ...]) -> str | tuple[str, ...]:
    """One line ending for all the lines if they agree, else one per line."""
    first = ends[0]
    return first if all(e == first for e in ends) else ends


def _line_count(ev: Event) -> int:
    """How many lines ``ev`` encodes to, its blank line included."""
    n = 1 + sum(v is not None for v in (ev.id, ev.event, ev.retry))
    if ev.comment is not None:
        n += len(_BREAKS.split(ev.comment)) // 2 + 1
    if ev.data is not None:
        n += len(_BREAKS.split(ev.data)) // 2 + 1
    return n


_new_event = object.__new__


def decode(data: bytes | Iterable[bytes]) -> list[Event]:
    """Decode a whole stream (bytes, or an iterable of chunks), including an unterminated last event."""
    dec = Decoder()
    chunks: Iterable[bytes] = (bytes(data),) if isinstance(data, (bytes, bytearray, memoryview)) else data
    out: list[Event] = []
    for chunk in chunks:
        out.extend(dec.feed(bytes(chunk)))
    out.extend(dec.flush())
    return out


def iter_decode(chunks: Iterable[bytes]) -> Iterator[Event]:
    """Lazily decode an iterable of chunks."""
    dec = Decoder()
    for chunk in chunks:
        yield from dec.feed(chunk)
    yield from dec.flush()
