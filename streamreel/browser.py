"""What a browser's ``EventSource`` needs from the replayer: GET, ids, ``retry:`` and resume.

An ``EventSource`` can only ``GET``, and it reconnects by itself when a stream breaks (or
ends), after the ``retry:`` delay the server last gave, sending the last ``id:`` it saw as
``Last-Event-ID``. So, for a page to consume a cassette:

- a ``GET`` with ``Accept: text/event-stream`` that matches no recorded request is served
  the stream recorded on the same path, whatever method recorded it (ordered playback
  over the streams on that path, query ignored);
- with ``ids`` on, each event of a stream that has no ids of its own gets ``id: N`` (N is
  its 0-based index in the recorded stream; comments get none), and the first event sent
  carries ``retry:`` so the browser comes back quickly;
- a request with ``Last-Event-ID`` resumes the stream last served on its path after that
  event (recorded gaps kept, shifted to start right after the headers); when nothing is
  left it gets ``204 No Content``, which tells an ``EventSource`` to stop reconnecting.

Numbered views are built when the cassette is loaded, resumed ones once per (interaction,
resume point), and cached, so the hot path stays the pipeline's: events encoded once,
written on schedule.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import MutableMapping, Sequence

from .cassette import End, Interaction
from .errors import NoMatchError
from .matching import Marks, Matcher, ReceivedRequest
from .sse import Event

__all__ = ["DEFAULT_RETRY_MS", "LAST_EVENT_ID", "wants_event_stream", "with_ids", "resume_after", "BrowserState"]

DEFAULT_RETRY_MS = 1000
"""The ``retry:`` sent when ids are on and no other is asked for (browsers default to about 3 s)."""

LAST_EVENT_ID = "last-event-id"

_CACHE_LIMIT = 512


def wants_event_stream(request: ReceivedRequest) -> bool:
    """A GET that asks for an event stream: what an ``EventSource`` sends."""
    return request.method == "GET" and "text/event-stream" in request.headers.get("accept", "")


def with_ids(events: Sequence[Event], *, ids: bool = True, retry_ms: int | None = None) -> tuple[Event, ...]:
    """``events`` with ``id: N`` on every non-comment event (unless the stream has ids of its own)
    and ``retry:`` on the first one (unless it has one)."""
    out = list(events)
    if ids and not any(ev.id is not None for ev in out):
        out = [ev if ev.is_comment else replace(ev, id=str(i)) for i, ev in enumerate(out)]
    if retry_ms is not None and out:
        first = next((i for i, ev in enumerate(out) if not ev.is_comment), 0)
        if out[first].retry is None:
            out[first] = replace(out[first], retry=retry_ms)
    return tuple(out)


def resume_after(interaction: Interaction, last_id: str, *, retry_ms: int | None = None) -> Interaction | None:
    """The stream after the event whose id is ``last_id``: the same interaction when no event has
    that id, None when that event was the last one. Gaps are kept, shifted to follow the headers."""
    res = interaction.response
    events = res.events or ()
    pos = next((i for i, ev in enumerate(events) if ev.id == last_id), None)
    if pos is None:
        return interaction
    rest = events[pos + 1 :]
    if not any(not ev.is_comment for ev in rest):
        return None
    shift = events[pos].t - res.headers_at
    moved = tuple(replace(ev, t=round(ev.t - shift, 3)) for ev in rest)
    if retry_ms is not None:
        moved = with_ids(moved, ids=False, retry_ms=retry_ms)
    end = res.end if res.end.t is None else End(t=round(max(res.end.t - shift, moved[-1].t), 3), reason=res.end.reason)
    return replace(interaction, response=replace(res, events=moved, end=end))


@dataclass
class BrowserState:
    """Per loaded cassette: the path-only matcher for GETs, what was served where, cached views."""

    interactions: tuple[Interaction, ...]
    ids: bool = False
    retry_ms: int | None = None
    _streams: list[int] = field(default_factory=list)
    _by_path: Matcher | None = None
    _served: MutableMapping[str, int] = field(default_factory=dict)
    _views: dict[tuple[int, str | None], Interaction | None] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._streams = [i for i, item in enumerate(self.interactions) if item.response.is_stream]
        self._by_path = Matcher([self.interactions[i] for i in self._streams], match_on=("path",))
        if self.retry_ms is None and self.ids:
            self.retry_ms = DEFAULT_RETRY_MS
        if self.ids or self.retry_ms is not None:
            for i in self._streams:
                self._views[(i, None)] = self._numbered(self.interactions[i])

    def _numbered(self, item: Interaction) -> Interaction:
        events = with_ids(item.response.events or (), ids=self.ids, retry_ms=self.retry_ms)
        return replace(item, response=replace(item.response, events=events)) if events != item.response.events else item

    def share(self, served: MutableMapping[str, int], path_marks: Marks) -> None:
        """Keep the stream served per path (for resumes) in ``served`` and the GETs' ordered
        playback in ``path_marks``: what the processes of one server share."""
        self._served = served
        if self._by_path is not None:
            self._by_path.marks = path_marks

    def reset(self) -> None:
        self._served.clear()
        if self._by_path is not None:
            self._by_path.reset()

    def find(self, request: ReceivedRequest, matcher: Matcher) -> int:
        """The interaction for ``request``: a resume goes back to the stream last served on its path;
        an EventSource GET falls back to the streams recorded on that path."""
        if LAST_EVENT_ID in request.headers and request.path in self._served:
            return self._served[request.path]
        try:
            index = matcher.find(request)
        except NoMatchError:
            if not wants_event_stream(request) or self._by_path is None:
                raise
            try:
                index = self._streams[self._by_path.find(request)]
            except NoMatchError:
                raise NoMatchError(matcher.explain(request), request=request) from None
        if self.interactions[index].response.is_stream:
            self._served[request.path] = index
        return index

    def view(self, index: int, request: ReceivedRequest) -> Interaction | None:
        """The interaction as this client gets it (ids, retry, resumed); None when nothing is left to send."""
        item = self.interactions[index]
        last_id = request.headers.get(LAST_EVENT_ID)
        if not item.response.is_stream or (last_id is None and not self.ids and self.retry_ms is None):
            return item
        key = (index, last_id)
        with self._lock:
            if key in self._views:
                return self._views[key]
        base = self._views.get((index, None)) or self._numbered(item)
        out = resume_after(base, last_id, retry_ms=self.retry_ms) if last_id is not None else base
        with self._lock:
            if len(self._views) >= _CACHE_LIMIT:
                for key_ in [k for k in self._views if k[1] is not None]:
                    del self._views[key_]
            self._views[key] = out
        return out
