"""Example: render a streamed markdown reply as it arrives, and survive a broken stream.

A chat UI shows a reply while it streams. Rendering each delta on its own, or the whole
buffer without care, flashes raw markup (``**bo`` before ``ld**`` arrives) or text that
later changes. :class:`StreamingRenderer` commits whole lines and holds back the tail that
is still ambiguous (an open ``**`` or backtick, a lone trailing ``*``, a fence line that is
still arriving), so every render shows only finished markup, the visible text only grows,
and the last render equals rendering the whole text at once.

:func:`stream_reply` drives it from the real anthropic SDK and recovers from a stream that
is cut or goes silent: it keeps what was shown so far as a :class:`Partial` and retries.

Run ``python examples/markdown_stream.py`` to watch it against a local streamreel replayer
whose first response is cut mid-stream; ``examples/test_markdown_stream.py`` property-tests it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import anthropic
import httpx2

__all__ = ["Span", "render", "visible", "merged", "StreamingRenderer", "Partial", "Reply", "StreamFailed", "stream_reply", "RECOVERABLE"]

FENCE = "```"


@dataclass(frozen=True)
class Span:
    """A run of rendered text: ``style`` is ``text``, ``bold``, ``code`` (inline) or ``block`` (fenced code)."""

    style: str
    text: str
    lang: str = ""


def visible(spans: Iterable[Span]) -> str:
    """The text a reader sees."""
    return "".join(s.text for s in spans)


# ---------------------------------------------------------------- whole-text rendering

_INLINE = re.compile(r"\*\*(?P<bold>[^\n]+?)\*\*|`(?P<code>[^`\n]+)`")


def _inline(line: str) -> list[Span]:
    """Inline markup of one complete line; an unclosed ``**`` or backtick stays literal."""
    out: list[Span] = []
    at = 0
    for m in _INLINE.finditer(line):
        if m.start() > at:
            out.append(Span("text", line[at : m.start()]))
        out.append(Span("bold", m["bold"]) if m["bold"] is not None else Span("code", m["code"]))
        at = m.end()
    if at < len(line):
        out.append(Span("text", line[at:]))
    return out


def render(markdown: str) -> tuple[Span, ...]:
    """Render a whole text: fenced code blocks (an unclosed fence runs to the end), then
    ``**bold**`` and ``\\`code\\``` within each line. Fence lines themselves are not shown."""
    out: list[Span] = []
    lines = markdown.split("\n")
    lang: str | None = None
    for n, line in enumerate(lines):
        newline = "\n" if n < len(lines) - 1 else ""
        if lang is None and line.startswith(FENCE):
            lang = line[len(FENCE) :].strip()
        elif lang is not None and line == FENCE:
            lang = None
        elif lang is not None:
            out.append(Span("block", line + newline, lang))
        else:
            out.extend(_inline(line))
            if newline:
                out.append(Span("text", newline))
    return merged(out)


def merged(spans: Iterable[Span]) -> tuple[Span, ...]:
    """Spans with empty ones dropped and neighbours of the same style joined."""
    out: list[Span] = []
    for s in spans:
        if not s.text:
            continue
        if out and out[-1].style == s.style and out[-1].lang == s.lang:
            out[-1] = Span(s.style, out[-1].text + s.text, s.lang)
        else:
            out.append(s)
    return tuple(out)


# ---------------------------------------------------------------- streaming rendering


def _first_opener(line: str, start: int, stop: int) -> int:
    found = [i for i in (line.find("**", start, stop), line.find("`", start, stop)) if i != -1]
    return min(found, default=-1)


def _settled_prefix(line: str) -> str:
    """The longest start of an unfinished line whose rendering cannot change: it stops
    before an opener (``**`` or a backtick) that has no closer yet, and before a lone
    trailing ``*`` that may be the first half of ``**``."""
    at = 0
    for m in _INLINE.finditer(line):
        opener = _first_opener(line, at, m.start())
        if opener != -1:
            return line[:opener]
        at = m.end()
    opener = _first_opener(line, at, len(line))
    if opener != -1:
        return line[:opener]
    return line[:-1] if len(line) > at and line.endswith("*") else line


class StreamingRenderer:
    """Renders markdown delta by delta: complete lines once, the unfinished line each time."""

    def __init__(self) -> None:
        self._done: list[Span] = []
        self._tail = ""
        self._lang: str | None = None
        self.text = ""

    def feed(self, delta: str) -> tuple[Span, ...]:
        """Add a delta; returns what to show now."""
        self.text += delta
        *complete, self._tail = (self._tail + delta).split("\n")
        for line in complete:
            self._commit(line)
        return merged((*self._done, *self._unfinished()))

    def finish(self) -> tuple[Span, ...]:
        """The stream ended: render the last line as it stands."""
        tail, self._tail = self._tail, ""
        if self._lang is None and tail.startswith(FENCE):
            self._lang = tail[len(FENCE) :].strip()
        elif self._lang is not None and tail != FENCE:
            self._done.append(Span("block", tail, self._lang))
        elif self._lang is None:
            self._done.extend(_inline(tail))
        return merged(self._done)

    def _commit(self, line: str) -> None:
        if self._lang is None and line.startswith(FENCE):
            self._lang = line[len(FENCE) :].strip()
        elif self._lang is not None and line == FENCE:
            self._lang = None
        elif self._lang is not None:
            self._done.append(Span("block", line + "\n", self._lang))
        else:
            self._done.extend(_inline(line))
            self._done.append(Span("text", "\n"))

    def _unfinished(self) -> list[Span]:
        tail = self._tail
        if FENCE.startswith(tail[: len(FENCE)]) and (self._lang is None or len(tail) <= len(FENCE)):
            return []  # a fence line (or the start of one) still arriving
        if self._lang is not None:
            return [Span("block", tail, self._lang)]
        return _inline(_settled_prefix(tail))


# ---------------------------------------------------------------- through the SDK, with recovery

RECOVERABLE: tuple[type[BaseException], ...] = (httpx2.TransportError, anthropic.APIConnectionError, anthropic.APIStatusError, json.JSONDecodeError)
"""What a stream that breaks after it opened raises through the anthropic SDK (2.x, on
httpx2): a cut or reset is a raw ``httpx2.RemoteProtocolError``, silence a raw
``httpx2.ReadTimeout``, a truncated event a ``json.JSONDecodeError``, an ``event: error``
an ``APIStatusError`` with status 200. The SDK retries none of them."""


@dataclass(frozen=True)
class Partial:
    """What one failed attempt had shown when its stream broke."""

    text: str
    shown: tuple[Span, ...]
    error: str


@dataclass(frozen=True)
class Reply:
    text: str
    shown: tuple[Span, ...]
    partials: tuple[Partial, ...] = field(default=())


class StreamFailed(Exception):
    def __init__(self, partials: tuple[Partial, ...]) -> None:
        self.partials = partials
        super().__init__(f"stream failed {len(partials)} times; last error: {partials[-1].error if partials else '-'}")


def stream_reply(
    client: anthropic.Anthropic,
    *,
    attempts: int = 3,
    on_render: Callable[[tuple[Span, ...]], None] | None = None,
    **request: Any,
) -> Reply:
    """Stream one reply into a :class:`StreamingRenderer`, passing each render to
    ``on_render`` (the screen); on a broken stream keep the partial render and ask again,
    up to ``attempts`` times. A stream that ends without ``message_stop`` counts as
    broken: the SDK does not raise for it."""
    partials: list[Partial] = []
    for _ in range(attempts):
        renderer = StreamingRenderer()
        shown: tuple[Span, ...] = ()
        finished = False
        stream = client.messages.create(stream=True, **request)  # errors before the stream: the SDK's own retries
        try:
            with stream:
                for event in stream:
                    if event.type == "content_block_delta" and event.delta.type == "text_delta":
                        shown = renderer.feed(event.delta.text)
                        if on_render is not None:
                            on_render(shown)
                    elif event.type == "message_stop":
                        finished = True
        except RECOVERABLE as e:
            partials.append(Partial(renderer.text, shown, f"{type(e).__name__}: {e}"))
            continue
        if not finished:
            partials.append(Partial(renderer.text, shown, "stream ended without message_stop"))
            continue
        return Reply(renderer.text, renderer.finish(), tuple(partials))
    raise StreamFailed(tuple(partials))


def _demo() -> None:  # pragma: no cover - run by hand
    from streamreel import Cassette, End, Replayer
    from streamreel.providers.anthropic import TextBlock, message_events

    deltas = ("Here is **bo", "ld** text and `co", "de`:\n```py", "thon\ny = x*", "*2\n`", "``\nDone.")
    whole = Cassette.from_events(message_events([TextBlock(deltas)])).interactions[0]
    events = whole.response.events or ()
    cut = Cassette.from_events(events[:7], end=End(reason="upstream_disconnect")).interactions[0]  # after four deltas
    with Replayer(Cassette(interactions=(cut, whole)), speed=0) as server:
        client = anthropic.Anthropic(base_url=server.url, api_key="demo", max_retries=0)
        reply = stream_reply(client, on_render=lambda shown: print(f"  shows {visible(shown)!r}"), model="claude-haiku-4-5", max_tokens=256, messages=[{"role": "user", "content": "hi"}])
    for p in reply.partials:
        print(f"attempt failed ({p.error}); it had shown {visible(p.shown)!r}")
    print(visible(reply.shown))


if __name__ == "__main__":  # pragma: no cover
    _demo()
