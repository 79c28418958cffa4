"""Anthropic on Amazon Bedrock: the Messages events inside the AWS event stream, and AWS's errors.

``POST /model/{modelId}/invoke-with-response-stream`` answers
``application/vnd.amazon.eventstream``: binary frames, each a prelude (total length,
headers length, CRC32 of those eight bytes), typed headers, a payload and a CRC32 of the
whole frame. A ``chunk`` frame's JSON payload carries one Messages API event, base64 in
``bytes``, plus a run of padding letters in ``p`` that hides the event's size; an
``exception`` frame (``throttlingException``, ``modelStreamErrorException``, ...) ends a
stream that fails. The last event, ``message_stop``, also reports
``amazon-bedrock-invocationMetrics``.

A cassette keeps the events, not the frames, so a Bedrock stream reads like a Messages
stream and every event fault works on it: a chunk is ``event:`` (its type, as the SDK names
it), ``data:`` (the Messages event's JSON, decoded) and ``comment:`` (the padding, verbatim);
an exception is ``event: <name>Exception`` with the exception's JSON ``data``. A frame that
does not fit either form is kept whole as ``event: raw-frame`` with its bytes in base64.
Those three forms encode back to the recorded bytes exactly, checksums included.

The framing is :func:`encode_frame` / :class:`FrameDecoder`: the few lines of ``struct`` and
``zlib.crc32`` the format needs (botocore, which the SDK uses to read the stream, has a
parser but no encoder; the tests check every frame against botocore's parser).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import struct
import uuid
import zlib
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from typing import Any, Mapping, Sequence

from ..sse import Event
from . import Synth, register
from .anthropic import Anthropic, status_for

__all__ = [
    "CONTENT_TYPE",
    "RAW_FRAME",
    "EXCEPTIONS",
    "Frame",
    "DamagedFrame",
    "FrameError",
    "encode_frame",
    "frame_bytes",
    "FrameDecoder",
    "decode_frames",
    "looks_like_frames",
    "padding",
    "exception_event",
    "error_body",
    "error_headers",
    "AnthropicBedrock",
    "DIALECT",
]

CONTENT_TYPE = "application/vnd.amazon.eventstream"
RAW_FRAME = "raw-frame"
"""The ``event`` name of a frame kept whole (its bytes base64 in ``data``)."""

_PRELUDE = struct.Struct(">II")
_CRC = struct.Struct(">I")
_STRING = 7
_PAD_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

EXCEPTIONS: dict[int, tuple[str, str]] = {
    400: ("ValidationException", "Malformed input request, please reformat your input and try again."),
    403: ("AccessDeniedException", "You don't have access to the model with the specified model ID."),
    404: ("ResourceNotFoundException", "Could not resolve the foundation model from the provided model identifier."),
    408: ("ModelTimeoutException", "Model has timed out in processing the request. Try your request again."),
    424: ("ModelErrorException", "The model encountered an error processing the request."),
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    500: ("InternalServerException", "The server encountered an internal error while processing the request."),
    503: ("ServiceUnavailableException", "Bedrock is unable to process your request."),
}
"""HTTP status -> (AWS exception name, Bedrock's usual message)."""

_STREAM_EXCEPTIONS = {
    "rate_limit_error": "throttlingException",
    "api_error": "internalServerException",
    "timeout_error": "modelTimeoutException",
    "invalid_request_error": "validationException",
}
"""Anthropic error type -> the exception frame Bedrock ends the stream with (otherwise ``modelStreamErrorException``)."""


class FrameError(ValueError):
    """Bytes that are not a well-formed event-stream frame, or an event that cannot become one."""


# ---------------------------------------------------------------- frames


def frame_bytes(headers: Sequence[tuple[str, str]], payload: bytes) -> bytes:
    """One event-stream frame with string headers, in order, and both checksums."""
    head = b"".join(
        b"%c%b%c%b%b" % (len(name), name.encode(), _STRING, struct.pack(">H", len(value.encode())), value.encode())
        for name, value in headers
    )
    total = 12 + len(head) + len(payload) + 4
    prelude = _PRELUDE.pack(total, len(head))
    body = prelude + _CRC.pack(zlib.crc32(prelude)) + head + payload
    return body + _CRC.pack(zlib.crc32(body))


def _chunk_payload(event: Event) -> bytes:
    data = (event.data or "").encode("utf-8")
    out = '{"bytes":"' + base64.b64encode(data).decode("ascii") + '"'
    if event.comment is not None:
        out += ',"p":' + json.dumps(event.comment, ensure_ascii=False)
    return (out + "}").encode("utf-8")


def encode_frame(event: Event) -> bytes:
    """The frame an event goes out as: a chunk, an exception (``event`` ending in ``Exception``) or a raw frame."""
    if event.event == RAW_FRAME:
        try:
            return base64.b64decode(event.data or "", validate=True)
        except binascii.Error:
            raise FrameError(f"a {RAW_FRAME} event's data must be the frame's bytes in base64") from None
    if event.is_comment or (event.data is None and event.event is None):
        raise FrameError("an AWS event stream has no comments or keep-alive lines; Bedrock sends only chunk and exception frames")
    if event.id is not None or event.retry is not None:
        raise FrameError("an AWS event stream frame has no SSE id or retry field")
    if event.event is not None and event.event.endswith("Exception"):
        headers = ((":exception-type", event.event), (":content-type", "application/json"), (":message-type", "exception"))
        return frame_bytes(headers, (event.data or "").encode("utf-8"))
    return frame_bytes(((":event-type", "chunk"), (":content-type", "application/json"), (":message-type", "event")), _chunk_payload(event))


@dataclass(frozen=True)
class Frame(Event):
    """An event whose ``wire`` is its event-stream frame."""

    @cached_property
    def wire(self) -> bytes:
        return encode_frame(self)


@dataclass(frozen=True)
class DamagedFrame(Frame):
    """A frame cut short in transit: a valid prelude for the shorter frame, only the first ``keep``
    of the payload, and the checksum of the frame as it should have been (so it no longer matches)."""

    keep: float = field(default=0.5)

    @cached_property
    def wire(self) -> bytes:
        whole = encode_frame(self)
        headers_len = _PRELUDE.unpack_from(whole)[1]
        payload = whole[12 + headers_len : -4]
        cut = payload[: int(len(payload) * self.keep)]
        total = 12 + headers_len + len(cut) + 4
        prelude = _PRELUDE.pack(total, headers_len)
        return prelude + _CRC.pack(zlib.crc32(prelude)) + whole[12 : 12 + headers_len] + cut + whole[-4:]


_EVENT_FIELDS = tuple(f.name for f in fields(Event))


def _as_frame(event: Event, cls: type[Frame] | None = None, **extra: Any) -> Event:
    """``event`` as a :class:`Frame` (or ``cls``), every field kept."""
    if cls is None and isinstance(event, Frame):
        return event
    frame = object.__new__(cls or Frame)
    frame.__dict__.update({name: event.__dict__[name] for name in _EVENT_FIELDS}, **extra)
    return frame


def _parse(raw: bytes) -> tuple[list[tuple[str, Any]], bytes]:
    """Headers (in order) and payload of one whole frame whose checksums hold."""
    total, headers_len = _PRELUDE.unpack_from(raw)
    if _CRC.unpack_from(raw, 8)[0] != zlib.crc32(raw[:8]):
        raise FrameError("prelude checksum mismatch")
    if _CRC.unpack_from(raw, total - 4)[0] != zlib.crc32(raw[: total - 4]):
        raise FrameError("message checksum mismatch")
    headers: list[tuple[str, Any]] = []
    at, end = 12, 12 + headers_len
    while at < end:
        size = raw[at]
        name = raw[at + 1 : at + 1 + size].decode("utf-8")
        kind = raw[at + 1 + size]
        at += 2 + size
        if kind != _STRING:
            raise FrameError(f"header {name!r} is of type {kind}, not a string")
        (length,) = struct.unpack_from(">H", raw, at)
        headers.append((name, raw[at + 2 : at + 2 + length].decode("utf-8")))
        at += 2 + length
    return headers, raw[end : total - 4]


_CHUNK_HEADERS = frame_bytes(((":event-type", "chunk"), (":content-type", "application/json"), (":message-type", "event")), b"")[12:-4]


def _chunk_of(raw: bytes, t: float) -> Event | None:
    """The fast path for the common frame, a chunk in the usual layout: its event if it re-encodes to ``raw``."""
    headers_len = _PRELUDE.unpack_from(raw)[1]
    if raw[12 : 12 + headers_len] != _CHUNK_HEADERS:
        return None
    if _CRC.unpack_from(raw, 8)[0] != zlib.crc32(raw[:8]) or _CRC.unpack_from(raw, len(raw) - 4)[0] != zlib.crc32(raw[:-4]):
        return None
    payload = raw[12 + headers_len : -4]
    body = json.loads(payload)
    data = base64.b64decode(body["bytes"], validate=True).decode("utf-8")
    pad = body.get("p")
    try:
        kind = json.loads(data).get("type")
    except (ValueError, AttributeError):
        kind = None
    event = Frame(t=t, event=kind if isinstance(kind, str) and not kind.endswith("Exception") and kind != RAW_FRAME else None, data=data, comment=pad if isinstance(pad, str) else None)
    return event if _chunk_payload(event) == payload else None


def _event_of(raw: bytes, t: float) -> Event:
    """The cassette event for one frame: a chunk or an exception when that re-encodes to ``raw``, else the raw frame."""
    try:
        fast = _chunk_of(raw, t)
        if fast is not None:
            return fast
        headers, payload = _parse(raw)
        found = dict(headers)
        candidate: Event | None = None
        if found.get(":message-type") == "event" and found.get(":event-type") == "chunk":
            body = json.loads(payload)
            data = base64.b64decode(body["bytes"], validate=True).decode("utf-8")
            pad = body.get("p")
            try:
                kind = json.loads(data).get("type")
            except (ValueError, AttributeError):
                kind = None
            candidate = Frame(t=t, event=kind if isinstance(kind, str) and not kind.endswith("Exception") and kind != RAW_FRAME else None, data=data, comment=pad if isinstance(pad, str) else None)
        elif found.get(":message-type") == "exception" and found.get(":exception-type", "").endswith("Exception"):
            candidate = Frame(t=t, event=found[":exception-type"], data=payload.decode("utf-8"))
        if candidate is not None and candidate.wire == raw:
            return candidate
    except (FrameError, ValueError, KeyError, TypeError, UnicodeDecodeError, struct.error, binascii.Error):
        pass
    return Frame(t=t, event=RAW_FRAME, data=base64.b64encode(raw).decode("ascii"))


class FrameDecoder:
    """Incremental frame decoder: feed bytes in any split, get an event per whole frame.

    ``flush`` keeps bytes left over at the end (a frame cut off by a disconnect) as a
    ``raw-frame`` event, so a recording loses nothing.
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, chunk: bytes, t: float = 0.0) -> list[Event]:
        buf = self._buf
        buf += chunk
        out: list[Event] = []
        while len(buf) >= 12:
            total = _PRELUDE.unpack_from(buf)[0]
            if total < 16:
                raise FrameError(f"a frame declares {total} bytes; the smallest frame is 16")
            if len(buf) < total:
                break
            out.append(_event_of(bytes(buf[:total]), t))
            del buf[:total]
        return out

    def flush(self, t: float = 0.0) -> list[Event]:
        if not self._buf:
            return []
        rest = bytes(self._buf)
        self._buf.clear()
        return [Frame(t=t, event=RAW_FRAME, data=base64.b64encode(rest).decode("ascii"))]

    @property
    def pending(self) -> bool:
        return bool(self._buf)


def decode_frames(data: bytes) -> list[Event]:
    """Every event of a whole event-stream body (a cut-off tail becomes a ``raw-frame`` event)."""
    dec = FrameDecoder()
    return [*dec.feed(bytes(data)), *dec.flush()]


def looks_like_frames(data: bytes) -> bool:
    """Whether ``data`` starts with an event-stream frame (a prelude whose checksum holds)."""
    if len(data) < 16:
        return False
    total, headers_len = _PRELUDE.unpack_from(data)
    return total >= 16 + headers_len and _CRC.unpack_from(data, 8)[0] == zlib.crc32(data[:8])


def padding(data: str) -> str:
    """Padding of the kind Bedrock adds (a prefix of ``a-zA-Z0-9``), its length derived from ``data``."""
    n = 1 + int(hashlib.sha256(data.encode()).hexdigest()[:8], 16) % (len(_PAD_ALPHABET) - 1)
    return _PAD_ALPHABET[:n]


# ---------------------------------------------------------------- errors


def _exception(status: int) -> tuple[str, str]:
    if status in EXCEPTIONS:
        return EXCEPTIONS[status]
    if status == 529:
        return EXCEPTIONS[503]
    return EXCEPTIONS[500] if status >= 500 else EXCEPTIONS[400]


def error_body(status: int, *, message: str | None = None) -> dict:
    return {"message": message or _exception(status)[1]}


def error_headers(status: int, *, error_type: str | None = None, retry_after_s: float | None = None, request_id: str | None = None, should_retry: bool | None = None) -> dict[str, str]:
    """AWS's error headers: ``x-amzn-ErrorType`` names the exception, ``x-amzn-RequestId`` the request."""
    name = error_type or _exception(status)[0]
    headers = {"content-type": "application/json", "x-amzn-errortype": f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    if request_id:
        headers["x-amzn-requestid"] = request_id
    if retry_after_s is not None:
        headers["retry-after"] = str(max(0, round(retry_after_s)))
    if should_retry is not None:
        headers["x-should-retry"] = "true" if should_retry else "false"
    return headers


def exception_event(t: float, error_type: str = "overloaded_error", message: str | None = None) -> Frame:
    """The exception frame Bedrock ends a failing stream with, for an Anthropic error type."""
    name = _STREAM_EXCEPTIONS.get(error_type)
    if name is not None:
        status = {"throttlingException": 429, "internalServerException": 500, "modelTimeoutException": 408, "validationException": 400}[name]
        return Frame(t=t, event=name, data=json.dumps({"message": message or _exception(status)[1]}, separators=(",", ":")))
    from .anthropic import ERROR_TYPES

    status = status_for(error_type)
    original = ERROR_TYPES.get(status, ("", "Internal server error"))[1]
    payload = {"message": message or f"Model stream error: {original}", "originalStatusCode": status, "originalMessage": original}
    return Frame(t=t, event="modelStreamErrorException", data=json.dumps(payload, separators=(",", ":")))


# ---------------------------------------------------------------- the dialect


_FRAMED_KEPT = 64
"""Recorded streams whose frames are kept encoded between requests (a cassette's are framed once)."""


class AnthropicBedrock(Anthropic):
    name = "anthropic-bedrock"
    label = "Anthropic on Amazon Bedrock"
    content_type = CONTENT_TYPE

    def __init__(self) -> None:
        self._framed: dict[int, tuple[tuple[Event, ...], tuple[Event, ...]]] = {}

    def claims(self, route: str, headers: Mapping[str, str]) -> bool:
        media = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        if media.split(";", 1)[0].strip().lower() == CONTENT_TYPE:
            return True
        return route.startswith("/model/") and route.endswith("/invoke-with-response-stream")

    def claims_events(self, events: Any) -> bool:
        return False

    def path(self, model: str | None = None) -> str:
        return f"/model/{model or 'anthropic.claude-sonnet-4-5-20250929-v1:0'}/invoke-with-response-stream"

    def is_complete(self, events: Sequence[Event]) -> bool:
        last = events[-1] if events else None
        return last is not None and ((last.event or "").endswith("Exception") or super().is_complete(events))

    def framed(self, events: tuple[Event, ...]) -> tuple[Event, ...]:
        cached = self._framed.get(id(events))
        if cached is not None and cached[0] is events:
            return cached[1]
        if all(isinstance(e, Frame) for e in events):
            return events
        out = tuple(_as_frame(e) for e in events)
        for ev in out:
            ev.wire  # noqa: B018 - encode once, and refuse an event that cannot be a frame now rather than mid-stream
        if len(self._framed) >= _FRAMED_KEPT:
            self._framed.pop(next(iter(self._framed)))
        self._framed[id(events)] = (events, out)
        return out

    def decoder(self) -> FrameDecoder:
        return FrameDecoder()

    def decode_body(self, data: bytes) -> list[Event]:
        return decode_frames(data)

    def keepalive(self, t: float) -> Event:
        raise FrameError("Bedrock's event stream has no keep-alives (no pings, no comments); drop the pings fault for this stream")

    def truncated(self, event: Event, keep: float) -> Event:
        return _as_frame(event, DamagedFrame, keep=keep)

    def error_body(self, status: int, *, message: str | None = None, error_type: str | None = None, request_id: str | None = None) -> Any:
        return error_body(status, message=message)

    def error_headers(self, status: int, *, retry_after_s: float | None = None, request_id: str | None = None, should_retry: bool | None = None) -> dict[str, str]:
        return error_headers(status, retry_after_s=retry_after_s, request_id=request_id, should_retry=should_retry)

    def request_id(self, *parts: object) -> str:
        return str(uuid.UUID(hashlib.sha256(repr(parts).encode()).hexdigest()[:32]))

    def stream_error(self, before: Sequence[Event], t: float, error_type: str, message: str | None = None) -> tuple[Event, ...]:
        return (exception_event(t, error_type, message),)

    def usage_tokens(self, payload: Any) -> int | None:
        found = super().usage_tokens(payload)
        if found is None and isinstance(payload, dict) and payload.get("type") == "message_stop":
            metrics = payload.get("amazon-bedrock-invocationMetrics")
            value = metrics.get("outputTokenCount") if isinstance(metrics, dict) else None
            return value if isinstance(value, int) and not isinstance(value, bool) else None
        return found

    def stop_reason(self, payload: Any, name: str | None = None) -> str | None:
        if name is not None and name.endswith("Exception"):
            return f"error: {name}"
        return super().stop_reason(payload, name)

    def synth(self, reply: Synth) -> tuple[Event, ...]:
        events = super().synth(reply)
        usage = json.loads(events[-2].data or "{}").get("usage", {})
        stop = {
            "type": "message_stop",
            "amazon-bedrock-invocationMetrics": {"inputTokenCount": 12, "outputTokenCount": usage.get("output_tokens", 0), "invocationLatency": 0, "firstByteLatency": 0},
        }
        events = (*events[:-1], replace(events[-1], data=json.dumps(stop, separators=(",", ":"))))
        return tuple(_as_frame(replace(e, comment=padding(e.data or ""))) for e in events if e.event != "ping")


DIALECT = register(AnthropicBedrock())
