"""Turn captures made elsewhere into cassettes: raw SSE text as logged or copied from devtools.

Timing is synthetic (``first_ms`` to the first event, then ``gap_ms`` between events)
since a text capture has none. Every event is kept, including a last event that the
capture does not close with a blank line. A capture that stops before its provider's
final event (``message_stop``, ``[DONE]``) is a stream that was cut, and imports with
``end.reason: upstream_disconnect`` so the replay cuts it the same way.
"""

from __future__ import annotations

import os
import random
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from .cassette import Cassette, End, Interaction, Request, Response
from .errors import CassetteError
from .sse import Event, decode

__all__ = ["import_sse", "import_file", "provider_of_events", "is_complete"]

_PATHS = {"anthropic": "/v1/messages", "openai": "/v1/chat/completions", "openai-responses": "/v1/responses"}


def provider_of_events(events: Sequence[Event]) -> str:
    """``anthropic``, ``openai``, ``openai-responses`` or ``sse``, from what the events hold."""
    for ev in events:
        if ev.is_comment:
            continue
        if ev.event in ("message_start", "content_block_start", "content_block_delta", "message_stop"):
            return "anthropic"
        if ev.event is not None and ev.event.startswith("response."):
            return "openai-responses"
        if ev.data == "[DONE]":
            return "openai"
        payload = ev.json(default=None)
        if isinstance(payload, dict):
            kind = payload.get("type")
            if kind in ("message_start", "content_block_start", "content_block_delta"):
                return "anthropic"
            if isinstance(kind, str) and kind.startswith("response."):
                return "openai-responses"
            if payload.get("object") == "chat.completion.chunk":
                return "openai"
    return "sse"


def is_complete(events: Sequence[Event], provider: str) -> bool:
    """Whether a stream reached its provider's final event; any other stream counts as complete."""
    data_events = [e for e in events if not e.is_comment]
    if not data_events:
        return provider == "sse"
    last = data_events[-1]
    if provider == "anthropic":
        return last.event == "message_stop" or last.type == "message_stop"
    if provider == "openai":
        return last.data == "[DONE]"
    if provider == "openai-responses":
        return last.type in ("response.completed", "response.failed", "response.incomplete") or last.data == "[DONE]"
    return True


def import_sse(
    data: bytes,
    *,
    gap_ms: float = 20.0,
    jitter_ms: float = 0.0,
    seed: int = 0,
    first_ms: float | None = None,
    headers_ms: float = 0.0,
    end: str | None = None,
    method: str | None = None,
    path: str | None = None,
    status: int = 200,
) -> Cassette:
    """A one-interaction cassette from the raw bytes of an SSE stream.

    Gaps are ``gap_ms`` each, spread uniformly by up to ``jitter_ms`` either way from ``seed``.
    """
    raw = decode(data)
    provider = provider_of_events(raw)
    rng = random.Random(seed)
    t = headers_ms + gap_ms if first_ms is None else first_ms
    timed: list[Event] = []
    for i, e in enumerate(raw):
        if i:
            t += max(0.0, gap_ms + (rng.uniform(-jitter_ms, jitter_ms) if jitter_ms else 0.0))
        timed.append(replace(e, t=round(t, 3)))
    events = tuple(timed)
    last = events[-1].t if events else headers_ms
    reason = end or ("complete" if is_complete(events, provider) else "upstream_disconnect")
    if path is None:
        path = _PATHS.get(provider)
    if method is None and path is not None:
        method = "POST" if provider != "sse" else "GET"
    request = Request(method=method, path=path)
    response = Response(
        status=status,
        headers={"content-type": "text/event-stream; charset=utf-8"},
        headers_at=headers_ms,
        events=events,
        end=End(t=last, reason=reason),
    )
    return Cassette(interactions=(Interaction(request=request, response=response),))


def import_file(source: str | os.PathLike[str], **options: object) -> Cassette:
    """Import a capture file; raises :class:`CassetteError` naming the file if it holds no events."""
    name = os.fspath(source)
    try:
        data = Path(name).read_bytes()
    except FileNotFoundError:
        raise CassetteError("no such file", path=name) from None
    cassette = import_sse(data, **options)  # type: ignore[arg-type]
    if not cassette.interactions[0].response.events:
        raise CassetteError("no server-sent events found (expected `event:`/`data:` lines)", path=name)
    return cassette
