"""Event streams out of a HAR file (a browser's devtools "Save all as HAR", Chrome or Firefox).

Every entry whose response is ``text/event-stream`` becomes an interaction with its
request (method, path and query, JSON body, headers without credentials or transport
headers) and its response (status, headers, the events of its body). Other entries are
skipped and counted. HAR keeps one time per entry, not per event: the headers arrive after
the entry's blocked, dns, connect, send and wait times, and the events are spread evenly
over its receive time.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .cassette import End, Interaction, Request, Response
from .errors import CassetteError
from .sse import Event

__all__ = ["HarStream", "looks_like_har", "har_streams", "spread", "interaction"]

_BEFORE_HEADERS = ("blocked", "dns", "connect", "send", "wait")


@dataclass(frozen=True)
class HarStream:
    """One event-stream entry of a HAR file, not yet timed or checked for completeness."""

    request: Request
    status: int
    headers: dict[str, str]
    headers_at: float
    receive_ms: float
    body: bytes
    secrets: frozenset[str] = frozenset()
    """The credentials the request carried (its key header, ``?key=``, secret body fields), to blank
    wherever the stream echoes them."""


def looks_like_har(text: str) -> bool:
    """Whether a file's start is a HAR document (``{"log": {... "entries": [...``)."""
    head = text.lstrip()[:4096]
    return head.startswith("{") and '"log"' in head and ('"entries"' in text[:1_000_000] or '"creator"' in head)


def _pairs(raw: Any) -> list[tuple[str, str]]:
    if not isinstance(raw, list):
        return []
    return [(str(h.get("name", "")), str(h.get("value", ""))) for h in raw if isinstance(h, dict) and h.get("name")]


def _ms(timings: Mapping[str, Any], key: str) -> float:
    value = timings.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else 0.0


def _content_type(headers: Sequence[tuple[str, str]], content: Mapping[str, Any]) -> str:
    for name, value in headers:
        if name.lower() == "content-type":
            return value.lower()
    return str(content.get("mimeType") or "").lower()


def har_streams(data: bytes, *, source: str | None = None) -> tuple[list[HarStream], int, list[str]]:
    """The event-stream entries of a HAR file, how many entries it holds in all, and why each other one was skipped."""
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CassetteError(f"not a HAR file: {e}", path=source) from None
    entries = doc.get("log", {}).get("entries") if isinstance(doc, dict) and isinstance(doc.get("log"), dict) else None
    if not isinstance(entries, list):
        raise CassetteError("not a HAR file: expected {\"log\": {\"entries\": [...]}}", path=source)
    streams: list[HarStream] = []
    skipped: list[str] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("request"), dict) or not isinstance(entry.get("response"), dict):
            skipped.append(f"entry {i}: not a request and response")
            continue
        req, res = entry["request"], entry["response"]
        content = res.get("content") if isinstance(res.get("content"), dict) else {}
        res_headers = _pairs(res.get("headers"))
        url = str(req.get("url", ""))
        if "text/event-stream" not in _content_type(res_headers, content):
            skipped.append(f"entry {i} ({req.get('method', '?')} {url[:80]}): {_content_type(res_headers, content) or 'no content type'}, not an event stream")
            continue
        text = content.get("text")
        if not isinstance(text, str) or not text:
            skipped.append(f"entry {i} ({url[:80]}): the HAR kept no body for this stream")
            continue
        body = base64.b64decode(text) if content.get("encoding") == "base64" else text.encode("utf-8")
        status = res.get("status")
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise CassetteError(f"entry {i}: response.status is {status!r}, not an HTTP status", path=source)
        timings = entry.get("timings") if isinstance(entry.get("timings"), dict) else {}
        streams.append(
            HarStream(
                request=_request(req),
                status=status,
                headers=_response_headers(res_headers),
                headers_at=round(sum(_ms(timings, k) for k in _BEFORE_HEADERS), 3),
                receive_ms=_ms(timings, "receive"),
                body=body,
                secrets=_carried(req),
            )
        )
    return streams, len(entries), skipped


def _carried(req: Mapping[str, Any]) -> frozenset[str]:
    from urllib.parse import urlsplit

    from .scrub import Scrubber

    post = req.get("postData") if isinstance(req.get("postData"), dict) else {}
    text = post.get("text")
    parts = urlsplit(str(req.get("url", "")))
    return Scrubber().found(_pairs(req.get("headers")), f"{parts.path}?{parts.query}", text if isinstance(text, str) else b"")


def _request(req: Mapping[str, Any]) -> Request:
    from urllib.parse import urlsplit

    from .importer import clean_request_headers, scrub_target

    parts = urlsplit(str(req.get("url", "")))
    target = f"{parts.path or '/'}?{parts.query}" if parts.query else parts.path or "/"
    post = req.get("postData") if isinstance(req.get("postData"), dict) else {}
    text = post.get("text")
    body: Any = None
    if isinstance(text, str) and text.strip():
        try:
            body = json.loads(text)
        except ValueError:
            body = None
    headers = clean_request_headers(_pairs(req.get("headers")))
    return Request(method=str(req.get("method") or "GET").upper(), path=scrub_target(target), headers=headers, body=body)


def _response_headers(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    from .importer import clean_response_headers

    return clean_response_headers(pairs)


def spread(events: Sequence[Event], start_ms: float, span_ms: float) -> tuple[Event, ...]:
    """``events`` spread evenly from ``start_ms`` over ``span_ms`` (first at the start, last at its end)."""
    from dataclasses import replace

    n = len(events)
    if n == 1:
        return (replace(events[0], t=round(start_ms + span_ms, 3)),)
    return tuple(replace(ev, t=round(start_ms + span_ms * i / (n - 1), 3)) for i, ev in enumerate(events))


def interaction(stream: HarStream, events: Sequence[Event], reason: str) -> Interaction:
    """One HAR stream as an interaction, its ``events`` spread over the entry's receive time."""
    timed = spread(events, stream.headers_at, stream.receive_ms)
    last = timed[-1].t if timed else stream.headers_at
    response = Response(status=stream.status, headers=stream.headers, headers_at=stream.headers_at, events=timed, end=End(t=last, reason=reason))
    return Interaction(request=stream.request, response=response)
