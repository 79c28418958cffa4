"""The cassette: recorded interactions with their timing, and its version-1 YAML file format.

Loading uses libyaml's safe loader when present and never executes YAML tags; a file
that does not fit the format fails with a :class:`CassetteError` naming the file, the
line and the field (``cassettes/x.yaml:14: interactions[0].response.events[3].t:
expected a number``). Loading is bounded: nesting deeper than :data:`MAX_DEPTH`, aliases
that would expand by more than :data:`MAX_ALIAS_NODES` nodes ("billion laughs") or by more
than :data:`MAX_ALIAS_BYTES` characters of text (one long string aliased many times), an alias
inside itself and duplicate keys are errors too. Saving is atomic, so a killed recorder
never leaves half a file.
"""

from __future__ import annotations

import gc
import json
import math
import os
import re
import stat
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, Union

import yaml

from .errors import CassetteError
from .sse import LINE_ENDINGS, Event, encode, usual_line_ending

__all__ = [
    "Cassette",
    "Interaction",
    "Request",
    "Response",
    "End",
    "Event",
    "END_REASONS",
    "VERSION",
    "MAX_DEPTH",
    "MAX_ALIAS_NODES",
    "MAX_ALIAS_BYTES",
    "bundled",
    "bundled_names",
    "load",
    "loads",
    "save",
    "dumps",
    "write_atomic",
]

VERSION = 1
MAX_DEPTH = 200
"""Deepest nesting of lists and mappings a cassette may have (JSON bodies included)."""
MAX_ALIAS_NODES = 1_000_000
"""How many nodes YAML aliases may add to a cassette beyond the ones written out."""
MAX_ALIAS_BYTES = 16 * 1024 * 1024
"""How many characters of text YAML aliases may add to a cassette beyond the ones written out:
a 1 MB string aliased a thousand times is few nodes but a gigabyte to hold and to send."""
_MAX_INT_DIGITS = 1000
END_REASONS = ("complete", "upstream_disconnect", "client_cancel", "timeout")

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BaseDumper = yaml.SafeDumper  # libyaml's emitter escapes characters beyond the BMP (emoji) even with allow_unicode

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class Request:
    """A recorded request. A field left as ``None`` matches anything when replaying."""

    method: str | None = None
    path: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None

    @property
    def route(self) -> str | None:
        """The path without its query string (a request path has no host, even when it starts with ``//``)."""
        return None if self.path is None else self.path.partition("#")[0].partition("?")[0]

    @property
    def query(self) -> str:
        return "" if self.path is None else self.path.partition("#")[0].partition("?")[2]


@dataclass(frozen=True)
class End:
    """How a recorded stream ended: ``reason`` is one of :data:`END_REASONS`; ``t`` in ms from
    the request, None meaning right after the last event."""

    t: float | None = None
    reason: str = "complete"


@dataclass(frozen=True)
class Response:
    """A recorded response: a stream (``events``) or a plain body (``body``, for JSON and errors)."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    headers_at: float = 0.0
    events: tuple[Event, ...] | None = None
    body: Any = None
    end: End = field(default_factory=End)

    @property
    def is_stream(self) -> bool:
        return self.events is not None

    @cached_property
    def line_ending(self) -> str:
        """The line ending most of the stream's events use (LF without events): what events
        made up on replay (a fault's ``ping``, an ``error``) end their lines with."""
        return usual_line_ending(self.events or ())

    def body_bytes(self) -> bytes:
        """The non-streaming body as it goes on the wire."""
        body = self.body
        if body is None:
            return b""
        if isinstance(body, bytes):
            return body
        if isinstance(body, str):
            return body.encode("utf-8")
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class Interaction:
    request: Request = field(default_factory=Request)
    response: Response = field(default_factory=Response)


@dataclass(frozen=True)
class Cassette:
    """A list of interactions plus the faults applied on every replay of it (fault spec strings)."""

    interactions: tuple[Interaction, ...] = ()
    faults: tuple[str, ...] = ()
    path: str | None = field(default=None, compare=False)

    def __len__(self) -> int:
        return len(self.interactions)

    def with_interaction(self, interaction: Interaction) -> Cassette:
        return replace(self, interactions=(*self.interactions, interaction))

    @classmethod
    def from_events(
        cls,
        events: Iterable[Event],
        *,
        method: str | None = "POST",
        path: str | None = "/v1/messages",
        body: Any = None,
        headers_at: float = 0.0,
        end: End | None = None,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> Cassette:
        """A one-interaction cassette serving ``events``; handy in tests and strategies."""
        events = tuple(events)
        last = events[-1].t if events else headers_at
        return cls(
            interactions=(
                Interaction(
                    request=Request(method=method, path=path, body=body),
                    response=Response(
                        status=status,
                        headers=dict(headers or {"content-type": "text/event-stream; charset=utf-8"}),
                        headers_at=headers_at,
                        events=events,
                        end=end or End(t=last, reason="complete"),
                    ),
                ),
            )
        )


# ---------------------------------------------------------------- loading


_BUNDLED = Path(__file__).parent / "cassettes"


def bundled_names() -> list[str]:
    """Names of the cassettes shipped with streamreel."""
    return sorted(p.stem for p in _BUNDLED.glob("*.yaml"))


def bundled(name: str) -> Path:
    """Path of a cassette shipped with streamreel: ``text``, ``tool_use``, ``thinking``, ``pings``, ``openai_chat``."""
    stem = name[:-5] if name.endswith(".yaml") else name
    path = _BUNDLED / f"{stem}.yaml"
    if not path.is_file():
        raise CassetteError(f"no bundled cassette {name!r}; bundled: {', '.join(bundled_names())}", path=name)
    return path


def load(path: PathLike) -> Cassette:
    """Read and validate a cassette file.

    A file in the layout streamreel writes is read line by line, its events without the full
    YAML machinery; anything else (a hand-edited file) goes through the full loader, which
    gives the same result, or the error naming file, line and field.
    """
    name = os.fspath(path)
    from ._fastyaml import load_lines

    try:
        with open(name, encoding="utf-8", newline="") as f:
            fast = load_lines(f, name)
    except OSError:
        fast = None
    return fast if fast is not None else _load_full(name)


def _load_full(name: str) -> Cassette:
    """:func:`load` through the full YAML loader, whatever the layout."""
    try:
        data = Path(name).read_bytes()
    except FileNotFoundError:
        raise CassetteError("no such file", path=name) from None
    except OSError as e:
        raise CassetteError(f"cannot read: {e.strerror or e}", path=name) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = _line_at(data[: e.start].decode("utf-8"), e.start)
        raise CassetteError(f"not UTF-8 text ({e.reason}: byte {data[e.start]:#04x} at offset {e.start})", path=name, line=line) from None
    with _collector_paused():
        return _loads(text, name)


def loads(text: str, *, path: str | None = None) -> Cassette:
    """Parse and validate cassette YAML text; ``path`` only names the source in errors."""
    from ._fastyaml import iter_lines, load_lines

    fast = load_lines(iter_lines(text), path)
    if fast is not None:
        return fast
    with _collector_paused():
        return _loads(text, path)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cycle collector around building or writing a whole cassette: hundreds of
    thousands of YAML nodes set it off again and again over a growing heap (two thirds of a
    100,000-event load), and none of them forms a cycle that outlives the call."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _loads(text: str, path: str | None) -> Cassette:
    node, raw = _parse(text, path)
    return _Reader(node, path).cassette(raw)


def _parse(text: str, path: str | None) -> tuple[yaml.Node | None, Any]:
    """The checked node tree and the plain data it holds (errors name the file and line)."""
    try:
        loader = _Loader(text)
    except UnicodeEncodeError as e:
        line = _line_at(text, e.start)
        raise CassetteError(f"not valid text: {e.reason} (U+{ord(text[e.start]):04X})", path=path, line=line) from None
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_nodes(node, path)
        raw = None if node is None else _construct(loader, node, path)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = min(mark.line + 1, _line_at(text, len(text))) if mark is not None else 1
        raise CassetteError(f"not valid YAML: {e.problem or e.context}", path=path, line=line) from None
    except yaml.reader.ReaderError as e:
        line = _line_at(text, e.position)
        char = e.character if isinstance(e.character, str) else chr(e.character)
        raise CassetteError(f"not valid YAML: character U+{ord(char):04X} is not allowed ({e.reason})", path=path, line=line) from None
    except yaml.YAMLError as e:
        raise CassetteError(f"not valid YAML: {e}", path=path, line=1) from None
    except RecursionError:
        raise CassetteError(f"not valid YAML: nested deeper than {MAX_DEPTH} levels", path=path, line=1) from None
    finally:
        loader.dispose()
    return node, raw


_EXPONENT = re.compile(r"[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)e[-+]?[0-9]+", re.IGNORECASE)
_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def _line_at(text: str, position: int) -> int:
    """1-based line of ``text[position]``, counting line breaks as YAML does."""
    return len(_BREAK.findall(text, 0, position)) + 1


def _children(node: yaml.Node) -> list[tuple[str | int, yaml.Node]]:
    if isinstance(node, yaml.SequenceNode):
        return list(enumerate(node.value))
    if isinstance(node, yaml.MappingNode):
        out: list[tuple[str | int, yaml.Node]] = []
        for k, v in node.value:
            label = k.value if isinstance(k, yaml.ScalarNode) else "?"
            out.append((label, k))
            out.append((label, v))
        return out
    return []


def _construct(loader: Any, node: yaml.Node, path: str | None) -> Any:
    """Build the data; a value that does not fit its explicit tag (``!!timestamp x``, ``!!int y``)
    makes PyYAML raise plain exceptions, turned here into an error at that value."""
    try:
        return loader.construct_document(node)
    except yaml.YAMLError:
        raise
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError):
        pass
    stack: list[tuple[yaml.Node, tuple[str | int, ...]]] = [(node, ())]
    seen: set[int] = set()
    while stack:
        item, where = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, yaml.ScalarNode):
            try:
                yaml.constructor.SafeConstructor().construct_object(item, deep=True)
            except Exception:
                raise CassetteError(f"{item.value!r} does not fit its YAML tag {item.tag!r}", path=path, line=item.start_mark.line + 1, field=_dotted(where) or None) from None
        stack.extend((c, (*where, label)) for label, c in reversed(_children(item)))
    raise CassetteError("not valid YAML: a value does not fit its tag", path=path, line=1)


def _check_nodes(root: yaml.Node, path: str | None) -> None:
    """Refuse, before building anything, what would make loading blow up: deep nesting, alias
    bombs, an alias inside itself, numbers too long to read; and duplicate keys, which YAML
    would silently collapse to the last one.

    One pass without paths over every node (a 100,000-event cassette has 700,000 of them);
    paths are worked out only for an error, and the expansion of aliases is measured only
    when the file has any.
    """

    def fail(node: yaml.Node, message: str, where: tuple[str | int, ...] | None = None) -> CassetteError:
        where = _path_to(root, node) if where is None else where
        return CassetteError(message, path=path, line=node.start_mark.line + 1, field=_dotted(where) or None)

    seen: set[int] = set()
    aliased = False
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    scalar, mapping = yaml.ScalarNode, yaml.MappingNode
    while stack:
        node, depth = stack.pop()
        key = id(node)
        if key in seen:
            aliased = True
            continue
        seen.add(key)
        if depth > MAX_DEPTH:
            raise fail(node, f"nested deeper than {MAX_DEPTH} levels")
        kind = type(node)
        if kind is scalar:
            if node.tag == _INT_TAG and len(node.value) > _MAX_INT_DIGITS:
                raise fail(node, f"a number with {len(node.value)} digits; at most {_MAX_INT_DIGITS} are allowed")
            continue
        depth += 1
        if kind is mapping:
            keys: dict[str, yaml.Node] = {}
            for k, v in node.value:
                if type(k) is scalar and k.value != "<<":
                    first = keys.setdefault(k.value, k)
                    if first is not k:
                        raise fail(k, f"duplicate key {k.value!r} (first on line {first.start_mark.line + 1}); YAML would keep only the last")
                stack.append((k, depth))
                stack.append((v, depth))
        else:
            stack.extend((c, depth) for c in node.value)
    if aliased:
        _check_aliases(root, fail)


_INT_TAG = "tag:yaml.org,2002:int"


def _check_aliases(root: yaml.Node, fail: Any) -> None:
    """With aliases in the file (rare, so paths are kept here): refuse one inside itself, and an
    expansion deeper than :data:`MAX_DEPTH`, larger than :data:`MAX_ALIAS_NODES` nodes or than
    :data:`MAX_ALIAS_BYTES` characters of scalars."""
    size: dict[int, int] = {}
    text: dict[int, int] = {}
    depth: dict[int, int] = {}
    distinct = distinct_text = 0
    stack: list[tuple[yaml.Node, tuple[str | int, ...], bool]] = [(root, (), False)]
    while stack:
        node, where, done = stack.pop()
        key = id(node)
        kids = _children(node)
        if done:
            size[key] = 1 + sum(size[id(c)] for _, c in kids)
            text[key] = len(node.value) if type(node) is yaml.ScalarNode else sum(text[id(c)] for _, c in kids)
            depth[key] = 1 + max((depth[id(c)] for _, c in kids), default=0)
            if depth[key] > MAX_DEPTH:
                raise fail(node, f"nested deeper than {MAX_DEPTH} levels", where)
            if size[key] > distinct + MAX_ALIAS_NODES:
                raise fail(node, f"aliases expand this to {size[key]:,} nodes; at most {MAX_ALIAS_NODES:,} more than written are allowed", where)
            if text[key] > distinct_text + MAX_ALIAS_BYTES:
                raise fail(node, f"aliases expand this to {text[key]:,} characters of text; at most {MAX_ALIAS_BYTES:,} more than written are allowed", where)
            continue
        if key in size:
            continue
        if key in depth:
            raise fail(node, "an alias refers to a node that contains it (a recursive structure)", where)
        depth[key] = 0
        distinct += 1
        if type(node) is yaml.ScalarNode:
            distinct_text += len(node.value)
        stack.append((node, where, True))
        stack.extend((c, (*where, label), False) for label, c in reversed(kids))


def _path_to(root: yaml.Node, target: yaml.Node) -> tuple[str | int, ...]:
    """Where ``target`` sits under ``root`` (first found), for an error message."""
    stack: list[tuple[yaml.Node, tuple[str | int, ...]]] = [(root, ())]
    seen: set[int] = set()
    while stack:
        node, where = stack.pop()
        if node is target:
            return where
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.extend((c, (*where, label)) for label, c in reversed(_children(node)))
    return ()


class _Reader:
    """Validates the plain data a YAML file held, with paths for error messages."""

    def __init__(self, node: yaml.Node | None, path: str | None) -> None:
        self.node = node
        self.path = path

    def fail(self, where: tuple[str | int, ...], message: str) -> CassetteError:
        return CassetteError(message, path=self.path, line=_line_of(self.node, where), field=_dotted(where) or None)

    def mapping(self, value: Any, where: tuple[str | int, ...], allowed: Sequence[str]) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {_kind(value)}")
        for key in value:
            if key not in allowed:
                raise self.fail((*where, key) if isinstance(key, str) else where, f"unknown field {key!r}; expected one of: {', '.join(allowed)}")
        return value

    def number(self, value: Any, where: tuple[str | int, ...], *, minimum: float = 0.0) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            hint = ""
            if isinstance(value, str) and _EXPONENT.fullmatch(value.strip()):
                mantissa, _, exponent = value.strip().lower().partition("e")
                mantissa += "" if "." in mantissa else ".0"
                exponent = exponent if exponent[0] in "+-" else "+" + exponent
                hint = f"; YAML reads {value.strip()} as text, write {mantissa}e{exponent} (YAML 1.1 wants the dot and the sign)"
            raise self.fail(where, f"expected a number, got {_kind(value)}{hint}")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number) or number < minimum:
            raise self.fail(where, f"expected a number >= {minimum:g}, got {_kind(value)}")
        return number

    def text_field(self, value: Any, where: tuple[str | int, ...], *, single_line: bool = False) -> str:
        if not isinstance(value, str):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
            else:
                raise self.fail(where, f"expected a string, got {_kind(value)}")
        if single_line and ("\n" in value or "\r" in value):
            raise self.fail(where, "must be a single line (no line breaks)")
        return value

    def headers(self, value: Any, where: tuple[str | int, ...]) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping of header names to values, got {_kind(value)}")
        out = {}
        for k, v in value.items():
            if not isinstance(k, str) or not _TOKEN.fullmatch(k):
                raise self.fail((*where, str(k)), f"not a valid header name: {_kind(k)}")
            v = self.text_field(v, (*where, k), single_line=True)
            if _CONTROL.search(v):
                raise self.fail((*where, k), "a header value may not hold control characters")
            out[k.lower()] = v
        return out

    def json_value(self, value: Any, where: tuple[str | int, ...]) -> Any:
        """``value`` itself if it is plain JSON data (what a body or event data holds)."""
        stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, where)]
        while stack:
            item, at = stack.pop()
            if isinstance(item, dict):
                for k, v in item.items():
                    if not isinstance(k, str):
                        raise self.fail(at, f"JSON keys are strings, got {_kind(k)}")
                    stack.append((v, (*at, k)))
            elif isinstance(item, list):
                stack.extend((v, (*at, i)) for i, v in enumerate(item))
            elif isinstance(item, float) and not math.isfinite(item):
                raise self.fail(at, f"JSON has no {item!r}")
            elif item is not None and not isinstance(item, (str, int, float, bool)):
                raise self.fail(at, f"expected JSON data, got {_kind(item)}")
        return value

    def cassette(self, raw: Any) -> Cassette:
        if not isinstance(raw, dict) or "streamreel" not in raw:
            raise self.fail(
                (),
                "not a streamreel cassette (no 'streamreel: 1' at the top); "
                "convert a raw SSE capture or a vcrpy cassette with `streamreel import FILE -o CASSETTE`",
            )
        top = self.mapping(raw, (), ("streamreel", "interactions", "faults"))
        version = top["streamreel"]
        if version != VERSION:
            raise self.fail(("streamreel",), f"unsupported cassette version {version!r}; this streamreel reads version {VERSION}")
        items = top.get("interactions")
        items = [] if items is None else items
        if not isinstance(items, list):
            raise self.fail(("interactions",), f"expected a list, got {_kind(items)}")
        interactions = tuple(self.interaction(item, ("interactions", i)) for i, item in enumerate(items))
        faults = self.faults(top.get("faults"))
        return Cassette(interactions=interactions, faults=faults, path=self.path)

    def faults(self, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self.fail(("faults",), f"expected a list of fault specs, got {_kind(value)}")
        from .fault_injection import parse

        specs = []
        for i, spec in enumerate(value):
            spec = self.text_field(spec, ("faults", i), single_line=True)
            try:
                parse(spec)
            except ValueError as e:
                raise self.fail(("faults", i), str(e)) from None
            specs.append(spec)
        return tuple(specs)

    def interaction(self, raw: Any, where: tuple[str | int, ...]) -> Interaction:
        item = self.mapping(raw, where, ("request", "response"))
        if "response" not in item:
            raise self.fail(where, "missing field 'response'")
        return Interaction(
            request=self.request({} if item.get("request") is None else item["request"], (*where, "request")),
            response=self.response(item["response"], (*where, "response")),
        )

    def request(self, raw: Any, where: tuple[str | int, ...]) -> Request:
        req = self.mapping(raw, where, ("method", "path", "headers", "body"))
        method = req.get("method")
        path = req.get("path")
        return Request(
            method=None if method is None else self.text_field(method, (*where, "method"), single_line=True).upper(),
            path=None if path is None else self.text_field(path, (*where, "path"), single_line=True),
            headers=self.headers(req.get("headers"), (*where, "headers")),
            body=self.body(req.get("body"), (*where, "body")),
        )

    def body(self, value: Any, where: tuple[str | int, ...]) -> Any:
        if value is None or isinstance(value, (str, bytes)):
            return value
        if not isinstance(value, (dict, list)):
            raise self.fail(where, f"expected a string or a mapping, got {_kind(value)}")
        return self.json_value(value, where)

    def response(self, raw: Any, where: tuple[str | int, ...]) -> Response:
        res = self.mapping(raw, where, ("status", "headers", "headers_at", "line_ending", "events", "body", "end"))
        status = res.get("status", 200)
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise self.fail((*where, "status"), f"expected an HTTP status code (100-599), got {status!r}")
        if "events" in res and "body" in res:
            raise self.fail(where, "has both 'events' and 'body'; a response is either a stream or a plain body")
        headers_at = self.number(res.get("headers_at", 0.0), (*where, "headers_at"))
        line_ending = "\n"
        if "line_ending" in res:
            if "events" not in res:
                raise self.fail((*where, "line_ending"), "line_ending is how a stream's events end their lines; this response has no events")
            line_ending = self.line_end(res["line_ending"], (*where, "line_ending"))
        events: tuple[Event, ...] | None = None
        if "events" in res:
            raw_events = [] if res["events"] is None else res["events"]
            if not isinstance(raw_events, list):
                raise self.fail((*where, "events"), f"expected a list, got {_kind(raw_events)}")
            events = self.events(raw_events, (*where, "events"), headers_at, line_ending)
        body = self.body(res.get("body"), (*where, "body"))
        end = self.end(res.get("end"), (*where, "end"), events, headers_at)
        return Response(
            status=status,
            headers=self.headers(res.get("headers"), (*where, "headers")),
            headers_at=headers_at,
            events=events,
            body=body,
            end=end,
        )

    def line_end(self, value: Any, where: tuple[str | int, ...]) -> str:
        if isinstance(value, str) and value in _LINE_END_NAMES:
            return _LINE_END_NAMES[value]
        raise self.fail(where, f"expected one of {', '.join(_LINE_END_NAMES)}, got {_kind(value)}")

    def event_line_ending(self, value: Any, where: tuple[str | int, ...], ev: Event) -> Event:
        """``ev`` with its own line ending: one name, or a list with one per line (an event that mixes them)."""
        if not isinstance(value, list):
            return replace(ev, line_ending=self.line_end(value, where))
        ends = tuple(self.line_end(v, (*where, i)) for i, v in enumerate(value))
        ev = replace(ev, line_ending=ends)
        try:
            encode(ev)
        except ValueError as e:
            raise self.fail(where, str(e).replace(repr(ends), "[" + ", ".join(_LINE_END_NAME[e] for e in ends) + "]")) from None
        if ends[-2:] == ("\r", "\n"):
            raise self.fail(where, "a line ending in cr followed by the blank line ending in lf is one crlf on the wire; the event would not end there")
        return ev

    def events(self, raw: list[Any], where: tuple[str | int, ...], headers_at: float, line_ending: str = "\n") -> tuple[Event, ...]:
        out: list[Event] = []
        prev = headers_at
        for i, item in enumerate(raw):
            at = (*where, i)
            ev = self.mapping(item, at, ("t", "event", "data", "id", "retry", "comment", "line_ending"))
            t = prev if ev.get("t") is None else self.number(ev["t"], (*at, "t"))
            if t < prev and out:
                raise self.fail((*at, "t"), f"{t:g} ms is earlier than the event before it ({prev:g} ms); events must be in time order")
            prev = t
            data = ev.get("data")
            if isinstance(data, (dict, list)):
                data = json.dumps(self.json_value(data, (*at, "data")), ensure_ascii=False, separators=(",", ":"))
            elif data is not None:
                data = self.text_field(data, (*at, "data"))
            retry = ev.get("retry")
            if retry is not None and (isinstance(retry, bool) or not isinstance(retry, int) or retry < 0):
                raise self.fail((*at, "retry"), f"expected a whole number of ms, got {retry!r}")
            fields = {k: ev.get(k) for k in ("event", "id", "comment")}
            for key, value in fields.items():
                if value is not None:
                    fields[key] = self.text_field(value, (*at, key), single_line=key != "comment")
            if data is None and all(v is None for v in fields.values()) and retry is None:
                raise self.fail(at, "an event needs at least one of: event, data, id, retry, comment")
            event = Event(t=t, event=fields["event"], data=data, id=fields["id"], retry=retry, comment=fields["comment"], line_ending=line_ending)
            if "line_ending" in ev:
                event = self.event_line_ending(ev["line_ending"], (*at, "line_ending"), event)
            out.append(event)
        return tuple(out)

    def end(self, raw: Any, where: tuple[str | int, ...], events: tuple[Event, ...] | None, headers_at: float) -> End:
        if raw is None:
            return End()
        end = self.mapping(raw, where, ("t", "reason"))
        reason = end.get("reason", "complete")
        if reason not in END_REASONS:
            raise self.fail((*where, "reason"), f"expected one of {', '.join(END_REASONS)}, got {reason!r}")
        if end.get("t") is None:
            return End(reason=reason)
        t = self.number(end["t"], (*where, "t"))
        last = events[-1].t if events else headers_at
        if t < last:
            raise self.fail((*where, "t"), f"{t:g} ms is earlier than the last event ({last:g} ms)")
        return End(t=t, reason=reason)


_LINE_END_NAMES = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}
_LINE_END_NAME = {v: k for k, v in _LINE_END_NAMES.items()}
assert tuple(_LINE_END_NAMES.values()) == LINE_ENDINGS

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, (int, float)):
        shown = repr(value)
        return f"a number ({shown if len(shown) <= 40 else shown[:20] + f'... ({len(shown)} digits)'})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"a string ({shown!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _dotted(where: tuple[str | int, ...]) -> str:
    out = ""
    for key in where:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out


def _line_of(node: yaml.Node | None, where: tuple[str | int, ...]) -> int:
    """1-based line of the node at ``where`` (or of its closest existing parent; 1 for an empty file)."""
    if node is None:
        return 1
    for key in where:
        child = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == key:
                    child = v
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
            child = node.value[key]
        if child is None:
            break
        node = child
    return node.start_mark.line + 1


# ---------------------------------------------------------------- saving


class _Flow(dict):
    """A mapping written on one line (events)."""


class _FlowList(list):
    """A list written on one line (an event's per-line line ends)."""


class _Dumper(_BaseDumper):  # type: ignore[misc, valid-type]
    pass


def _represent_flow(dumper: yaml.SafeDumper, data: _Flow) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=True)


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


def _represent_dict(dumper: yaml.SafeDumper, data: dict) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=False)


_Dumper.add_representer(_Flow, _represent_flow)
_Dumper.add_representer(_FlowList, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True))
_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(dict, _represent_dict)


def _ms(value: float) -> float | int:
    value = round(value, 3)
    return int(value) if abs(value) < 1e15 and value == int(value) else value


def _event_data(ev: Event, usual: str = "\n") -> _Flow:
    out = _Flow(t=_ms(ev.t))
    for key in ("event", "id", "retry", "comment", "data"):
        value = getattr(ev, key)
        if value is not None:
            out[key] = value
    le = ev.line_ending
    if le != usual:
        out["line_ending"] = _LINE_END_NAME[le] if type(le) is str else _FlowList(_LINE_END_NAME[e] for e in le)
    return out


def _interaction_data(item: Interaction, events: Callable[[Response], Any] | None = None) -> dict[str, Any]:
    """The plain data one interaction is written as; ``events`` may stand in for its events' list."""
    req: dict[str, Any] = {}
    for key in ("method", "path"):
        value = getattr(item.request, key)
        if value is not None:
            req[key] = value
    if item.request.headers:
        req["headers"] = dict(item.request.headers)
    if item.request.body is not None:
        req["body"] = item.request.body
    res = item.response
    out_res: dict[str, Any] = {"status": res.status}
    if res.headers:
        out_res["headers"] = dict(res.headers)
    out_res["headers_at"] = _ms(res.headers_at)
    if res.events is not None:
        usual = res.line_ending
        if usual != "\n":
            out_res["line_ending"] = _LINE_END_NAME[usual]
        out_res["events"] = [_event_data(e, usual) for e in res.events] if events is None or not res.events else events(res)
    if res.body is not None:
        out_res["body"] = res.body
    if res.events is not None or res.end != End():
        end: dict[str, Any] = {"reason": res.end.reason}
        if res.end.t is not None:
            end = {"t": _ms(res.end.t), **end}
        out_res["end"] = _Flow(end)
    return {"request": req, "response": out_res}


def dumps(cassette: Cassette, *, comment: str | None = None) -> str:
    """The cassette as version-1 YAML; ``comment`` lines (provenance, licence) go on top."""
    from ._fastyaml import dump_pieces

    return "".join(dump_pieces(cassette, comment))


def _dumps_full(cassette: Cassette, comment: str | None = None) -> str:
    """:func:`dumps` through PyYAML's emitter for every value: what the fast writer must equal."""
    doc: dict[str, Any] = {"streamreel": VERSION, "interactions": [_interaction_data(i) for i in cassette.interactions]}
    if cassette.faults:
        doc["faults"] = list(cassette.faults)
    with _collector_paused():
        text = _dump_yaml(doc)
    if comment:
        text = "".join(f"# {line}\n".replace("# \n", "#\n") for line in comment.splitlines()) + text
    return text


def _dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=2**31 - 1, default_flow_style=False)  # type: ignore[no-any-return]


def save(cassette: Cassette, path: PathLike, *, comment: str | None = None) -> None:
    """Write atomically: a temp file in the same directory, fsync, then rename over ``path``."""
    from ._fastyaml import dump_pieces

    _write_atomic_pieces(path, dump_pieces(cassette, comment))


def write_atomic(path: PathLike, text: str) -> None:
    """Replace ``path`` with ``text`` all at once: readers (and a crash, a kill or a full disk) see the
    old file or the new one, never half of one, and no temp file is left behind on an error.
    The new file keeps the old one's permissions (0o644 for a new file)."""
    _write_atomic_pieces(path, (text,))


def _write_atomic_pieces(path: PathLike, pieces: Iterable[str]) -> None:
    """:func:`write_atomic` of the text the pieces make, each written as it comes (a large cassette is never one string)."""
    target = Path(os.fspath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except OSError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        try:
            os.fchmod(fd, mode)
            for piece in pieces:
                view = memoryview(piece.encode("utf-8"))
                while view:
                    view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(target.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable; best effort (some filesystems cannot open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
