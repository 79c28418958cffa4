"""Example: show a tool call's arguments while their JSON streams in, and survive a broken stream.

An agent UI shows a tool call as it forms (``get_weather(city="Par...``). The arguments
arrive as ``input_json_delta`` pieces split anywhere: inside a key, a string, an escape
(``\\u00e9`` cut after ``\\u00``), a number (``12`` then ``.5``) or ``true``.
:func:`parse_partial` turns any prefix into the value known so far without raising, and
never shows something that will change: a string only grows, a number or literal appears
once it is complete, a half-received escape or a lone high surrogate is held back.

:func:`stream_tool_call` reads the raw events from the real anthropic SDK into a
:class:`ToolCallAccumulator`; when the stream breaks it keeps what had arrived as a
:class:`Partial` and asks again.

Run ``python examples/tool_json.py`` to watch it recover from a cut stream;
``examples/test_tool_json.py`` property-tests it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

import anthropic
import httpx2

__all__ = ["parse_partial", "ToolCallAccumulator", "Partial", "ToolCall", "StreamFailed", "stream_tool_call", "RECOVERABLE"]

_WS = " \t\n\r"
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_NUMBER_CHARS = frozenset("0123456789+-.eE")
_HEX = frozenset("0123456789abcdefABCDEF")
_LITERALS = {"true": True, "false": False, "null": None}


class _End(Exception):
    """The prefix ends here."""


_NOTHING: Any = object()
"""A value that has started but cannot be shown yet (a number or literal still arriving)."""


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def skip(self) -> None:
        while self.at < len(self.text) and self.text[self.at] in _WS:
            self.at += 1
        if self.at >= len(self.text):
            raise _End

    def value(self) -> tuple[Any, bool]:
        """The value starting here and whether it is complete."""
        self.skip()
        c = self.text[self.at]
        if c == "{":
            return self.object()
        if c == "[":
            return self.array()
        if c == '"':
            return self.string()
        if c in _NUMBER_CHARS:
            return self.number()
        return self.literal()

    def object(self) -> tuple[dict[str, Any], bool]:
        out: dict[str, Any] = {}
        self.at += 1
        try:
            self.skip()
            if self.text[self.at] == "}":
                self.at += 1
                return out, True
            while True:
                self.skip()
                key, complete = self.string()
                if not complete:
                    return out, False
                self.skip()
                self.expect(":")
                value, complete = self.value()
                if value is not _NOTHING:
                    out[key] = value
                if not complete:
                    return out, False
                self.skip()
                if self.text[self.at] == "}":
                    self.at += 1
                    return out, True
                self.expect(",")
        except _End:
            return out, False

    def array(self) -> tuple[list[Any], bool]:
        out: list[Any] = []
        self.at += 1
        try:
            self.skip()
            if self.text[self.at] == "]":
                self.at += 1
                return out, True
            while True:
                value, complete = self.value()
                if value is not _NOTHING:
                    out.append(value)
                if not complete:
                    return out, False
                self.skip()
                if self.text[self.at] == "]":
                    self.at += 1
                    return out, True
                self.expect(",")
        except _End:
            return out, False

    def string(self) -> tuple[str, bool]:
        if self.text[self.at] != '"':
            raise ValueError(f"expected a string at offset {self.at}, got {self.text[self.at]!r}")
        parts: list[str] = []
        i = self.at + 1
        text = self.text
        while i < len(text):
            c = text[i]
            if c == '"':
                self.at = i + 1
                return "".join(parts), True
            if c != "\\":
                parts.append(c)
                i += 1
                continue
            if i + 1 >= len(text):
                break  # a backslash whose escape has not arrived
            e = text[i + 1]
            if e != "u":
                if e not in _ESCAPES:
                    raise ValueError(f"bad escape \\{e} at offset {i}")
                parts.append(_ESCAPES[e])
                i += 2
                continue
            if i + 6 > len(text):
                break  # \\uXXXX still arriving
            code = int(text[i + 2 : i + 6], 16)
            if 0xD800 <= code <= 0xDBFF:
                after = text[i + 6 : i + 12]
                if len(after) < 6 and "\\u".startswith(after[:2]) and all(h in _HEX for h in after[2:]):
                    break  # a high surrogate whose low half may be arriving
                if after[:2] == "\\u" and 0xDC00 <= int(after[2:], 16) <= 0xDFFF:
                    low = int(after[2:], 16)
                    parts.append(chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)))
                    i += 12
                    continue
            parts.append(chr(code))
            i += 6
        self.at = len(text)
        return "".join(parts), False

    def number(self) -> tuple[Any, bool]:
        end = self.at
        while end < len(self.text) and self.text[end] in _NUMBER_CHARS:
            end += 1
        if end >= len(self.text):
            self.at = end
            return _NOTHING, False  # more digits may follow
        token, self.at = self.text[self.at : end], end
        return json.loads(token), True

    def literal(self) -> tuple[Any, bool]:
        rest = self.text[self.at : self.at + 5]
        for word, value in _LITERALS.items():
            if rest.startswith(word):
                self.at += len(word)
                return value, True
            if word.startswith(rest) and self.at + len(rest) == len(self.text):
                self.at = len(self.text)
                return _NOTHING, False
        raise ValueError(f"unexpected {rest!r} at offset {self.at}")

    def expect(self, char: str) -> None:
        if self.text[self.at] != char:
            raise ValueError(f"expected {char!r} at offset {self.at}, got {self.text[self.at]!r}")
        self.at += 1


def parse_partial(text: str) -> Any:
    """The value a prefix of a JSON document is known to hold so far (None before it starts).

    Strings in progress are shown as far as they go; numbers and ``true``/``false``/``null``
    only once complete; an object key only once its value has started. Raises ValueError
    only for text that is not the start of any JSON document.
    """
    try:
        value, _ = _Parser(text).value()
    except _End:
        return None
    return None if value is _NOTHING else value


class ToolCallAccumulator:
    """Collects ``input_json_delta`` pieces; ``feed`` returns the arguments known so far."""

    def __init__(self) -> None:
        self._pieces: list[str] = []

    @property
    def json(self) -> str:
        return "".join(self._pieces)

    def feed(self, piece: str) -> Any:
        self._pieces.append(piece)
        return parse_partial(self.json)

    def result(self) -> Any:
        """The complete arguments (an empty input means ``{}``, as the API sends for no arguments)."""
        return json.loads(self.json) if self.json.strip() else {}


# ---------------------------------------------------------------- through the SDK, with recovery

RECOVERABLE: tuple[type[BaseException], ...] = (httpx2.TransportError, anthropic.APIConnectionError, anthropic.APIStatusError, json.JSONDecodeError)
"""What a stream that breaks after it opened raises through the anthropic SDK (2.x): see FIELD-NOTES."""


@dataclass(frozen=True)
class Partial:
    """What one failed attempt had received when its stream broke."""

    name: str | None
    json: str
    shown: Any
    error: str


@dataclass(frozen=True)
class ToolCall:
    name: str
    input: Any
    partials: tuple[Partial, ...] = field(default=())


class StreamFailed(Exception):
    def __init__(self, partials: tuple[Partial, ...]) -> None:
        self.partials = partials
        super().__init__(f"stream failed {len(partials)} times; last error: {partials[-1].error if partials else '-'}")


def stream_tool_call(
    client: anthropic.Anthropic,
    *,
    attempts: int = 3,
    on_partial: Callable[[Any], None] | None = None,
    **request: Any,
) -> ToolCall:
    """Stream a message and return its first tool call; ``on_partial`` sees the arguments as
    they form. A broken stream (cut, silent, ended without ``message_stop``, or complete but
    with arguments that do not parse) is kept as a :class:`Partial` and the request is made
    again, up to ``attempts`` times."""
    partials: list[Partial] = []
    for _ in range(attempts):
        name: str | None = None
        acc = ToolCallAccumulator()
        shown: Any = None
        finished = False
        stream = client.messages.create(stream=True, **request)
        try:
            with stream:
                for event in stream:
                    if event.type == "content_block_start" and event.content_block.type == "tool_use" and name is None:
                        name = event.content_block.name
                    elif event.type == "content_block_delta" and event.delta.type == "input_json_delta" and name is not None:
                        shown = acc.feed(event.delta.partial_json)
                        if on_partial is not None:
                            on_partial(shown)
                    elif event.type == "message_stop":
                        finished = True
        except RECOVERABLE as e:
            partials.append(Partial(name, acc.json, shown, f"{type(e).__name__}: {e}"))
            continue
        if not finished or name is None:
            partials.append(Partial(name, acc.json, shown, "stream ended without message_stop" if not finished else "no tool call"))
            continue
        try:
            arguments = acc.result()
        except json.JSONDecodeError as e:  # the stream "completed", but a piece of the JSON never arrived
            partials.append(Partial(name, acc.json, shown, f"arguments do not parse: {e}"))
            continue
        return ToolCall(name, arguments, tuple(partials))
    raise StreamFailed(tuple(partials))


def _demo() -> None:  # pragma: no cover - run by hand
    from streamreel import Cassette, End, Replayer
    from streamreel.providers.anthropic import ToolUseBlock, message_events

    pieces = ('{"city": "Z\\u00', 'fcrich", "days": 1', '2, "note": "say \\"h', 'i\\""}')
    whole = Cassette.from_events(message_events([ToolUseBlock("get_weather", pieces)])).interactions[0]
    events = whole.response.events or ()
    cut = Cassette.from_events(events[:6], end=End(reason="upstream_disconnect")).interactions[0]  # after two pieces
    with Replayer(Cassette(interactions=(cut, whole)), speed=0) as server:
        client = anthropic.Anthropic(base_url=server.url, api_key="demo", max_retries=0)
        call = stream_tool_call(client, on_partial=lambda args: print(f"  shows {args!r}"), model="claude-haiku-4-5", max_tokens=256, messages=[{"role": "user", "content": "weather?"}])
    for p in call.partials:
        print(f"attempt failed ({p.error}) after {p.json!r}, showing {p.shown!r}")
    print(call.name, call.input)


if __name__ == "__main__":  # pragma: no cover
    _demo()
