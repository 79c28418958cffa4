"""The readable form of ``streamreel inspect``: one rich table per cassette, then the summary."""

from __future__ import annotations

from typing import Sequence

from rich.console import Console
from rich.table import Table

from .cassette import Cassette
from .metrics import Metrics, Summary

__all__ = ["render"]

_ENDING_STYLE = {"complete": "green", "upstream_disconnect": "red", "client_cancel": "yellow", "timeout": "magenta"}


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _events(m: Metrics) -> str:
    return "\n".join(f"{count:>4} {name}" for name, count in sorted(m.events.items(), key=lambda kv: (-kv[1], kv[0]))) or "none"


def _ending(m: Metrics) -> str:
    if not m.stream:
        return "body"
    style = _ENDING_STYLE.get(m.end_reason or "", "white")
    text = f"[{style}]{m.end_reason}[/{style}]"
    return f"{text}\n{m.stop_reason}" if m.stop_reason else text


def render(results: Sequence[tuple[Cassette, Sequence[Metrics]]], summary: Summary | None, console: Console | None = None) -> None:
    if console is None:
        probe = Console()
        console = Console(width=None if probe.is_terminal else max(probe.width, 160), highlight=False)
    for cas, metrics in results:
        table = Table(title=cas.path or "cassette", title_justify="left", show_lines=len(metrics) > 1)
        for name, justify in (
            ("#", "right"),
            ("request", "left"),
            ("status", "right"),
            ("headers\nms", "right"),
            ("TTFT\nms", "right"),
            ("tokens", "right"),
            ("tok/s", "right"),
            ("gaps ms\np50/p95/max", "right"),
            ("stall\nms", "right"),
            ("events", "left"),
            ("end", "left"),
        ):
            table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
        for m in metrics:
            tokens = "-" if m.output_tokens is None else f"{m.output_tokens}{'~' if m.tokens_from == 'estimate' else ''}"
            table.add_row(
                str(m.index),
                f"{m.method or '*'} {m.path or '*'}" + (f"\n[dim]{m.provider}[/dim]" if m.stream else ""),
                str(m.status),
                _ms(m.headers_ms),
                _ms(m.ttft_ms),
                tokens,
                _rate(m.tps),
                f"{_ms(m.gap_p50_ms)}/{_ms(m.gap_p95_ms)}/{_ms(m.gap_max_ms)}",
                _ms(m.longest_stall_ms),
                _events(m),
                _ending(m),
            )
        console.print(table)
    if summary is not None:
        console.print(
            f"{summary.streams} stream(s) of {summary.interactions} interaction(s): "
            f"TTFT p50 {_ms(summary.ttft_p50_ms)} ms, p95 {_ms(summary.ttft_p95_ms)} ms; "
            f"tok/s p50 {_rate(summary.tps_p50)}, p95 {_rate(summary.tps_p95)}"
        )
    if _any_estimate(results):
        console.print("[dim]tokens~ = estimated from the text (the stream reported no usage)[/dim]")


def _any_estimate(results: Sequence[tuple[Cassette, Sequence[Metrics]]]) -> bool:
    return any(m.tokens_from == "estimate" for _, ms in results for m in ms)
