"""Cassettes at file speed: the layout streamreel writes, one event per line, read and written without a node per value.

Loading goes through the file line by line. Each run of event lines under an ``events:``
key (``    - {t: 380.1, event: message_start, data: '{...}'}``) is read by one regular
expression straight into events; every other line (requests, headers, ends: a few per
interaction) goes to the full YAML loader, with all its checks, as a small document in
which each run of events is one placeholder. A line the expression does not take whole,
an escape it does not know, a plain value YAML would read as something other than text,
anything out of the ordinary, and the file is left to the full loader instead, so what
comes back (a cassette, or an error naming file, line and field) is always the full
loader's. An event line written another way on one line (by hand: a ``data`` mapping,
other quoting, a comment after it) is read alone by the full loader, with its checks, so a
hand-edited event does not send a large file to the full loader. A large file is never
held whole: only its events and its small skeleton.

Saving writes what PyYAML's emitter writes for the same document, byte for byte (each
value quoted as the emitter would), one event line at a time; an event holding a value
that needs more than plain or single-quoted text goes through the emitter itself.
"""

from __future__ import annotations

import math
import re
import secrets
import time
from typing import Any, Iterable, Iterator

import yaml

from .cassette import _LINE_END_NAME, MAX_DEPTH, VERSION, Cassette, Response, _collector_paused, _dump_yaml, _event_data, _interaction_data, _ms, _parse, _Reader
from .errors import CassetteError
from .sse import Event

__all__ = ["iter_lines", "load_lines", "dump_pieces"]


class _Bail(Exception):
    """Not the layout streamreel writes: leave the file to the full loader."""


# What YAML reads as itself inside a quoted scalar on one line (no line breaks, no control
# characters, no BOM), minus what the expression must see as syntax.
_BAD = "\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029\\ud800-\\udfff\\ufeff\\ufffe\\uffff\\U0010ffff"
_SINGLE = f"'[^'{_BAD}]*(?:''[^'{_BAD}]*)*'"
_DOUBLE = f'"[^"\\\\{_BAD}]*(?:\\\\[^{_BAD}][^"\\\\{_BAD}]*)*"'
_PLAIN_REST = f"[^{_BAD},?\\[\\]{{}}:]"
_PLAIN = f"(?:[^ {_BAD}#,\\[\\]{{}}&*!|>'\"%@`?:-]|-(?=[^ {_BAD},?\\[\\]{{}}:]))(?:{_PLAIN_REST}*[^ {_BAD},?\\[\\]{{}}:])?"
_TEXT = f"(?:{_SINGLE}|{_DOUBLE}|{_PLAIN})"
_NUMBER = r"(?:0|[1-9][0-9]{0,17})(?:\.[0-9]{0,17}(?:e[-+][0-9]{1,3})?)?"
_INT = r"(?:0|[1-9][0-9]{0,17})"

_EVENT_LINE = re.compile(
    f"- \\{{t: ({_NUMBER})"
    f"(?:, event: ({_TEXT}))?(?:, id: ({_TEXT}))?(?:, retry: ({_INT}))?(?:, comment: ({_TEXT}))?(?:, data: ({_TEXT}))?"
    r"(?:, line_ending: (lf|crlf|cr))?\}\r?\n?\Z"
)
_EVENTS_KEY = re.compile(r"( *)events:\r?\n?\Z")
_LINE_ENDING_KEY = re.compile(r"( *)line_ending: (lf|crlf|cr)\r?\n?\Z")
_LINE_ENDS = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}

_ESCAPES = {"0": "\0", "a": "\x07", "b": "\x08", "t": "\t", "n": "\n", "v": "\x0b", "f": "\x0c", "r": "\r", "e": "\x1b", '"': '"', "\\": "\\", "N": "\x85", "_": "\xa0", "L": "\u2028", "P": "\u2029"}
_ESCAPE = re.compile(r'\\(?:([0abtnvfre"\\N_LP])|x([0-9A-Fa-f]{2})|u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|(.))', re.DOTALL)
_STR_TAG = "tag:yaml.org,2002:str"
_RESOLVER = yaml.resolver.Resolver()
_plain_is_text: dict[str, bool] = {}


def _is_text(value: str) -> bool:
    """Whether YAML reads this plain scalar as a string (not a number, a boolean, a null, a date...)."""
    known = _plain_is_text.get(value)
    if known is None:
        known = _RESOLVER.resolve(yaml.ScalarNode, value, (True, False)) == _STR_TAG
        if len(_plain_is_text) < 4096:
            _plain_is_text[value] = known
    return known


def _unescape_one(m: re.Match[str]) -> str:
    if m.group(1) is not None:
        return _ESCAPES[m.group(1)]
    if m.group(5) is not None:
        raise _Bail
    code = int(m.group(2) or m.group(3) or m.group(4), 16)
    if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
        raise _Bail
    return chr(code)


def _text(token: str) -> str:
    first = token[0]
    if first == "'":
        inner = token[1:-1]
        return inner.replace("''", "'") if "''" in inner else inner
    if first == '"':
        inner = token[1:-1]
        return _ESCAPE.sub(_unescape_one, inner) if "\\" in inner else inner
    if " #" in token or token.startswith(("---", "...")) or not _is_text(token):
        raise _Bail
    return token


# ---------------------------------------------------------------- loading


def iter_lines(text: str) -> Iterator[str]:
    """The lines of ``text`` with their ends, one at a time (no list of them all)."""
    start = 0
    find = text.find
    while True:
        end = find("\n", start)
        if end < 0:
            if start < len(text):
                yield text[start:]
            return
        yield text[start : end + 1]
        start = end + 1


PACE_LINES = 2048
"""Lines read between two moments the loader lets other threads run (``time.sleep(0)``). A
server loads a cassette on a worker thread while its event loop keeps streams in flight; left
to the interpreter's own switching, a loop waiting on the interpreter lock was held off for
most of a 100,000-event load (300 ms), here it waits a few milliseconds at most."""


def _paced(lines: Iterable[str]) -> Iterator[str]:
    for n, line in enumerate(lines, 1):
        yield line
        if not n % PACE_LINES:
            time.sleep(0)


class _Block(list):  # type: ignore[type-arg]
    """A run of event lines, standing in for the list the full loader would have built."""

    def __init__(self, index: int, line_ending: str, original: str) -> None:
        super().__init__()
        self.index = index
        self.line_ending = line_ending
        self.original = original
        self.events: tuple[Event, ...] = ()


def load_lines(lines: Iterable[str], path: str | None) -> Cassette | None:
    """The cassette in ``lines`` if it is in the layout streamreel writes, else None (use the full loader)."""
    try:
        with _collector_paused():
            return _load(_paced(lines), path)
    except (_Bail, CassetteError, UnicodeDecodeError):
        return None


def _load(lines: Iterable[str], path: str | None) -> Cassette:
    nonce = "__streamreel_events_" + secrets.token_hex(8) + "_"
    skeleton: list[str] = []
    blocks: list[_Block] = []
    names: dict[str, str] = {}
    line_ending: tuple[str, str] | None = None  # (indent, ending) of a `line_ending:` line just read
    block: list[Event] | None = None
    indent = item = default = ""
    opened = 0
    prev = 0.0
    for line in lines:
        if block is not None:
            if line.startswith(item):
                m = _EVENT_LINE.match(line, len(indent))
                if m is None:  # an event line written some other way (by hand): the full loader reads that line alone
                    slow = _event_alone(line[len(indent) :], path, default)
                    if block and slow.t < prev:
                        raise _Bail
                    prev = slow.t
                    block.append(slow)
                    continue
                t_s, ev_s, id_s, retry_s, comment_s, data_s, le_s = m.groups()
                t = float(t_s)
                if (block and t < prev) or not math.isfinite(t):
                    raise _Bail
                prev = t
                event = id_ = comment = data = None
                if ev_s is not None:
                    event = names.get(ev_s)
                    if event is None:
                        event = names[ev_s] = _text(ev_s)
                    if "\n" in event or "\r" in event:
                        raise _Bail
                if id_s is not None:
                    id_ = _text(id_s)
                    if "\n" in id_ or "\r" in id_:
                        raise _Bail
                if comment_s is not None:
                    comment = _text(comment_s)
                if data_s is not None:
                    data = _text(data_s)
                elif event is None and id_ is None and retry_s is None and comment is None:
                    raise _Bail
                block.append(Event(t, event, data, id_, None if retry_s is None else int(retry_s), comment, default if le_s is None else _LINE_ENDS[le_s]))
                continue
            if not block:  # `events:` with no event lines under it: an ordinary line after all
                skeleton[opened] = blocks.pop().original
            else:
                blocks[-1].events = tuple(block)
            block = None
        m = _EVENTS_KEY.match(line)
        if m is not None:
            indent = m.group(1)
            item = indent + "- "
            default = line_ending[1] if line_ending is not None and line_ending[0] == indent else "\n"
            placeholder = _Block(len(blocks), default, line)
            blocks.append(placeholder)
            opened = len(skeleton)
            skeleton.append(f"{indent}events: {nonce}{placeholder.index}\n")
            block = []
            line_ending = None
            continue
        m = _LINE_ENDING_KEY.match(line)
        line_ending = None if m is None else (m.group(1), _LINE_ENDS[m.group(2)])
        skeleton.append(line)
    if block is not None:
        if not block:
            skeleton[opened] = blocks.pop().original
        else:
            blocks[-1].events = tuple(block)
    node, raw = _parse("".join(skeleton), path)
    del skeleton
    if blocks:
        _place(raw, nonce, blocks)
    reader = _FastReader(node, path)
    cassette: Cassette = reader.cassette(raw)
    if sorted(reader.used) != list(range(len(blocks))):
        raise _Bail  # a placeholder landed somewhere else than a response's events (inside a string, say)
    return cassette


def _event_alone(text: str, path: str | None, line_ending: str) -> Event:
    """One event line that is not in the fast layout, through the full loader and its checks.

    Read alone, a line means what it means in the file unless it leans on the rest of it: an
    alias to an anchor elsewhere, a tag handle from a directive (both fail alone), an event
    without ``t`` (whose time is the one before it), nesting that only the depth around it
    takes past the limit. All of those go back to the full loader with the whole file.
    """
    if not text.startswith("- {"):
        raise _Bail
    node, raw = _parse(text, path)
    if not isinstance(raw, list) or len(raw) != 1 or not isinstance(raw[0], dict) or raw[0].get("t") is None:
        raise _Bail
    if _depth(node) > MAX_DEPTH - _EVENT_DEPTH:
        raise _Bail
    (event,) = _Reader(node, path).events(raw, ("interactions", 0, "response", "events"), 0.0, line_ending)
    return event


_EVENT_DEPTH = 4
"""How much deeper an event's list sits in a cassette than at the top of a line read alone."""


def _depth(root: yaml.Node | None) -> int:
    deepest = 0
    stack = [(root, 1)] if root is not None else []
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, yaml.SequenceNode):
            stack.extend((c, depth + 1) for c in node.value)
        elif isinstance(node, yaml.MappingNode):
            stack.extend((c, depth + 1) for pair in node.value for c in pair)
    return deepest


def _place(raw: Any, nonce: str, blocks: list[_Block]) -> None:
    """Put each block where its placeholder is: the ``events`` of a response."""
    items = raw.get("interactions") if isinstance(raw, dict) else None
    for item in items if isinstance(items, list) else ():
        res = item.get("response") if isinstance(item, dict) else None
        value = res.get("events") if isinstance(res, dict) else None
        if isinstance(value, str) and value.startswith(nonce):
            index = value[len(nonce) :]
            if not index.isdigit() or int(index) >= len(blocks):
                raise _Bail
            res["events"] = blocks[int(index)]


class _FastReader(_Reader):  # type: ignore[misc]
    """The full loader's checks on the skeleton; a placeholder stands for its events, already read."""

    def __init__(self, node: yaml.Node | None, path: str | None) -> None:
        super().__init__(node, path)
        self.used: list[int] = []

    def events(self, raw: list[Any], where: tuple[str | int, ...], headers_at: float, line_ending: str = "\n") -> tuple[Event, ...]:
        if type(raw) is _Block:
            if raw.line_ending != line_ending:
                raise _Bail  # the response says its line ending after its events: not the layout we write
            self.used.append(raw.index)
            return raw.events
        return super().events(raw, where, headers_at, line_ending)


# ---------------------------------------------------------------- saving


_SAFE = re.compile("[\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010fffe]*")
_FLOW_PLAIN = re.compile(r"(?!---|\.\.\.)(?:[^ #,\[\]{}&*!|>'\"%@`?:-]|-(?=[^ ]))[^,?\[\]{}:]*")


def _scalar(value: str) -> str | None:
    """``value`` as the emitter writes it inside a flow mapping, if plain or single-quoted; else None."""
    if not _SAFE.fullmatch(value):
        return None
    if value and _FLOW_PLAIN.fullmatch(value) and value[-1] != " " and " #" not in value and _is_text(value):
        return value
    return "'" + value.replace("'", "''") + "'"


def _number(value: float | int) -> str | None:
    if type(value) is int:
        return str(value)
    if type(value) is not float or not math.isfinite(value):
        return None
    text = repr(value).lower()
    if "." not in text and "e" in text:
        text = text.replace("e", ".0e", 1)
    return text


def dump_pieces(cassette: Cassette, comment: str | None = None) -> Iterator[str]:
    """The cassette's YAML, in pieces to write one after another: the same text as PyYAML's full dump."""
    nonce = "__streamreel_events_" + secrets.token_hex(8) + "_"
    streams: list[Response] = []

    def placeholder(res: Response) -> str:
        streams.append(res)
        return f"{nonce}{len(streams) - 1}"

    doc: dict[str, Any] = {"streamreel": VERSION, "interactions": [_interaction_data(i, placeholder) for i in cassette.interactions]}
    if cassette.faults:
        doc["faults"] = list(cassette.faults)
    if comment:
        yield "".join(f"# {line}\n".replace("# \n", "#\n") for line in comment.splitlines())
    with _collector_paused():
        skeleton = _dump_yaml(doc)
    mark = f": {nonce}"
    for line in iter_lines(skeleton):
        at = line.find(mark)
        if at < 0 or not line[:at].endswith("events"):
            yield line
            continue
        res = streams[int(line[at + len(mark) :].rstrip("\n"))]
        indent = line[: at - len("events")]
        yield f"{indent}events:\n"
        yield from _event_lines(res, indent)


def _event_lines(res: Response, indent: str, batch: int = 2000) -> Iterator[str]:
    usual = res.line_ending
    out: list[str] = []
    for ev in res.events or ():
        line = _event_line(ev, usual, indent)
        out.append(line if line is not None else _emitted_line(ev, usual, indent))
        if len(out) >= batch:
            yield "".join(out)
            out.clear()
    if out:
        yield "".join(out)


def _event_line(ev: Event, usual: str, indent: str) -> str | None:
    t = _number(_ms(ev.t))
    if t is None:
        return None
    parts = [indent, "- {t: ", t]
    for key, value in (("event", ev.event), ("id", ev.id), ("retry", ev.retry), ("comment", ev.comment), ("data", ev.data)):
        if value is None:
            continue
        if key == "retry":
            if type(value) is not int:
                return None
            text: str | None = str(value)
        else:
            text = _scalar(value) if type(value) is str else None
        if text is None:
            return None
        parts += (", ", key, ": ", text)
    le = ev.line_ending
    if le != usual:
        if type(le) is not str:
            return None
        parts += (", line_ending: ", _LINE_END_NAME[le])
    parts.append("}\n")
    return "".join(parts)


def _emitted_line(ev: Event, usual: str, indent: str) -> str:
    """One event written by PyYAML itself (a value that needs double quotes, a per-line line ending), nested
    as in a cassette: a line break the emitter writes inside a value is followed by the indentation there."""
    text = _dump_yaml({"streamreel": VERSION, "interactions": [{"response": {"events": [_event_data(ev, usual)]}}]})
    head = "\n    events:\n"
    return text[text.index(head) + len(head) :]
