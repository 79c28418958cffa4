"""Turn captures made elsewhere into cassettes: raw SSE text, logs, HAR files, JSON chunks per line, vcrpy cassettes.

The formats are told apart by their content (:func:`detect_format`):

- ``sse``: a stream's body as logged or copied from devtools (``event:``/``data:`` lines),
  including OpenAI's data-only streams ending in ``data: [DONE]``. Data-only Anthropic and
  OpenAI Responses streams get their ``event:`` names back from each JSON ``type`` (the
  anthropic SDK ignores an event without one), and a file of ``data:`` lines without blank
  lines between them is one event per line.
- ``log``: an application log with a timestamp on each SSE line (see :mod:`streamreel.logs`);
  event times come from the timestamps, so the gaps are the real ones.
- ``har``: a browser's HAR file; every ``text/event-stream`` entry becomes an interaction
  with its request (see :mod:`streamreel.har`).
- ``chunks``: one JSON payload per line, the SSE framing stripped (vercel/ai fixtures).
  The framing comes back as the API sends it: ``event:`` names for Anthropic and OpenAI
  Responses, ``data: [DONE]`` after an OpenAI chat stream that finished.
- ``eventstream``: the raw body of a Bedrock ``invoke-with-response-stream`` response
  (AWS event-stream frames); each frame becomes an event (see :mod:`streamreel.providers.bedrock`).
- ``vcrpy``: a vcrpy / pytest-recording YAML cassette, whose SSE bodies are one string
  (a block scalar, a single- or double-quoted scalar, or ``!!binary`` gzip bytes), and
  whose requests may be pydantic-ai's ``parsed_body``. Every interaction is kept, with its
  method, path and query and JSON body for matching, its status and headers; streamed
  bodies become events, others stay plain bodies. The YAML is read with the safe loader,
  so no tag can run code (``!!binary`` is a standard tag); credentials (``authorization``,
  ``x-api-key``, cookies, organization ids, ``key=`` query parameters) are scrubbed.

Several responses back to back in one raw file, log or chunk file (a failed attempt and
its retry) become several interactions, in order: a new one starts at a second
``message_start`` / ``response.created``, or after ``data: [DONE]``. Timing is synthetic
(a :class:`Timing`: headers, first event, then seeded, jittered gaps) where the capture has
none. Every event is kept, including a last event that a capture does not close with a
blank line. A stream that stops before its provider's final event (``message_stop``,
``[DONE]``) was cut, and imports with ``end.reason: upstream_disconnect`` so the replay
cuts it the same way. :func:`import_capture` also says, one line each, what it had to
restore or guess.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

import yaml

from .cassette import Cassette, End, Interaction, Request, Response
from .errors import CassetteError
from .providers import decode_body, is_complete, provider_of_events
from .providers import get as dialect_named
from .providers.bedrock import CONTENT_TYPE as EVENTSTREAM, decode_frames, looks_like_frames
from .scrub import Scrubber
from .sse import Event, decode

__all__ = [
    "FORMATS",
    "Timing",
    "detect_format",
    "import_sse",
    "import_chunks",
    "import_eventstream",
    "import_vcr",
    "import_file",
    "import_capture",
    "import_directory",
    "Imported",
    "ImportResult",
    "merge",
    "scrubbed",
    "clean_request_headers",
    "clean_response_headers",
    "scrub_target",
]

FORMATS = ("sse", "log", "har", "chunks", "vcrpy", "eventstream")

_ANTHROPIC_TYPES = frozenset(
    {"message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop", "ping", "error"}
)
_TRANSPORT_HEADERS = frozenset({"content-length", "content-encoding", "transfer-encoding", "connection", "host", "keep-alive", "accept-encoding"})
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SCRUB = Scrubber()


def detect_format(data: bytes) -> str:
    """One of :data:`FORMATS` (``eventstream`` is AWS binary frames, Bedrock), from the start of a capture."""
    if looks_like_frames(data):
        return "eventstream"
    from .har import looks_like_har
    from .logs import looks_like_log

    text = data[:65536].decode("utf-8", "replace").lstrip("\ufeff")
    if re.search(r"^streamreel:", text, re.M):
        return "streamreel"
    if re.search(r"^interactions:", text, re.M) and re.search(r"^\s*-?\s*(request|response):", text, re.M):
        return "vcrpy"
    if looks_like_har(text):
        return "har"
    if looks_like_log(text):
        return "log"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if first.startswith("{") and not re.search(r"^(data|event|id|retry):", text, re.M):
        return "chunks"
    return "sse"


# ---------------------------------------------------------------- raw SSE


@dataclass(frozen=True)
class Timing:
    """Synthetic timing for a capture that has none: headers at ``headers_ms``, the first event
    at ``first_ms`` (default: one gap after the headers), then ``gap_ms`` apart, each gap spread
    uniformly by up to ``jitter_ms`` either way, from ``seed``."""

    gap_ms: float = 20.0
    jitter_ms: float = 0.0
    seed: int = 0
    first_ms: float | None = None
    headers_ms: float = 0.0

    def apply(self, raw: Sequence[Event]) -> tuple[Event, ...]:
        rng = random.Random(self.seed)
        t = self.headers_ms + self.gap_ms if self.first_ms is None else self.first_ms
        out: list[Event] = []
        for i, e in enumerate(raw):
            if i:
                t += max(0.0, self.gap_ms + (rng.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0))
            out.append(replace(e, t=round(t, 3)))
        return tuple(out)

    def shifted(self, raw: Sequence[Event]) -> tuple[Event, ...]:
        """Events that carry real times (a log's), moved so the first comes when :meth:`apply`
        would put it; the gaps between them stay as they were."""
        if not raw:
            return ()
        start = self.headers_ms + self.gap_ms if self.first_ms is None else self.first_ms
        origin = raw[0].t
        return tuple(replace(e, t=round(start + (e.t - origin), 3)) for e in raw)


def _stream_response(
    raw: Sequence[Event],
    *,
    timing: Timing,
    end: str | None,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    timed: bool = False,
) -> tuple[Response, str]:
    provider = provider_of_events(raw)
    media = (headers or {}).get("content-type", "").split(";", 1)[0].strip().lower()
    if media == EVENTSTREAM:
        provider = "anthropic-bedrock"
    events = timing.shifted(raw) if timed else timing.apply(raw)
    last = events[-1].t if events else timing.headers_ms
    reason = end or ("complete" if is_complete(events, provider) else "upstream_disconnect")
    response = Response(
        status=status,
        headers=dict(headers) if headers is not None else {"content-type": "text/event-stream; charset=utf-8"},
        headers_at=timing.headers_ms,
        events=events,
        end=End(t=last, reason=reason),
    )
    return response, provider


def _default_request(provider: str, method: str | None, path: str | None, events: Sequence[Event] = ()) -> Request:
    if path is None:
        path = dialect_named(provider).path(_model_of(events))
    if method is None and path is not None:
        method = "POST" if provider != "sse" else "GET"
    return Request(method=method, path=path)


def _model_of(events: Sequence[Event]) -> str | None:
    """The model a stream names (Gemini's ``modelVersion``), for a request path that holds it."""
    for ev in events[:3]:
        payload = ev.json(default=None) if ev.data else None
        if isinstance(payload, dict) and isinstance(payload.get("modelVersion"), str):
            return payload["modelVersion"]
    return None


def import_sse(
    data: bytes,
    *,
    timing: Timing = Timing(),
    end: str | None = None,
    method: str | None = None,
    path: str | None = None,
    status: int = 200,
) -> Cassette:
    """A cassette from the raw bytes of an SSE stream (several back to back become several interactions)."""
    return _imported_sse(data, timing=timing, end=end, method=method, path=path, status=status).cassette


def _imported_sse(data: bytes, *, timing: Timing, end: str | None, method: str | None, path: str | None, status: int) -> Imported:
    framed = _one_event_per_data_line(data)
    imported = _grouped(decode(framed), timing=timing, end=end, method=method, path=path, status=status)
    return _cut_inside(imported, framed if framed is data else None, end)


def _cut_inside(imported: Imported, raw: bytes | None, end: str | None, index: int | None = None) -> Imported:
    """A cut capture whose bytes stop inside its last event (half a JSON line, no blank line
    after it) replays the same bytes and then cuts: the cassette gets the fault that cuts
    there (``disconnect:inside=N,keep=B,how=close``). That is possible when the cut stream is
    the cassette's first response (``times=1`` when others follow); otherwise a note says
    which fault to serve it with. ``index`` is the interaction ``raw`` is the body of (default: the last)."""
    cassette = imported.cassette
    if raw is None or end is not None or not cassette.interactions:
        return imported
    k = len(cassette.interactions) - 1 if index is None else index
    res = cassette.interactions[k].response
    if res.end.reason != "upstream_disconnect" or not res.events:
        return imported
    body = raw.rstrip(b" \t")
    if body.endswith((b"\n\n", b"\r\n\r\n", b"\r\r")):
        return imported
    tail = re.split(rb"\r\n\r\n|\n\n|\r\r", body)[-1].lstrip(b"\r\n")
    last = res.events[-1]
    if not tail or not last.wire.startswith(tail) or len(tail) >= len(last.wire):
        return imported
    n = len(res.events)
    spec = f"disconnect:inside={n},keep={len(tail)},how=close"
    if k == 0:
        spec += ",times=1" if len(cassette.interactions) > 1 else ""
        note = (
            f"{'the stream' if len(cassette.interactions) == 1 else 'interaction 0'} stops {len(tail)} bytes into event {n}: "
            f"it replays those bytes and cuts, with the fault {spec} kept in the cassette; import with --end complete for a clean end of body instead, or --end timeout to hold it silent"
        )
        kept = tuple(x for x in imported.notes if "replays as a cut" not in x)
        fixed = replace(cassette, faults=(*cassette.faults, spec))
        return replace(imported, cassette=fixed, notes=(*kept, *_cut_notes(fixed, end, skip=0), note))
    note = f"interaction {k} stops {len(tail)} bytes into event {n}; to cut there as the capture did, serve it with the fault {spec}"
    return replace(imported, notes=(*imported.notes, note))


def _one_event_per_data_line(data: bytes) -> bytes:
    """``data:`` lines with no blank line anywhere between them (JSON per line that kept its
    ``data: ``, a log of SSE lines) are one event each: their blank lines come back."""
    lines = re.split(rb"\r\n|\r|\n", data.removeprefix(b"\xef\xbb\xbf"))
    used = [i for i, line in enumerate(lines) if line]
    if not used or sum(1 for i in used if lines[i].startswith(b"data:")) < 2 or len(used) != used[-1] - used[0] + 1:
        return data
    out: list[bytes] = []
    for i in used:
        out.append(lines[i])
        if lines[i].startswith(b"data:"):
            out.append(b"")
    return b"\n".join(out) + b"\n"


def _import_log(data: bytes, *, timing: Timing, end: str | None, method: str | None, path: str | None, status: int) -> Imported:
    from .logs import parse_log

    parsed = parse_log(data)
    imported = _grouped(list(parsed.events), timing=timing, end=end, method=method, path=path, status=status, timed=True)
    skipped = f"; {parsed.skipped} line(s) that were not SSE skipped" if parsed.skipped else ""
    return replace(imported, notes=(f"event times taken from the log's timestamps{skipped}", *imported.notes), timing="times from the log's timestamps")


def _import_har(data: bytes, *, end: str | None, source: str | None) -> Imported:
    from . import har

    streams, total, skipped = har.har_streams(data, source=source)
    interactions: list[Interaction] = []
    notes: list[str] = []
    restored = False
    partial: list[tuple[int, bytes]] = []
    for stream in streams:
        events, was_restored = _named(decode_body(stream.headers, stream.body))
        restored |= was_restored
        for group in _split_responses(events):
            reason = end or ("complete" if is_complete(group, provider_of_events(group)) else "upstream_disconnect")
            interactions.append(scrubbed(har.interaction(stream, group, reason), _SCRUB.also(stream.secrets)))
        partial.append((len(interactions) - 1, stream.body))
    notes.append(f"{len(streams)} event-stream entr{'y' if len(streams) == 1 else 'ies'} of {total} imported" + (f"; {len(skipped)} skipped ({skipped[0]}{', ...' if len(skipped) > 1 else ''})" if skipped else ""))
    notes.append("HAR keeps no per-event times: each entry's events are spread evenly over its receive time")
    if restored:
        notes.append(_RESTORED_NOTE)
    cassette = Cassette(interactions=tuple(interactions))
    imported = Imported(cassette, (*notes, *_cut_notes(cassette, end)), "HAR: events spread evenly over each entry's receive time")
    for index, body in partial:
        imported = _cut_inside(imported, body, end, index)
    return imported


def import_eventstream(
    data: bytes,
    *,
    timing: Timing = Timing(),
    end: str | None = None,
    method: str | None = None,
    path: str | None = None,
    status: int = 200,
) -> Cassette:
    """A one-interaction cassette from the raw bytes of an AWS event stream (a Bedrock response body)."""
    response, _ = _stream_response(decode_frames(data), timing=timing, end=end, status=status, headers={"content-type": EVENTSTREAM})
    return Cassette(interactions=(Interaction(request=_default_request("anthropic-bedrock", method, path), response=response),))


# ---------------------------------------------------------------- JSON chunks per line


def _chunk_event(line: str, payload: Any) -> Event:
    kind = payload.get("type") if isinstance(payload, dict) else None
    if isinstance(kind, str) and (kind in _ANTHROPIC_TYPES or kind.startswith("response.")):
        return Event(event=kind, data=line)
    return Event(data=line)


def _finished_chat(events: Sequence[Event]) -> bool:
    for ev in events:
        payload = ev.json(default=None)
        if isinstance(payload, dict):
            for choice in payload.get("choices") or ():
                if isinstance(choice, dict) and choice.get("finish_reason"):
                    return True
    return False


def _split_responses(events: list[Event]) -> list[list[Event]]:
    """Several responses saved back to back: a new one starts at each further message_start /
    response.created, and at the first data after ``[DONE]``."""
    starts = {"message_start", "response.created"}
    groups: list[list[Event]] = []
    for ev in events:
        after_done = groups and any(e.data == "[DONE]" for e in groups[-1]) and ev.data is not None
        if groups and (after_done or (ev.event in starts and any(e.event in starts for e in groups[-1]))):
            groups.append([])
        if not groups:
            groups.append([])
        groups[-1].append(ev)
    return groups


def import_chunks(
    data: bytes,
    *,
    timing: Timing = Timing(),
    end: str | None = None,
    method: str | None = None,
    path: str | None = None,
    status: int = 200,
    source: str | None = None,
) -> Cassette:
    """A cassette from JSON payloads one per line (the ``data:`` of each event, framing stripped)."""
    return _imported_chunks(data, timing=timing, end=end, method=method, path=path, status=status, source=source).cassette


def _imported_chunks(data: bytes, *, timing: Timing, end: str | None, method: str | None, path: str | None, status: int, source: str | None) -> Imported:
    events: list[Event] = []
    for number, line in enumerate(data.decode("utf-8").lstrip("\ufeff").splitlines(), 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        try:
            payload = json.loads(line)
        except json.JSONDecodeError as e:
            raise CassetteError(f"line {number} is not JSON ({e.msg} at column {e.colno}); expected one JSON payload per line", path=source, line=number) from None
        events.append(_chunk_event(line, payload))
    return _grouped(events, timing=timing, end=end, method=method, path=path, status=status, finish_chat=True)


_RESTORED_NOTE = "restored each `event:` line from its JSON `type` (the capture had `data:` lines only, and the anthropic SDK ignores an event without a name)"


def _named(events: Sequence[Event]) -> tuple[list[Event], bool]:
    """Data-only Anthropic / OpenAI Responses events with their ``event:`` names back, and whether any was missing."""
    out: list[Event] = []
    restored = False
    for ev in events:
        if ev.event is None and ev.data and ev.data != "[DONE]":
            kind = ev.type
            if isinstance(kind, str) and (kind in _ANTHROPIC_TYPES or kind.startswith("response.")):
                ev = replace(ev, event=kind)
                restored = True
        out.append(ev)
    return out, restored


def _grouped(
    events: list[Event],
    *,
    timing: Timing,
    end: str | None,
    method: str | None,
    path: str | None,
    status: int,
    timed: bool = False,
    finish_chat: bool = False,
) -> Imported:
    """Events of one or several responses as interactions, each timed by ``timing`` (or, ``timed``,
    keeping the gaps between their own times), with notes on what was restored."""
    named, restored = _named(events)
    groups = _split_responses(named)
    interactions = []
    for group in groups:
        if finish_chat and provider_of_events(group) == "openai" and _finished_chat(group):
            group.append(Event(data="[DONE]"))
        group = list(dialect_named(provider_of_events(group)).unframed(group))
        response, provider = _stream_response(group, timing=timing, end=end, status=status, timed=timed)
        interactions.append(Interaction(request=_default_request(provider, method, path, group), response=response))
    cassette = Cassette(interactions=tuple(interactions))
    notes = [_RESTORED_NOTE] if restored else []
    if len(groups) > 1:
        notes.append(f"{len(groups)} responses back to back, imported as {len(groups)} interactions in order")
    gap = f"synthetic timing, {timing.gap_ms:g} ms gaps"
    return Imported(cassette, (*notes, *_cut_notes(cassette, end)), gap)


def _cut_notes(cassette: Cassette, end: str | None, skip: int | None = None) -> list[str]:
    """One line naming the interactions that stop before their final event (but ``skip``), and how to end them otherwise."""
    if end is not None:
        return []
    cut = [i for i, item in enumerate(cassette.interactions) if item.response.is_stream and item.response.end.reason == "upstream_disconnect" and i != skip]
    if not cut:
        return []
    which = f"interaction {cut[0]}" if len(cut) == 1 else f"interactions {', '.join(map(str, cut))}"
    if len(cassette.interactions) == 1:
        which = "the stream"
    return [f"{which} ends without its final event, so it replays as a cut (the connection closes after the last event); import with --end complete for a clean end of body instead, or --end timeout to hold it silent"]


# ---------------------------------------------------------------- vcrpy


def _header_map(raw: Any, where: str, source: str | None) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise CassetteError(f"{where}: expected a mapping of headers, got {type(raw).__name__}", path=source)
    return _SCRUB.header_map((str(name), ", ".join(str(v) for v in (value if isinstance(value, list) else [value]))) for name, value in raw.items())


def _target(uri: str) -> str:
    parts = urlsplit(uri)
    return scrub_target(f"{parts.path or '/'}?{parts.query}" if parts.query else parts.path or "/")


def scrub_target(target: str) -> str:
    """A request path and query with credentials (``key=``...) blanked."""
    return _SCRUB.target(target)


def clean_request_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Recorded request headers as a cassette keeps them: credentials scrubbed; transport, HTTP/2
    pseudo-headers, ``user-agent`` and the SDK's ``x-stainless-*`` left out (they never matter to matching)."""
    headers = _SCRUB.header_map((k, v) for k, v in pairs if not k.startswith(":"))
    return {k: v for k, v in headers.items() if k not in _TRANSPORT_HEADERS and k != "user-agent" and not k.startswith("x-stainless-")}


def clean_response_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Recorded response headers as a cassette keeps them: credentials scrubbed, transport headers left out."""
    headers = _SCRUB.header_map((k, v) for k, v in pairs if not k.startswith(":"))
    return {k: v for k, v in headers.items() if k not in _TRANSPORT_HEADERS}


def _json_or_none(body: Any) -> Any:
    """A request body for matching: its JSON value, or None (match anything) when it is not JSON."""
    if isinstance(body, (dict, list)):
        return body
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if isinstance(body, str) and body.strip():
        try:
            return json.loads(body)
        except ValueError:
            return None
    return None


def _response_bytes(body: Any, encoding: str, where: str, source: str | None) -> bytes | Any:
    if isinstance(body, str):
        return body.encode("utf-8")
    if not isinstance(body, bytes):
        return body
    encoding = encoding.strip().lower()
    try:
        if encoding in ("gzip", "x-gzip") or body[:2] == b"\x1f\x8b":
            return gzip.decompress(body)
        if encoding == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)
    except (OSError, EOFError, zlib.error) as e:
        raise CassetteError(f"{where}: body says Content-Encoding {encoding or 'gzip'} but does not decompress ({e})", path=source) from None
    if encoding and encoding != "identity":
        raise CassetteError(f"{where}: cannot decode a body with Content-Encoding {encoding!r} (gzip and deflate are supported)", path=source)
    return body


def _looks_like_sse(body: bytes) -> bool:
    head = body.lstrip(b"\xef\xbb\xbf\r\n")[:200]
    return bool(re.match(rb"(event|data|id|retry):|:", head))


def import_vcr(
    data: bytes | str,
    *,
    timing: Timing = Timing(),
    end: str | None = None,
    source: str | None = None,
) -> Cassette:
    """A cassette from a vcrpy / pytest-recording cassette: every interaction, streams as events, secrets scrubbed."""
    try:
        raw = yaml.load(data, Loader=_Loader)
    except yaml.constructor.ConstructorError as e:
        line = e.problem_mark.line + 1 if e.problem_mark is not None else None
        raise CassetteError(f"refusing a YAML tag that is not a plain data type ({e.problem}); vcrpy cassettes need none", path=source, line=line) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise CassetteError(f"not valid YAML: {getattr(e, 'problem', None) or e}", path=source, line=mark.line + 1 if mark else None) from None
    items = raw.get("interactions") if isinstance(raw, dict) else None
    if not isinstance(items, list):
        raise CassetteError("not a vcrpy cassette: expected a top-level 'interactions' list", path=source)
    interactions = []
    for i, item in enumerate(items):
        where = f"interactions[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("request"), dict) or not isinstance(item.get("response"), dict):
            raise CassetteError(f"{where}: expected a mapping with 'request' and 'response'", path=source)
        interactions.append(_vcr_interaction(item["request"], item["response"], where, source, timing=timing, end=end))
    return Cassette(interactions=tuple(interactions))


def _vcr_interaction(req: dict, res: dict, where: str, source: str | None, *, timing: Timing, end: str | None) -> Interaction:
    uri = req.get("uri")
    if not isinstance(uri, str):
        raise CassetteError(f"{where}.request.uri: expected the request URL, got {uri!r}", path=source)
    raw_headers = _header_map(req.get("headers"), f"{where}.request.headers", source)
    request = Request(
        method=str(req.get("method") or "GET").upper(),
        path=_target(uri),
        headers=clean_request_headers(raw_headers.items()),
        body=_json_or_none(req["parsed_body"] if "parsed_body" in req else req.get("body")),
    )
    status = res.get("status")
    code = status.get("code") if isinstance(status, dict) else status
    if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
        raise CassetteError(f"{where}.response.status: expected an HTTP status code, got {code!r}", path=source)
    all_headers = _header_map(res.get("headers"), f"{where}.response.headers", source)
    headers = {k: v for k, v in all_headers.items() if k not in _TRANSPORT_HEADERS}
    if "parsed_body" in res:
        return Interaction(request=request, response=Response(status=code, headers=headers, headers_at=timing.headers_ms, body=res["parsed_body"]))
    body_field = res.get("body")
    body = body_field.get("string") if isinstance(body_field, dict) else body_field
    body = _response_bytes(body, all_headers.get("content-encoding", ""), f"{where}.response.body", source)
    framed = isinstance(body, bytes) and EVENTSTREAM in headers.get("content-type", "")
    streamed = isinstance(body, bytes) and (framed or "text/event-stream" in headers.get("content-type", "") or _looks_like_sse(body))
    if streamed:
        response, _ = _stream_response(decode_body(headers, body), timing=timing, end=end, status=code, headers=headers)
        return Interaction(request=request, response=response)
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return Interaction(request=request, response=Response(status=code, headers=headers, headers_at=timing.headers_ms, body=body))
        parsed = _json_or_none(text) if "json" in headers.get("content-type", "") else None
        body = parsed if parsed is not None else (text or None)
    return Interaction(request=request, response=Response(status=code, headers=headers, headers_at=timing.headers_ms, body=body))


# ---------------------------------------------------------------- files


@dataclass(frozen=True)
class Imported:
    """A capture as a cassette, with one line for each thing the import restored or guessed
    (``notes``), and how its event times were made (``timing``, for the cassette's comment)."""

    cassette: Cassette
    notes: tuple[str, ...] = ()
    timing: str = ""


def import_file(source: str | os.PathLike[str], *, format: str = "auto", **options: Any) -> Cassette:
    """Import a capture file in any of :data:`FORMATS` (``auto`` tells them apart); see :func:`import_capture`."""
    return import_capture(source, format=format, **options).cassette


def import_capture(source: str | os.PathLike[str], *, format: str = "auto", **options: Any) -> Imported:
    """Import a capture file in any of :data:`FORMATS` (``auto`` tells them apart), saying what it restored.

    Every interaction is scrubbed as a recording is (:func:`scrubbed`): a key the log or HAR
    file kept, in a header, the query, the request body or echoed back in the stream (a
    secret split across events too), never reaches the cassette.

    Raises :class:`CassetteError` naming the file when it holds no events, and when
    ``method``/``path`` are given for a file that keeps its own requests (vcrpy, HAR).
    """
    imported = _import_capture(source, format=format, **options)
    cassette = imported.cassette
    return replace(imported, cassette=replace(cassette, interactions=tuple(scrubbed(item) for item in cassette.interactions)))


def _import_capture(source: str | os.PathLike[str], *, format: str, **options: Any) -> Imported:
    name = os.fspath(source)
    try:
        data = Path(name).read_bytes()
    except FileNotFoundError:
        raise CassetteError("no such file", path=name) from None
    if format not in ("auto", *FORMATS):
        raise ValueError(f"format must be auto or one of {', '.join(FORMATS)}, got {format!r}")
    kind = detect_format(data) if format == "auto" else format
    if kind == "streamreel":
        raise CassetteError("already a streamreel cassette; serve or inspect it as it is", path=name)
    timing = options.get("timing", Timing())
    if kind in ("vcrpy", "har"):
        given = [k for k in ("method", "path", "status") if options.get(k) is not None]
        if given:
            raise CassetteError(f"{', '.join(given)} apply to raw captures; a {kind} file keeps each recorded request and status", path=name)
        if kind == "har":
            imported = _import_har(data, end=options.get("end"), source=name)
            if not imported.cassette.interactions:
                raise CassetteError(f"no event-stream entries in the HAR file ({imported.notes[0]})", path=name)
            return imported
        cassette = import_vcr(data, source=name, timing=timing, end=options.get("end"))
        if not cassette.interactions:
            raise CassetteError("the vcrpy cassette has no interactions", path=name)
        return Imported(cassette, tuple(_cut_notes(cassette, options.get("end"))), f"synthetic timing, {timing.gap_ms:g} ms gaps")
    options = {k: v for k, v in options.items() if not (k == "status" and v is None)}
    raw = {"timing": timing, "end": None, "method": None, "path": None, "status": 200, **options}
    if kind == "eventstream":
        cassette = import_eventstream(data, **options)
        imported = Imported(cassette, tuple(_cut_notes(cassette, options.get("end"))), f"synthetic timing, {timing.gap_ms:g} ms gaps")
    elif kind == "chunks":
        imported = _imported_chunks(data, source=name, **raw)
    elif kind == "log":
        imported = _import_log(data, **raw)
    else:
        imported = _imported_sse(data, **raw)
    if not any(item.response.events for item in imported.cassette.interactions):
        raise CassetteError("no server-sent events found (expected `event:`/`data:` lines, or one JSON payload per line)", path=name)
    return imported


@dataclass(frozen=True)
class ImportResult:
    """One file of :func:`import_directory`: written to ``output``, or skipped (``output`` None) for ``reason``."""

    source: Path
    output: Path | None
    interactions: int = 0
    reason: str = ""


def import_directory(source: str | os.PathLike[str], output: str | os.PathLike[str], **options: Any) -> list[ImportResult]:
    """Import every vcrpy cassette (``*.yaml``/``*.yml``) under ``source`` into the same relative path under ``output``.

    One command migrates a pytest-recording ``cassettes/`` tree. Files that are not vcrpy
    cassettes, or that fail to import, are skipped with their reason; the others are written.
    """
    from .cassette import save

    root, target = Path(os.fspath(source)), Path(os.fspath(output))
    if target.resolve() == root.resolve():
        raise CassetteError("the output directory is the source directory; importing there would overwrite the vcrpy cassettes", path=str(root))
    results: list[ImportResult] = []
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()):
        head = path.read_bytes()[:65536]
        if detect_format(head) != "vcrpy":
            results.append(ImportResult(path, None, reason=f"{path}: not a vcrpy cassette"))
            continue
        try:
            cassette = import_file(path, format="vcrpy", **options)
        except CassetteError as e:
            results.append(ImportResult(path, None, reason=str(e)))
            continue
        dest = target / path.relative_to(root)
        gap = options.get("timing", Timing()).gap_ms
        save(cassette, dest, comment=f"imported from {path.relative_to(root)} by `streamreel import` (synthetic timing, {gap:g} ms gaps)")
        results.append(ImportResult(path, dest, len(cassette.interactions)))
    return results


# ---------------------------------------------------------------- merging


def scrubbed(interaction: Interaction, scrubber: Scrubber | None = None) -> Interaction:
    """``interaction`` with credentials blanked as a recording is before it is written: the
    credential headers, ``key=``-style query parameters, secret JSON keys of the request body,
    and every default secret pattern in the events and bodies."""
    sc = scrubber or _SCRUB
    req, res = interaction.request, interaction.response
    body = req.body
    if isinstance(body, (dict, list)):
        body = sc.request_body(json.dumps(body).encode("utf-8"))
    elif isinstance(body, (str, bytes)):
        body = sc.request_body(body.encode("utf-8") if isinstance(body, str) else body)
    request = replace(req, path=sc.target(req.path) if req.path is not None else None, headers=sc.header_map(req.headers), body=body)
    out_body = res.body
    if isinstance(out_body, bytes):
        out_body = sc.body(out_body)
    elif out_body is not None:
        out_body = sc.data(out_body)
    events = None if res.events is None else sc.events(res.events)
    return Interaction(request=request, response=replace(res, headers=sc.header_map(res.headers), events=events, body=out_body))


def merge(cassettes: Sequence[Cassette], *, scrubber: Scrubber | None = None) -> Cassette:
    """One cassette holding the interactions of ``cassettes`` in the order given, scrubbed as a
    recording is, with their ``faults:`` in order (each once).

    Raises :class:`~streamreel.errors.FaultSpecError` when one of those faults cannot apply to
    any response of the merged cassette (see :func:`streamreel.pipeline.check_fit`).
    """
    from .pipeline import check_fit

    if not cassettes:
        raise CassetteError("nothing to merge: give at least one cassette")
    interactions = tuple(scrubbed(item, scrubber) for cas in cassettes for item in cas.interactions)
    faults = tuple(dict.fromkeys(f for cas in cassettes for f in cas.faults))
    merged = Cassette(interactions=interactions, faults=faults)
    check_fit(merged.interactions, merged.faults, source="the merged cassette")
    return merged
