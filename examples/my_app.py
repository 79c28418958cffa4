"""The app the documentation tests: a chat reply streamed with the anthropic SDK.

It stands for your code. :func:`stream_reply` makes one attempt and keeps what arrived
when the stream breaks, as a chat UI keeps the partial answer on screen;
:func:`stream_reply_retrying` asks again after a break, up to ``attempts`` times.

What counts as a break follows what the SDK really does under each fault: transport
errors escape raw (``httpx2.ReadError`` for a reset, ``RemoteProtocolError`` for a cut
body, ``ReadTimeout`` for a stall), a mid-stream ``event: error`` is an
``APIStatusError``, truncated JSON is a ``JSONDecodeError``, and a body that ends cleanly
before the stop reason raises nothing at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx2

__all__ = ["BROKEN", "Partial", "Reply", "stream_reply", "stream_reply_retrying"]

BROKEN: tuple[type[BaseException], ...] = (httpx2.HTTPError, anthropic.APIError, json.JSONDecodeError)
"""What the anthropic SDK raises when a stream breaks (or never starts)."""


@dataclass(frozen=True)
class Partial:
    """An attempt that broke off: the text shown until then, and why it broke."""

    text: str
    error: str


@dataclass(frozen=True)
class Reply:
    """The reply as shown at the end; ``partials`` are the attempts that broke off, in order."""

    text: str
    complete: bool
    partials: tuple[Partial, ...] = ()


def _attempt(client: anthropic.Anthropic, prompt: str, request: dict[str, Any]) -> tuple[str, str | None]:
    """One streamed attempt: the text that arrived, and why it broke (None when it did not)."""
    text = ""
    try:
        with client.messages.stream(messages=[{"role": "user", "content": prompt}], **request) as stream:
            for delta in stream.text_stream:
                text += delta
            stop_reason = stream.get_final_message().stop_reason
    except BROKEN as e:
        return text, f"{type(e).__name__}: {e}"
    if stop_reason is None:
        return text, "the stream ended before its stop reason"
    return text, None


def stream_reply(client: anthropic.Anthropic, prompt: str, *, model: str = "claude-sonnet-4-6", max_tokens: int = 1024) -> Reply:
    """Stream the answer to ``prompt`` once; a break keeps the text that arrived before it."""
    text, error = _attempt(client, prompt, {"model": model, "max_tokens": max_tokens})
    if error is None:
        return Reply(text, complete=True)
    return Reply(text, complete=False, partials=(Partial(text, error),))


def stream_reply_retrying(
    client: anthropic.Anthropic, prompt: str, *, attempts: int = 3, model: str = "claude-sonnet-4-6", max_tokens: int = 1024
) -> Reply:
    """Stream the answer to ``prompt``, asking again after a break, up to ``attempts`` times."""
    partials: list[Partial] = []
    for _ in range(attempts):
        text, error = _attempt(client, prompt, {"model": model, "max_tokens": max_tokens})
        if error is None:
            return Reply(text, complete=True, partials=tuple(partials))
        partials.append(Partial(text, error))
    return Reply(partials[-1].text, complete=False, partials=tuple(partials))
