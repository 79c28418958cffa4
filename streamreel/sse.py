"""Incremental Server-Sent-Events codec, robust to any chunk split.

The decoder follows the WHATWG event-stream parsing rules (LF, CRLF and CR line ends,
a UTF-8 BOM at the start, ``:`` comments, ``event``/``data``/``id``/``retry`` fields,
multi-line ``data``), with one deliberate difference: it keeps everything on the wire.
A block is dispatched when *any* field was set (as the SDKs' decoders do, so an
``event: ping`` with no data is not lost), a missing ``data`` line is ``None`` rather
than ``""``, and comments come out as events of their own, so that a recording
replays as it was captured.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable, Iterator

__all__ = ["Event", "Decoder", "decode", "iter_decode", "encode", "encode_all"]

_BOM = "\ufeff"


@dataclass(frozen=True)
class Event:
    """One SSE event (or comment) as it went over the wire, with its time in ms from the request.

    ``data`` is kept verbatim as a string (real captures pad their JSON with spaces), so a
    recording replays byte for byte. A comment line (``: keep-alive``) is an ``Event`` with
    only ``comment`` set.
    """

    t: float = 0.0
    event: str | None = None
    data: str | None = None
    id: str | None = None
    retry: int | None = None
    comment: str | None = field(default=None)

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
    """Encode one event as SSE bytes, ending with the blank line that dispatches it."""
    out: list[str] = []
    if event.comment is not None:
        out.extend(f": {line}\n" if line else ":\n" for line in _split_lines(event.comment))
    if event.id is not None:
        out.append(f"id: {event.id}\n")
    if event.event is not None:
        out.append(f"event: {event.event}\n")
    if event.retry is not None:
        out.append(f"retry: {event.retry}\n")
    if event.data is not None:
        out.extend(f"data: {line}\n" for line in _split_lines(event.data))
    out.append("\n")
    return "".join(out).encode("utf-8")


def encode_all(events: Iterable[Event]) -> bytes:
    return b"".join(e.wire for e in events)


def _split_lines(text: str) -> list[str]:
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.split("\n")


class Decoder:
    """Incremental SSE decoder: feed it bytes as they arrive, in any split, and get whole events.

    ``feed(chunk, t)`` stamps every event it completes with ``t`` (the recorder passes the
    arrival time). ``flush()`` ends the stream: a last event that was not closed by a blank
    line is returned too, so a capture's final event is never lost.
    """

    __slots__ = ("_parts", "_skip_lf", "_started", "_event", "_data", "_id", "_retry", "_dirty")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._skip_lf = False
        self._started = False
        self._reset()

    def _reset(self) -> None:
        self._event: str | None = None
        self._data: list[str] | None = None
        self._id: str | None = None
        self._retry: int | None = None
        self._dirty = False

    def feed(self, chunk: bytes, t: float = 0.0) -> list[Event]:
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
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
        if cut + 1 < len(buf):
            self._parts.append(buf[cut + 1 :])
        elif buf[cut] == 13:  # a CR that ends the chunk: an LF starting the next one belongs to it
            self._skip_lf = True
        return self._lines(_split_wire_lines(buf[: cut + 1]), t)

    def flush(self, t: float = 0.0) -> list[Event]:
        """End of stream: decode what is buffered, including a last unterminated line, and dispatch."""
        out: list[Event] = []
        if self._parts:
            raw = b"".join(self._parts)
            self._parts = []
            out = self._lines(_split_wire_lines(raw), t)
        if self._dirty:
            out.append(self._dispatch(t))
        return out

    @property
    def pending(self) -> bool:
        """True when bytes of an unfinished event are buffered."""
        return bool(self._parts) or self._dirty

    def _lines(self, lines: list[str], t: float) -> list[Event]:
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

    def _field(self, line: str) -> None:
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
                return
            self._id = value
        elif name == "retry":
            if not value.isascii() or not value.isdigit():
                return
            self._retry = int(value)
        else:
            return
        self._dirty = True

    def _dispatch(self, t: float) -> Event:
        data = self._data
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
        )
        self._reset()
        return ev


_new_event = object.__new__


def _split_wire_lines(raw: bytes) -> list[str]:
    """Lines split at CR, LF or CRLF only (``bytes.splitlines`` knows no other line ends), then decoded."""
    return [line.decode("utf-8", "replace") for line in raw.splitlines()]


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
