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

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Iterable, Iterator, Mapping, Sequence, Sized

from .cassette import Cassette, End, Interaction
from .providers import get as dialect_named
from .providers import detect_provider
from .sse import Event

if TYPE_CHECKING:
    from .fault_injection import Fault, FaultOutcome

__all__ = ["Chunk", "EventChunks", "Ending", "Plan", "plan", "timed_chunks", "ENDINGS", "ending_for", "cut", "MAX_SCHEDULE_MS"]

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
    """The unfaulted stream: one chunk per event, its own bytes at ``t / factor`` (0: all at once).

    A view over the events, not a list of chunks: iterating it yields :class:`Chunk` s like any
    other plan, while the replayer recognises it and sends each event's cached ``wire`` with no
    per-event allocation (the common case costs nothing on top of writing the bytes).
    """

    events: tuple[Event, ...]
    factor: float

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self) -> Iterator[Chunk]:
        factor = self.factor
        if factor == 1.0:
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
    # Imported here: every fault module builds on this module's Chunk and Plan.
    from .fault_injection import parse

    fault_list = parse(faults)
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
            ending=ending if ending.at_ms is None else replace(ending, at_ms=ending.at_ms * k),
        )
    return _Planner(interaction, fault_list, speed, attempts or {}, provider).run()


class _Planner:
    """One response's plan under faults, with each fault's outcome."""

    def __init__(self, interaction: Interaction, faults: tuple[Fault, ...], speed: float, used: Mapping[int, int], provider: str | None) -> None:
        from .fault_injection import Context, FaultOutcome

        self.interaction = interaction
        self.faults = faults
        self.speed = speed
        self.used = used
        self.ctx = Context(interaction=interaction, provider=provider or detect_provider(interaction))
        self.outcomes: list[FaultOutcome | None] = [None] * len(faults)
        self.unfit: list[int] = []
        self.active: set[int] = set()
        self.outcome = FaultOutcome

    def note(self, i: int, fired: bool, detail: str, *, unfit: bool = False) -> None:
        self.outcomes[i] = self.outcome(str(self.faults[i]), fired, detail)
        if unfit:
            self.unfit.append(i)

    def done(self, p: Plan) -> Plan:
        from .fault_injection import RequestFault

        used = tuple(i for i, o in enumerate(self.outcomes) if o is not None and (o.fired or (isinstance(self.faults[i], RequestFault) and i in self.active)))
        return replace(p, faults=self.faults, outcomes=tuple(o for o in self.outcomes if o is not None), unfit=tuple(self.unfit), used=used)

    def run(self) -> Plan:
        from .fault_injection import ByteFault, EventFault, RequestFault, Speed

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
                self.note(i, True, "played with no waiting" if factor == 0 else f"played at {factor:g}x the recorded pace")
            else:
                self.note(i, False, f"overridden by {faults[speeds[-1]]}, given later")
        scale = faults[speeds[-1]] if speeds else Speed(factor=self.speed)
        for i in active:
            f = faults[i]
            if isinstance(f, RequestFault):
                attempt = self.used.get(i, 0)
                answer = f.intercept(attempt, ctx)
                if answer is None:
                    self.note(i, False, "let the request through")
                    continue
                self.note(i, True, f.describe(attempt, ctx))
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
                why = f.why_not(events, ctx)
                if why is not None:
                    self.note(i, False, why, unfit=True)
                    continue
                detail = f.describe(events, ctx)
                events = f.apply_events(events, ctx)
                self.note(i, True, detail)
                reframe = True
        if reframe:
            events = dialect.framed(events)
        factor = scale.factor  # type: ignore[attr-defined]
        ending = ending_for(res.end)
        out = Plan(
            status=res.status,
            headers=res.headers,
            headers_at_ms=scale.scale(res.headers_at),  # type: ignore[attr-defined]
            events=events,
            chunks=EventChunks(events, factor),
            ending=ending if ending.at_ms is None else replace(ending, at_ms=scale.scale(ending.at_ms)),  # type: ignore[attr-defined]
        )
        byte_faults = sorted((i for i in rest if isinstance(faults[i], ByteFault) and not isinstance(faults[i], Speed)), key=lambda i: faults[i].stage)
        fired: list[ByteFault] = []
        for i in byte_faults:
            f = faults[i]
            assert isinstance(f, ByteFault)
            if f.needs_chunks and not isinstance(out.chunks, Sized):
                out = replace(out, chunks=list(out.chunks))
            why = f.why_not(out, ctx)
            if why is not None:
                self.note(i, False, why, unfit=True)
                continue
            detail = f.describe(out, ctx)
            out = f.apply(out, ctx)
            self.note(i, True, detail)
            fired.append(f)
        _check_schedule(factor, res.headers_at, events, res.end.t, fired)
        for i in active:
            if self.outcomes[i] is None:
                self.note(i, False, "this kind of fault does not apply to a response", unfit=True)
        if not fired:
            return self.done(out)
        return self.done(replace(out, chunks=_counted(out.chunks, events)))


def _check_schedule(factor: float, headers_at: float, events: Sequence[Event], end_t: float | None, byte_faults: Sequence[Fault] = ()) -> None:
    """Refuse a plan whose latest byte could come later than :data:`MAX_SCHEDULE_MS` after the request.

    An upper bound, cheap to take: the recorded times at ``factor``, plus the most each byte fault can add.
    """
    last = max(headers_at, events[-1].t if events else 0.0, end_t or 0.0)
    total = 0.0 if factor == 0 else last / factor
    if byte_faults:
        size = sum(len(e.wire) for e in events)
        for f in byte_faults:
            total += f.max_delay_ms(len(events), size)  # type: ignore[attr-defined]
    if not total <= MAX_SCHEDULE_MS:
        from .errors import FaultSpecError

        culprits = ", ".join(str(f) for f in byte_faults) or f"speed {factor:g}"
        raise FaultSpecError(
            f"this response would send its last byte {_duration(total)} after the request ({culprits} on {len(events)} events recorded over {_duration(last)}); "
            f"a replay may last at most {_duration(MAX_SCHEDULE_MS)}"
        )


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
