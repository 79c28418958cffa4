"""Resilience verdicts: what the server's ground truth says about how a client behaves.

The replay server knows what it really sent (the error event, the ``retry-after``, the
silence, the cut) and when each request arrived, so it can judge the client from the
other end of the wire, in any language: did it retry a retryable error, honour
``retry-after``, back off, bound a silent stream, close what it stopped reading, keep to
a concurrency limit, resume an ``EventSource`` with ``Last-Event-ID``?

:func:`exchanges` turns ground truth (``requests`` and ``responses``) into
:class:`Exchange` records (JSON-ready: what ``GET /__streamreel/responses`` returns);
:func:`assess` runs every check over them and returns :class:`Verdicts`, each
:class:`Verdict` with the :class:`Evidence` (request indices and times, in ms since the
server's last clear) that failed it. :func:`judge` does both for a running server, giving
responses in flight a moment to finish; :func:`assert_resilient` raises an
``AssertionError`` listing every failed check.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Protocol, Sequence

from .scrub import Scrubber
from .sse import Event

if TYPE_CHECKING:
    from .matching import ReceivedRequest
    from .replayer import SentResponse

__all__ = [
    "CHECKS",
    "RETRYABLE_ERRORS",
    "Exchange",
    "Evidence",
    "GroundTruth",
    "Verdict",
    "Verdicts",
    "exchanges",
    "fault_entries",
    "assess",
    "judge",
    "ajudge",
    "assert_resilient",
]

CHECKS: dict[str, str] = {
    "gave_up": "a retryable mid-stream error event (overloaded_error, api_error) is followed by a new attempt",
    "ignored_retry_after": "after an error response with retry-after, the next attempt waits at least that long",
    "retry_storm": "three or more attempts in a row wait longer each time (or as long as retry-after says); an EventSource resuming is no repeat",
    "waited_on_silence": "no silent stream is waited on longer than silence_s, nor still open and silent when checked",
    "dangling_stream": "a stream the client stopped reading is closed before the client moves on",
    "too_many_streams": "at most max_streams streams are open at once",
    "reconnect_without_last_event_id": "an EventSource reconnecting after a cut sends Last-Event-ID",
}
"""Every check, by name, with what it asks of the client."""

RETRYABLE_ERRORS = frozenset(
    {"overloaded_error", "api_error", "server_error", "UNAVAILABLE", "INTERNAL", "modelStreamErrorException", "internalServerException", "serviceUnavailableException"}
)
"""Mid-stream error types a client should retry: Anthropic's ``overloaded_error`` and ``api_error``,
OpenAI's ``server_error``, Gemini's ``UNAVAILABLE`` and ``INTERNAL``, Bedrock's
``modelStreamErrorException``, ``internalServerException`` and ``serviceUnavailableException``."""

GRACE_S = 0.5
"""How long :func:`judge` waits for responses in flight (a client that just hung up) before judging."""

RETRY_AFTER_SLACK_MS = 1.0
"""A retry this much sooner than ``retry-after`` still honours it (timer granularity)."""

GROWTH = 1.2
GROWTH_MS = 10.0
"""A wait grows when it is at least ``GROWTH`` times the one before plus ``GROWTH_MS`` (SDK backoff doubles, with jitter)."""

STORM_ATTEMPTS = 3

_SCRUB = Scrubber()

DANGLING_GRACE_MS = 100.0
"""A stream still open this long after the client's next request arrived was left open."""

OVERLAP_SLACK_MS = 5.0
"""Streams that overlap by less than this are not counted as open at once (one ends as the next begins)."""


# ---------------------------------------------------------------- ground truth as records


@dataclass(frozen=True)
class Exchange:
    """One request and the response to it, as the checks (and ``GET /__streamreel/responses``) see them.

    Times are ms since the server's last clear (``end_ms`` None while the response is
    open). ``events``/``bytes`` went out; ``ending`` is the replayer's (``end``, ``close``,
    ``reset``, ``hang``, ``client_hung_up``, None in flight). ``error_event`` is the type of
    an error event the server sent mid-stream, ``last_event_id`` the last ``id:`` it sent,
    ``retry_after_ms`` what its ``retry-after``/``retry-after-ms`` header (or, in a stream,
    its last ``retry:`` field) asked the client to wait;
    ``last_event_id_asked`` the ``Last-Event-ID`` the request carried. Whatever came from the
    request (method, path, ids, fault specs from a header) is scrubbed of credentials.
    """

    request: int
    method: str
    path: str
    arrived_ms: float
    status: int
    start_ms: float
    end_ms: float | None
    events: int = 0
    bytes: int = 0
    ending: str | None = None
    client_hung_up: bool = False
    stream: bool = False
    event_source: bool = False
    last_event_id_asked: str | None = None
    cassette: str | None = None
    interaction: int | None = None
    faults: tuple[Mapping[str, Any], ...] = ()
    answered_by: str | None = None
    silent_ms: float | None = None
    silent_since_ms: float | None = None
    error_event: str | None = None
    last_event_id: str | None = None
    retry_after_ms: float | None = None

    @property
    def endpoint(self) -> tuple[str, str]:
        return (self.method, self.path)

    @property
    def failed(self) -> bool:
        """Whether the attempt did not get a whole answer: an error status or event, a cut, a hang, a hang-up."""
        return self.status >= 400 or self.error_event is not None or self.ending in ("close", "reset", "hang") or self.client_hung_up

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["faults"] = [dict(f) for f in self.faults]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Exchange:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["faults"] = tuple(dict(f) for f in values.get("faults", ()))
        return cls(**values)


def fault_entries(response: SentResponse) -> tuple[dict[str, Any], ...]:
    """Each fault in force on ``response``: ``{"spec", "fired", "detail"}`` (see :class:`~streamreel.fault_injection.FaultOutcome`)."""
    return tuple(outcome.as_dict() for outcome in response.faults)


def exchanges(
    requests: Sequence[ReceivedRequest],
    responses: Sequence[SentResponse],
    *,
    epoch: float | None = None,
) -> tuple[Exchange, ...]:
    """Pair each response with its request (the two lists as a replayer keeps them) as :class:`Exchange` s.

    ``epoch`` (loop time) is the zero of the times; by default the first request's arrival.
    """
    n = min(len(requests), len(responses))
    reqs, resps = list(requests)[len(requests) - n :], list(responses)[len(responses) - n :]
    if epoch is None:
        epoch = min((q.at for q in reqs), default=0.0)

    def ms(t: float | None) -> float | None:
        return None if t is None else round((t - epoch) * 1000.0, 3)

    out = []
    for req, res in zip(reqs, resps):
        sent = res.events if res.data else []
        headers = {k.lower(): v for k, v in res.headers.items()}
        scrub = _SCRUB.also(_SCRUB.found(req.headers, req.target, req.body))
        asked = req.headers.get("last-event-id")
        out.append(
            Exchange(
                request=res.request_index,
                method=scrub.text(req.method),
                path=scrub.target(req.path),
                arrived_ms=ms(req.at) or 0.0,
                status=res.status,
                start_ms=ms(res.started) or 0.0,
                end_ms=ms(res.finished),
                events=res.events_done,
                bytes=res.bytes_sent,
                ending=res.ending,
                client_hung_up=res.client_hung_up,
                stream=headers.get("content-type", "").startswith("text/event-stream"),
                event_source=req.method == "GET" and "text/event-stream" in req.headers.get("accept", ""),
                last_event_id_asked=None if asked is None else scrub.text(asked),
                cassette=res.cassette,
                interaction=res.interaction,
                faults=tuple({**f, "spec": scrub.message(f["spec"]), "detail": scrub.message(f["detail"])} for f in fault_entries(res)),
                answered_by=None if res.answered_by is None else scrub.message(res.answered_by),
                silent_ms=None if res.silent_ms is None else round(res.silent_ms, 3),
                silent_since_ms=ms(res.silent_since),
                error_event=_error_event(sent),
                last_event_id=next((ev.id for ev in reversed(sent) if ev.id is not None), None),
                retry_after_ms=_retry_after_ms(headers, sent),
            )
        )
    return tuple(out)


def _error_event(events: Sequence[Event]) -> str | None:
    """The type of the first error event among ``events``: Anthropic's ``event: error``, an OpenAI
    or Gemini error chunk, a Responses ``error`` event, a Bedrock exception frame."""
    for ev in events:
        if ev.is_comment:
            continue
        if ev.event is not None and ev.event.endswith("Exception"):
            return ev.event  # an AWS event stream's exception frame
        payload = ev.json(default=None)
        if ev.event == "error":
            if isinstance(payload, dict):
                err = payload.get("error")
                if isinstance(err, dict) and isinstance(err.get("type"), str):
                    return str(err["type"])
                for key in ("code", "type"):
                    if isinstance(payload.get(key), str) and payload[key] != "error":
                        return str(payload[key])
            return "error"
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            err = payload["error"]
            return str(err.get("type") or err.get("status") or err.get("code") or "error")
    return None


def _retry_after_ms(headers: Mapping[str, str], events: Sequence[Event]) -> float | None:
    """How long the server asked the client to wait before trying again: ``retry-after-ms``,
    ``retry-after`` (seconds), or for an event stream the last ``retry:`` it sent."""
    for name, scale in (("retry-after-ms", 1.0), ("retry-after", 1000.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            number = float(value)
        except ValueError:
            continue  # an HTTP date: not what the API sends
        if number >= 0:
            return number * scale
    return next((float(ev.retry) for ev in reversed(events) if ev.retry is not None), None)


# ---------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class Evidence:
    """What failed a check: the requests involved, when (ms since the last clear), and what happened."""

    requests: tuple[int, ...]
    at_ms: float
    detail: str

    def __str__(self) -> str:
        which = ", ".join(str(r) for r in self.requests)
        return f"request{'s' if len(self.requests) > 1 else ''} {which} at {self.at_ms:.0f} ms: {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        return {"requests": list(self.requests), "at_ms": round(self.at_ms, 3), "detail": self.detail}


@dataclass(frozen=True)
class Verdict:
    """One check: whether the client passed it, and the evidence when it did not (``skipped`` says why it was not run)."""

    check: str
    passed: bool
    evidence: tuple[Evidence, ...] = ()
    skipped: str | None = None

    @property
    def expects(self) -> str:
        return CHECKS[self.check]

    def __str__(self) -> str:
        if self.skipped:
            return f"{self.check}: skipped ({self.skipped})"
        if self.passed:
            return f"{self.check}: passed"
        lines = [f"{self.check}: FAILED, expected {self.expects}"]
        lines += [f"  - {e}" for e in self.evidence]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "passed": self.passed,
            "skipped": self.skipped,
            "expects": self.expects,
            "evidence": [e.as_dict() for e in self.evidence],
        }


@dataclass(frozen=True)
class Verdicts:
    """Every check's :class:`Verdict`, in :data:`CHECKS` order, with the bounds they used."""

    checks: tuple[Verdict, ...]
    silence_s: float | None = None
    max_streams: int | None = None
    requests: int = 0

    def __iter__(self) -> Any:
        return iter(self.checks)

    def __getitem__(self, check: str) -> Verdict:
        for v in self.checks:
            if v.check == check:
                return v
        raise KeyError(f"no check {check!r}; checks: {', '.join(CHECKS)}")

    @property
    def failed(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.checks if not v.passed)

    @property
    def ok(self) -> bool:
        return not self.failed

    def report(self) -> str:
        """Every failed check with its evidence, one block each (empty when all passed)."""
        return "\n".join(str(v) for v in self.failed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "requests": self.requests,
            "silence_s": self.silence_s,
            "max_streams": self.max_streams,
            "failed": [v.check for v in self.failed],
            "verdicts": [v.as_dict() for v in self.checks],
        }


def assess(
    seen: Iterable[Exchange],
    *,
    now_ms: float,
    silence_s: float | None = None,
    max_streams: int | None = None,
) -> Verdicts:
    """Run every check over ``seen`` as of ``now_ms`` (ms since the last clear).

    ``silence_s`` is the longest silence the client may wait on (set it above the client's
    read timeout); without it only streams still open and silent at ``now_ms`` fail.
    ``max_streams`` is the concurrency limit; without it that check is skipped.
    """
    _check_bounds(silence_s, max_streams)
    items = sorted(seen, key=lambda e: e.request)
    checks = (
        _verdict("gave_up", _gave_up(items)),
        _verdict("ignored_retry_after", _ignored_retry_after(items)),
        _verdict("retry_storm", _retry_storm(items)),
        _verdict("waited_on_silence", _waited_on_silence(items, now_ms, silence_s)),
        _verdict("dangling_stream", _dangling(items, now_ms)),
        Verdict("too_many_streams", True, skipped="give max_streams=N to check")
        if max_streams is None
        else _verdict("too_many_streams", _too_many(items, now_ms, max_streams)),
        _verdict("reconnect_without_last_event_id", _no_last_event_id(items)),
    )
    return Verdicts(checks=checks, silence_s=silence_s, max_streams=max_streams, requests=len(items))


def _check_bounds(silence_s: float | None, max_streams: int | None) -> None:
    if silence_s is not None and (isinstance(silence_s, bool) or not isinstance(silence_s, (int, float)) or not silence_s > 0):
        raise ValueError(f"silence_s must be a number of seconds > 0, got {silence_s!r}")
    if max_streams is not None and (isinstance(max_streams, bool) or not isinstance(max_streams, int) or max_streams < 1):
        raise ValueError(f"max_streams must be a whole number >= 1, got {max_streams!r}")


def _verdict(check: str, evidence: list[Evidence]) -> Verdict:
    return Verdict(check, not evidence, tuple(evidence))


def _later(items: Sequence[Exchange], e: Exchange, after_ms: float) -> Exchange | None:
    """The first request to the same endpoint as ``e`` that arrived at or after ``after_ms``."""
    return next((x for x in items if x.request > e.request and x.endpoint == e.endpoint and x.arrived_ms >= after_ms), None)


def _gave_up(items: Sequence[Exchange]) -> list[Evidence]:
    out = []
    for e in items:
        if e.error_event in RETRYABLE_ERRORS and _later(items, e, e.arrived_ms) is None:
            at = e.end_ms if e.end_ms is not None else e.start_ms
            out.append(Evidence((e.request,), at, f"{e.error_event} sent mid-stream ({e.events} events in all) on {e.method} {e.path}; no new attempt followed"))
    return out


def _ignored_retry_after(items: Sequence[Exchange]) -> list[Evidence]:
    out = []
    for e in items:
        if e.retry_after_ms is None or e.status < 400 or e.end_ms is None:
            continue
        nxt = _later(items, e, e.end_ms)
        if nxt is None:
            continue
        wait = nxt.arrived_ms - e.end_ms
        if wait < e.retry_after_ms - RETRY_AFTER_SLACK_MS:
            out.append(Evidence((e.request, nxt.request), nxt.arrived_ms, f"HTTP {e.status} said retry-after {e.retry_after_ms:g} ms; request {nxt.request} came {wait:.1f} ms later"))
    return out


def _retry_storm(items: Sequence[Exchange]) -> list[Evidence]:
    out = []
    chains: dict[tuple[str, str], list[Exchange]] = {}
    finished: list[list[Exchange]] = []
    for e in items:
        chain = chains.get(e.endpoint)
        resumed = e.last_event_id_asked is not None  # an EventSource resuming makes progress: no repeat
        if chain and not resumed and chain[-1].failed and chain[-1].end_ms is not None and e.arrived_ms >= chain[-1].end_ms:
            chain.append(e)
        else:
            if chain:
                finished.append(chain)
            chains[e.endpoint] = [e]
    finished.extend(chains.values())
    for chain in finished:
        if len(chain) < STORM_ATTEMPTS:
            continue
        waits = [b.arrived_ms - a.end_ms for a, b in zip(chain, chain[1:]) if a.end_ms is not None]
        flat = []
        for k in range(1, len(waits)):
            told = chain[k].retry_after_ms
            if told is not None and waits[k] >= told - RETRY_AFTER_SLACK_MS:
                continue  # the server said how long to wait, and the client did
            if waits[k] < waits[k - 1] * GROWTH + GROWTH_MS:
                flat.append(k)
        if flat:
            shown = ", ".join(f"{w:.0f}" for w in waits)
            out.append(Evidence(tuple(x.request for x in chain), chain[-1].arrived_ms, f"{len(chain)} attempts on {chain[0].method} {chain[0].path} after failures, waits {shown} ms: not growing"))
    return out


def _waited_on_silence(items: Sequence[Exchange], now_ms: float, silence_s: float | None) -> list[Evidence]:
    out = []
    bound = None if silence_s is None else silence_s * 1000.0
    for e in items:
        if e.silent_ms is None:
            continue
        if e.end_ms is None and e.silent_since_ms is not None:
            quiet = now_ms - e.silent_since_ms
            if bound is None or quiet > bound or e.silent_ms > bound:
                out.append(Evidence((e.request,), now_ms, f"still open after {quiet:.0f} ms of silence ({e.events} event(s) sent){_over(bound)}"))
        elif bound is not None and e.silent_ms > bound:
            how = "until the client left" if e.client_hung_up else "and the client kept waiting"
            at = e.end_ms if e.end_ms is not None else now_ms
            out.append(Evidence((e.request,), at, f"silent for {e.silent_ms:.0f} ms {how}{_over(bound)}"))
    return out


def _over(bound: float | None) -> str:
    return "" if bound is None else f"; the bound is {bound:g} ms"


def _dangling(items: Sequence[Exchange], now_ms: float) -> list[Evidence]:
    out = []
    for e in items:
        if not e.stream or e.ending in ("end", "close", "reset") or e.silent_since_ms is None:
            continue
        for later in items:
            if later.request <= e.request or later.arrived_ms < e.silent_since_ms:
                continue
            deadline = later.arrived_ms + DANGLING_GRACE_MS
            if (e.end_ms is None and now_ms > deadline) or (e.end_ms is not None and e.end_ms > deadline):
                state = "still open" if e.end_ms is None else f"closed only at {e.end_ms:.0f} ms"
                out.append(Evidence((e.request, later.request), later.arrived_ms, f"stream silent since {e.silent_since_ms:.0f} ms after {e.events} event(s); the client sent request {later.request} and left the stream {state}"))
                break
    return out


def _too_many(items: Sequence[Exchange], now_ms: float, limit: int) -> list[Evidence]:
    marks = []
    for e in items:
        end = (e.end_ms if e.end_ms is not None else now_ms) - OVERLAP_SLACK_MS
        if e.stream and end > e.start_ms:
            marks += [(e.start_ms, 1, e.request), (end, 0, e.request)]
    open_now: set[int] = set()
    first: tuple[tuple[int, ...], float] | None = None
    peak = 0
    for at, starts, req in sorted(marks):
        if starts:
            open_now.add(req)
        else:
            open_now.discard(req)
        peak = max(peak, len(open_now))
        if first is None and len(open_now) > limit:
            first = (tuple(sorted(open_now)), at)
    if first is None:
        return []
    return [Evidence(first[0], first[1], f"{len(first[0])} streams open at once (at most {peak}); the limit is {limit}")]


def _no_last_event_id(items: Sequence[Exchange]) -> list[Evidence]:
    out = []
    previous: dict[str, Exchange] = {}
    for e in items:
        if not e.event_source:
            continue
        prev = previous.get(e.path)
        previous[e.path] = e
        if prev is None or e.last_event_id_asked is not None or prev.last_event_id is None:
            continue
        if prev.ending in ("close", "reset") and (prev.end_ms is None or e.arrived_ms >= prev.end_ms):
            gap = e.arrived_ms - (prev.end_ms or prev.start_ms)
            out.append(Evidence((prev.request, e.request), e.arrived_ms, f"GET {e.path} reconnected {gap:.0f} ms after response {prev.request} was cut ({prev.ending}) at id {prev.last_event_id!r}, without Last-Event-ID"))
    return out


# ---------------------------------------------------------------- a running server


class GroundTruth(Protocol):
    """What :func:`judge` reads: a :class:`~streamreel.replayer.Replayer` (or the ``reel`` fixture's server)."""

    epoch: float

    @property
    def requests(self) -> list[ReceivedRequest]: ...

    @property
    def responses(self) -> list[SentResponse]: ...

    def settle(self, timeout: float = ..., *, requests: int = ...) -> list[SentResponse]: ...

    async def asettle(self, timeout: float = ..., *, requests: int = ...) -> list[SentResponse]: ...


def _verdicts_now(server: GroundTruth, silence_s: float | None, max_streams: int | None) -> Verdicts:
    epoch = getattr(server, "epoch", None)
    seen = exchanges(server.requests, server.responses, epoch=epoch)
    base = epoch if epoch is not None else time.monotonic()
    return assess(seen, now_ms=(time.monotonic() - base) * 1000.0, silence_s=silence_s, max_streams=max_streams)


def judge(server: GroundTruth, *, silence_s: float | None = None, max_streams: int | None = None, grace_s: float = GRACE_S) -> Verdicts:
    """The verdicts on what ``server`` has seen since its last clear, from sync code.

    Responses in flight get up to ``grace_s`` to finish (a client that just hung up); those
    still open after it are judged as open.
    """
    _check_bounds(silence_s, max_streams)
    try:
        server.settle(grace_s)
    except TimeoutError:
        pass
    return _verdicts_now(server, silence_s, max_streams)


async def ajudge(server: GroundTruth, *, silence_s: float | None = None, max_streams: int | None = None, grace_s: float = GRACE_S) -> Verdicts:
    """:func:`judge` from async code (any event loop)."""
    _check_bounds(silence_s, max_streams)
    try:
        await server.asettle(grace_s)
    except TimeoutError:
        pass
    return _verdicts_now(server, silence_s, max_streams)


def assert_resilient(verdicts: Verdicts, *, ignore: Iterable[str] = ()) -> None:
    """Raise ``AssertionError`` listing every failed check (but those in ``ignore``) with its evidence."""
    ignored = set(ignore)
    unknown = ignored - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown check(s) {', '.join(sorted(unknown))}; checks: {', '.join(CHECKS)}")
    failed = [v for v in verdicts.failed if v.check not in ignored]
    if failed:
        raise AssertionError(f"the client failed {len(failed)} resilience check(s) over {verdicts.requests} request(s):\n" + "\n".join(str(v) for v in failed))
