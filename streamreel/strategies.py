"""Hypothesis strategies for the streams that break partial-rendering and recovery code.

:func:`anthropic_streams` and :func:`openai_streams` give protocol-valid streams (built by
:func:`streamreel.providers.anthropic.message_events` and
:func:`streamreel.providers.openai.chat_events`) as cassettes the replayer serves
directly, with the content split into deltas at every kind of boundary a real stream
splits at: inside words, between the two ``*`` of ``**``, inside a code fence, inside a
JSON string, escape or number, inside a grapheme cluster. :func:`chunkings` splits bytes
the way TCP may deliver them (inside UTF-8 characters, between ``\\r`` and ``\\n``),
:func:`interrupted` breaks a stream on its first attempts and then plays it whole (what
recovery code meets), :func:`fault_plans` draws fault lists and :func:`faulted` runs a
cassette under them.

Everything shrinks toward the harmless case: one delta, one chunk, no fault. Arguments are
keyword-only and checked when the strategy is built, so a mistake fails at once with
:class:`InvalidStrategyArgument` rather than in the middle of a run.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence, TypeVar

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.strategies import SearchStrategy

from .cassette import Cassette, End
from .errors import StreamreelError
from .providers.anthropic import Block, TextBlock, ThinkingBlock, ToolUseBlock, message_events
from .providers.openai import chat_events

__all__ = [
    "InvalidStrategyArgument",
    "StreamCassette",
    "anthropic_streams",
    "openai_streams",
    "markdown_texts",
    "tool_inputs",
    "splits",
    "chunkings",
    "fault_plans",
    "faulted",
    "interrupted",
    "FAULT_KINDS",
    "INTERRUPTIONS",
    "TEXT_BOUNDARY_KINDS",
    "BYTE_BOUNDARY_KINDS",
]

S = TypeVar("S", str, bytes)


class InvalidStrategyArgument(StreamreelError, InvalidArgument):
    """A strategy argument that cannot work; raised when the strategy is built, not when drawn."""


@dataclass(frozen=True, repr=False)
class StreamCassette(Cassette):
    """A one-interaction cassette made by a strategy, carrying the content it streams.

    The replayer serves it like any cassette; the extra fields say what a correct client
    ends up with (``text``, ``thinking``, ``tool_input``) and how it was split
    (``text_deltas``, ``thinking_deltas``, ``json_deltas``), so a property can feed the
    same deltas to code in process or compare what came through an SDK.
    """

    provider: str = "anthropic"
    text: str | None = None
    thinking: str | None = None
    tool_name: str | None = None
    tool_input: Any = None
    text_deltas: tuple[str, ...] = ()
    thinking_deltas: tuple[str, ...] = ()
    json_deltas: tuple[str, ...] = ()

    @property
    def tool_json(self) -> str | None:
        """The tool input as the stream spells it (the joined ``json_deltas``)."""
        return "".join(self.json_deltas) if self.tool_name is not None else None

    def __repr__(self) -> str:
        parts = []
        if self.thinking is not None:
            parts.append(f"thinking_deltas={self.thinking_deltas!r}")
        if self.text is not None:
            parts.append(f"text_deltas={self.text_deltas!r}")
        if self.tool_name is not None:
            parts.append(f"tool_name={self.tool_name!r}, json_deltas={self.json_deltas!r}")
        if self.faults:
            parts.append(f"faults={list(self.faults)!r}")
        return f"{self.provider}_stream({', '.join(parts)})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Hypothesis prints falsifying examples with this: the deltas, not every event."""
        printer.text(repr(self))


# ---------------------------------------------------------------- argument checks


def _fail(message: str) -> InvalidStrategyArgument:
    return InvalidStrategyArgument(message)


def _as_strategy(name: str, value: Any, check: Callable[[Any], str | None]) -> SearchStrategy[Any] | None:
    """``None`` stays ``None``; a strategy is checked on every draw; a plain value is checked now."""
    if value is None:
        return None
    if isinstance(value, SearchStrategy):
        return value.map(lambda drawn: _checked(name, drawn, check))
    problem = check(value)
    if problem:
        raise _fail(f"{name}={_short(value)}: {problem}")
    return st.just(value)


def _checked(name: str, value: Any, check: Callable[[Any], str | None]) -> Any:
    problem = check(value)
    if problem:
        raise _fail(f"the {name} strategy drew {_short(value)}: {problem}")
    return value


def _check_text(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"expected a string (or a strategy of strings, or None), got {type(value).__name__}"
    return None


def _check_tool_input(value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"a tool input is a JSON object; expected a dict (or a strategy of dicts, or None), got {type(value).__name__}"
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        return f"not JSON-serializable: {e}"
    return None


def _check_name(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(f"{name} must be a non-empty string, got {_short(value)}")
    return value


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------- boundaries

_PUNCTUATION = frozenset("_~#[]()<>!|\"'{}:,.-+=\t ")
_NUMBER = frozenset("0123456789.eE+-")


def _joins_cluster(ch: str) -> bool:
    """True for a code point that attaches to the one before it (combining mark, ZWJ, VS, skin tone)."""
    code = ord(ch)
    return (
        unicodedata.combining(ch) != 0
        or ch in "\u200d\ufe0e\ufe0f"
        or 0x1F3FB <= code <= 0x1F3FF
        or 0xE0020 <= code <= 0xE007F
        or (0x1F1E6 <= code <= 0x1F1FF)
    )


TEXT_BOUNDARY_KINDS = ("star", "backtick", "line end", "escape", "number", "grapheme cluster", "word", "punctuation")
"""The kinds of place :func:`splits` cuts text at, besides anywhere: next to ``*`` (so between
the two of ``**``), next to a backtick (inside a fence marker), at a line end, inside a
backslash escape (``\\u00e9`` included), inside a number, inside a grapheme cluster (a
combining mark, ZWJ sequence, skin tone or flag), inside a word (or ``true``/``null``), and
next to other punctuation (quotes, braces, colons, spaces)."""


def _text_boundaries(text: str) -> tuple[tuple[int, ...], ...]:
    kinds: tuple[list[int], ...] = tuple([] for _ in TEXT_BOUNDARY_KINDS)
    star, tick, line, escape, number, cluster, word, punct = kinds
    escape_until = 0
    for i in range(1, len(text)):
        a, b = text[i - 1], text[i]
        if a == "\\" and i > escape_until:
            escape_until = i + (5 if b == "u" else 1)
        if a == "*" or b == "*":
            star.append(i)
        if a == "`" or b == "`":
            tick.append(i)
        if a in "\r\n" or b in "\r\n":
            line.append(i)
        if i <= escape_until:
            escape.append(i)
        if (a.isdigit() and b in _NUMBER) or (a in _NUMBER and b.isdigit()):
            number.append(i)
        if _joins_cluster(b) or a == "\u200d":
            cluster.append(i)
        if a.isalpha() and b.isalpha():
            word.append(i)
        if a in _PUNCTUATION or b in _PUNCTUATION:
            punct.append(i)
    return tuple(tuple(k) for k in kinds)


BYTE_BOUNDARY_KINDS = ("inside a UTF-8 character", "line end", "field")
"""The kinds of place :func:`chunkings` cuts bytes at, besides anywhere: inside a multi-byte
character, next to ``\\r``/``\\n`` (between them, and between an event's two line ends),
and around the ``:`` of ``data: ``."""


def _byte_boundaries(data: bytes) -> tuple[tuple[int, ...], ...]:
    utf8: list[int] = []
    line: list[int] = []
    field: list[int] = []
    for i in range(1, len(data)):
        a, b = data[i - 1], data[i]
        if (b & 0xC0) == 0x80:
            utf8.append(i)
        if a in b"\r\n" or b in b"\r\n":
            line.append(i)
        if a == 0x3A or b == 0x3A or (a == 0x20 and data[i - 2 : i - 1] == b":"):
            field.append(i)
    return (tuple(utf8), tuple(line), tuple(field))


_MAX_CUT_RULES = 24
_RULE_BYTES = 4
_STEPS = 7
"""A rule's run cuts every 2 to 8 characters (``2 + run % 7``), like token-sized deltas."""

_SPLIT_PLANS: SearchStrategy[bytes] = st.binary(max_size=_RULE_BYTES * _MAX_CUT_RULES)
"""How to split something, independent of what: up to 24 rules of four bytes. Three bytes
(``where``) name "the n-th boundary of kind k" or a position anywhere; the fourth (``run``)
is 0 for a single cut there, else 1 to 37 cuts every 2 to 8 characters after it, a
token-like run (runs overlay into irregular splits). An all-zero rule cuts nothing. One
draw keeps generation cheap, so end-to-end properties run hundreds of examples a second,
and shrinking the bytes toward zero removes rules and turns runs into single cuts, while a
cut named by kind stays put as the shrinker deletes other parts of the text. No bytes: one
delta."""


def _cuts(plan: bytes, size: int, boundaries: Sequence[Sequence[int]]) -> tuple[int, ...]:
    """Sorted cut positions in ``1..size-1``."""
    if size < 2:
        return ()
    cuts: set[int] = set()
    choices = len(boundaries) + 1
    for k in range(0, len(plan) - _RULE_BYTES + 1, _RULE_BYTES):
        where = plan[k] << 16 | plan[k + 1] << 8 | plan[k + 2]
        run = plan[k + 3]
        if not where and not run:
            continue
        kind, nth = where % choices, where // choices
        positions = boundaries[kind - 1] if kind else ()
        at = positions[nth % len(positions)] if positions else 1 + nth % (size - 1)
        if run == 0:
            cuts.add(at)
        else:
            step, count = 2 + run % _STEPS, 1 + run // _STEPS
            cuts.update(range(at + step, min(size, at + step * count + 1), step))
    return tuple(sorted(cuts))


def _cut(data: S, cuts: Sequence[int]) -> tuple[S, ...]:
    bounds = (0, *cuts, len(data))
    return tuple(data[a:b] for a, b in zip(bounds, bounds[1:]))


def _split(plan: bytes, text: str, boundaries: Sequence[Sequence[int]] | None = None) -> tuple[str, ...]:
    return _cut(text, _cuts(plan, len(text), _text_boundaries(text) if boundaries is None else boundaries))


def splits(text: str, *, boundaries: Sequence[int] | None = None) -> SearchStrategy[tuple[str, ...]]:
    """Ways to stream ``text`` as deltas (non-empty pieces that join back to it); shrinks to ``(text,)``.

    Either a few cuts (up to 24), each at a boundary of one of :data:`TEXT_BOUNDARY_KINDS`
    or anywhere, or a dense token-like split. ``boundaries`` replaces the positions the few
    cuts favour with your own.
    """
    if not isinstance(text, str):
        raise _fail(f"splits(text): expected a string, got {type(text).__name__}")
    special = _text_boundaries(text) if boundaries is None else (_valid_positions("boundaries", boundaries, len(text)),)
    return _SPLIT_PLANS.map(lambda plan: _split(plan, text, special))


def chunkings(data: bytes | Cassette) -> SearchStrategy[tuple[bytes, ...]]:
    """Ways the bytes of a stream may reach a client: non-empty chunks that join to ``data``.

    ``data`` is raw bytes or a cassette (its first interaction's events, encoded). Cuts
    favour the places naive readers break: inside a UTF-8 character, between ``\\r`` and
    ``\\n``, between an event's closing line ends, inside ``data:``. Shrinks to one chunk.
    """
    if isinstance(data, Cassette):
        if not data.interactions or data.interactions[0].response.events is None:
            raise _fail("chunkings(cassette): the cassette's first interaction is not a stream")
        raw = b"".join(e.wire for e in data.interactions[0].response.events)
    elif isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
    else:
        raise _fail(f"chunkings(data): expected bytes or a Cassette, got {type(data).__name__}")
    special = _byte_boundaries(raw)
    return _SPLIT_PLANS.map(lambda plan: _cut(raw, _cuts(plan, len(raw), special)))


def _valid_positions(name: str, positions: Sequence[int], size: int) -> tuple[int, ...]:
    out = []
    for p in positions:
        if isinstance(p, bool) or not isinstance(p, int) or not 0 < p < size:
            raise _fail(f"{name}: {p!r} is not a cut position inside a text of length {size} (1..{size - 1})")
        out.append(p)
    return tuple(sorted(set(out)))


# ---------------------------------------------------------------- content

_FRAGMENTS = (
    "hello", "world", "stream", "token", "the", "delta", "x2", "3.14", "-7", "2 * 3", "#1", "a_b",
    "naïve", "café", "Straße", "日本語", "привет", "e\u0301clair", "👍🏽", "👨\u200d👩\u200d👧", "🇫🇷", "❤\ufe0f",
    "**bold**", "**two words**", "**naïve café**", "**日本語**", "**👍🏽 ok**", "**x2**",
    "`code`", "`x**2`", "`**kwargs`", "`a_b`", "`<div>`", "`é`",
    "\n", "\n", "\n\n",
    "\n```python\ny = x**2\nprint('hi')\n```\n",
    "\n```\n# **not bold**\n\n```\n",
    "\n```js\nlet s = \"\\n\";\n```\n",
    "\n```\nemoji = '👍🏽'\n```\n",
    "\n```python\nif a:\n    return b**2\n```\n",
)  # fmt: skip
"""What :func:`markdown_texts` strings together: words in several scripts, emoji and grapheme
clusters, closed ``**bold**``, inline code, line breaks, and whole fenced blocks whose code
holds ``**`` that is not markup. ``hello`` comes first: it is what a failing text shrinks to."""


def _markdown_from(raw: bytes) -> str:
    out = ""
    for b in raw:
        piece = _FRAGMENTS[b % len(_FRAGMENTS)]
        if not out:
            piece = piece.lstrip("\n")
        elif not out.endswith("\n") and not piece.startswith("\n"):
            out += " "
        out += piece
    return out or _FRAGMENTS[0]


def markdown_texts(*, max_fragments: int = 40) -> SearchStrategy[str]:
    """Markdown of the kind chat models stream: words in several scripts, emoji, ``**bold**``,
    inline ``code`` and fenced code blocks whose code holds ``**`` that is not markup. Markup is
    always closed within its line, so a correct renderer never shows a literal ``**`` or
    backtick outside code. Shrinks toward ``"hello"``."""
    if isinstance(max_fragments, bool) or not isinstance(max_fragments, int) or max_fragments < 1:
        raise _fail(f"markdown_texts(max_fragments=...): expected a whole number >= 1, got {max_fragments!r}")
    return st.binary(min_size=1, max_size=max_fragments).map(_markdown_from)


_KEYS = ("city", "unit", "q", "path", "a\"b", "naïve", "日本", "x\\y", "", "emoji👍", "line\nbreak", "n")
_STRINGS = ("", "Paris", '"', "\\", "\n", "\t", "é", "👍", "👨\u200d👩\u200d👧", "\u0000", "\u001f", "\u2028", "日本語", "a\"b\\c", "/", "C:\\tmp", "😀 ok", "🇫🇷")
_NUMBERS = (0, 1, -7, 12, 1000000, -123456789012, 0.5, -12.5e-3, 3.14159, 1e100, 6.02e23, 5e-324, -0.25)


def _json_from(raw: bytes) -> dict[str, Any]:
    data = iter(raw)

    def byte() -> int:
        return next(data, 0)

    def string() -> str:
        return "".join(_STRINGS[byte() % len(_STRINGS)] for _ in range(byte() % 3 + 1))

    def value(depth: int) -> Any:
        kind = byte() % 8
        if kind == 0:
            return None
        if kind == 1:
            return byte() % 2 == 1
        if kind in (2, 3):
            return _NUMBERS[byte() % len(_NUMBERS)]
        if kind in (4, 5) or depth >= 3:
            return string()
        if kind == 6:
            return [value(depth + 1) for _ in range(byte() % 4)]
        return obj(depth + 1)

    def obj(depth: int) -> dict[str, Any]:
        return {_KEYS[byte() % len(_KEYS)]: value(depth) for _ in range(byte() % 5)}

    return obj(0)


def tool_inputs(*, max_bytes: int = 48) -> SearchStrategy[dict[str, Any]]:
    """JSON objects a model may pass to a tool: strings with quotes, backslashes, control
    characters and astral emoji (surrogate-pair escapes when ASCII-escaped), integers,
    floats with exponents, booleans, null, nested lists and objects. Shrinks toward ``{}``."""
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
        raise _fail(f"tool_inputs(max_bytes=...): expected a whole number >= 0, got {max_bytes!r}")
    return st.binary(max_size=max_bytes).map(_json_from)


_JSON_STYLES = ((False, (", ", ": ")), (False, (",", ":")), (True, (", ", ": ")), (True, (",", ":")))
"""(ensure_ascii, separators): the API's spacing, compact, and ``\\uXXXX`` escapes to split inside."""


def _json_text(value: Any) -> SearchStrategy[str]:
    return st.sampled_from(_JSON_STYLES).map(lambda style: json.dumps(value, ensure_ascii=style[0], separators=style[1], allow_nan=False))


# ---------------------------------------------------------------- streams

_DEFAULT: Any = object()


def _content(
    text: Any, tool_input: Any, thinking: Any, tool_name: Any, *, who: str
) -> tuple[SearchStrategy[str] | None, SearchStrategy[dict[str, Any]] | None, SearchStrategy[str] | None, str]:
    text_s = _as_strategy("text", markdown_texts() if text is _DEFAULT else text, _check_text)
    tool_s = _as_strategy("tool_input", tool_input, _check_tool_input)
    thinking_s = _as_strategy("thinking", thinking, _check_text)
    name = _check_name("tool_name", tool_name)
    if text_s is None and tool_s is None and thinking_s is None:
        raise _fail(f"{who}: text, tool_input and thinking are all None; a message needs at least one block")
    return text_s, tool_s, thinking_s, name


def anthropic_streams(
    *,
    text: str | SearchStrategy[str] | None = _DEFAULT,
    tool_input: dict[str, Any] | SearchStrategy[dict[str, Any]] | None = None,
    thinking: str | SearchStrategy[str] | None = None,
    tool_name: str = "get_weather",
    model: str = "claude-sonnet-4-6",
) -> SearchStrategy[StreamCassette]:
    """Protocol-valid Anthropic Messages streams, as cassettes the replayer serves directly.

    Each of ``text``, ``tool_input`` and ``thinking`` is a value, a strategy, or None for
    no such block (default: :func:`markdown_texts` text, no tool call, no thinking). Blocks
    come in the API's order (thinking, text, tool_use); each is split into deltas by
    :func:`splits`, the tool input as its JSON text (spaced, compact or ``\\uXXXX``-escaped).
    The request matches any ``POST /v1/messages``. Shrinks toward one delta per block.
    """
    text_s, tool_s, thinking_s, name = _content(text, tool_input, thinking, tool_name, who="anthropic_streams")
    model = _check_name("model", model)

    @st.composite
    def build(draw: Callable[[SearchStrategy[Any]], Any]) -> StreamCassette:
        blocks: list[Block] = []
        fields: dict[str, Any] = {}
        if thinking_s is not None:
            value = draw(thinking_s)
            deltas = _split(draw(_SPLIT_PLANS), value)
            blocks.append(ThinkingBlock(deltas))
            fields.update(thinking=value, thinking_deltas=deltas)
        if text_s is not None:
            value = draw(text_s)
            deltas = _split(draw(_SPLIT_PLANS), value)
            blocks.append(TextBlock(deltas))
            fields.update(text=value, text_deltas=deltas)
        if tool_s is not None:
            value = draw(tool_s)
            deltas = _split(draw(_SPLIT_PLANS), draw(_json_text(value)))
            blocks.append(ToolUseBlock(name, deltas))
            fields.update(tool_name=name, tool_input=value, json_deltas=deltas)
        events = message_events(blocks, model=model)
        base = Cassette.from_events(events, path="/v1/messages", end=End(t=0.0, reason="complete"))
        return StreamCassette(interactions=base.interactions, provider="anthropic", **fields)

    return build()


def openai_streams(
    *,
    text: str | SearchStrategy[str] | None = _DEFAULT,
    tool_input: dict[str, Any] | SearchStrategy[dict[str, Any]] | None = None,
    tool_name: str = "get_weather",
    model: str = "gpt-4o-2024-08-06",
) -> SearchStrategy[StreamCassette]:
    """Protocol-valid OpenAI Chat Completions streams (data-only chunks ending in ``[DONE]``).

    Same arguments as :func:`anthropic_streams` (no thinking); the tool input streams as
    the function's ``arguments`` pieces. The request matches any ``POST /v1/chat/completions``.
    """
    text_s, tool_s, _, name = _content(text, tool_input, None, tool_name, who="openai_streams")
    model = _check_name("model", model)

    @st.composite
    def build(draw: Callable[[SearchStrategy[Any]], Any]) -> StreamCassette:
        fields: dict[str, Any] = {}
        text_deltas: tuple[str, ...] = ()
        tool_calls: list[tuple[str, tuple[str, ...]]] = []
        if text_s is not None:
            value = draw(text_s)
            text_deltas = _split(draw(_SPLIT_PLANS), value)
            fields.update(text=value, text_deltas=text_deltas)
        if tool_s is not None:
            value = draw(tool_s)
            deltas = _split(draw(_SPLIT_PLANS), draw(_json_text(value)))
            tool_calls.append((name, deltas))
            fields.update(tool_name=name, tool_input=value, json_deltas=deltas)
        events = chat_events(text_deltas, tool_calls=tool_calls, model=model)
        base = Cassette.from_events(events, path="/v1/chat/completions", end=End(t=0.0, reason="complete"))
        return StreamCassette(interactions=base.interactions, provider="openai", **fields)

    return build()


# ---------------------------------------------------------------- interruptions

INTERRUPTIONS = ("upstream_disconnect", "timeout")
"""How :func:`interrupted` ends a broken attempt: cut (the replayer closes the connection) or
silent (the replayer holds it open until the client gives up), as a recording would end."""


def interrupted(
    cassette: Cassette | SearchStrategy[Cassette],
    *,
    endings: Sequence[str] = INTERRUPTIONS,
    attempts: int = 1,
) -> SearchStrategy[Cassette]:
    """The stream broken on the first ``attempts`` tries, then whole: what recovery code meets.

    Each broken attempt is the first interaction cut after a drawn number of events (never
    the last one), ending as one of ``endings`` (see :data:`INTERRUPTIONS`); ordered playback
    serves them in turn and then the whole stream, so a client that retries completes.
    ``cassette`` is a cassette or a strategy of them (a :class:`StreamCassette` keeps its
    content fields). Shrinks toward the gentlest break: all but the final event, then cut.
    """
    bad = [e for e in endings if e not in INTERRUPTIONS] if not isinstance(endings, str) else [endings]
    if bad or not endings:
        raise _fail(f"interrupted(endings=...): expected some of {', '.join(INTERRUPTIONS)}, got {_short(endings)}")
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise _fail(f"interrupted(attempts=...): expected a whole number >= 1, got {attempts!r}")
    source = cassette if isinstance(cassette, SearchStrategy) else st.just(_streamable(cassette))
    ends = tuple(endings)

    @st.composite
    def build(draw: Callable[[SearchStrategy[Any]], Any]) -> Cassette:
        whole_cassette = _streamable(draw(source))
        whole = whole_cassette.interactions[0]
        events = whole.response.events or ()
        broken = []
        for _ in range(attempts):
            kept = len(events) - 1 - draw(st.integers(0, len(events) - 2))
            end = End(t=events[kept - 1].t, reason=draw(st.sampled_from(ends)))
            broken.append(replace(whole, response=replace(whole.response, events=events[:kept], end=end)))
        return replace(whole_cassette, interactions=(*broken, whole))

    return build()


def _streamable(cassette: Any) -> Cassette:
    if not isinstance(cassette, Cassette):
        raise _fail(f"interrupted(cassette): expected a Cassette or a strategy of them, got {type(cassette).__name__}")
    first = cassette.interactions[0] if cassette.interactions else None
    if first is None or first.response.events is None or len(first.response.events) < 2:
        raise _fail("interrupted(cassette): the first interaction must be a stream of at least two events")
    return cassette


# ---------------------------------------------------------------- faults


def _from_end(limit: int) -> SearchStrategy[int]:
    """``limit`` down to 0, shrinking toward ``limit``: a cut or an error as late as it goes."""
    return st.integers(0, limit).map(lambda k: limit - k)


def _fault_strategies(events: int, stream_bytes: int) -> dict[str, SearchStrategy[str]]:
    """One spec strategy per fault, each shrinking toward its gentlest form, with every
    wait kept to milliseconds (a stall without ``seconds`` waits for the client's timeout)."""
    after = _from_end(events)
    spec = st.builds
    return {
        "latency": spec("latency:first={}ms,each={}ms,jitter={}ms,seed={}".format, st.integers(1, 20), st.integers(0, 1), st.integers(0, 1), st.integers(0, 2**16)),
        "pings": spec("pings:every={}ms".format, st.integers(1, 100).map(lambda k: 101 - k)),
        "fragment": st.one_of(
            spec("fragment:size={}".format, st.integers(1, 16).map(lambda k: 17 - k)),
            spec("fragment:random,max={},seed={}".format, st.integers(1, 16).map(lambda k: 17 - k), st.integers(0, 2**16)),
        ),
        "throttle": spec("throttle:bytes_per_s={}".format, st.integers(0, 9).map(lambda k: 2_000_000 - k * 200_000)),
        "stall": st.one_of(
            spec("stall:after={}{}".format, after, st.sampled_from((",seconds=10ms", ",seconds=100ms", ""))),
            spec("stall:after_bytes={}{}".format, _from_end(stream_bytes), st.sampled_from((",seconds=10ms", ""))),
        ),
        "http": spec("http:status={},times={},retry_after=10ms".format, st.sampled_from((529, 429, 500, 503)), st.integers(1, 2)),
        "drop": spec(
            "drop:event={}".format,
            st.one_of(st.sampled_from(("ping", "message_stop", "content_block_stop", "message_delta", "[DONE]")), st.integers(1, events).map(lambda k: -k)),
        ),
        # never keep=0: an empty data line is skipped by the anthropic SDK, a drop rather than broken JSON
        "truncate": spec("truncate:event={},keep={}".format, st.integers(1, events).map(lambda k: -k), st.sampled_from((0.5, 0.9, 0.25, 0.1))),
        "error": spec("error:after={},type={}".format, after, st.sampled_from(("overloaded_error", "api_error", "rate_limit_error"))),
        # a cut before the last byte: one at the very end would end a whole stream as it ends anyway
        "disconnect": st.one_of(
            spec("disconnect:after={},how={}".format, _from_end(max(events - 1, 0)), st.sampled_from(("eof", "close", "reset"))),
            spec("disconnect:after_bytes={},how={}".format, _from_end(max(stream_bytes - 1, 0)), st.sampled_from(("eof", "close", "reset"))),
        ),
    }


FAULT_KINDS: tuple[str, ...] = tuple(_fault_strategies(1, 1))
"""The faults :func:`fault_plans` draws (all by default), gentlest first, which is also the
order a failing plan shrinks along: latency, pings, fragment, throttle, stall, http, drop,
truncate, error, disconnect."""


def _canonical(spec: str) -> str:
    from .fault_injection import parse_one

    return str(parse_one(spec))


def _check_count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(f"{name}: expected a whole number >= {minimum}, got {value!r}")
    return value


def _check_kinds(kinds: Sequence[str] | None, *, who: str) -> tuple[str, ...]:
    from .fault_injection import REGISTRY

    if kinds is None:
        return FAULT_KINDS
    if isinstance(kinds, str) or not all(isinstance(k, str) for k in kinds):
        raise _fail(f"{who}(kinds=...): expected a list of fault names, got {_short(kinds)}")
    unknown = [k for k in kinds if k not in FAULT_KINDS or k not in REGISTRY]
    if unknown or not kinds:
        raise _fail(f"{who}(kinds=...): {'unknown ' + ', '.join(map(repr, unknown)) if unknown else 'no kinds'}; choose from {', '.join(FAULT_KINDS)}")
    return tuple(kinds)


def fault_plans(
    *,
    kinds: Sequence[str] | None = None,
    max_faults: int = 2,
    events: int = 20,
    stream_bytes: int = 4000,
) -> SearchStrategy[list[str]]:
    """Lists of fault specs (``["disconnect:after=3,how=reset", "fragment:size=2"]``) for
    ``reel.load(..., faults=...)``, the marker, or a cassette's ``faults:``.

    ``kinds`` limits the faults drawn (default :data:`FAULT_KINDS`); ``events`` and
    ``stream_bytes`` bound where cuts, stalls and errors fall. Every wait is milliseconds,
    except a stall without ``seconds``, which lasts until the client's read timeout. Shrinks
    toward no fault, then one, at its gentlest: as late as possible, ``eof`` before
    ``close`` before ``reset``, fewer and larger fragments, a fast throttle.
    """
    chosen = _check_kinds(kinds, who="fault_plans")
    _check_count("fault_plans(max_faults=...)", max_faults, 0)
    _check_count("fault_plans(events=...)", events, 1)
    _check_count("fault_plans(stream_bytes=...)", stream_bytes, 1)
    table = _fault_strategies(events, stream_bytes)
    one = st.one_of([table[k] for k in chosen]).map(_canonical)
    slot = st.one_of(st.none(), one)  # each slot empty half the time: a plan is empty a quarter of the time, not half
    return st.tuples(*(slot for _ in range(max_faults))).map(lambda plan: [spec for spec in plan if spec is not None])


def _fitting(cassette: Cassette, specs: list[str]) -> list[str]:
    """The specs that apply to the cassette's first response (the replayer refuses a fault that
    cannot apply to any), leaving out, one pass at a time, those that do not."""
    from .fault_injection import parse
    from .pipeline import plan as make_plan

    if not cassette.interactions or not specs:
        return specs
    own = parse(list(cassette.faults))
    while specs:
        try:
            p = make_plan(cassette.interactions[0], (*own, *parse(specs)))
        except ValueError:
            return []
        unfit = {i - len(own) for i in p.unfit if i >= len(own)}
        if not unfit:
            return specs
        specs = [s for i, s in enumerate(specs) if i not in unfit]
    return specs


def faulted(
    cassette: Cassette | SearchStrategy[Cassette],
    *,
    kinds: Sequence[str] | None = None,
    max_faults: int = 2,
) -> SearchStrategy[Cassette]:
    """``cassette`` (or each one a strategy draws) under a drawn fault plan, added to its own
    ``faults:`` so the replayer applies it to every response. Cuts, stalls and errors fall
    within its first interaction's events and bytes. Shrinks toward the cassette unchanged.
    A :class:`StreamCassette` keeps its content fields, so a property can compare what
    arrived with what should have.
    """
    chosen = _check_kinds(kinds, who="faulted")
    _check_count("faulted(max_faults=...)", max_faults, 0)
    if isinstance(cassette, SearchStrategy):
        source = cassette
    elif isinstance(cassette, Cassette):
        source = st.just(cassette)
    else:
        raise _fail(f"faulted(cassette): expected a Cassette or a strategy of them, got {type(cassette).__name__}")

    @st.composite
    def build(draw: Callable[[SearchStrategy[Any]], Any]) -> Cassette:
        cas = draw(source)
        events = cas.interactions[0].response.events if cas.interactions else None
        size = sum(len(e.wire) for e in events or ())
        plan = draw(fault_plans(kinds=chosen, max_faults=max_faults, events=max(1, len(events or ())), stream_bytes=max(1, size)))
        plan = _fitting(cas, plan)
        return replace(cas, faults=(*cas.faults, *plan)) if plan else cas

    return build()
