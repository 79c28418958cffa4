"""What every fault is: a frozen dataclass registered by name, with one spec grammar.

``NAME[:key=value,...]`` parses to the same object the Python constructor builds, and
``str(fault)`` gives the spec back, so a fault plan round-trips through the CLI, the
pytest marker, a cassette's ``faults:`` list and the ``x-streamreel-faults`` header.

Three layers, applied in this order by :func:`streamreel.pipeline.plan`:

- :class:`RequestFault` may answer a request instead of the recorded stream (``http``);
- :class:`EventFault` rewrites the parsed events (``truncate``, ``error``, ``drop``, ``pings``);
- :class:`ByteFault` rewrites the timed byte chunks and the ending, ordered by ``stage``:
  ``speed`` 0, ``latency`` 10, ``stall`` 20, ``disconnect`` 30, ``throttle`` 40, ``fragment`` 50,
  so cuts land on event boundaries before the bytes are split. Byte faults only delay,
  split and cut the encoded stream (never change bytes); the pipeline counts completed
  events from byte offsets afterwards.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence, cast

from ..errors import FaultSpecError

if TYPE_CHECKING:
    from ..cassette import Interaction
    from ..pipeline import Plan
    from ..sse import Event

__all__ = [
    "Fault",
    "RequestFault",
    "EventFault",
    "ByteFault",
    "Context",
    "spec_field",
    "register",
    "REGISTRY",
    "parse",
    "parse_one",
    "to_spec",
    "selects",
    "selected",
    "check_cut_point",
]

REGISTRY: dict[str, type[Fault]] = {}

_KINDS = ("ms", "s", "int", "float", "str", "bool", "choice", "ints_or_names")


def spec_field(
    key: str,
    kind: str,
    *,
    default: Any = None,
    choices: Sequence[str] = (),
    positional: bool = False,
    help: str = "",
) -> Any:
    """A fault dataclass field with its spec key and value kind.

    ``kind`` is one of ``ms`` (``300ms``, ``1.5s`` or a bare number of ms), ``s`` (``30s``,
    ``500ms`` or a bare number of seconds), ``int``, ``float``, ``str``, ``bool`` (a bare key
    means true), ``choice`` (one of ``choices``) or ``ints_or_names`` (``3`` or
    ``message_stop``, several joined by ``|``). ``positional`` lets the value come first
    without a key (``speed:0``).
    """
    if kind not in _KINDS:
        raise ValueError(f"unknown spec kind {kind!r}")
    meta = {"key": key, "kind": kind, "choices": tuple(choices), "positional": positional, "help": help}
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Context:
    """What a fault may need to know about the response it rewrites."""

    interaction: Interaction
    provider: str = "sse"  # "anthropic" | "openai" | "sse"
    seed: int = 0


class Fault:
    """Base of every fault. Subclasses are frozen dataclasses decorated with :func:`register`."""

    name: ClassVar[str] = ""
    layer: ClassVar[str] = ""
    stage: ClassVar[int] = 50

    def __str__(self) -> str:
        return to_spec(self)


class RequestFault(Fault):
    """Answers a request instead of the recorded stream, for the first requests it applies to."""

    layer: ClassVar[str] = "request"

    def intercept(self, attempt: int, ctx: Context) -> Plan | None:
        """The reply for the ``attempt``-th request (0-based) this fault has seen, or None to pass."""
        raise NotImplementedError


class EventFault(Fault):
    """Rewrites the parsed events before they are encoded."""

    layer: ClassVar[str] = "event"

    def apply_events(self, events: tuple[Event, ...], ctx: Context) -> tuple[Event, ...]:
        raise NotImplementedError


class ByteFault(Fault):
    """Rewrites the timed byte chunks and the ending of a plan."""

    layer: ClassVar[str] = "byte"

    def apply(self, plan: Plan, ctx: Context) -> Plan:
        raise NotImplementedError


def register(cls: type[Fault]) -> type[Fault]:
    """Class decorator: add a fault to the registry under ``cls.name``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs a `name`")
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise TypeError(f"fault name {cls.name!r} is already taken by {REGISTRY[cls.name].__name__}")
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__name__} must be a frozen dataclass")
    REGISTRY[cls.name] = cls
    return cls


# ---------------------------------------------------------------- parsing

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m)?\s*$")
_SEPARATORS = re.compile(r"\s*;\s*|\n+")


def parse(spec: str | Fault | Sequence[str | Fault] | None) -> tuple[Fault, ...]:
    """Parse one spec, several joined by ``;``, or a list of specs and fault objects."""
    if spec is None:
        return ()
    if isinstance(spec, Fault):
        return (spec,)
    if isinstance(spec, str):
        return tuple(parse_one(part) for part in _SEPARATORS.split(spec.strip()) if part.strip())
    out: list[Fault] = []
    for item in spec:
        out.extend(parse(item))
    return tuple(out)


def parse_one(spec: str) -> Fault:
    """Parse ``NAME[:key=value,...]`` into its fault object."""
    text = spec.strip()
    name, _, args = text.partition(":")
    name = name.strip()
    cls = REGISTRY.get(name)
    if cls is None:
        known = ", ".join(sorted(REGISTRY))
        raise FaultSpecError(f"unknown fault {name!r}; known faults: {known}", spec=spec)
    fields = {f.metadata["key"]: f for f in _fields(cls) if "key" in f.metadata}
    positional = [f for f in _fields(cls) if f.metadata.get("positional")]
    kwargs: dict[str, Any] = {}
    for i, token in enumerate(t.strip() for t in args.split(",") if args.strip()):
        key, eq, value = token.partition("=")
        key = key.strip()
        if not eq:
            if i == 0 and positional and key not in fields:
                f, value = positional[0], key
            elif key in fields and fields[key].metadata["kind"] == "bool":
                f, value = fields[key], "true"
            elif key in fields:
                raise FaultSpecError(f"key {key!r} needs a value ({key}=...)", spec=spec)
            else:
                raise FaultSpecError(_unknown_key(cls, key), spec=spec)
        else:
            found = fields.get(key) or _by_field_name(cls, key)
            if found is None:
                raise FaultSpecError(_unknown_key(cls, key), spec=spec)
            f = found
        if f.name in kwargs:
            raise FaultSpecError(f"key {f.metadata['key']!r} given twice", spec=spec)
        kwargs[f.name] = _coerce(f, value.strip(), spec)
    try:
        return cls(**kwargs)
    except FaultSpecError as e:
        raise FaultSpecError(e.reason, spec=spec) from None
    except (TypeError, ValueError) as e:
        raise FaultSpecError(str(e), spec=spec) from None


def _fields(cls: type[Fault] | Fault) -> tuple[dataclasses.Field[Any], ...]:
    return _class_fields(cls if isinstance(cls, type) else type(cls))


@functools.lru_cache(maxsize=None)
def _class_fields(cls: type[Fault]) -> tuple[dataclasses.Field[Any], ...]:
    """A fault class's fields, looked up once: a burst of requests parses many specs."""
    return dataclasses.fields(cast(Any, cls))


def _by_field_name(cls: type[Fault], key: str) -> dataclasses.Field[Any] | None:
    for f in _fields(cls):
        if f.name == key and "key" in f.metadata:
            return f
    return None


def _unknown_key(cls: type[Fault], key: str) -> str:
    keys = [f.metadata["key"] for f in _fields(cls) if "key" in f.metadata]
    return f"{cls.name!r} has no key {key!r}; valid keys: {', '.join(keys) or '(none)'}"


def _coerce(f: dataclasses.Field[Any], value: str, spec: str) -> Any:
    meta = f.metadata
    kind, key = meta["kind"], meta["key"]

    def bad(expected: str) -> FaultSpecError:
        return FaultSpecError(f"{key}: expected {expected}, got {value!r}", spec=spec)

    if kind in ("ms", "s"):
        m = _DURATION.match(value)
        if not m:
            raise bad("a duration such as 300ms or 1.5s")
        number, unit = float(m.group(1)), m.group(2) or kind
        if unit == kind:
            return number
        ms = number * {"ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]
        return ms if kind == "ms" else ms / 1000.0
    if kind == "int":
        try:
            return int(value)
        except ValueError:
            raise bad("a whole number") from None
    if kind == "float":
        try:
            number = float(value)
        except ValueError:
            raise bad("a number") from None
        if not math.isfinite(number):
            raise bad("a finite number")
        return number
    if kind == "bool":
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise bad("true or false")
    if kind == "choice":
        if value not in meta["choices"]:
            raise bad(f"one of {', '.join(meta['choices'])}")
        return value
    if kind == "ints_or_names":
        parts = tuple(p.strip() for p in value.split("|") if p.strip())
        if not parts:
            raise bad("an event index or name")
        return tuple(int(p) if re.fullmatch(r"-?\d+", p) else p for p in parts)
    return value


def to_spec(fault: Fault) -> str:
    """The spec string of a fault: its positional field, then the fields that differ from their defaults.

    A positional field is always shown, bare when it is the fault's only field (``speed:0``).
    """
    parts: list[str] = []
    spec_fields = [f for f in _fields(fault) if "key" in f.metadata]
    for f in spec_fields:
        meta: Mapping[str, Any] = f.metadata
        value = getattr(fault, f.name)
        default = f.default if f.default is not dataclasses.MISSING else None
        if meta["positional"]:
            if len(spec_fields) == 1:
                parts.append(_format(meta["kind"], value))
                continue
        elif value == default:
            continue
        if meta["kind"] == "bool" and value is True:
            parts.append(meta["key"])
        else:
            parts.append(f"{meta['key']}={_format(meta['kind'], value)}")
    return f"{fault.name}:{','.join(parts)}" if parts else fault.name


def _format(kind: str, value: Any) -> str:
    if kind == "ms":
        return f"{_num(value)}ms"
    if kind == "s":
        ms = value * 1000.0
        if not float(value).is_integer() and ms == round(ms, 6) and float(round(ms, 6)).is_integer():
            return f"{int(round(ms))}ms"
        return f"{_num(value)}s"
    if kind == "bool":
        return "true" if value else "false"
    if kind == "ints_or_names":
        return "|".join(str(v) for v in value)
    if isinstance(value, float):
        return _num(value)
    return str(value)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# ---------------------------------------------------------------- event selectors


def selects(event: Event, index: int, count: int, selector: int | str) -> bool:
    """Whether ``selector`` (0-based index, negative from the end, or an event name) picks an event.

    A name matches the SSE ``event:`` field, the JSON payload's ``type``/``object`` (for
    data-only streams) or the whole ``data`` (``[DONE]``).
    """
    if isinstance(selector, int):
        return index == (selector if selector >= 0 else count + selector)
    return event.event == selector or event.data == selector or (event.event is None and event.type == selector)


def selected(events: Sequence[Event], selectors: Sequence[int | str]) -> set[int]:
    """Indices of the events any of ``selectors`` picks."""
    n = len(events)
    return {i for i, ev in enumerate(events) if any(selects(ev, i, n, s) for s in selectors)}


def check_cut_point(after_events: int | None, after_bytes: int | None) -> None:
    """Validate a fault's ``after``/``after_bytes`` pair (at most one, neither negative)."""
    if after_events is not None and after_bytes is not None:
        raise ValueError("give after (events) or after_bytes (bytes), not both")
    if after_events is not None and after_events < 0:
        raise ValueError(f"after must be >= 0 events, got {after_events}")
    if after_bytes is not None and after_bytes < 0:
        raise ValueError(f"after_bytes must be >= 0, got {after_bytes}")
