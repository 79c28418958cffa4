"""The replay pipeline, with or without a socket.

events ─▶ event faults ─▶ encode (once per event) ─▶ byte faults ─▶ timed chunks + ending

Encoding is the dialect's (:meth:`streamreel.providers.Dialect.framed`): SSE for most, the
AWS event stream's binary frames for Bedrock; byte faults then cut and split those bytes.

:func:`plan` turns one recorded interaction and a fault plan into a :class:`Plan`: the
status and headers with their time, then :class:`Chunk` s (bytes with the time, in ms
from the request, at which they go out) and an :class:`Ending`. The replayer writes a
plan to a socket against a monotonic clock; a property test can iterate the same chunks
directly and feed a parser, thousands of examples a second, with no server and no sleep.

Byte faults only delay, split and cut the encoded bytes, so after them every chunk's
``events_done`` is recounted from the events' encoded sizes (:func:`_counted`), and
:func:`cut` finds "after N events" by size: both stay exact however the bytes were split.
"""

from __future__ import annotations

from collections.abc import Sized
from dataclasses import dataclass, field, replace
from functools import lru_cache
from operator import add
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence

from .cassette import Cassette, End, Interaction
from .providers import get as dialect_named
from .providers import detect_provider
from .sse import Event

if TYPE_CHECKING:
    from .fault_injection import Fault, FaultOutcome

__all__ = ["Chunk", "EventChunks", "Ending", "Plan", "plan", "timed_chunks", "ENDINGS", "ending_for", "cut", "MAX_SCHEDULE_MS", "check_fit"]

ENDINGS = ("end", "close", "reset", "hang")
"""How a response ends on the wire: ``end`` the chunked terminator (a clean end of body),
``close`` a FIN without the terminator, ``reset`` a TCP RST, ``hang`` silence with the
connection held open until the client leaves."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes to write at ``at_ms`` after the request arrived; ``events_done`` counts the
    events complete once they are written (fragments of one event share the count)."""

    at_ms: float
    data: bytes
    events_done: int


@dataclass(frozen=True, slots=True)
class Ending:
    """How and when the body ends; ``at_ms`` None means right after the last chunk."""

    how: str = "end"
    at_ms: float | None = None

    def __post_init__(self) -> None:
        if self.how not in ENDINGS:
            raise ValueError(f"ending must be one of {', '.join(ENDINGS)}, got {self.how!r}")


@dataclass(frozen=True)
class Plan:
    """Everything the server sends for one request, decided before the first byte goes out."""

    status: int
    headers: Mapping[str, str]
    headers_at_ms: float
    events: tuple[Event, ...] = ()
    chunks: Iterable[Chunk] = ()
    ending: Ending = field(default_factory=Ending)
    body: bytes | None = None
    faults: tuple[Fault, ...] = ()
    answered_by: Fault | None = None
    """The request fault that answered instead of the recording (``http``), if any."""
    outcomes: tuple[FaultOutcome, ...] = ()
    """What each of ``faults`` did to this response, in their order: fired or not, and what or why not."""
    unfit: tuple[int, ...] = ()
    """Positions in ``faults`` of those that could not apply to this response (not merely spent or pre-empted)."""
    used: tuple[int, ...] = ()
    """Positions in ``faults`` whose ``times`` count this response uses up: those that fired, and
    every request fault that saw the request (an ``http`` pre-empted by another still counts it)."""
    separate_writes: bool = False
    """Let the event loop run between writes that are due together, so a reader (even one on
    the same loop) can take each piece before the next goes out (``fragment`` sets it)."""

    @property
    def is_stream(self) -> bool:
        return self.body is None

    def but(self, **changes: Any) -> Plan:
        """This plan with ``changes``: :func:`dataclasses.replace` without its per-field checks,
        which cost more than the rest of a plan's making (a plan is made per request)."""
        new = object.__new__(Plan)
        new.__dict__.update(self.__dict__, **changes)
        return new


def ending_for(end: End) -> Ending:
    """A recorded ending replays as it happened: a cut is a cut, a timeout goes silent."""
    how = {"complete": "end", "upstream_disconnect": "close", "client_cancel": "close", "timeout": "hang"}[end.reason]
    return Ending(how, end.t)


def cut(
    p: Plan, *, after_events: int | None = None, after_bytes: int | None = None
) -> tuple[list[Chunk], list[Chunk], bool]:
    """Split a plan's chunks once ``after_events`` whole events or ``after_bytes`` bytes went out.

    Returns the chunks before the cut, those after it, and whether the stream reached the
    cut point; a chunk that straddles it is split in two. Events are located by their
    encoded size, so the cut is exact however earlier faults split the bytes. With
    neither count, the cut is before the first byte.
    """
    if after_bytes is None:
        n = after_events or 0
        after_bytes = sum(len(e.wire) for e in p.events[:n]) if n <= len(p.events) else None
    it = iter(p.chunks)
    if after_bytes is None:
        return list(it), [], False
    head: list[Chunk] = []
    if after_bytes <= 0:
        return head, list(it), True
    sent = 0
    for c in it:
        size = len(c.data)
        if sent + size < after_bytes:
            head.append(c)
            sent += size
            continue
        if sent + size == after_bytes:
            head.append(c)
            return head, list(it), True
        k = after_bytes - sent
        head.append(Chunk(c.at_ms, c.data[:k], c.events_done))
        return head, [Chunk(c.at_ms, c.data[k:], c.events_done), *it], True
    return head, [], False


def _counted(chunks: Iterable[Chunk], events: Sequence[Event]) -> Iterator[Chunk]:
    """Stamp each chunk with the events complete once it is written, from the events' encoded sizes.

    Byte faults only delay, split and cut the encoded stream, so counting by byte offset
    is exact whatever they did, and they need not track event boundaries themselves.
    """
    ends = [len(e.wire) for e in events]
    total = len(ends)
    i = 0
    offset = 0
    next_end = ends[0] if ends else -1
    for c in chunks:
        offset += len(c.data)
        while i < total and next_end <= offset:
            i += 1
            next_end = next_end + ends[i] if i < total else -1
        yield c if c.events_done == i else Chunk(c.at_ms, c.data, i)


@dataclass(frozen=True, slots=True)
class EventChunks:
    """One chunk per event, its own bytes at ``t / factor`` (0: all at once), later by ``start_ms``
    and by the running sum of ``delays()`` (one added before each event: ``latency``).

    A view over the events, not a list of chunks: iterating it yields :class:`Chunk` s like any
    other plan, while the replayer recognises it and sends each event's cached ``wire`` with no
    per-event allocation (the common case costs nothing on top of writing the bytes).
    """

    events: tuple[Event, ...]
    factor: float
    delays: Callable[[], Iterator[float]] | None = None
    start_ms: float = 0.0

    def __len__(self) -> int:
        return len(self.events)

    def shifted(self, delays: Callable[[], Iterator[float]], start_ms: float) -> EventChunks:
        """These chunks, each later by ``start_ms`` plus the running sum of ``delays()``."""
        before = self.delays
        both = delays if before is None else (lambda: map(add, before(), delays()))
        return EventChunks(self.events, self.factor, both, self.start_ms + start_ms)

    def __iter__(self) -> Iterator[Chunk]:
        factor = self.factor
        if self.delays is not None:
            k = 0.0 if factor == 0.0 else 1.0 / factor
            shift = self.start_ms
            for i, (ev, d) in enumerate(zip(self.events, self.delays()), 1):
                shift += d
                yield Chunk(ev.t * k + shift, ev.wire, i)
        elif factor == 1.0:
            for i, ev in enumerate(self.events, 1):
                yield Chunk(ev.t, ev.wire, i)
        elif factor == 0.0:
            for i, ev in enumerate(self.events, 1):
                yield Chunk(0.0, ev.wire, i)
        else:
            k = 1.0 / factor
            for i, ev in enumerate(self.events, 1):
                yield Chunk(ev.t * k, ev.wire, i)


MAX_SCHEDULE_MS = 365 * 24 * 3600 * 1000.0
"""The latest a response may plan a byte (a year after the request): any later deadline could not be armed as a timer."""


def plan(
    interaction: Interaction,
    faults: Sequence[Fault] | str | None = (),
    *,
    speed: float = 1.0,
    attempts: Mapping[int, int] | None = None,
    provider: str | None = None,
) -> Plan:
    """The plan for one response: the recorded interaction under ``faults`` at ``speed``.

    ``attempts`` maps the position of a fault in ``faults`` to how many responses it has
    already applied to (the replayer keeps this count, so that a fault with ``times=N``
    applies N times and then the stream is served clean). Each fault's outcome (whether it
    fired, and what it did or why it could not) is in :attr:`Plan.outcomes`.
    """
    fault_list = _faults().parse(faults)
    res = interaction.response
    if not fault_list and res.is_stream:
        events = dialect_named(provider or detect_provider(interaction)).framed(res.events or ())
        factor = speed
        _check_schedule(factor, res.headers_at, events, res.end.t)
        ending = ending_for(res.end)
        k = 0.0 if factor == 0 else 1.0 / factor
        return Plan(
            status=res.status,
            headers=res.headers,
            headers_at_ms=res.headers_at * k,
            events=events,
            chunks=EventChunks(events, factor),
            ending=ending if ending.at_ms is None else Ending(ending.how, ending.at_ms * k),
        )
    return _Planner(interaction, fault_list, speed, attempts or {}, provider).run()


class _Planner:
    """One response's plan under faults, with each fault's outcome."""

    def __init__(self, interaction: Interaction, faults: tuple[Fault, ...], speed: float, used: Mapping[int, int], provider: str | None) -> None:
        fi = _faults()
        self.interaction = interaction
        self.faults = faults
        self.speed = speed
        self.used = used
        self.ctx = fi.Context(interaction=interaction, provider=provider or detect_provider(interaction))
        self.outcomes: list[FaultOutcome | None] = [None] * len(faults)
        self.unfit: list[int] = []
        self.active: set[int] = set()
        self.outcome = fi.FaultOutcome

    def note(self, i: int, fired: bool, detail: str, *, unfit: bool = False) -> None:
        self.outcomes[i] = self.outcome(str(self.faults[i]), fired, detail)
        if unfit:
            self.unfit.append(i)

    def attempt(self, i: int, f: Any, target: Any, apply: Any) -> Any:
        """``apply(target, ctx)`` when fault ``i`` can change ``target``, noting what it did; else None, noting why not."""
        why = f.why_not(target, self.ctx)
        if why is not None:
            self.note(i, False, why, unfit=True)
            return None
        detail = f.describe(target, self.ctx) or "applied"
        out = apply(target, self.ctx)
        self.note(i, True, detail)
        return out

    def done(self, p: Plan) -> Plan:
        RequestFault = _faults().RequestFault
        used = tuple(i for i, o in enumerate(self.outcomes) if o is not None and (o.fired or (isinstance(self.faults[i], RequestFault) and i in self.active)))
        return p.but(faults=self.faults, outcomes=tuple(o for o in self.outcomes if o is not None), unfit=tuple(self.unfit), used=used)

    def run(self) -> Plan:
        fi = _faults()
        ByteFault, EventFault, RequestFault, Speed = fi.ByteFault, fi.EventFault, fi.RequestFault, fi.Speed
        faults, ctx = self.faults, self.ctx
        active: list[int] = []
        for i, f in enumerate(faults):
            if f.times is not None and self.used.get(i, 0) >= f.times:
                self.note(i, False, f"spent: applied to {f.times} response(s) already (times={f.times})")
            else:
                active.append(i)
        self.active = set(active)
        speeds = [i for i in active if isinstance(faults[i], Speed)]
        for i in speeds:
            if i == speeds[-1]:
                factor = faults[i].factor  # type: ignore[attr-defined]
                self.note(i, True, "played with no waiting" if factor == 0 else f"played at {factor:.15g}x the recorded pace")
            else:
                self.note(i, False, f"overridden by {faults[speeds[-1]]}, given later")
        scale = faults[speeds[-1]] if speeds else _speed(self.speed)
        for i in active:
            f = faults[i]
            if isinstance(f, RequestFault):
                attempt = self.used.get(i, 0)
                answer = f.intercept(attempt, ctx)
                if answer is None:
                    self.note(i, False, "let the request through")
                    continue
                self.note(i, True, f.describe(attempt, ctx) or "answered instead of the recording")
                for j in active:
                    if self.outcomes[j] is None:
                        self.note(j, False, f"not applied: {f} answered instead of the recording")
                return self.done(replace(answer, answered_by=f, headers_at_ms=scale.scale(answer.headers_at_ms)))  # type: ignore[attr-defined]
        res = self.interaction.response
        rest = [i for i in active if self.outcomes[i] is None]
        if not res.is_stream:
            for i in rest:
                self.note(i, False, f"the response is not a stream (HTTP {res.status} with a plain body)", unfit=True)
            return self.done(Plan(status=res.status, headers=res.headers, headers_at_ms=scale.scale(res.headers_at), body=res.body_bytes()))  # type: ignore[attr-defined]
        dialect = dialect_named(ctx.provider)
        events = dialect.framed(res.events or ())
        reframe = False
        for i in rest:
            f = faults[i]
            if isinstance(f, EventFault):
                changed = self.attempt(i, f, events, f.apply_events)
                if changed is not None:
                    events, reframe = changed, True
        if reframe:
            if res.line_ending != "\n":
                events = _with_stream_line_ends(events, res.events or (), res.line_ending)
            events = dialect.framed(events)
        factor = scale.factor  # type: ignore[attr-defined]
        ending = ending_for(res.end)
        out = Plan(
            status=res.status,
            headers=res.headers,
            headers_at_ms=scale.scale(res.headers_at),  # type: ignore[attr-defined]
            events=events,
            chunks=EventChunks(events, factor),
            ending=ending if ending.at_ms is None else Ending(ending.how, scale.scale(ending.at_ms)),  # type: ignore[attr-defined]
        )
        byte_faults = sorted((i for i in rest if isinstance(faults[i], ByteFault) and not isinstance(faults[i], Speed)), key=lambda i: faults[i].stage)
        fired: list[ByteFault] = []
        for i in byte_faults:
            f = faults[i]
            assert isinstance(f, ByteFault)
            if f.needs_chunks and not isinstance(out.chunks, Sized):
                out = replace(out, chunks=list(out.chunks))
            applied = self.attempt(i, f, out, f.apply)
            if applied is not None:
                out = applied
                fired.append(f)
        _check_schedule(factor, res.headers_at, events, res.end.t, fired, recorded=not reframe)
        for i in active:
            if self.outcomes[i] is None:
                self.note(i, False, "this kind of fault does not apply to a response", unfit=True)
        if not fired or type(out.chunks) is EventChunks:  # only delayed (latency): still one whole event per chunk
            return self.done(out)
        return self.done(replace(out, chunks=_counted(out.chunks, events)))


def check_fit(interactions: Sequence[Interaction], faults: Sequence[Fault] | str | None, *, speed: float = 1.0, source: str | None = None) -> None:
    """Refuse faults that could not apply to any of ``interactions`` (a test under them would test nothing).

    Raises :class:`~streamreel.errors.FaultSpecError` naming the fault, the cassette
    (``source``) and, for each response, what the stream holds and why the fault cannot
    apply to it; also when a response could not be planned at all (a schedule too long to
    keep). Request faults (``http``) and ``speed`` always apply. Nothing to check without
    interactions (a cassette still to be recorded).
    """
    from .errors import FaultSpecError
    from .fault_injection import RequestFault, parse

    fault_list = parse(faults)
    checked = tuple(f for f in fault_list if not isinstance(f, RequestFault))
    if not interactions or not checked:
        return
    where = f" of {source}" if source else ""
    fired: set[int] = set()
    why: dict[int, list[str]] = {}
    for k, interaction in enumerate(interactions):
        try:
            p = plan(interaction, checked, speed=speed)
        except (FaultSpecError, ValueError) as e:
            reason = e.reason if isinstance(e, FaultSpecError) else str(e)
            raise FaultSpecError(f"the faults {[str(f) for f in checked]} cannot be applied to interaction {k}{where}: {reason}") from None
        for i, outcome in enumerate(p.outcomes):
            if outcome.fired:
                fired.add(i)
            else:
                why.setdefault(i, []).append(f"interaction {k}: {outcome.detail}" if len(interactions) > 1 else outcome.detail)
    for i, f in enumerate(checked):
        if i not in fired:
            reasons = why.get(i, [])
            shown = "; ".join(reasons[:3]) + (f"; ... ({len(reasons) - 3} more)" if len(reasons) > 3 else "")
            raise FaultSpecError(f"cannot apply to any response{where}, so a test under it would test nothing: {shown}", spec=str(f))


def _with_stream_line_ends(events: tuple[Event, ...], recorded: Sequence[Event], usual: str) -> tuple[Event, ...]:
    """Events a fault made up (a ping, an error) end their lines like the recorded event before them."""
    ids = {id(e) for e in recorded}
    last = usual
    out: list[Event] = []
    for ev in events:
        le = ev.line_ending
        if id(ev) in ids:
            if type(le) is str:
                last = le
        elif le == "\n" and last != "\n":
            ev = replace(ev, line_ending=last)
        out.append(ev)
    return tuple(out)


def _faults() -> Any:
    """The fault package, imported on first use (every fault module builds on this module's Chunk
    and Plan, so it cannot be imported at the top), then looked up as a name: a plan is made per request."""
    global _FAULTS
    if _FAULTS is None:
        from . import fault_injection

        _FAULTS = fault_injection
    return _FAULTS


_FAULTS: Any = None


@lru_cache(maxsize=64)
def _speed(factor: float) -> Any:
    """The replay's own speed as a fault, made once per value."""
    return _faults().Speed(factor=factor)


def _check_schedule(factor: float, headers_at: float, events: Sequence[Event], end_t: float | None, byte_faults: Sequence[Fault] = (), *, recorded: bool = True) -> None:
    """Refuse a plan whose latest byte could come later than :data:`MAX_SCHEDULE_MS` after the request.

    An upper bound, cheap to take: the recorded times at ``factor``, plus the most each byte fault can add.
    """
    last = max(headers_at, events[-1].t if events else 0.0, end_t or 0.0)
    total = 0.0 if factor == 0 else last / factor
    if byte_faults:
        size = _encoded_size(events) if recorded else sum(len(e.wire) for e in events)
        for f in byte_faults:
            total += f.max_delay_ms(len(events), size)  # type: ignore[attr-defined]
    if not total <= MAX_SCHEDULE_MS:
        from .errors import FaultSpecError

        culprits = ", ".join(str(f) for f in byte_faults) or f"speed {factor:.15g}"
        raise FaultSpecError(
            f"this response would send its last byte {_duration(total)} after the request ({culprits} on {len(events)} events recorded over {_duration(last)}); "
            "a replay may last at most 365 days"
        )


_SIZES: dict[int, tuple[Sequence[Event], int]] = {}


def _encoded_size(events: Sequence[Event]) -> int:
    """The bytes recorded ``events`` encode to, summed once per tuple (the same tuple on every
    request: adding up 100,000 sizes per request would cost more than the rest of the plan)."""
    known = _SIZES.get(id(events))
    if known is not None and known[0] is events:
        return known[1]
    size = sum(len(e.wire) for e in events)
    if len(_SIZES) >= 64:
        _SIZES.pop(next(iter(_SIZES)))
    _SIZES[id(events)] = (events, size)
    return size


def _duration(ms: float) -> str:
    if ms != ms or ms == float("inf"):
        return "forever"
    for unit, size in (("years", 365 * 86400e3), ("days", 86400e3), ("h", 3600e3), ("s", 1e3)):
        if ms >= size:
            return f"{ms / size:.3g} {unit}"
    return f"{ms:.3g} ms"


def timed_chunks(
    cassette: Cassette | Interaction,
    faults: Sequence[Fault] | str | None = (),
    *,
    speed: float = 1.0,
    index: int = 0,
) -> Iterator[Chunk]:
    """The timed byte chunks one interaction goes out as, under ``faults``, with no socket."""
    interaction = cassette.interactions[index] if isinstance(cassette, Cassette) else cassette
    p = plan(interaction, faults, speed=speed)
    if p.body is not None:
        yield Chunk(p.headers_at_ms, p.body, 0)
        return
    yield from p.chunks
