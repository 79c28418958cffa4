"""Write the production artifacts the examples start from, out of real captures in tests/data.

Each is a file a user would have after a stream went wrong in production: an application
log, a devtools HAR, a proxy's capture of ``data:`` lines, a copied response body. The
events are the captures' own lines (JSON chunk files get the ``event:``/``data:`` framing
the API sends); what is written here is the wrapping and the failure: where the stream
stopped, the error event, the silence, the timestamps. Deterministic: run it to regenerate.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).parent
DATA = HERE.parents[2] / "tests" / "data"
START = datetime(2026, 11, 30, 14, 2, 11, 123000, tzinfo=timezone.utc)


def framed(chunk_file: str) -> list[str]:
    """A JSON-per-line capture as the SSE events the API sent (``event: TYPE``, ``data: LINE``)."""
    lines = (DATA / chunk_file).read_text(encoding="utf-8").splitlines()
    return [f"event: {json.loads(line)['type']}\ndata: {line}\n\n" for line in lines if line.strip()]


def raw_events(capture: str) -> list[str]:
    """A raw SSE capture's events, each with its blank line."""
    text = (DATA / capture).read_text(encoding="utf-8")
    return [block.strip("\n") + "\n\n" for block in text.split("\n\n") if block.strip()]


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def bracketed(at: datetime) -> str:
    return at.strftime("[%Y-%m-%d %H:%M:%S,") + f"{at.microsecond // 1000:03d}]"


def logged(events: list[str], start: datetime, gaps_ms: list[int], stamp, level: str) -> list[str]:
    """Each SSE line of ``events`` as a log line, the blank line after each event included."""
    out, at = [], start
    for event, gap in zip(events, gaps_ms):
        at += timedelta(milliseconds=gap)
        out += [f"{stamp(at)} {level} {line}" for line in event.rstrip("\n").split("\n")]
        out.append(stamp(at))
    return out


OVERLOADED_ERROR = 'event: error\ndata: {"type":"error","error":{"details":null,"type":"overloaded_error","message":"Overloaded"}}\n\n'


def overloaded_log() -> str:
    """An app's debug log: a stream that got an overloaded error after its first deltas (HTTP 200), then the user's manual retry."""
    events = framed("vercel-ai/anthropic-text.chunks.txt")
    failed = events[:5] + [OVERLOADED_ERROR]
    lines = [f"{iso(START)} INFO app: POST /chat -> anthropic messages.stream"]
    lines += logged(failed, START, [389, 2, 1, 176, 44, 912], iso, "DEBUG sse:")
    retry_at = START + timedelta(seconds=14)
    lines.append(f"{iso(retry_at)} INFO app: POST /chat -> anthropic messages.stream (user pressed retry)")
    lines += logged(events, retry_at, [402, 1, 1, 158, 61, 37, 52, 20, 94, 9, 4, 1], iso, "DEBUG sse:")
    return "\n".join(lines) + "\n"


def cut_tool_har() -> str:
    """Devtools "Save all as HAR": a tool call cut inside its input_json_delta, then the client's retry."""
    events = framed("vercel-ai/anthropic-json-tool.2.chunks.txt")
    whole = "".join(events)
    cut_at = whole.index('\\"temperature\\": 5') + len('\\"temperature\\": 5')
    request = {"model": "claude-haiku-4-5", "max_tokens": 1024, "stream": True, "tools": [{"name": "json", "input_schema": {"type": "object"}}], "messages": [{"role": "user", "content": "Weather in San Francisco as JSON"}]}

    def entry(body: str, started: datetime, wait: float, receive: float) -> dict[str, object]:
        return {
            "startedDateTime": iso(started),
            "time": 1.1 + wait + receive,
            "request": {
                "method": "POST",
                "url": "https://api.anthropic.com/v1/messages",
                "httpVersion": "h2",
                "headers": [{"name": "content-type", "value": "application/json"}, {"name": "anthropic-version", "value": "2023-06-01"}, {"name": "x-api-key", "value": "redacted-by-nobody"}],
                "queryString": [],
                "cookies": [],
                "headersSize": -1,
                "bodySize": -1,
                "postData": {"mimeType": "application/json", "text": json.dumps(request)},
            },
            "response": {
                "status": 200,
                "statusText": "",
                "httpVersion": "h2",
                "headers": [{"name": "content-type", "value": "text/event-stream; charset=utf-8"}, {"name": "request-id", "value": "req_011CWCutToolRetry0001"}],
                "cookies": [],
                "content": {"size": len(body), "mimeType": "text/event-stream", "text": body},
                "redirectURL": "",
                "headersSize": -1,
                "bodySize": -1,
                "_error": "net::ERR_HTTP2_PROTOCOL_ERROR" if body is not whole else None,
            },
            "cache": {},
            "timings": {"blocked": 0.9, "dns": -1, "connect": -1, "ssl": -1, "send": 0.2, "wait": wait, "receive": receive},
        }

    page = {"startedDateTime": iso(START), "time": 0.8, "request": {"method": "GET", "url": "https://chat.example.com/static/app.js", "headers": [], "httpVersion": "h2", "queryString": [], "cookies": [], "headersSize": -1, "bodySize": 0},
            "response": {"status": 200, "statusText": "", "httpVersion": "h2", "headers": [{"name": "content-type", "value": "text/javascript"}], "cookies": [], "content": {"size": 9, "mimeType": "text/javascript", "text": "main();\n"}, "redirectURL": "", "headersSize": -1, "bodySize": -1},
            "cache": {}, "timings": {"blocked": 0.1, "dns": -1, "connect": -1, "send": 0.1, "wait": 0.4, "receive": 0.2}}
    doc = {"log": {"version": "1.2", "creator": {"name": "WebInspector", "version": "537.36"}, "pages": [],
                   "entries": [page, entry(whole[:cut_at], START, 631.5, 1210.0), entry(whole, START + timedelta(seconds=3), 588.2, 704.9)]}}
    return json.dumps(doc, indent=1) + "\n"


def no_stop_capture() -> str:
    """A proxy's capture of the ``data:`` lines it forwarded: the body ended cleanly before content_block_stop, message_delta and message_stop."""
    events = raw_events("anthropic-sdk-python/stream-b-fallback.sse")[:-3]
    return "".join("\n".join(line for line in event.split("\n") if not line.startswith("event:")) for event in events)


def stall_log() -> str:
    """A Python-logging log: the stream went silent after its first text deltas; the read timeout fired 10 s later."""
    events = raw_events("anthropic-sdk-python/incomplete_partial_json_response.txt")[:7]
    lines = [f"{bracketed(START)} INFO app: streaming answer for conversation 8d1f"]
    lines += logged(events, START, [512, 3, 1, 231, 95, 88, 140], bracketed, "DEBUG")
    last = START + timedelta(milliseconds=512 + 3 + 1 + 231 + 95 + 88 + 140)
    lines.append(f"{bracketed(last + timedelta(seconds=10))} ERROR app: stream failed: httpx.ReadTimeout: The read operation timed out")
    return "\n".join(lines) + "\n"


def utf8_body() -> str:
    """A response body copied from devtools: a compaction block, then text full of emoji, arrows and dashes (the first 200 deltas)."""
    events = framed("vercel-ai/anthropic-compaction.1.chunks.txt")
    deltas = [i for i, e in enumerate(events) if '"text_delta"' in e]
    keep = set(deltas[:200])
    return "".join(e for i, e in enumerate(events) if i in keep or '"text_delta"' not in e)


ARTIFACTS = {
    "overloaded.log": overloaded_log,
    "cut-tool-call.har": cut_tool_har,
    "no-message-stop.txt": no_stop_capture,
    "stall.log": stall_log,
    "utf8-response.sse": utf8_body,
}

if __name__ == "__main__":
    for name, make in ARTIFACTS.items():
        (HERE / name).write_text(make(), encoding="utf-8")
        print(f"wrote {name}")
