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

import hashlib
import json
import unicodedata
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence, TypeVar

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.strategies import SearchStrategy

from .cassette import Cassette, End
from .errors import StreamreelError
from .providers import detect_provider
from .providers.anthropic import (
    STOP_REASONS,
    Block,
    Citation,
    RedactedThinkingBlock,
    CompactionBlock,
    McpToolResultBlock,
    McpToolUseBlock,
    ServerToolResultBlock,
    ServerToolUseBlock,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    insert_pings,
    message_events,
    message_stream,
)
from .providers.openai import FINISH_REASONS, Choice, ToolCall, chat_events, chat_stream, chunk_count, sequential_schedule
from .providers.openai_responses import (
    FunctionCallItem,
    Item,
    McpCallItem,
    McpListToolsItem,
    MessageItem,
    PatchCallItem,
    ReasoningItem,
    SearchCallItem,
    ShellCallItem,
    final_response,
    response_events,
)
from .sse import Event

__all__ = [
    "InvalidStrategyArgument",
    "StreamCassette",
    "anthropic_streams",
    "openai_streams",
    "anthropic_messages",
    "openai_chat_streams",
    "openai_responses_streams",
    "RESPONSE_ITEM_KINDS",
    "Chunks",
    "BLOCK_KINDS",
    "BETA_BLOCK_KINDS",
    "BETAS",
    "SERVER_TOOLS",
    "CHOICE_KINDS",
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

    The replayer serves it like any cassette. ``message`` is the final object the stream
    encodes, in the API's own JSON shape (the Anthropic ``Message``, the ``chat.completion``,
    the Responses ``response``): what a correct accumulator rebuilds. ``blocks`` (Anthropic)
    or ``choices`` (OpenAI chat) hold the content as it was split into deltas. The older
    fields say what a client ends up with (``text``, ``thinking``, ``tool_input``) and how
    it was split (``text_deltas``, ``thinking_deltas``, ``json_deltas``), so a property can
    feed the same deltas to code in process or compare what came through an SDK. ``betas``
    names the ``anthropic-beta`` features a stream with beta-only blocks needs (read it with
    ``client.beta.messages.stream(..., betas=stream.betas)``); empty for everything else.
    """

    provider: str = "anthropic"
    text: str | None = None
    thinking: str | None = None
    tool_name: str | None = None
    tool_input: Any = None
    text_deltas: tuple[str, ...] = ()
    thinking_deltas: tuple[str, ...] = ()
    json_deltas: tuple[str, ...] = ()
    message: Any = field(default=None, compare=False)
    blocks: tuple[Any, ...] = ()
    choices: tuple[Any, ...] = ()
    stop_reason: str | None = None
    pings: tuple[int, ...] = ()
    open_last: bool = False
    usage: bool = False
    breaks: tuple[tuple[int, str], ...] = ()
    label: str | None = None
    betas: tuple[str, ...] = ()

    @property
    def tool_json(self) -> str | None:
        """The tool input as the stream spells it (the joined ``json_deltas``)."""
        return "".join(self.json_deltas) if self.tool_name is not None else None

    @property
    def events(self) -> tuple[Event, ...]:
        """The events of the whole stream (after any broken attempts :func:`interrupted` put first)."""
        return self.interactions[-1].response.events or () if self.interactions else ()

    def __repr__(self) -> str:
        parts = []
        if self.label is not None:
            parts.append(self.label)
        if self.blocks:
            parts.append("blocks=[" + ", ".join(_block_repr(b) for b in self.blocks) + "]")
        if self.choices:
            parts.append("choices=[" + ", ".join(_choice_repr(c) for c in self.choices) + "]")
        if self.stop_reason is not None:
            parts.append(f"stop_reason={self.stop_reason!r}")
        if self.open_last:
            parts.append("open_last=True")
        if self.pings:
            parts.append(f"pings={list(self.pings)!r}")
        if self.usage:
            parts.append("usage=True")
        if not self.blocks and not self.choices:
            if self.thinking is not None:
                parts.append(f"thinking_deltas={self.thinking_deltas!r}")
            if self.text is not None:
                parts.append(f"text_deltas={self.text_deltas!r}")
            if self.tool_name is not None:
                parts.append(f"tool_name={self.tool_name!r}, json_deltas={self.json_deltas!r}")
        if self.breaks:
            parts.append("breaks=[" + ", ".join(f"{how} after {n} of {len(self.events)} events" for n, how in self.breaks) + "]")
        if self.faults:
            parts.append(f"faults={list(self.faults)!r}")
        if self.label is not None:
            name = "cassette"
        else:
            openai_kind = "openai_chat" if self.choices else "openai_response" if self.blocks else "openai_stream"
            name = {"anthropic": "anthropic_message" if self.blocks else "anthropic_stream", "openai": openai_kind}.get(self.provider, f"{self.provider}_stream")
        return f"{name}({', '.join(parts)})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Hypothesis prints falsifying examples with this: the deltas, not every event."""
        printer.text(repr(self))


def _short_text(value: str, limit: int = 40) -> str:
    return repr(value) if len(value) <= limit else repr(value[: limit - 3]) + "..."


def _block_repr(block: Any) -> str:
    if isinstance(block, TextBlock):
        cited = f", citations={len(block.citations)}" if block.citations else ""
        return f"text({block.deltas!r}{cited})"
    if isinstance(block, ThinkingBlock):
        signed = "" if block.signature is not None else ", unsigned"
        return f"thinking({block.deltas!r}{signed})"
    if isinstance(block, RedactedThinkingBlock):
        return "redacted_thinking()"
    if isinstance(block, ToolUseBlock):
        return f"tool_use({block.name!r}, {block.json_deltas!r})"
    if isinstance(block, ServerToolUseBlock):
        return f"server_tool_use({block.name!r}, {block.json_deltas!r})"
    if isinstance(block, McpToolUseBlock):
        return f"mcp_tool_use({block.name!r}, {block.json_deltas!r})"
    if isinstance(block, McpToolResultBlock):
        return "mcp_tool_result(error)" if block.is_error else "mcp_tool_result()"
    if isinstance(block, CompactionBlock):
        return f"compaction({_short_text(block.content)})"
    if isinstance(block, MessageItem):
        notes = f", annotations at {[i for i, _ in block.annotations]}" if block.annotations else ""
        return f"message({block.deltas!r}{notes})"
    if isinstance(block, FunctionCallItem):
        return f"function_call({block.name!r}, {block.argument_deltas!r})"
    if isinstance(block, ReasoningItem):
        return f"reasoning({block.summary_deltas!r})"
    if isinstance(block, SearchCallItem):
        return f"{block.kind}({block.query!r})"
    if isinstance(block, PatchCallItem):
        return f"apply_patch_call({block.path!r}, {block.diff_deltas!r})"
    if isinstance(block, ShellCallItem):
        return f"shell_call({list(block.commands)!r})"
    if isinstance(block, McpListToolsItem):
        return f"mcp_list_tools({list(block.tools)!r})"
    if isinstance(block, McpCallItem):
        return f"mcp_call({block.name!r}, {block.argument_deltas!r})"
    if isinstance(block, ServerToolResultBlock):
        size = len(block.content) if isinstance(block.content, (list, tuple)) else "error" if isinstance(block.content, dict) and "error_code" in block.content else 1
        return f"{block.kind}({size})"
    return repr(block)


def _choice_repr(choice: Any) -> str:
    parts = []
    if choice.content is not None:
        parts.append(f"content={choice.content!r}")
    if choice.refusal is not None:
        parts.append(f"refusal={choice.refusal!r}")
    if choice.tool_calls:
        parts.append("tool_calls=[" + ", ".join(f"{c.name}{c.arguments!r}" for c in choice.tool_calls) + "]")
        if choice.schedule is not None and choice.schedule != sequential_schedule(choice.tool_calls):
            parts.append(f"schedule={[list(c) if len(c) > 1 else c[0] for c in choice.schedule]!r}")
    if choice.finish_reason is not None:
        parts.append(f"finish_reason={choice.finish_reason!r}")
    return "choice(" + ", ".join(parts) + ")"


class Chunks(tuple):  # type: ignore[type-arg]
    """Chunks drawn by :func:`chunkings`: a tuple of bytes that prints as where it was cut."""

    def __repr__(self) -> str:
        total = sum(len(c) for c in self)
        if len(self) <= 1:
            return f"chunkings({total} bytes, no cuts)"
        offsets, at = [], 0
        for c in self[:-1]:
            at += len(c)
            offsets.append(at)
        cuts = ", ".join(f"{o}{_cut_context(self, o)}" for o in offsets[:12])
        more = f", ... {len(offsets) - 12} more" if len(offsets) > 12 else ""
        return f"chunkings({total} bytes, cuts at [{cuts}{more}])"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


def _cut_context(chunks: Sequence[bytes], offset: int) -> str:
    raw = b"".join(chunks)
    return f" {raw[max(0, offset - 4):offset]!r}|{raw[offset:offset + 4]!r}"


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


def chunkings(data: bytes | Cassette) -> SearchStrategy[Chunks]:
    """Ways the bytes of a stream may reach a client: non-empty chunks that join to ``data``.

    ``data`` is raw bytes or a cassette (its first interaction's events, encoded). Cuts
    favour the places naive readers break: inside a UTF-8 character, between ``\\r`` and
    ``\\n``, between an event's closing line ends, inside ``data:``. Shrinks to one chunk.
    A draw is a tuple of bytes (:class:`Chunks`) that prints as its cut offsets.
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

    @st.composite
    def build(draw: Callable[[SearchStrategy[Any]], Any]) -> Chunks:
        return Chunks(_cut(raw, _cuts(draw(_SPLIT_PLANS), len(raw), special)))

    return build()


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


_JSON_STYLE = st.sampled_from(_JSON_STYLES)


def _json_text(value: Any) -> SearchStrategy[str]:
    return _JSON_STYLE.map(lambda style: json.dumps(value, ensure_ascii=style[0], separators=style[1], allow_nan=False))


def _spelled(draw: Callable[[SearchStrategy[Any]], Any], value: Any) -> str:
    """``value`` as JSON in a drawn style (:func:`_json_text` without building a strategy per draw)."""
    ensure_ascii, separators = draw(_JSON_STYLE)
    return json.dumps(value, ensure_ascii=ensure_ascii, separators=separators, allow_nan=False)


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


# ---------------------------------------------------------------- the whole protocol

BLOCK_KINDS = ("text", "tool_use", "thinking", "redacted_thinking", "server_tool_use")
"""The content blocks :func:`anthropic_messages` draws by default, gentlest first: text (with
citations when asked), a run of tool calls, thinking with its signature, redacted thinking,
and a run of server tool calls (see :data:`SERVER_TOOLS`) followed by their results. The
Messages API sends them all, and ``client.messages`` of both SDKs reads them."""

BETA_BLOCK_KINDS = ("compaction", "mcp_tool_use")
"""Blocks :func:`anthropic_messages` draws only when ``blocks=`` names them: a compaction
summary (first in its message) and a call to a remote MCP server's tool with its result.
Only a beta of the API sends them, and only the SDKs' beta client reads them
(``client.messages`` leaves a compaction's summary empty and an MCP call's input ``{}``), so
a stream holding one lists the beta names it needs in ``.betas``, for
``client.beta.messages.stream(..., betas=stream.betas)``."""

BETAS = {"compaction": "compact-2026-01-12", "mcp_tool_use": "mcp-client-2025-11-20"}
"""The ``anthropic-beta`` name each of :data:`BETA_BLOCK_KINDS` needs."""

SERVER_TOOLS = (
    "web_search",
    "web_fetch",
    "code_execution",
    "bash_code_execution",
    "text_editor_code_execution",
    "tool_search_tool_regex",
    "tool_search_tool_bm25",
)
"""The server tools a ``server_tool_use`` block of :func:`anthropic_messages` calls, each
followed by its own kind of result block (``web_search_tool_result``,
``web_fetch_tool_result``, ``code_execution_tool_result``,
``bash_code_execution_tool_result``, ``text_editor_code_execution_tool_result``,
``tool_search_tool_result``), a success or an error. A message that ran code reports its
``container``."""

_THINKING_KINDS = ("thinking", "redacted_thinking")
_CUTTING = ("max_tokens", "model_context_window_exceeded")
"""Stop reasons that may cut the last block in the middle."""
_NEEDS = {"tool_use": "tool_use", "pause_turn": "server_tool_use", "stop_sequence": "text", "compaction": "compaction"}
"""Stop reasons that need the message to end on a kind of block."""

_CITED = ("Paris is the capital of France.", "Winds W at 10 to 15 mph. ", "日本語のテキスト", 'a "quoted" passage\n', "👍🏽 naïve")
_SOURCES = (
    ("https://en.wikipedia.org/wiki/Paris", "Paris - Wikipedia"),
    ("https://www.wunderground.com/hourly/us/ca/san-francisco", "San Francisco, CA Hourly Weather Forecast | Weather Underground"),
    ("https://example.com/caf%C3%A9?q=1&r=2", "Ünïcode title 👍"),
)
_QUERIES = ("weather in Paris", "San Francisco weather today", "naïve café 👍", 'say "hi"\n')
_PATTERNS = ("weather", "get_.*", "^temp\\d+$")
_SHELL = ("ls -la /tmp", 'echo "65465-6544 * 2" | bc -l', "python /tmp/fib.py", "cat '/tmp/café.txt'")
_CODE = ("print(2 ** 10)", "import sys\nprint('naïve 👍', file=sys.stderr)")
_OUTPUTS = ("", "1024\n", "F(10) = 34\n", "naïve 👍\n")
_FILES = (("/tmp/hello.txt", "Hello, world!"), ("/tmp/café.py", "print('naïve 👍')\n"))
_MCP_SERVERS = ("deepwiki", "echo")
_REDACTED = (
    "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpPkNRj2YfWXGmKDxH4mPnZ5sQ7vB5URj",
    "EuoBCoYBGAIiQJ+synthetic+redacted+thinking+payload/with+slashes==",
)
_STOP_SEQUENCES = ("\n\nHuman:", "END", "###")
_SIGNATURES = ("EqQBCkYIBxgCKkDsynthesizedsignaturebystreamreel==", "c3ludGhldGljLXNpZ25hdHVyZQ==")


def _stops_for(kinds: Sequence[str]) -> set[str]:
    """The stop reasons a message whose blocks are ``kinds`` can end with."""
    if list(kinds) == ["compaction"]:
        return {"compaction"}
    last = kinds[-1]
    if last == "tool_use":
        return {"tool_use", *_CUTTING}
    out = {"end_turn", "refusal", *_CUTTING}
    if last == "text":
        out.add("stop_sequence")
    if last == "server_tool_use":
        out.add("pause_turn")
    return out


def _required(who: str, name: str, value: Any, default: SearchStrategy[Any], check: Callable[[Any], str | None], leave_out: str) -> SearchStrategy[Any]:
    """A content argument of the whole-protocol strategies: a value or a strategy, never None
    (a kind of content is left out by naming the kinds that are drawn)."""
    drawn = _as_strategy(name, default if value is _DEFAULT else value, check)
    if drawn is None:
        raise _fail(f"{who}: {name} takes a value or a strategy; leave a kind of {leave_out} out with {'blocks' if leave_out == 'block' else 'kinds'}=[...]")
    return drawn


def _unreachable(reason: str, kinds: Sequence[str]) -> str | None:
    """Why no message of blocks ``kinds`` can end with ``reason`` (None: one can)."""
    need = _NEEDS.get(reason)
    if need is not None and need not in kinds:
        return f"needs {need!r} blocks to end on, and blocks={list(kinds)!r} has none"
    rest = [k for k in kinds if k != "compaction"]
    if reason == "compaction" or reason in _CUTTING and rest:
        return None
    if not rest:
        return f"cannot end a message of a compaction block alone (it stops with 'compaction'); add a kind of block to blocks={list(kinds)!r}"
    if reason in ("end_turn", "refusal") and rest == ["tool_use"]:
        return f"cannot follow a tool call, and blocks={list(kinds)!r} has only tool calls"
    return None


def _check_kinds_of(name: str, value: Any, known: Sequence[str]) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not all(isinstance(k, str) for k in value):
        raise _fail(f"{name}: expected a list of names from {', '.join(known)}, got {_short(value)}")
    unknown = [k for k in value if k not in known]
    if unknown or not value:
        raise _fail(f"{name}: {'unknown ' + ', '.join(map(repr, unknown)) if unknown else 'empty'}; choose from {', '.join(known)}")
    return tuple(k for k in known if k in value)


def _check_names(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not value or not all(isinstance(v, str) and v for v in value):
        raise _fail(f"{name}: expected a non-empty list of non-empty strings, got {_short(value)}")
    return tuple(value)


def _check_flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(f"{name}: expected True or False, got {_short(value)}")
    return value


def _cut_at(draw: Callable[[SearchStrategy[Any]], Any], text: str) -> str:
    """``text`` cut where ``max_tokens`` stopped it; shrinks toward no cut."""
    return text[: len(text) - draw(st.integers(0, len(text)))]


def _deltas(draw: Callable[[SearchStrategy[Any]], Any], text: str) -> tuple[str, ...]:
    return _split(draw(_SPLIT_PLANS), text) if text else ()


def _draw_citations(draw: Callable[[SearchStrategy[Any]], Any]) -> tuple[Citation, ...]:
    out = []
    for _ in range(draw(st.integers(0, 2))):
        url, title = draw(st.sampled_from(_SOURCES))
        kind = draw(st.sampled_from(("web_search_result_location", "char_location")))
        out.append(Citation(draw(st.sampled_from(_CITED)), url=url, title=title, kind=kind, start_char_index=draw(st.integers(0, 400))))
    return tuple(out)


def _server_call(draw: Callable[[SearchStrategy[Any]], Any], name: str) -> tuple[dict[str, Any], str, Any]:
    """A call to server tool ``name``: its input, and its result block's kind and content, a
    success (what a failure shrinks to) or one of the tool's errors."""
    if name == "web_search":
        found = draw(st.integers(-1, 3))
        value: dict[str, Any] = {"query": draw(st.sampled_from(_QUERIES))}
        if found < 0:
            return value, "web_search_tool_result", {"type": "web_search_tool_result_error", "error_code": "max_uses_exceeded"}
        results = [
            {"type": "web_search_result", "title": title, "url": url, "encrypted_content": f"Eo4UCioICRgC{i}synthetic+content==", "page_age": draw(st.sampled_from((None, "2 days ago")))}
            for i, (url, title) in enumerate(_SOURCES[:found])
        ]
        return value, "web_search_tool_result", results
    if name.startswith("tool_search_tool_"):
        value = {"pattern": draw(st.sampled_from(_PATTERNS))} if name.endswith("regex") else {"query": draw(st.sampled_from(_QUERIES))}
        tools = draw(st.lists(st.sampled_from(("get_temp_data", "get_weather", "lookup")), max_size=2, unique=True))
        return value, "tool_search_tool_result", {"type": "tool_search_tool_search_result", "tool_references": [{"type": "tool_reference", "tool_name": t} for t in tools]}
    kind = f"{name}_tool_result"
    failed = draw(st.booleans())
    if name == "web_fetch":
        url, title = draw(st.sampled_from(_SOURCES))
        if failed:
            return {"url": url}, kind, {"type": "web_fetch_tool_result_error", "error_code": draw(st.sampled_from(("url_not_accessible", "unsupported_content_type", "max_uses_exceeded")))}
        document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": draw(st.sampled_from(_CITED))}, "title": title}
        return {"url": url}, kind, {"type": "web_fetch_result", "url": url, "retrieved_at": "2025-07-17T21:38:38.606000+00:00", "content": document}
    if name == "text_editor_code_execution":
        path, text = draw(st.sampled_from(_FILES))
        command = draw(st.sampled_from(("create", "view", "str_replace")))
        value = {"command": command, "path": path}
        if failed:
            return value, kind, {"type": f"{kind}_error", "error_code": "file_not_found", "error_message": f"File not found: {path}"}
        if command == "create":
            return {**value, "file_text": text}, kind, {"type": "text_editor_code_execution_create_result", "is_file_update": draw(st.booleans())}
        if command == "view":
            lines = text.count("\n") + (not text.endswith("\n"))
            return value, kind, {"type": "text_editor_code_execution_view_result", "file_type": "text", "content": text, "num_lines": lines, "start_line": 1, "total_lines": lines}
        old = text.splitlines()[0]
        new = old.replace("naïve", "naive").replace("Hello", "Hi")
        changed = {"type": "text_editor_code_execution_str_replace_result", "old_start": 1, "old_lines": 1, "new_start": 1, "new_lines": 1, "lines": [f"-{old}", f"+{new}"]}
        return {**value, "old_str": old, "new_str": new}, kind, changed
    value = {"code": draw(st.sampled_from(_CODE))} if name == "code_execution" else {"command": draw(st.sampled_from(_SHELL))}
    if failed:
        return value, kind, {"type": f"{kind}_error", "error_code": draw(st.sampled_from(("unavailable", "execution_time_exceeded")))}
    code = draw(st.sampled_from((0, 1)))
    stderr = "" if code == 0 else "Traceback (most recent call last):\nNameError: name 'é' is not defined\n"
    return value, kind, {"type": f"{name}_result", "stdout": draw(st.sampled_from(_OUTPUTS)), "stderr": stderr, "return_code": code, "content": []}


def _draw_server_tools(draw: Callable[[SearchStrategy[Any]], Any], tools: Sequence[str], *, cut: bool, calls: bool = True, results: bool = True) -> list[Block]:
    """Calls to one server tool (one, or two made in parallel), then their results in order.
    ``cut``: the calls alone, the last one's JSON cut (``max_tokens``); no ``calls``: a message
    resuming a paused turn, which starts with the results; no ``results``: the turn paused
    before running the calls."""
    name = draw(st.sampled_from(tools))
    made = [_server_call(draw, name) for _ in range(draw(st.integers(1, 2)))]
    spelled = [_spelled(draw, value) for value, _, _ in made]
    if cut:
        spelled[-1] = _cut_at(draw, spelled[-1])
        return [ServerToolUseBlock(name, _deltas(draw, s)) for s in spelled]
    out: list[Block] = [ServerToolUseBlock(name, _deltas(draw, s)) for s in spelled] if calls else []
    if results:
        out += [ServerToolResultBlock(content, kind=kind) for _, kind, content in made]
    return out


def _draw_mcp(draw: Callable[[SearchStrategy[Any]], Any], tool_s: SearchStrategy[Any], names: Sequence[str], *, cut: bool) -> list[Block]:
    """A call to an MCP server's tool and its result (the call alone, its JSON cut, at ``max_tokens``)."""
    name, server = draw(st.sampled_from(names)), draw(st.sampled_from(_MCP_SERVERS))
    spelled = _spelled(draw, draw(tool_s))
    if cut:
        return [McpToolUseBlock(name, _deltas(draw, _cut_at(draw, spelled)), server_name=server)]
    failed = draw(st.booleans())
    said = ("Error: " if failed else "") + draw(st.sampled_from(_CITED))
    return [McpToolUseBlock(name, _deltas(draw, spelled), server_name=server), McpToolResultBlock(({"type": "text", "text": said},), is_error=failed)]


def anthropic_messages(
    *,
    blocks: Sequence[str] = BLOCK_KINDS,
    max_blocks: int = 4,
    text: str | SearchStrategy[str] = _DEFAULT,
    thinking: str | SearchStrategy[str] = _DEFAULT,
    tool_input: dict[str, Any] | SearchStrategy[dict[str, Any]] = _DEFAULT,
    tool_names: Sequence[str] = ("get_weather", "make_file"),
    server_tools: Sequence[str] = _DEFAULT,
    citations: bool = True,
    interleaved_thinking: bool = _DEFAULT,
    stop_reasons: Sequence[str] = _DEFAULT,
    pings: bool = True,
    model: str = "claude-sonnet-4-6",
) -> SearchStrategy[StreamCassette]:
    """Any valid Anthropic Messages stream, with the ``Message`` it encodes as ``.message``.

    Up to ``max_blocks`` content blocks of the kinds in ``blocks`` (default
    :data:`BLOCK_KINDS`; :data:`BETA_BLOCK_KINDS` when named), in every order the API sends
    them. A run of up to three tool calls made in parallel counts as one block, and so do
    one or two parallel server tool calls (of ``server_tools``, default
    :data:`SERVER_TOOLS`) with their results. Text carries ``citations_delta`` s
    (``citations``); thinking ends in its ``signature_delta``; redacted thinking arrives
    whole. Thinking comes first, or, with ``interleaved_thinking`` (default True), also after
    text and server tool results, as models with adaptive or interleaved thinking send it
    (never right after a client tool call: the model waits for its result). A message that
    resumes a paused turn may start with a server tool's result, and a compaction summary
    comes first.

    Every stop reason in ``stop_reasons`` (default: every one the kinds of block allow; see
    :data:`~streamreel.providers.anthropic.STOP_REASONS`), each with a last block it fits:
    ``tool_use`` after a tool call, ``pause_turn`` after a server tool (its results maybe not
    yet run), ``max_tokens`` and ``model_context_window_exceeded`` maybe in the middle of the
    last block (a tool's JSON unfinished, no ``content_block_stop``), ``compaction`` after a
    compaction summary alone. Pings anywhere after ``message_start`` (``pings``); usage in
    ``message_start`` and in ``message_delta``, the newer way too (input and cache totals
    repeated). ``text``, ``thinking`` and ``tool_input`` are values or strategies, split into
    deltas at every kind of boundary (:func:`splits`). The request matches any
    ``POST /v1/messages``.

    Shrinks toward one text block in one delta, ``end_turn``, no pings.
    """
    kinds = _check_kinds_of("anthropic_messages(blocks=...)", blocks, BLOCK_KINDS + BETA_BLOCK_KINDS)
    _check_count("anthropic_messages(max_blocks=...)", max_blocks, 1)
    if stop_reasons is _DEFAULT:
        stops = tuple(r for r in STOP_REASONS if _unreachable(r, kinds) is None)
        if not stops:
            raise _fail(f"anthropic_messages: {_unreachable('end_turn', kinds)}")
    else:
        stops = _check_kinds_of("anthropic_messages(stop_reasons=...)", stop_reasons, STOP_REASONS)
        for reason in stops:
            problem = _unreachable(reason, kinds)
            if problem is not None:
                raise _fail(f"anthropic_messages: stop reason {reason!r} {problem}")
    if server_tools is _DEFAULT:
        tools = SERVER_TOOLS
    else:
        tools = _check_kinds_of("anthropic_messages(server_tools=...)", server_tools, SERVER_TOOLS)
        if "server_tool_use" not in kinds:
            raise _fail(f"anthropic_messages(server_tools=...): no server tool is called without 'server_tool_use' in blocks={list(kinds)!r}")
    if interleaved_thinking is _DEFAULT:
        interleave = True
    else:
        interleave = _check_flag("anthropic_messages(interleaved_thinking=...)", interleaved_thinking)
        if not set(_THINKING_KINDS) & set(kinds):
            raise _fail(f"anthropic_messages(interleaved_thinking=...): there is no thinking to place without 'thinking' or 'redacted_thinking' in blocks={list(kinds)!r}")
    text_s = _required("anthropic_messages", "text", text, markdown_texts(), _check_text, "block")
    thinking_s = _required("anthropic_messages", "thinking", thinking, markdown_texts(max_fragments=12), _check_text, "block")
    tool_s = _required("anthropic_messages", "tool_input", tool_input, tool_inputs(), _check_tool_input, "block")
    names = _check_names("anthropic_messages(tool_names=...)", tool_names)
    cite = _check_flag("anthropic_messages(citations=...)", citations)
    ping = _check_flag("anthropic_messages(pings=...)", pings)
    model = _check_name("model", model)

    def ending(layout: list[str]) -> list[str]:
        """The layout, with a block added when no allowed stop reason can follow its last one."""
        if any(r in _stops_for(layout) for r in stops):
            return layout
        if stops[0] == "compaction":
            return ["compaction"]
        need = _NEEDS.get(stops[0]) or next(k for k in kinds if k not in ("tool_use", "compaction"))
        return [*layout[1:], need] if len(layout) >= max_blocks else [*layout, need]

    @st.composite
    def build(draw: Callable[[SearchStrategy[Any]], Any]) -> StreamCassette:
        drawn = draw(st.lists(st.sampled_from(kinds), min_size=1, max_size=max_blocks))
        head, first, rest = ["compaction"] if "compaction" in drawn else [], [], []
        for kind in drawn:
            if kind == "compaction":
                continue
            # Thinking stays where it was drawn only after text or a server-side result, and
            # only when a drawn coin says so: a failure that needs none shrinks to thinking first.
            if kind in _THINKING_KINDS and not (interleave and rest and rest[-1] != "tool_use" and draw(st.booleans())):
                first.append(kind)
            else:
                rest.append(kind)
        layout = ending(head + first + rest)
        stop = draw(st.sampled_from(tuple(r for r in stops if r in _stops_for(layout))))
        open_last = stop in _CUTTING and layout[-1] != "compaction" and draw(st.booleans())
        content: list[Block] = []
        for i, kind in enumerate(layout):
            last = i == len(layout) - 1
            cut = open_last and last
            if kind == "text":
                cited = _draw_citations(draw) if cite else ()
                value = draw(text_s)
                content.append(TextBlock(_deltas(draw, _cut_at(draw, value) if cut else value), cited))
            elif kind == "thinking":
                value = draw(thinking_s)
                deltas = _deltas(draw, _cut_at(draw, value) if cut else value)
                if not cut and draw(st.booleans()):
                    deltas += ("",)  # the API may send an empty thinking_delta before the signature
                content.append(ThinkingBlock(deltas, None if cut else draw(st.sampled_from(_SIGNATURES))))
            elif kind == "redacted_thinking":
                # Drawn in parts so that a redacted block costs the shrinker more than a text
                # block: a failing example that needs any block shrinks to text.
                content.append(RedactedThinkingBlock("".join(draw(st.sampled_from(_REDACTED)) for _ in range(4))))
            elif kind == "tool_use":
                parallel = draw(st.integers(1, 3))  # the model calls tools in runs, as parallel calls
                for k in range(parallel):
                    name = draw(st.sampled_from(names))
                    spelled = _spelled(draw, draw(tool_s))
                    cut_here = cut and k == parallel - 1
                    content.append(ToolUseBlock(name, _deltas(draw, _cut_at(draw, spelled) if cut_here else spelled)))
            elif kind == "server_tool_use":
                resumed = i == 0 and not cut and draw(st.booleans())
                paused = last and stop == "pause_turn" and not resumed and draw(st.booleans())
                content.extend(_draw_server_tools(draw, tools, cut=cut, calls=not resumed, results=not paused))
            elif kind == "mcp_tool_use":
                content.extend(_draw_mcp(draw, tool_s, names, cut=cut))
            else:
                content.append(CompactionBlock(draw(text_s) or _FRAGMENTS[0]))
        input_tokens = draw(st.sampled_from((12, 450, 2039)))
        delta_usage = draw(st.booleans())
        made = message_stream(
            content,
            model=model,
            input_tokens=input_tokens,
            cache_read_input_tokens=draw(st.sampled_from((0, 1024))),
            stop_reason=stop,
            stop_sequence=draw(st.sampled_from(_STOP_SEQUENCES)) if stop == "stop_sequence" else None,
            ping=False,
            open_last=open_last,
            delta_usage=delta_usage,
            delta_input_tokens=input_tokens + draw(st.sampled_from((0, 8384))) if delta_usage else None,
        )
        where = tuple(sorted(draw(st.lists(st.integers(1, len(made.events) - 1), max_size=3)))) if ping else ()
        events = insert_pings(made.events, where)
        texts = [b for b in content if isinstance(b, TextBlock)]
        thoughts = [b for b in content if isinstance(b, ThinkingBlock)]
        base = Cassette.from_events(events, path="/v1/messages", end=End(t=0.0, reason="complete"))
        return StreamCassette(
            interactions=base.interactions,
            provider="anthropic",
            text="".join(d for b in texts for d in b.deltas) if texts else None,
            text_deltas=tuple(d for b in texts for d in b.deltas),
            thinking="".join(d for b in thoughts for d in b.deltas) if thoughts else None,
            thinking_deltas=tuple(d for b in thoughts for d in b.deltas),
            message=made.message,
            blocks=tuple(content),
            stop_reason=stop,
            pings=where,
            open_last=open_last,
            betas=tuple(BETAS[k] for k in BETA_BLOCK_KINDS if k in layout),
        )

    return build()


CHOICE_KINDS = ("text", "tool_calls", "text_and_tool_calls", "refusal")
"""What one choice of :func:`openai_chat_streams` streams, gentlest first: content, parallel
tool calls, content then tool calls, a refusal."""

_REFUSALS = ("I'm sorry, but I can't help with that.", "I can’t assist with that request.", "Désolé, je ne peux pas 👎")


def _finishes_for(kind: str) -> set[str]:
    return {"tool_calls", "length"} if "tool_calls" in kind else {"stop", "length", "content_filter"}


def _interleaved(draw: Callable[[SearchStrategy[Any]], Any], items: list[int]) -> list[int]:
    """``items`` reordered by drawn keys, keeping the order of equal ones; shrinks to unchanged."""
    keys = draw(st.lists(st.integers(0, 3), min_size=len(items), max_size=len(items)))
    return [item for _, _, item in sorted(zip(keys, range(len(items)), items))]


def _schedule(draw: Callable[[SearchStrategy[Any]], Any], calls: Sequence[ToolCall]) -> tuple[tuple[ToolCall, ...], tuple[tuple[int, ...], ...]]:
    """The calls, and which calls' next piece each chunk carries: interleaved, some chunks
    carrying several. Calls are numbered by where they first appear, as the API numbers them
    (the openai SDK relies on it)."""
    order = _interleaved(draw, [i for chunk in sequential_schedule(calls) for i in chunk])
    first_seen = list(dict.fromkeys(order))
    order = [first_seen.index(i) for i in order]
    joins = draw(st.lists(st.booleans(), min_size=len(order), max_size=len(order)))
    chunks: list[list[int]] = []
    for i, join in zip(order, joins):
        if join and chunks and i not in chunks[-1]:
            chunks[-1].append(i)
        else:
            chunks.append([i])
    return tuple(calls[i] for i in first_seen), tuple(tuple(c) for c in chunks)


def openai_chat_streams(
    *,
    kinds: Sequence[str] = CHOICE_KINDS,
    max_choices: int = 1,
    max_tool_calls: int = 3,
    text: str | SearchStrategy[str] = _DEFAULT,
    tool_input: dict[str, Any] | SearchStrategy[dict[str, Any]] = _DEFAULT,
    tool_names: Sequence[str] = ("get_weather", "make_file"),
    finish_reasons: Sequence[str] = FINISH_REASONS,
    usage: bool | None = None,
    model: str = "gpt-4o-2024-08-06",
) -> SearchStrategy[StreamCassette]:
    """Any valid OpenAI Chat Completions stream, with the ``chat.completion`` it encodes as ``.message``.

    Up to ``max_choices`` choices (``n``), their chunks interleaved (each choice starts after
    the one before it, as the API sends them); each streams one of
    ``kinds`` (see :data:`CHOICE_KINDS`): content, a refusal, or up to ``max_tool_calls``
    parallel tool calls keyed by ``index`` (interleaved, several in one chunk, the first
    riding on the role chunk), and ends with a finish reason from ``finish_reasons`` that
    fits (``tool_calls`` after calls; ``length`` cuts what streamed last, a call's JSON
    included). A usage chunk with ``"choices": []`` comes before ``data: [DONE]`` when
    ``usage`` is True, never when False, drawn when None. The request matches any
    ``POST /v1/chat/completions``. Shrinks toward one choice of one content delta.
    """
    chosen = _check_kinds_of("openai_chat_streams(kinds=...)", kinds, CHOICE_KINDS)
    finishes = _check_kinds_of("openai_chat_streams(finish_reasons=...)", finish_reasons, FINISH_REASONS)
    fitting = tuple(k for k in chosen if _finishes_for(k) & set(finishes))
    if not fitting:
        raise _fail(f"openai_chat_streams: no choice of kinds={list(chosen)!r} can end with finish_reasons={list(finishes)!r}")
    _check_count("openai_chat_streams(max_choices=...)", max_choices, 1)
    _check_count("openai_chat_streams(max_tool_calls=...)", max_tool_calls, 1)
    text_s = _required("openai_chat_streams", "text", text, markdown_texts(), _check_text, "choice")
    tool_s = _required("openai_chat_streams", "tool_input", tool_input, tool_inputs(), _check_tool_input, "choice")
    names = _check_names("openai_chat_streams(tool_names=...)", tool_names)
    if usage is not None:
        _check_flag("openai_chat_streams(usage=...)", usage)
    model = _check_name("model", model)

    @st.composite
    def choice(draw: Callable[[SearchStrategy[Any]], Any]) -> Choice:
        kind = draw(st.sampled_from(fitting))
        finish = draw(st.sampled_from(tuple(f for f in finishes if f in _finishes_for(kind))))
        cut = finish == "length"
        calls = []
        if "tool_calls" in kind:
            count = draw(st.integers(1, max_tool_calls))
            for i in range(count):
                spelled = _spelled(draw, draw(tool_s))
                calls.append(ToolCall(draw(st.sampled_from(names)), _deltas(draw, _cut_at(draw, spelled) if cut and i == count - 1 else spelled)))
        content = refusal = None
        if kind == "refusal":
            refusal = _deltas(draw, _cut_at(draw, draw(st.sampled_from(_REFUSALS))) if cut else draw(st.sampled_from(_REFUSALS)))
        elif kind != "tool_calls":
            value = draw(text_s)
            content = _deltas(draw, _cut_at(draw, value) if cut and not calls else value)
        ordered, schedule = _schedule(draw, calls) if calls else ((), None)
        return Choice(content=content, refusal=refusal, tool_calls=ordered, finish_reason=finish, schedule=schedule)

    @st.composite
    def build(draw: Callable[[SearchStrategy[Any]], Any]) -> StreamCassette:
        drawn = draw(st.lists(choice(), min_size=1, max_size=max_choices))
        order = _interleaved(draw, [i for i, c in enumerate(drawn) for _ in range(chunk_count(c))])
        # The API starts the choices in index order (the openai SDK relies on it): number
        # them by where each first appears.
        first_seen = list(dict.fromkeys(order))
        choices = [drawn[i] for i in first_seen]
        order = [first_seen.index(i) for i in order]
        with_usage = draw(st.booleans()) if usage is None else usage
        made = chat_stream(choices, model=model, order=order, usage=with_usage)
        base = Cassette.from_events(made.events, path="/v1/chat/completions", end=End(t=0.0, reason="complete"))
        first = choices[0]
        return StreamCassette(
            interactions=base.interactions,
            provider="openai",
            text="".join(first.content) if first.content is not None else None,
            text_deltas=first.content or (),
            message=made.completion,
            choices=tuple(choices),
            usage=with_usage,
        )

    return build()


# ---------------------------------------------------------------- the Responses API

RESPONSE_ITEM_KINDS = ("message", "function_call", "reasoning", "file_search_call", "web_search_call", "apply_patch_call", "shell_call", "mcp_call")
"""The output items :func:`openai_responses_streams` draws, gentlest first (``mcp_call`` comes
after the server's ``mcp_list_tools``)."""

_PATCHES = ("+## Shopping Checklist\n+\n+- [ ] Milk\n", "@@ -1 +1 @@\n-old\n+new 👍\n")
_COMMANDS = ("ls -a ~/Desktop", "grep -rn \"TODO\" src | head", "echo 'naïve café'")


_ANNOTATIONS = (
    {"type": "file_citation", "file_id": "file-9RhPAs9YqVajpGXRfcgavJ", "filename": "notes.txt", "index": 0},
    {"type": "url_citation", "url": "https://en.wikipedia.org/wiki/Paris", "title": "Paris - Wikipedia", "start_index": 0, "end_index": 5},
)


def openai_responses_streams(
    *,
    kinds: Sequence[str] = RESPONSE_ITEM_KINDS,
    max_items: int = 3,
    text: str | SearchStrategy[str] = _DEFAULT,
    tool_input: dict[str, Any] | SearchStrategy[dict[str, Any]] = _DEFAULT,
    tool_names: Sequence[str] = ("get_weather", "make_file"),
    annotations: bool = True,
    statuses: Sequence[str] = ("completed", "incomplete"),
    model: str = "gpt-4o-2024-08-06",
) -> SearchStrategy[StreamCassette]:
    """Any valid OpenAI Responses API stream, with the ``response`` it encodes as ``.message``.

    Up to ``max_items`` output items of ``kinds`` (see :data:`RESPONSE_ITEM_KINDS`): messages
    whose text streams as ``output_text.delta`` s with annotations (``annotations``) arriving
    between them, function calls whose arguments stream in pieces, reasoning with a summary,
    file and web search calls, patches and shell commands streamed in pieces, MCP calls after
    their server's tool list; every event numbered by ``sequence_number``; sometimes queued
    first (a background response); ending with ``response.completed`` or
    ``response.incomplete`` (``statuses``). The request matches any
    ``POST /v1/responses``. Shrinks toward one message of one delta, completed.
    """
    chosen = _check_kinds_of("openai_responses_streams(kinds=...)", kinds, RESPONSE_ITEM_KINDS)
    ends = _check_kinds_of("openai_responses_streams(statuses=...)", statuses, ("completed", "incomplete"))
    _check_count("openai_responses_streams(max_items=...)", max_items, 1)
    text_s = _required("openai_responses_streams", "text", text, markdown_texts(), _check_text, "item")
    tool_s = _required("openai_responses_streams", "tool_input", tool_input, tool_inputs(), _check_tool_input, "item")
    names = _check_names("openai_responses_streams(tool_names=...)", tool_names)
    annotate = _check_flag("openai_responses_streams(annotations=...)", annotations)
    model = _check_name("model", model)

    @st.composite
    def build(draw: Callable[[SearchStrategy[Any]], Any]) -> StreamCassette:
        items: list[Item] = []
        for kind in draw(st.lists(st.sampled_from(chosen), min_size=1, max_size=max_items)):
            if kind == "message":
                deltas = _deltas(draw, draw(text_s)) or ("",)
                notes = draw(st.lists(st.tuples(st.integers(0, len(deltas)), st.sampled_from(_ANNOTATIONS)), max_size=2)) if annotate else []
                items.append(MessageItem(deltas, annotations=tuple(notes)))
            elif kind == "function_call":
                items.append(FunctionCallItem(draw(st.sampled_from(names)), _deltas(draw, _spelled(draw, draw(tool_s)))))
            # A reasoning or search item draws its words in two parts, so that it costs the
            # shrinker more than a message: a failure that needs any item shrinks to a message.
            elif kind == "reasoning":
                summary = "".join(draw(st.sampled_from(part)) for part in (("", "Thinking about ", "Looking up "), ("", "**the** question.", "日本語")))
                plan = draw(_SPLIT_PLANS)
                encrypted = "gAAAAABo" + hashlib.sha256(summary.encode()).hexdigest() if draw(st.booleans()) else None
                items.append(ReasoningItem(_split(plan, summary) if summary else (), encrypted_content=encrypted))
            elif kind in ("file_search_call", "web_search_call"):
                query = " ".join(draw(st.sampled_from(part)) for part in (("weather", "capital", "naïve"), ("in Paris", "of France", 'café "👍"')))
                items.append(SearchCallItem(kind, query, results=draw(st.booleans())))
            elif kind == "apply_patch_call":
                path = draw(st.sampled_from(("shopping-checklist.md", "src/app.py")))
                items.append(PatchCallItem(path, _deltas(draw, draw(st.sampled_from(_PATCHES))), operation=draw(st.sampled_from(("create_file", "update_file")))))
            elif kind == "shell_call":
                commands = draw(st.lists(st.sampled_from(_COMMANDS), min_size=1, max_size=2))
                items.append(ShellCallItem(tuple(_deltas(draw, c) for c in commands)))
            else:
                name = draw(st.sampled_from(names))
                items.append(McpListToolsItem("zip1", (name,)))
                items.append(McpCallItem("zip1", name, _deltas(draw, _spelled(draw, draw(tool_s))), output="✅ done"))
        status = draw(st.sampled_from(ends))
        events = response_events(items, status=status, model=model, background=draw(st.booleans()))
        base = Cassette.from_events(events, path="/v1/responses", end=End(t=0.0, reason="complete"))
        texts = [d for item in items if isinstance(item, MessageItem) for d in item.deltas]
        return StreamCassette(
            interactions=base.interactions,
            provider="openai",
            text="".join(texts) if texts else None,
            text_deltas=tuple(texts),
            message=final_response(events),
            blocks=tuple(items),
            stop_reason=status,
        )

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
        whole_cassette = _described(_streamable(draw(source)))
        whole = whole_cassette.interactions[0]
        events = whole.response.events or ()
        broken = []
        breaks = []
        for _ in range(attempts):
            kept = len(events) - 1 - draw(st.integers(0, len(events) - 2))
            end = End(t=events[kept - 1].t, reason=draw(st.sampled_from(ends)))
            broken.append(replace(whole, response=replace(whole.response, events=events[:kept], end=end)))
            breaks.append((kept, end.reason))
        return replace(whole_cassette, interactions=(*broken, whole), breaks=(*whole_cassette.breaks, *breaks))

    return build()


def _described(cassette: Cassette) -> StreamCassette:
    """A cassette as a :class:`StreamCassette`, so that a falsifying example prints in a line."""
    if isinstance(cassette, StreamCassette):
        return cassette
    first = cassette.interactions[0] if cassette.interactions else None
    events = len(first.response.events or ()) if first is not None else 0
    label = repr(cassette.path) if cassette.path else f"{len(cassette.interactions)} interaction(s), {events} events"
    provider = detect_provider(first) if first is not None else "sse"
    return StreamCassette(interactions=cassette.interactions, faults=cassette.faults, path=cassette.path, provider=provider, label=label)


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
    from .fault_injection import RequestFault, parse
    from .pipeline import plan as make_plan

    if not cassette.interactions or not specs:
        return specs
    own = tuple(f for f in parse(list(cassette.faults)) if not isinstance(f, RequestFault))
    while specs:
        drawn = parse(specs)
        checked = [i for i, f in enumerate(drawn) if not isinstance(f, RequestFault)]
        try:
            p = make_plan(cassette.interactions[0], (*own, *(drawn[i] for i in checked)))
        except ValueError:
            return []
        unfit = {checked[i - len(own)] for i in p.unfit if i >= len(own)}
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
        described = _described(cas)
        return replace(described, faults=(*cas.faults, *plan)) if plan else described

    return build()
