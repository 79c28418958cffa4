"""A picture of a stream: event arrivals, cumulative output tokens, TTFT, stalls, the ending.

Needs matplotlib (``pip install 'streamreel[plot]'``). Figures are drawn on
``matplotlib.figure.Figure`` directly, never through pyplot, so plotting touches no
global backend state and works headless; the file type follows the suffix (``.png``,
``.svg``). SVG text stays text, so the labels can be searched and read by tools.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from .cassette import Cassette, Interaction
from .errors import StreamreelError
from .metrics import STALL_MS, Metrics, cumulative_tokens, delta_text, event_kind, interaction_metrics

__all__ = ["plot_cassette", "plot_interactions", "FORMATS", "MAX_PANELS"]

FORMATS = (".png", ".svg")
MAX_PANELS = 12
"""At most this many interactions are drawn in one figure; pick others with ``index``."""

_COLORS = {"token": "#1f77b4", "event": "#7f7f7f", "keepalive": "#c7c7c7", "error": "#d62728"}
_ENDING_COLORS = {"complete": "#2ca02c", "upstream_disconnect": "#d62728", "client_cancel": "#ff7f0e", "timeout": "#9467bd"}


def _matplotlib() -> Any:
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise StreamreelError("plotting needs matplotlib, which is not installed: pip install 'streamreel[plot]'") from None
    return matplotlib, Figure


def plot_cassette(
    cassette: Cassette,
    output: str | os.PathLike[str],
    *,
    index: int | None = None,
    stall_ms: float = STALL_MS,
    title: str | None = None,
) -> Path:
    """Draw the streamed interactions of ``cassette`` (or only ``index``) into ``output``; returns its path."""
    items = list(enumerate(cassette.interactions))
    if index is not None:
        if not 0 <= index < len(items):
            raise StreamreelError(f"no interaction {index}: the cassette has {len(items)} (0 to {len(items) - 1})")
        items = [items[index]]
    streams = [(i, item) for i, item in items if item.response.is_stream]
    if not streams:
        raise StreamreelError("nothing to plot: no streamed interaction" + (f" at index {index}" if index is not None else " in the cassette"))
    return plot_interactions(streams, output, stall_ms=stall_ms, title=title or cassette.path)


def plot_interactions(
    items: Sequence[tuple[int, Interaction]],
    output: str | os.PathLike[str],
    *,
    stall_ms: float = STALL_MS,
    title: str | None = None,
) -> Path:
    """Draw ``(index, interaction)`` pairs, one panel each, into ``output`` (``.png`` or ``.svg``)."""
    target = Path(os.fspath(output))
    if target.suffix.lower() not in FORMATS:
        raise StreamreelError(f"{target}: cannot tell the image type; the file name must end in {' or '.join(FORMATS)}")
    matplotlib, Figure = _matplotlib()
    shown = list(items)[:MAX_PANELS]
    with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 9}):
        fig = Figure(figsize=(10, 2.6 * len(shown) + 0.6), layout="constrained")
        axes = fig.subplots(len(shown), 1, squeeze=False)[:, 0]
        for ax, (i, item) in zip(axes, shown):
            _panel(ax, item, interaction_metrics(item, i, stall_ms=stall_ms))
        if title or len(items) > len(shown):
            extra = f" (first {len(shown)} of {len(items)} streams)" if len(items) > len(shown) else ""
            fig.suptitle(f"{title or ''}{extra}".strip())
        target.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(target, dpi=110)
    return target


def _panel(ax: Any, item: Interaction, m: Metrics) -> None:
    events = item.response.events or ()
    points = cumulative_tokens(item)
    end_t = m.end_ms if m.end_ms is not None else (events[-1].t if events else m.headers_ms)
    right = max(end_t, m.headers_ms, 1.0) * 1.04

    for start, stop in m.stalls:
        ax.axvspan(start, stop, color="#ff7f0e", alpha=0.18, lw=0)
        ax.text((start + stop) / 2, 0.97, f"stall {_duration(stop - start)}", transform=ax.get_xaxis_transform(), ha="center", va="top", color="#b35806")

    kinds: dict[str, list[float]] = {"token": [], "event": [], "keepalive": [], "error": []}
    for ev in events:
        kind = event_kind(ev)
        if kind in ("comment", "ping"):
            kinds["keepalive"].append(ev.t)
        elif kind == "error":
            kinds["error"].append(ev.t)
        elif delta_text(ev):
            kinds["token"].append(ev.t)
        else:
            kinds["event"].append(ev.t)
    labels = {"token": "token deltas", "event": "other events", "keepalive": "pings / comments", "error": "errors"}
    for kind, times in kinds.items():
        if times:
            ax.vlines(times, 0, 0.08, transform=ax.get_xaxis_transform(), colors=_COLORS[kind], lw=1.2, label=f"{labels[kind]} ({len(times)})")

    if points:
        xs = [m.ttft_ms or points[0][0]] + [t for t, _ in points]
        ys = [0.0] + [n for _, n in points]
        ax.step(xs, ys, where="post", color=_COLORS["token"], lw=1.6)
        ax.set_ylim(0, max(ys) * 1.15 or 1)
    else:
        ax.set_ylim(0, 1)
    ax.set_ylabel("output tokens")
    ax.set_xlim(0, right)
    ax.set_xlabel("ms from request")

    ax.axvline(m.headers_ms, color="#7f7f7f", ls=":", lw=1)
    ax.text(m.headers_ms, 0.5, " headers", transform=ax.get_xaxis_transform(), rotation=90, va="center", ha="right", color="#555555")
    if m.ttft_ms is not None:
        ax.axvline(m.ttft_ms, color="#2ca02c", ls="--", lw=1.2)
        ax.text(m.ttft_ms, 0.55, f" TTFT {_duration(m.ttft_ms)}", transform=ax.get_xaxis_transform(), rotation=90, va="center", ha="left", color="#2ca02c")

    reason = m.end_reason or "complete"
    color = _ENDING_COLORS.get(reason, "#333333")
    ax.axvline(end_t, color=color, lw=1.5)
    ending = reason if not m.stop_reason else f"{reason} ({m.stop_reason})"
    ax.annotate(
        f"end: {ending}",
        xy=(end_t, 0.85),
        xycoords=ax.get_xaxis_transform(),
        xytext=(-6, 0),
        textcoords="offset points",
        ha="right",
        va="center",
        color=color,
        bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": color, "lw": 0.8},
    )
    rate = f"{m.tps:.1f} tok/s" if m.tps is not None else "no rate"
    tokens = f"{m.output_tokens} tokens" + (" (est.)" if m.tokens_from == "estimate" else "") if m.output_tokens is not None else "no tokens"
    ax.set_title(f"#{m.index} {m.method or '*'} {m.path or '*'}: {m.event_count} events, {tokens}, {rate}", loc="left")
    ax.legend(loc="upper left", fontsize=7, frameon=False)
    ax.grid(axis="y", alpha=0.25)


def _duration(ms: float) -> str:
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.0f} ms"
