"""What a recorded stream looked like to its client: TTFT, output rate, gaps, stalls, ending.

Plain functions over an :class:`~streamreel.cassette.Interaction` or a
:class:`~streamreel.cassette.Cassette`, returning frozen :class:`Metrics`;
``streamreel inspect`` prints them and ``streamreel plot`` draws them.

Definitions (all times in ms from the request, as the cassette stores them):

- ``headers_ms``: the response headers.
- ``provider``: the dialect the stream speaks (:mod:`streamreel.providers`), which decides
  the next three.
- ``ttft_ms``: the first event that carries generated tokens: an Anthropic text, thinking or
  tool-input delta (on Vertex and Bedrock too), an OpenAI chunk with content, reasoning,
  refusal or tool arguments, an OpenAI Responses ``*.delta``, a Gemini part with text or a
  function call. Empty deltas do not count.
- ``output_tokens``: the final usage the stream reports (``tokens_from="usage"``), or, for a
  stream cut before its usage, an estimate of about four characters a token (``"estimate"``).
- ``tps``: ``output_tokens`` over the streaming window, from the first to the last
  token-carrying event, in tokens per second (None when that window is empty).
- gaps: the silences between consecutive events on the wire (pings and comments included)
  once tokens flow, from the first token-carrying event on (from the first event in a
  stream without tokens), so the wait for the first token is TTFT's and not a gap;
  ``p50``/``p95`` interpolate linearly between ranks, as numpy's default does.
- ``longest_stall_ms``: the longest of those silences, the one between the last event and
  the end of the response (before a cut or a timeout) included; ``stalls`` lists every
  silence of at least ``stall_ms``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from .cassette import Cassette, Interaction
from .providers import Dialect, dialect_of, get
from .sse import Event

__all__ = [
    "STALL_MS",
    "Metrics",
    "Summary",
    "delta_text",
    "event_kind",
    "interaction_metrics",
    "cassette_metrics",
    "cumulative_tokens",
    "summarize",
    "percentile",
]

STALL_MS = 500.0
"""A silence at least this long counts as a stall (a visible hitch in a chat UI)."""


@dataclass(frozen=True)
class Metrics:
    """The figures for one interaction; ``None`` where the stream has nothing to measure."""

    index: int
    method: str | None
    path: str | None
    status: int
    stream: bool
    headers_ms: float
    first_event_ms: float | None
    ttft_ms: float | None
    last_token_ms: float | None
    end_ms: float | None
    output_tokens: int | None
    tokens_from: str | None
    tps: float | None
    gap_p50_ms: float | None
    gap_p95_ms: float | None
    gap_max_ms: float | None
    longest_stall_ms: float | None
    longest_stall_at_ms: float | None
    stalls: tuple[tuple[float, float], ...]
    events: Mapping[str, int] = field(default_factory=dict)
    event_count: int = 0
    end_reason: str | None = None
    stop_reason: str | None = None
    provider: str = "sse"
    """The dialect the stream speaks (``anthropic``, ``openai-responses``, ``gemini``, ...)."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: times rounded to 0.001 ms, rates to 0.01."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, float):
                out[key] = round(value, 2 if key == "tps" else 3)
        out["stalls"] = [[round(a, 3), round(b, 3)] for a, b in self.stalls]
        out["events"] = dict(self.events)
        return out


@dataclass(frozen=True)
class Summary:
    """Across interactions: how many, and the p50/p95 of TTFT and TPS a dashboard would track."""

    interactions: int
    streams: int
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    tps_p50: float | None
    tps_p95: float | None

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 2 if k.startswith("tps") else 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


# ---------------------------------------------------------------- reading events


def event_kind(ev: Event) -> str:
    """The name an event is counted under: its type, ``comment``, ``[DONE]`` or ``message``."""
    if ev.is_comment:
        return "comment"
    if ev.data == "[DONE]":
        return "[DONE]"
    return ev.type or "message"


def delta_text(ev: Event, dialect: Dialect | str = "sse") -> str:
    """The generated text an event carries (``""`` when it carries none), by ``dialect``'s rule
    (``sse``: any dialect's)."""
    return get(dialect).delta_text(ev.json(default=None))


def _estimate(text: str) -> int:
    from .providers.anthropic import estimate_tokens

    return estimate_tokens(text)


# ---------------------------------------------------------------- figures


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100), linear between closest ranks; None for no values."""
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within 0..100, got {q!r}")
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def interaction_metrics(interaction: Interaction, index: int = 0, *, stall_ms: float = STALL_MS) -> Metrics:
    """The figures for one interaction (``index`` only labels it)."""
    req, res = interaction.request, interaction.response
    dialect = dialect_of(interaction)
    events = res.events or ()
    payloads = [None if ev.data is None or ev.data == "[DONE]" else ev.json(default=None) for ev in events]
    token_times: list[float] = []
    flowing = 0
    produced: list[str] = []
    usage: int | None = None
    stop: str | None = None
    for i, (ev, payload) in enumerate(zip(events, payloads)):
        text = dialect.delta_text(payload)
        if text:
            if not token_times:
                flowing = i
            token_times.append(ev.t)
            produced.append(text)
        found = dialect.usage_tokens(payload)
        if found is not None:
            usage = found
        reason = dialect.stop_reason(payload, ev.event)
        if reason is not None and not (stop or "").startswith("error"):
            stop = reason
    tokens: int | None
    source: str | None
    if usage is not None:
        tokens, source = usage, "usage"
    elif produced:
        tokens, source = _estimate("".join(produced)), "estimate"
    else:
        tokens, source = None, None
    ttft = token_times[0] if token_times else None
    last_token = token_times[-1] if token_times else None
    window = token_times[-1] - token_times[0] if token_times else 0.0
    tps = tokens * 1000.0 / window if tokens is not None and window > 0 else None
    times = [ev.t for ev in events[flowing:]]
    gaps = [b - a for a, b in zip(times, times[1:])]
    end_t = res.end.t if res.is_stream else None
    silences = list(zip(times, times[1:]))
    if times and end_t is not None and end_t > times[-1]:
        silences.append((times[-1], end_t))
    longest = max(silences, key=lambda s: s[1] - s[0], default=None)
    return Metrics(
        index=index,
        method=req.method,
        path=req.path,
        status=res.status,
        stream=res.is_stream,
        headers_ms=res.headers_at,
        first_event_ms=events[0].t if events else None,
        ttft_ms=ttft,
        last_token_ms=last_token,
        end_ms=end_t,
        output_tokens=tokens,
        tokens_from=source,
        tps=tps,
        gap_p50_ms=percentile(gaps, 50),
        gap_p95_ms=percentile(gaps, 95),
        gap_max_ms=max(gaps) if gaps else None,
        longest_stall_ms=(longest[1] - longest[0]) if longest else (0.0 if times else None),
        longest_stall_at_ms=longest[0] if longest else None,
        stalls=tuple((a, b) for a, b in silences if b - a >= stall_ms),
        events=dict(Counter(event_kind(ev) for ev in events)),
        event_count=len(events),
        end_reason=res.end.reason if res.is_stream else None,
        stop_reason=stop,
        provider=dialect.name,
    )


def cassette_metrics(cassette: Cassette, *, stall_ms: float = STALL_MS) -> tuple[Metrics, ...]:
    """The figures for every interaction of a cassette, in order."""
    return tuple(interaction_metrics(item, i, stall_ms=stall_ms) for i, item in enumerate(cassette.interactions))


def summarize(metrics: Iterable[Metrics]) -> Summary:
    """p50/p95 of TTFT and TPS over the interactions that have them."""
    items = list(metrics)
    ttfts = [m.ttft_ms for m in items if m.ttft_ms is not None]
    rates = [m.tps for m in items if m.tps is not None]
    return Summary(
        interactions=len(items),
        streams=sum(1 for m in items if m.stream),
        ttft_p50_ms=percentile(ttfts, 50),
        ttft_p95_ms=percentile(ttfts, 95),
        tps_p50=percentile(rates, 50),
        tps_p95=percentile(rates, 95),
    )


def cumulative_tokens(interaction: Interaction) -> tuple[tuple[float, float], ...]:
    """``(t, output tokens so far)`` at each token-carrying event, for plotting.

    Each delta counts in proportion to its characters, scaled so the last point is the
    stream's output tokens (its usage when it reports one).
    """
    dialect = dialect_of(interaction)
    events = interaction.response.events or ()
    points: list[tuple[float, int]] = []
    chars = 0
    usage: int | None = None
    for ev in events:
        payload = None if ev.data is None or ev.data == "[DONE]" else ev.json(default=None)
        text = dialect.delta_text(payload)
        if text:
            chars += len(text)
            points.append((ev.t, chars))
        found = dialect.usage_tokens(payload)
        if found is not None:
            usage = found
    if not points:
        return ()
    total = usage if usage is not None else _estimate("".join(delta_text(ev, dialect) for ev in events))
    scale = total / chars if chars else 0.0
    return tuple((t, c * scale) for t, c in points)
