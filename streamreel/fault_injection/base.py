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
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, NamedTuple, Sequence, cast

from ..errors import FaultSpecError

if TYPE_CHECKING:
    from ..cassette import Interaction
    from ..pipeline import Plan
    from ..sse import Event

__all__ = [
    "Fault",
    "FaultOutcome",
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
    "check_bounds",
    "holds",
    "unpicked",
    "label",
    "where_cut",
    "Cut",
    "MAX_DURATION_MS",
    "MAX_COUNT",
]

REGISTRY: dict[str, type[Fault]] = {}

_KINDS = ("ms", "s", "int", "float", "str", "bool", "choice", "ints_or_names")

MAX_DURATION_MS = 3_600_000.0
"""The longest delay, silence or interval one fault parameter may ask for (one hour)."""

MAX_COUNT = 1_000_000_000
"""The largest event index, byte offset or repeat count a fault parameter may give."""

_DEFAULT_BOUNDS: dict[str, tuple[float, float]] = {
    "ms": (0.0, MAX_DURATION_MS),
    "s": (0.0, MAX_DURATION_MS / 1000.0),
    "int": (0, MAX_COUNT),
}


def spec_field(
    key: str,
    kind: str,
    *,
    default: Any = None,
    choices: Sequence[str] = (),
    positional: bool = False,
    low: float | None = None,
    high: float | None = None,
    help: str = "",
) -> Any:
    """A fault dataclass field with its spec key, value kind and valid range.

    ``kind`` is one of ``ms`` (``300ms``, ``1.5s`` or a bare number of ms), ``s`` (``30s``,
    ``500ms`` or a bare number of seconds), ``int``, ``float``, ``str``, ``bool`` (a bare key
    means true), ``choice`` (one of ``choices``) or ``ints_or_names`` (``3`` or
    ``message_stop``, several joined by ``|``). ``positional`` lets the value come first
    without a key (``speed:0``). ``low``/``high`` bound a number (inclusive); durations
    default to 0 .. one hour and whole numbers to 0 .. :data:`MAX_COUNT`, so no spec can
    schedule a byte further away than a timer can be armed.
    """
    if kind not in _KINDS:
        raise ValueError(f"unknown spec kind {kind!r}")
    lo, hi = _DEFAULT_BOUNDS.get(kind, (None, None))
    meta = {
        "key": key,
        "kind": kind,
        "choices": tuple(choices),
        "positional": positional,
        "low": lo if low is None else low,
        "high": hi if high is None else high,
        "help": help,
    }
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class FaultOutcome:
    """What one fault did to one response: ``fired`` when it changed what the response was
    planned to send, ``detail`` saying what it did or why it could not.

    JSON-friendly (:meth:`as_dict`); ``str()`` is one log line.
    """

    spec: str
    fired: bool
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"spec": self.spec, "fired": self.fired, "detail": self.detail}

    def __str__(self) -> str:
        state = "fired" if self.fired else "did not fire"
        return f"{self.spec} {state}: {self.detail}" if self.detail else f"{self.spec} {state}"


@dataclass(frozen=True)
class Context:
    """What a fault may need to know about the response it rewrites."""

    interaction: Interaction
    provider: str = "sse"  # a dialect name (streamreel.providers.names())
    seed: int = 0


@dataclass(frozen=True)
class Fault:
    """Base of every fault. Subclasses are frozen dataclasses decorated with :func:`register`.

    Every fault takes ``times``: it applies to the first ``times`` responses it could apply
    to, then the stream is served clean (None: every response). The replayer keeps the count.
    """

    name: ClassVar[str] = ""
    layer: ClassVar[str] = ""
    stage: ClassVar[int] = 50

    times: int | None = spec_field("times", "int", default=None, low=1, help="apply to the first N responses it could apply to, then serve clean")

    def __post_init__(self) -> None:
        check_bounds(self)

    def __str__(self) -> str:
        try:
            return _spec_of(self)
        except TypeError:  # a field holding something unhashable
            return to_spec(self)


class RequestFault(Fault):
    """Answers a request instead of the recorded stream, for the first requests it applies to."""

    layer: ClassVar[str] = "request"

    def intercept(self, attempt: int, ctx: Context) -> Plan | None:
        """The reply for the ``attempt``-th request (0-based) this fault answers, or None to pass."""
        raise NotImplementedError

    def describe(self, attempt: int, ctx: Context) -> str:
        """What answering the ``attempt``-th request did, for the ground truth."""
        return ""


class EventFault(Fault):
    """Rewrites the parsed events before they are encoded."""

    layer: ClassVar[str] = "event"

    def apply_events(self, events: tuple[Event, ...], ctx: Context) -> tuple[Event, ...]:
        raise NotImplementedError

    def why_not(self, events: tuple[Event, ...], ctx: Context) -> str | None:
        """Why this fault cannot change ``events`` (naming what they hold), or None when it applies."""
        return None

    def describe(self, events: tuple[Event, ...], ctx: Context) -> str:
        """What applying it to ``events`` does, for the ground truth."""
        return ""


class ByteFault(Fault):
    """Rewrites the timed byte chunks and the ending of a plan."""

    layer: ClassVar[str] = "byte"
    needs_chunks: ClassVar[bool] = False
    """Whether :meth:`why_not` iterates the chunks (the pipeline then hands it a list, not a one-shot iterator)."""

    def apply(self, plan: Plan, ctx: Context) -> Plan:
        raise NotImplementedError

    def why_not(self, plan: Plan, ctx: Context) -> str | None:
        """Why this fault cannot change ``plan`` (naming what the stream holds), or None when it applies."""
        return None

    def describe(self, plan: Plan, ctx: Context) -> str:
        """What applying it to ``plan`` does, for the ground truth."""
        return ""

    def max_delay_ms(self, events: int, size: int) -> float:
        """The most this fault can move a stream of ``events`` events and ``size`` bytes later (ms)."""
        return 0.0


def register(cls: type[Fault]) -> type[Fault]:
    """Class decorator: add a fault to the registry under ``cls.name``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs a `name`")
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise TypeError(f"fault name {cls.name!r} is already taken by {REGISTRY[cls.name].__name__}")
    if "__dataclass_fields__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} must be a frozen dataclass")
    own = cls.__dict__.get("__post_init__")
    if own is not None:

        def __post_init__(self: Fault) -> None:
            check_bounds(self)
            own(self)

        cls.__post_init__ = __post_init__  # type: ignore[method-assign]
    REGISTRY[cls.name] = cls
    return cls


def check_bounds(fault: Fault) -> None:
    """Refuse a numeric field outside its range, naming the spec key and the range."""
    for f in _fields(fault):
        meta = f.metadata
        if "key" not in meta:
            continue
        value = getattr(fault, f.name)
        if value is None or isinstance(value, (bool, str)):
            continue
        if meta["kind"] == "ints_or_names":
            for v in value:
                if isinstance(v, int) and not -MAX_COUNT <= v <= MAX_COUNT:
                    raise FaultSpecError(f"{meta['key']}: an event index must be between {-MAX_COUNT} and {MAX_COUNT}, got {v}")
            continue
        lo, hi = meta.get("low"), meta.get("high")
        if lo is None and hi is None:
            continue
        if isinstance(value, float) and not math.isfinite(value) or (lo is not None and not value >= lo) or (hi is not None and not value <= hi):
            raise FaultSpecError(f"{meta['key']} must be {_range(meta['kind'], lo, hi)}, got {_shown(meta['kind'], value)}")


def _range(kind: str, lo: float | None, hi: float | None) -> str:
    unit = {"ms": "ms", "s": "s"}.get(kind, "")
    if lo is None:
        return f"at most {_num(hi)}{unit}"
    if hi is None:
        return f"at least {_num(lo)}{unit}"
    return f"between {_num(lo)}{unit} and {_num(hi)}{unit}"


def _shown(kind: str, value: Any) -> str:
    unit = {"ms": "ms", "s": "s"}.get(kind, "")
    return f"{value:.15g}{unit}" if isinstance(value, float) else f"{value}{unit}"


# ---------------------------------------------------------------- parsing

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
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
    keys = [f.metadata["key"] for f in _fields(cls) if "key" in f.metadata and f.name != "times"] + ["times"]
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
        ms = number * {"ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}[unit]
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


@functools.lru_cache(maxsize=256)
def _spec_of(fault: Fault) -> str:
    """:func:`to_spec`, once per distinct fault: every response names its faults in its ground truth."""
    return to_spec(fault)


def to_spec(fault: Fault) -> str:
    """The spec string of a fault: its positional field, then the fields that differ from their defaults, ``times`` last.

    A positional field is always shown, bare when it is the fault's only field besides ``times`` (``speed:0``).
    """
    parts: list[str] = []
    spec_fields = [f for f in _fields(fault) if "key" in f.metadata]
    own = [f for f in spec_fields if f.name != "times"]
    ordered = [f for f in own if f.metadata["positional"]] + [f for f in own if not f.metadata["positional"]] + [f for f in spec_fields if f.name == "times"]
    for f in ordered:
        meta: Mapping[str, Any] = f.metadata
        value = getattr(fault, f.name)
        default = f.default if f.default is not dataclasses.MISSING else None
        if meta["positional"]:
            if len(own) == 1:
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


def label(event: Event) -> str:
    """A short name for an event: its ``event:`` field, its JSON ``type``, ``[DONE]``, or ``comment``."""
    if event.event is not None:
        return event.event
    if event.is_comment:
        return "comment"
    if event.data == "[DONE]":
        return "[DONE]"
    return event.type or "message"


def holds(events: Sequence[Event], limit: int = 12) -> str:
    """What a stream holds, for an error: ``9 events: message_start, ping, content_block_delta x3, ...``."""
    if not events:
        return "no events"
    runs: list[list[Any]] = []
    for ev in events:
        name = label(ev)
        if runs and runs[-1][0] == name:
            runs[-1][1] += 1
        else:
            runs.append([name, 1])
    shown = ", ".join(name if k == 1 else f"{name} x{k}" for name, k in runs[:limit])
    more = f", ... ({len(runs) - limit} more runs)" if len(runs) > limit else ""
    count = f"{len(events)} event" + ("" if len(events) == 1 else "s")
    return f"{count}: {shown}{more}"


def unpicked(events: Sequence[Event], selectors: Sequence[int | str], *, key: str = "event", usable: Any = None) -> str | None:
    """Why the selectors cannot apply, naming what the stream holds: one of them picks no event
    (a typo, an index past the end), or, with ``usable``, none of the picked events is usable.
    None when each selector picks an event and some picked event is usable."""
    n = len(events)
    every: set[int] = set()
    for sel in selectors:
        picked = [i for i, ev in enumerate(events) if selects(ev, i, n, sel)]
        every.update(picked)
        if picked:
            continue
        if isinstance(sel, int):
            return f"{key}={sel} is past the stream's events (indices 0..{n - 1}, or -1..-{n} from the end); the stream holds {holds(events)}" if n else f"{key}={sel}: the stream holds no events"
        return f"{key}={sel} picks no event; the stream holds {holds(events)}"
    if usable is not None and not any(usable(events[i]) for i in every):
        names = ", ".join(sorted({label(events[i]) for i in every}))
        return f"{key}={'|'.join(map(str, selectors))} picks only events with no data to cut ({names}); the stream holds {holds(events)}"
    return None


class Cut(NamedTuple):
    """Where a cut (``stall``, ``disconnect``) falls in a plan: ``problem`` says why it cannot, else
    ``offset`` is the byte it falls at, ``where`` says so in words, ``at_end`` when nothing follows it."""

    problem: str | None
    offset: int
    where: str
    at_end: bool


def where_cut(plan: Plan, after_events: int | None, after_bytes: int | None, inside: int | None = None, keep: int | None = None) -> Cut:
    """Locate a cut at ``after_events`` whole events, ``after_bytes`` bytes, or ``keep`` bytes into event ``inside`` (1-based).

    The plan's chunks must be re-iterable (a list or the event view). A cut past what the
    stream sends is a problem naming what it holds.
    """
    events = plan.events
    n = len(events)
    if inside is not None:
        if inside > n:
            return Cut(f"inside={inside} is past the end; the stream holds {holds(events)}", 0, "", False)
        size = len(events[inside - 1].wire)
        k = size // 2 if keep is None else keep
        if not 1 <= k < size:
            return Cut(f"keep={k} does not fall inside event {inside} ({label(events[inside - 1])}), which is {size} bytes; keep must be 1..{size - 1}", 0, "", False)
        offset = sum(len(e.wire) for e in events[: inside - 1]) + k
        where = f"inside event {inside} of {n} ({label(events[inside - 1])}), {k} of its {size} bytes in"
        key = f"inside={inside},keep={k}"
    elif after_bytes is not None:
        offset = after_bytes
        where = f"after byte {after_bytes}"
        key = f"after_bytes={after_bytes}"
    else:
        k = after_events or 0
        if k > n:
            return Cut(f"after={k} is past the end; the stream holds {holds(events)}", 0, "", False)
        offset = sum(len(e.wire) for e in events[:k])
        where = f"after event {k} of {n}" if k else "before the first event"
        key = f"after={k}"
    from ..pipeline import EventChunks

    sent = sum(len(e.wire) for e in plan.chunks.events) if isinstance(plan.chunks, EventChunks) else sum(len(c.data) for c in plan.chunks)
    if offset > sent:
        whole = sum(len(e.wire) for e in events)
        if sent >= whole:
            return Cut(f"{key} is past the end; the stream is {whole} bytes, {holds(events)}", 0, "", False)
        return Cut(f"{key} falls after byte {sent}, where an earlier fault already ends the stream", 0, "", False)
    if after_bytes is not None:
        where = f"{where} of {sent}"
    return Cut(None, offset, where, offset == sent)
