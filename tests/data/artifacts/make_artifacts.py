"""Write the artifact files in this directory from the real captures next to it.

Each artifact is what a user brings from production when a stream went wrong: an
application log with a timestamp on each SSE line, a log of ``data:`` lines only, a HAR
file saved from devtools, a file of JSON lines that kept their ``data: ``, a raw body
holding a failed attempt and its retry. The events are the captures' own bytes; only the
wrapping (timestamps, log levels, HAR entries) is written here, with the gaps listed
below, so a test can check that an import keeps them. Run it to regenerate; the output is
deterministic.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).parent
DATA = HERE.parent
START = datetime(2026, 11, 30, 14, 2, 11, 123000, tzinfo=timezone.utc)

BASIC_GAPS_MS = [0, 4, 237, 31, 18, 22, 9, 3, 1]
"""Gaps before each of ``basic_response.txt``'s 9 events (message_start ... message_stop)."""

REFUSAL_GAPS_MS = [0, 2, 640, 48, 51, 1204, 36, 3, 9, 12]
"""Gaps before each of the first 10 events of ``stream-a-refusal.sse`` (the log stops there, mid-stream)."""


def blocks(raw: bytes) -> list[list[str]]:
    """A raw SSE body's events, each as its list of field lines (the captures are LF-only)."""
    out: list[list[str]] = []
    for chunk in raw.decode("utf-8").split("\n\n"):
        lines = [line for line in chunk.split("\n") if line]
        if lines:
            out.append(lines)
    return out


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def bracketed(at: datetime) -> str:
    return at.strftime("[%Y-%m-%d %H:%M:%S,") + f"{at.microsecond // 1000:03d}]"


def times(gaps: list[int]) -> list[datetime]:
    out, at = [], START
    for gap in gaps:
        at += timedelta(milliseconds=gap)
        out.append(at)
    return out


def basic_iso_log() -> str:
    """An httpx-style debug log: every SSE line and the blank line after each event, ISO times, a level word."""
    events = blocks((DATA / "anthropic-sdk-python/basic_response.txt").read_bytes())
    lines = [f"{iso(START - timedelta(milliseconds=412))} INFO httpx: HTTP Request: POST https://api.anthropic.com/v1/messages \"HTTP/1.1 200 OK\""]
    for at, fields in zip(times(BASIC_GAPS_MS), events):
        lines += [f"{iso(at)} DEBUG {line}" for line in fields]
        lines.append(iso(at))
    return "\n".join(lines) + "\n"


def refusal_bracket_log() -> str:
    """A Python-logging log of ``data:`` lines only (no ``event:``, no blank lines) that stops mid-stream."""
    events = blocks((DATA / "anthropic-sdk-python/stream-a-refusal.sse").read_bytes())
    lines = []
    for at, fields in zip(times(REFUSAL_GAPS_MS), events[: len(REFUSAL_GAPS_MS)]):
        lines += [f"{bracketed(at)} INFO {line}" for line in fields if line.startswith("data:")]
    return "\n".join(lines) + "\n"


def data_only_sse() -> str:
    """``basic_response.txt`` as a proxy that drops ``event:`` lines logs it."""
    events = blocks((DATA / "anthropic-sdk-python/basic_response.txt").read_bytes())
    return "".join("\n".join(line for line in fields if not line.startswith("event:")) + "\n\n" for fields in events)


def data_lines() -> str:
    """vercel/ai's one-JSON-per-line fixture with each line still carrying ``data: ``."""
    raw = (DATA / "vercel-ai/anthropic-text.chunks.txt").read_text(encoding="utf-8")
    return "".join(f"data: {line}\n" for line in raw.splitlines() if line.strip())


def retry_sse() -> str:
    """A failed attempt (three events, then an overloaded error inside the 200) and its retry, back to back."""
    raw = (DATA / "anthropic-sdk-python/basic_response.txt").read_text(encoding="utf-8")
    events = blocks(raw.encode())
    failed = events[:4] + [["event: error", 'data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}']]
    return "".join("\n".join(fields) + "\n\n" for fields in failed) + raw + "\n\n"


def har() -> str:
    """A Chrome "Save all as HAR": a favicon, two streamed messages (one with credentials in its headers), a JSON log call."""
    basic = (DATA / "anthropic-sdk-python/basic_response.txt").read_text(encoding="utf-8")
    tool = (DATA / "anthropic-sdk-python/incomplete_partial_json_response.txt").read_text(encoding="utf-8")

    def entry(method: str, url: str, mime: str, text: str, *, body: object = None, request_headers: list[dict[str, str]] | None = None, timings: dict[str, float], encoding: str | None = None) -> dict[str, object]:
        content: dict[str, object] = {"size": len(text), "mimeType": mime, "text": text}
        if encoding:
            content["encoding"] = encoding
        request: dict[str, object] = {"method": method, "url": url, "httpVersion": "h2", "headers": request_headers or [], "queryString": [], "cookies": [], "headersSize": -1, "bodySize": 0}
        if body is not None:
            request["postData"] = {"mimeType": "application/json", "text": json.dumps(body)}
        return {
            "_resourceType": "fetch",
            "startedDateTime": iso(START),
            "time": sum(v for v in timings.values() if v > 0),
            "request": request,
            "response": {
                "status": 200,
                "statusText": "",
                "httpVersion": "h2",
                "headers": [{"name": "content-type", "value": mime}, {"name": "content-encoding", "value": "br"}, {"name": "request-id", "value": "req_011CVxQ7ZzsDJ1pQ2tZ5nNb1"}],
                "cookies": [],
                "content": content,
                "redirectURL": "",
                "headersSize": -1,
                "bodySize": -1,
            },
            "cache": {},
            "timings": timings,
        }

    message = {"model": "claude-3-7-sonnet-20250219", "max_tokens": 128, "stream": True, "messages": [{"role": "user", "content": "Write my tax guide to taxes.txt"}]}
    secret_headers = [
        {"name": ":authority", "value": "api.anthropic.com"},
        {"name": "x-api-key", "value": "dummy-api-key-0001"},
        {"name": "authorization", "value": "Bearer dummy-token-0002"},
        {"name": "anthropic-version", "value": "2023-06-01"},
        {"name": "content-type", "value": "application/json"},
        {"name": "user-agent", "value": "Mozilla/5.0"},
    ]
    doc = {
        "log": {
            "version": "1.2",
            "creator": {"name": "WebInspector", "version": "537.36"},
            "pages": [],
            "entries": [
                entry("GET", "https://chat.example.com/favicon.ico", "image/x-icon", base64.b64encode(b"\x00\x00\x01\x00").decode(), timings={"blocked": 1.2, "dns": -1, "connect": -1, "send": 0.1, "wait": 20.4, "receive": 0.6}, encoding="base64"),
                entry("POST", "https://api.anthropic.com/v1/messages", "text/event-stream; charset=utf-8", tool, body={**message, "tools": [{"name": "make_file", "input_schema": {"type": "object"}}]}, request_headers=secret_headers, timings={"blocked": 2.5, "dns": 0.0, "connect": 0.0, "ssl": -1, "send": 0.4, "wait": 812.5, "receive": 1430.2}),
                entry("POST", "https://chat.example.com/api/log", "application/json", '{"ok":true}', body={"level": "info"}, timings={"blocked": 0.8, "dns": -1, "connect": -1, "send": 0.2, "wait": 31.0, "receive": 0.4}),
                entry("POST", "https://api.anthropic.com/v1/messages?beta=true", "text/event-stream; charset=utf-8", basic, body=message, request_headers=secret_headers, timings={"blocked": 1.0, "dns": -1, "connect": -1, "send": 0.3, "wait": 402.7, "receive": 96.0}),
            ],
        }
    }
    return json.dumps(doc, indent=2) + "\n"


ARTIFACTS = {
    "basic-iso.log": basic_iso_log,
    "refusal-bracket.log": refusal_bracket_log,
    "data-only.sse": data_only_sse,
    "anthropic-text.data-lines.txt": data_lines,
    "retry.sse": retry_sse,
    "devtools.har": har,
}

if __name__ == "__main__":
    for name, make in ARTIFACTS.items():
        (HERE / name).write_text(make(), encoding="utf-8")
        print(f"wrote {name}")
