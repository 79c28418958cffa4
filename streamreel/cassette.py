"""The cassette: recorded interactions with their timing, and its version-1 YAML file format.

Loading uses libyaml's safe loader when present and never executes YAML tags; a file
that does not fit the format fails with a :class:`CassetteError` naming the file, the
line and the field (``cassettes/x.yaml:14: interactions[0].response.events[3].t:
expected a number``). Saving is atomic, so a killed recorder never leaves half a file.
"""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, Union
from urllib.parse import urlsplit

import yaml

from .errors import CassetteError
from .sse import Event

__all__ = [
    "Cassette",
    "Interaction",
    "Request",
    "Response",
    "End",
    "Event",
    "END_REASONS",
    "VERSION",
    "bundled",
    "bundled_names",
    "load",
    "loads",
    "save",
    "dumps",
    "write_atomic",
]

VERSION = 1
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
        """The path without its query string."""
        return None if self.path is None else urlsplit(self.path).path

    @property
    def query(self) -> str:
        return "" if self.path is None else urlsplit(self.path).query


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
    """Read and validate a cassette file."""
    name = os.fspath(path)
    try:
        text = Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CassetteError("no such file", path=name) from None
    except UnicodeDecodeError as e:
        raise CassetteError(f"not UTF-8 text ({e.reason} at byte {e.start})", path=name) from None
    return loads(text, path=name)


def loads(text: str, *, path: str | None = None) -> Cassette:
    """Parse and validate cassette YAML text; ``path`` only names the source in errors."""
    try:
        raw = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        raise CassetteError(f"not valid YAML: {e.problem or e.context}", path=path, line=line) from None
    except yaml.YAMLError as e:
        raise CassetteError(f"not valid YAML: {e}", path=path) from None
    return _Reader(text, path).cassette(raw)


class _Reader:
    """Validates the plain data a YAML file held, with paths for error messages."""

    def __init__(self, text: str, path: str | None) -> None:
        self.text = text
        self.path = path

    def fail(self, where: tuple[str | int, ...], message: str) -> CassetteError:
        return CassetteError(message, path=self.path, line=_line_of(self.text, where), field=_dotted(where) or None)

    def mapping(self, value: Any, where: tuple[str | int, ...], allowed: Sequence[str]) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {_kind(value)}")
        for key in value:
            if key not in allowed:
                raise self.fail((*where, key) if isinstance(key, str) else where, f"unknown field {key!r}; expected one of: {', '.join(allowed)}")
        return value

    def number(self, value: Any, where: tuple[str | int, ...], *, minimum: float = 0.0) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(where, f"expected a number, got {_kind(value)}")
        if not math.isfinite(value) or value < minimum:
            raise self.fail(where, f"expected a number >= {minimum:g}, got {value!r}")
        return float(value)

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
        return {str(k).lower(): self.text_field(v, (*where, str(k)), single_line=True) for k, v in value.items()}

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
        items = top.get("interactions") or []
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
            request=self.request(item.get("request") or {}, (*where, "request")),
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
            body=req.get("body"),
        )

    def response(self, raw: Any, where: tuple[str | int, ...]) -> Response:
        res = self.mapping(raw, where, ("status", "headers", "headers_at", "events", "body", "end"))
        status = res.get("status", 200)
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise self.fail((*where, "status"), f"expected an HTTP status code (100-599), got {status!r}")
        if "events" in res and "body" in res:
            raise self.fail(where, "has both 'events' and 'body'; a response is either a stream or a plain body")
        headers_at = self.number(res.get("headers_at", 0.0), (*where, "headers_at"))
        events: tuple[Event, ...] | None = None
        if "events" in res:
            raw_events = res["events"] or []
            if not isinstance(raw_events, list):
                raise self.fail((*where, "events"), f"expected a list, got {_kind(raw_events)}")
            events = self.events(raw_events, (*where, "events"), headers_at)
        body = res.get("body")
        if body is not None and not isinstance(body, (str, bytes, dict, list)):
            raise self.fail((*where, "body"), f"expected a string or a mapping, got {_kind(body)}")
        end = self.end(res.get("end"), (*where, "end"), events, headers_at)
        return Response(
            status=status,
            headers=self.headers(res.get("headers"), (*where, "headers")),
            headers_at=headers_at,
            events=events,
            body=body,
            end=end,
        )

    def events(self, raw: list[Any], where: tuple[str | int, ...], headers_at: float) -> tuple[Event, ...]:
        out: list[Event] = []
        prev = headers_at
        for i, item in enumerate(raw):
            at = (*where, i)
            ev = self.mapping(item, at, ("t", "event", "data", "id", "retry", "comment"))
            t = prev if ev.get("t") is None else self.number(ev["t"], (*at, "t"))
            if t < prev and out:
                raise self.fail((*at, "t"), f"{t:g} ms is earlier than the event before it ({prev:g} ms); events must be in time order")
            prev = t
            data = ev.get("data")
            if isinstance(data, (dict, list)):
                data = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
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
            out.append(Event(t=t, event=fields["event"], data=data, id=fields["id"], retry=retry, comment=fields["comment"]))
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


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
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


def _line_of(text: str, where: tuple[str | int, ...]) -> int | None:
    """1-based line of the node at ``where`` (or of its closest existing parent)."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return None
    if node is None:
        return None
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
_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(dict, _represent_dict)


def _ms(value: float) -> float | int:
    value = round(value, 3)
    return int(value) if value == int(value) else value


def _event_data(ev: Event) -> _Flow:
    out = _Flow(t=_ms(ev.t))
    for key in ("event", "id", "retry", "comment", "data"):
        value = getattr(ev, key)
        if value is not None:
            out[key] = value
    return out


def _interaction_data(item: Interaction) -> dict[str, Any]:
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
        out_res["events"] = [_event_data(e) for e in res.events]
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
    doc: dict[str, Any] = {"streamreel": VERSION, "interactions": [_interaction_data(i) for i in cassette.interactions]}
    if cassette.faults:
        doc["faults"] = list(cassette.faults)
    text = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=2**31 - 1, default_flow_style=False)
    if comment:
        text = "".join(f"# {line}\n".replace("# \n", "#\n") for line in comment.splitlines()) + text
    return text


def save(cassette: Cassette, path: PathLike, *, comment: str | None = None) -> None:
    """Write atomically: a temp file in the same directory, fsync, then rename over ``path``."""
    write_atomic(path, dumps(cassette, comment=comment))


def write_atomic(path: PathLike, text: str) -> None:
    """Replace ``path`` with ``text`` all at once: readers (and a crash, a kill or a full disk) see the
    old file or the new one, never half of one, and no temp file is left behind on an error.
    The new file keeps the old one's permissions (0o644 for a new file)."""
    target = Path(os.fspath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except OSError:
        mode = 0o644
    data = text.encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
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
