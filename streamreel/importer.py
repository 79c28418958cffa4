"""Turn captures made elsewhere into cassettes: raw SSE text, JSON chunks per line, vcrpy cassettes.

Four formats, told apart by their content (:func:`detect_format`):

- ``sse``: a stream's body as logged or copied from devtools (``event:``/``data:`` lines),
  including OpenAI's data-only streams ending in ``data: [DONE]``.
- ``chunks``: one JSON payload per line, the SSE framing stripped (vercel/ai fixtures).
  The framing comes back as the API sends it: ``event:`` names for Anthropic and OpenAI
  Responses, ``data: [DONE]`` after an OpenAI chat stream that finished, and several
  responses back to back become several interactions.
- ``eventstream``: the raw body of a Bedrock ``invoke-with-response-stream`` response
  (AWS event-stream frames); each frame becomes an event (see :mod:`streamreel.providers.bedrock`).
- ``vcrpy``: a vcrpy / pytest-recording YAML cassette, whose SSE bodies are one string
  (a block scalar, a single- or double-quoted scalar, or ``!!binary`` gzip bytes), and
  whose requests may be pydantic-ai's ``parsed_body``. Every interaction is kept, with its
  method, path and query and JSON body for matching, its status and headers; streamed
  bodies become events, others stay plain bodies. The YAML is read with the safe loader,
  so no tag can run code (``!!binary`` is a standard tag); credentials (``authorization``,
  ``x-api-key``, cookies, organization ids, ``key=`` query parameters) are scrubbed.

Timing is synthetic (a :class:`Timing`: headers, first event, then seeded, jittered gaps)
since none of these formats has any. Every event is kept, including a last event that
a capture does not close with a blank line. A stream that stops before its provider's
final event (``message_stop``, ``[DONE]``) was cut, and imports with
``end.reason: upstream_disconnect`` so the replay cuts it the same way.
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
from typing import Any, Mapping, Sequence
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
    "import_directory",
    "ImportResult",
]

FORMATS = ("sse", "chunks", "vcrpy", "eventstream")

_ANTHROPIC_TYPES = frozenset(
    {"message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop", "ping", "error"}
)
_TRANSPORT_HEADERS = frozenset({"content-length", "content-encoding", "transfer-encoding", "connection", "host", "keep-alive", "accept-encoding"})
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SCRUB = Scrubber()


def detect_format(data: bytes) -> str:
    """``vcrpy``, ``chunks``, ``eventstream`` (AWS binary frames, Bedrock) or ``sse``, from the start of a capture."""
    if looks_like_frames(data):
        return "eventstream"
    text = data[:65536].decode("utf-8", "replace").lstrip("\ufeff")
    if re.search(r"^streamreel:", text, re.M):
        return "streamreel"
    if re.search(r"^interactions:", text, re.M) and re.search(r"^\s*-?\s*(request|response):", text, re.M):
        return "vcrpy"
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


def _stream_response(
    raw: Sequence[Event],
    *,
    timing: Timing,
    end: str | None,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> tuple[Response, str]:
    provider = provider_of_events(raw)
    media = (headers or {}).get("content-type", "").split(";", 1)[0].strip().lower()
    if media == EVENTSTREAM:
        provider = "anthropic-bedrock"
    events = timing.apply(raw)
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
    """A one-interaction cassette from the raw bytes of an SSE stream."""
    response, provider = _stream_response(decode(data), timing=timing, end=end, status=status)
    return Cassette(interactions=(Interaction(request=_default_request(provider, method, path, response.events or ()), response=response),))


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
    """Several responses saved back to back: a new one starts at each message_start / response.created."""
    starts = {"message_start", "response.created"}
    groups: list[list[Event]] = []
    for ev in events:
        if ev.event in starts and groups and any(e.event in starts for e in groups[-1]):
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
    interactions = []
    for group in _split_responses(events):
        if provider_of_events(group) == "openai" and _finished_chat(group):
            group.append(Event(data="[DONE]"))
        group = list(dialect_named(provider_of_events(group)).unframed(group))
        response, provider = _stream_response(group, timing=timing, end=end, status=status)
        interactions.append(Interaction(request=_default_request(provider, method, path, group), response=response))
    return Cassette(interactions=tuple(interactions))


# ---------------------------------------------------------------- vcrpy


def _header_map(raw: Any, where: str, source: str | None) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise CassetteError(f"{where}: expected a mapping of headers, got {type(raw).__name__}", path=source)
    return _SCRUB.header_map((str(name), ", ".join(str(v) for v in (value if isinstance(value, list) else [value]))) for name, value in raw.items())


def _target(uri: str) -> str:
    parts = urlsplit(uri)
    return _SCRUB.target(f"{parts.path or '/'}?{parts.query}" if parts.query else parts.path or "/")


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
        headers={k: v for k, v in raw_headers.items() if k not in _TRANSPORT_HEADERS and k != "user-agent" and not k.startswith("x-stainless-")},
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


def import_file(source: str | os.PathLike[str], *, format: str = "auto", **options: Any) -> Cassette:
    """Import a capture file in any of :data:`FORMATS` (``auto`` tells them apart).

    Raises :class:`CassetteError` naming the file when it holds no events, and when
    ``method``/``path`` are given for a vcrpy cassette (it keeps each recorded request).
    """
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
    if kind == "vcrpy":
        given = [k for k in ("method", "path", "status") if options.get(k) is not None]
        if given:
            raise CassetteError(f"{', '.join(given)} apply to raw captures; a vcrpy cassette keeps each recorded request and status", path=name)
        options = {k: v for k, v in options.items() if k not in ("method", "path", "status")}
        cassette = import_vcr(data, source=name, **options)
        if not cassette.interactions:
            raise CassetteError("the vcrpy cassette has no interactions", path=name)
        return cassette
    options = {k: v for k, v in options.items() if not (k == "status" and v is None)}
    if kind == "eventstream":
        cassette = import_eventstream(data, **options)
    elif kind == "chunks":
        cassette = import_chunks(data, source=name, **options)
    else:
        cassette = import_sse(data, **options)
    if not any(item.response.events for item in cassette.interactions):
        raise CassetteError("no server-sent events found (expected `event:`/`data:` lines, or one JSON payload per line)", path=name)
    return cassette


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
