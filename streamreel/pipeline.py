"""The replay pipeline, with or without a socket.

events ─▶ event faults ─▶ encode (once per event) ─▶ byte faults ─▶ timed chunks + ending

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
from functools import lru_cache
from operator import add
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence

from .cassette import Cassette, End, Interaction
from .providers import detect_provider
from .sse import Event

if TYPE_CHECKING:
    from .fault_injection import Fault

__all__ = ["Chunk", "EventChunks", "Ending", "Plan", "plan", "timed_chunks", "ENDINGS", "ending_for", "cut"]

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
        k = 0.0 if factor == 0.0 else 1.0 / factor
        if self.delays is not None:
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
            for i, ev in enumerate(self.events, 1):
                yield Chunk(ev.t * k, ev.wire, i)


def plan(
    interaction: Interaction,
    faults: Sequence[Fault] | str | None = (),
    *,
    speed: float = 1.0,
    attempts: Mapping[int, int] | None = None,
    provider: str | None = None,
) -> Plan:
    """The plan for one response: the recorded interaction under ``faults`` at ``speed``.

    ``attempts`` maps the position of each request fault in ``faults`` to how many requests
    it has already seen (the replayer keeps this count so that ``http:times=2`` answers
    twice and then lets the stream through).
    """
    ByteFault, Context, EventFault, RequestFault, Speed, parse = _fault_names()
    fault_list = parse(faults)
    ctx = Context(interaction=interaction, provider=provider or detect_provider(interaction))
    for i, f in enumerate(fault_list):
        if isinstance(f, RequestFault):
            answer = f.intercept((attempts or {}).get(i, 0), ctx)
            if answer is not None:
                return _scaled(replace(answer, faults=fault_list, answered_by=f), speed, fault_list)
    res = interaction.response
    if not res.is_stream:
        return _scaled(
            Plan(status=res.status, headers=res.headers, headers_at_ms=res.headers_at, body=res.body_bytes(), faults=fault_list),
            speed,
            fault_list,
        )
    events = res.events or ()
    for f in fault_list:
        if isinstance(f, EventFault):
            events = f.apply_events(events, ctx)
    if events is not res.events and events and res.line_ending != "\n":
        events = _with_stream_line_ends(events, res.events or (), res.line_ending)
    # Speed is the first byte stage; folded into the chunks as they are made, it costs nothing per event.
    scale = Speed.of(fault_list, speed)
    ending = ending_for(res.end)
    out = Plan(
        status=res.status,
        headers=res.headers,
        headers_at_ms=scale.scale(res.headers_at),
        events=events,
        chunks=EventChunks(events, scale.factor),
        ending=ending if ending.at_ms is None else Ending(ending.how, scale.scale(ending.at_ms)),
        faults=fault_list,
    )
    byte_faults = sorted((f for f in fault_list if isinstance(f, ByteFault) and not isinstance(f, Speed)), key=lambda f: f.stage)
    if not byte_faults:
        return out
    for f in byte_faults:
        out = f.apply(out, ctx)
    if type(out.chunks) is EventChunks:
        return out  # only delayed (latency): still one whole event per chunk
    return replace(out, chunks=_counted(out.chunks, events))


@lru_cache(maxsize=None)
def _fault_names() -> tuple[Any, ...]:
    """What :func:`plan` needs from the faults, imported once on first use (every fault module
    builds on this module's Chunk and Plan, so they cannot be imported at the top)."""
    from .fault_injection import ByteFault, Context, EventFault, RequestFault, Speed, parse

    return ByteFault, Context, EventFault, RequestFault, Speed, parse


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


def _scaled(p: Plan, speed: float, faults: tuple[Fault, ...]) -> Plan:
    """A request fault's or a plain body's answer still follows the replay speed."""
    from .fault_injection import Speed

    scale = Speed.of(faults, speed)
    return p if scale.factor == 1.0 else replace(p, headers_at_ms=scale.scale(p.headers_at_ms))


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
