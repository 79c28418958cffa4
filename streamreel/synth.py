"""Synthetic streams with realistic shape: token-sized deltas and seeded arrival times.

The protocol itself comes from :mod:`streamreel.providers` (each dialect's ``synth``,
built on ``message_events``, ``chat_events``, ``response_events``...); this module adds what a recording would have had: text cut where a
BPE tokenizer would cut it (:func:`split_like_tokens`), grouped into deltas the way each
API batches them (:func:`group_tokens`), and arrival times for a given time to first
token and output rate (:func:`timing`). Every random choice comes from the ``rng`` passed
in, so a seed gives the same bytes and the same times every run.

Timing follows the figures :mod:`streamreel.metrics` reports: the first delta arrives at
``ttft_ms``, and ``output_tokens / (last delta - first delta)`` is ``tps``.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace
from typing import Any, Sequence

from .cassette import Cassette, End, Interaction, Request, Response
from .metrics import delta_text
from .providers import Dialect, Synth, get, synthesisable
from .sse import Event

__all__ = [
    "PROVIDERS",
    "split_like_tokens",
    "group_tokens",
    "timing",
    "synth_events",
    "synth_cassette",
]

PROVIDERS = tuple(synthesisable())
"""The dialects a stream can be synthesised in (see :mod:`streamreel.providers`)."""

_PRETOKEN = re.compile(r"'(?:[sdmt]|ll|ve|re)(?![^\W\d_])| ?[^\W\d_]+| ?\d{1,3}| ?[^\w\s]+|_+|\n+|[^\S\n]+(?!\S)|[^\S\n]+|.", re.S)
"""Roughly the GPT-2/cl100k pre-tokenizer: contractions, words with their leading space,
numbers in groups of up to three digits, punctuation runs, newlines, other whitespace."""

_WHOLE_WORD = 7
"""Words up to this many letters (plus the leading space) stay one token, as common words do."""

_GAP_MS = 0.2
"""Spacing of the events that carry no tokens (starts, stops, pings) after the one before."""


def split_like_tokens(text: str, rng: random.Random | None = None) -> list[str]:
    """``text`` in pieces the size of BPE tokens; joined, they give ``text`` back.

    Long words are cut into sub-word pieces of 2 to 6 characters (``" pedest" "rian"``),
    runs of non-ASCII characters (CJK, emoji, accents) into pieces of one or two, at
    points drawn from ``rng`` (a fixed seed when None).
    """
    rng = rng or random.Random(0)
    out: list[str] = []
    for piece in _PRETOKEN.findall(text):
        word = piece.lstrip(" ")
        if not word.isascii() and len(word) > 1:
            # CJK, emoji and accented runs cost a token per character or two in byte-level BPE.
            head = len(piece) - len(word) + 1
            out.append(piece[:head])
            rest = piece[head:]
            while rest:
                n = min(rng.randint(1, 2), len(rest))
                out.append(rest[:n])
                rest = rest[n:]
            continue
        if len(word) <= _WHOLE_WORD or not word.isalpha():
            out.append(piece)
            continue
        head = len(piece) - len(word) + rng.randint(3, 6)
        out.append(piece[:head])
        rest = piece[head:]
        while rest:
            n = rng.randint(2, 6)
            if len(rest) - n < 2:
                n = len(rest)
            out.append(rest[:n])
            rest = rest[n:]
    return out


def group_tokens(tokens: Sequence[str], rng: random.Random | None = None, *, fewest: int = 1, most: int = 1) -> list[tuple[str, int]]:
    """Join consecutive tokens into deltas of ``fewest``..``most`` tokens: ``(text, token count)`` pairs."""
    if not 1 <= fewest <= most:
        raise ValueError(f"need 1 <= fewest <= most, got fewest={fewest}, most={most}")
    rng = rng or random.Random(0)
    out: list[tuple[str, int]] = []
    i = 0
    while i < len(tokens):
        n = min(rng.randint(fewest, most), len(tokens) - i)
        out.append(("".join(tokens[i : i + n]), n))
        i += n
    return out


def timing(
    token_counts: Sequence[int],
    *,
    ttft_ms: float,
    tps: float,
    jitter_ms: float = 0.0,
    rng: random.Random | None = None,
) -> list[float]:
    """Arrival time (ms from the request) of each delta carrying ``token_counts[i]`` tokens.

    The first arrives at exactly ``ttft_ms``; later ones are spaced by the tokens they
    carry so that ``sum(token_counts) / (last - first)`` is ``tps`` per second, then each
    is moved by up to ``jitter_ms`` either way (never before the one before it).
    """
    if ttft_ms < 0:
        raise ValueError(f"ttft_ms must be >= 0, got {ttft_ms!r}")
    if not tps > 0:
        raise ValueError(f"tps must be > 0, got {tps!r}")
    if jitter_ms < 0:
        raise ValueError(f"jitter_ms must be >= 0, got {jitter_ms!r}")
    if not token_counts:
        return []
    rng = rng or random.Random(0)
    total = sum(token_counts)
    after_first = total - token_counts[0]
    per_token = total * 1000.0 / tps / after_first if after_first else 0.0
    out = [float(ttft_ms)]
    done = 0
    for count in token_counts[1:]:
        done += count
        t = ttft_ms + done * per_token
        if jitter_ms:
            t += rng.uniform(-jitter_ms, jitter_ms)
        out.append(round(max(t, out[-1]), 3))
    return out


def _split_json(text: str, rng: random.Random) -> list[tuple[str, int]]:
    """Tool-call JSON cut at arbitrary points (inside strings and escapes too), as the APIs stream it."""
    tokens = split_like_tokens(text, rng)
    out: list[tuple[str, int]] = []
    i = 0
    while i < len(tokens):
        n = min(rng.randint(2, 8), len(tokens) - i)
        out.append(("".join(tokens[i : i + n]), n))
        i += n
    return out


def synth_events(
    text: str = "",
    *,
    provider: str = "anthropic",
    ttft_ms: float = 400.0,
    tps: float = 60.0,
    jitter_ms: float = 0.0,
    seed: int = 0,
    headers_ms: float | None = None,
    thinking: str | None = None,
    tool_input: Any = None,
    tool_name: str = "tool",
    model: str | None = None,
) -> tuple[float, tuple[Event, ...]]:
    """``(headers_ms, events)`` of one protocol-valid stream carrying ``text``, timed.

    ``provider`` is any of :data:`PROVIDERS`. ``tool_input`` (a JSON-able value) adds a tool
    call after the text; ``thinking`` adds thinking before it (Anthropic thinking, a Responses
    reasoning summary, Gemini thought parts). Headers come at ``headers_ms`` (default 60% of
    ``ttft_ms``), the message's opening events just after.
    """
    if provider not in PROVIDERS:
        raise ValueError(f"provider must be one of {', '.join(PROVIDERS)}, got {provider!r}")
    dialect = get(provider)
    if thinking is not None and not dialect.has_thinking:
        thinkers = ", ".join(get(p).label for p in PROVIDERS if get(p).has_thinking)
        raise ValueError(f"{dialect.label} streams carry no thinking (these do: {thinkers}); leave thinking out for provider={provider!r}")
    if not text and not thinking and tool_input is None:
        raise ValueError("nothing to stream: give text, thinking or a tool input")
    rng = random.Random(seed)
    fewest, most = dialect.delta_tokens
    thinking_deltas = group_tokens(split_like_tokens(thinking, rng), rng, fewest=fewest, most=most) if thinking else []
    text_deltas = group_tokens(split_like_tokens(text, rng), rng, fewest=fewest, most=most) if text else []
    json_deltas = _split_json(json.dumps(tool_input, ensure_ascii=False), rng) if tool_input is not None else []
    if json_deltas and not dialect.streams_tool_input:
        json_deltas = [("".join(d for d, _ in json_deltas), sum(n for _, n in json_deltas))]
    pieces = thinking_deltas + text_deltas + json_deltas
    total = sum(n for _, n in pieces)
    reply = Synth(
        text=tuple(d for d, _ in text_deltas),
        thinking=tuple(d for d, _ in thinking_deltas),
        tool=(tool_name, tuple(d for d, _ in json_deltas)) if json_deltas else None,
        output_tokens=total,
        model=model,
    )
    events = dialect.synth(reply)
    times = iter(timing([n for _, n in pieces], ttft_ms=ttft_ms, tps=tps, jitter_ms=jitter_ms, rng=rng))
    head = ttft_ms * 0.6 if headers_ms is None else headers_ms
    if head > ttft_ms:
        raise ValueError(f"headers_ms ({head:g}) must not be later than ttft_ms ({ttft_ms:g})")
    return head, _place(events, times, head, dialect)


def _place(events: Sequence[Event], times: Any, headers_ms: float, dialect: Dialect) -> tuple[Event, ...]:
    """Give token-carrying deltas their times in order; every other event follows the one before it."""
    out: list[Event] = []
    prev = headers_ms
    for ev in events:
        if delta_text(ev, dialect):
            t = next(times)
        else:
            t = round(prev + _GAP_MS, 3)
        out.append(replace(ev, t=t))
        prev = t
    return tuple(out)


def synth_cassette(text: str = "", *, provider: str = "anthropic", **options: Any) -> Cassette:
    """A one-interaction cassette serving :func:`synth_events` (same options), ended cleanly."""
    headers_ms, events = synth_events(text, provider=provider, **options)
    dialect = get(provider)
    response = Response(
        status=200,
        headers=dialect.response_headers(),
        headers_at=round(headers_ms, 3),
        events=events,
        end=End(t=events[-1].t, reason="complete"),
    )
    return Cassette(interactions=(Interaction(request=Request(method="POST", path=dialect.path(options.get("model"))), response=response),))
