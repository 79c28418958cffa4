"""The readable form of ``streamreel inspect``: one rich table per cassette, then the summary.

Text from the cassette (paths, event names) goes in as ``Text``, never as markup. The table
has a column per figure. When it does not fit the terminal, each interaction is
stacked instead (a label and its figures per line), so that at 80 columns every figure is
still printed whole: a cut or blank figure would be worse than none.
"""

from __future__ import annotations

import os
from typing import Sequence

from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from .cassette import Cassette
from .metrics import Metrics, Summary

__all__ = ["render"]

_ENDING_STYLE = {"complete": "green", "upstream_disconnect": "red", "client_cancel": "yellow", "timeout": "magenta"}
_PIPED_WIDTH = 160
"""Width when the output is not a terminal and COLUMNS is not set: the whole table, for files and pipes."""


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _tokens(m: Metrics) -> str:
    return "-" if m.output_tokens is None else f"{m.output_tokens}{'~' if m.tokens_from == 'estimate' else ''}"


def _gaps(m: Metrics) -> str:
    return f"{_ms(m.gap_p50_ms)}/{_ms(m.gap_p95_ms)}/{_ms(m.gap_max_ms)}"


def _event_counts(m: Metrics) -> list[tuple[int, str]]:
    return [(count, name) for name, count in sorted(m.events.items(), key=lambda kv: (-kv[1], kv[0]))]


def _ending(m: Metrics, sep: str = "\n") -> Text:
    if not m.stream:
        return Text("body")
    ending = Text(m.end_reason or "", style=_ENDING_STYLE.get(m.end_reason or "", "white"))
    return Text.assemble(ending, sep, m.stop_reason) if m.stop_reason else ending


def _request(m: Metrics, provider: str = "\n{}") -> Text:
    """Method and path, and for a stream the dialect it was read as (placed by ``provider``)."""
    request = Text(f"{m.method or '*'} {m.path or '*'}")
    before, _, after = provider.partition("{}")
    return Text.assemble(request, before, (m.provider, "dim"), after) if m.stream else request


def _wide(title: str, metrics: Sequence[Metrics]) -> Table:
    """One row per interaction, one column per figure."""
    table = Table(title=Text(title), title_justify="left", show_lines=len(metrics) > 1)
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
        events = Text("\n".join(f"{count:>4} {name}" for count, name in _event_counts(m)) or "none")
        table.add_row(
            str(m.index), _request(m), str(m.status), _ms(m.headers_ms), _ms(m.ttft_ms), _tokens(m), _rate(m.tps),
            _gaps(m), _ms(m.longest_stall_ms), events, _ending(m),
        )  # fmt: skip
    return table


def _stacked(title: str, metrics: Sequence[Metrics]) -> Group:
    """Each interaction as labelled lines: what a narrow terminal can show without cutting a figure."""
    parts: list[RenderableType] = [Text(title, style="italic")]
    for m in metrics:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        grid.add_row(f"#{m.index}", Text.assemble(_request(m, provider=" ({})"), f" -> {m.status}, ", _ending(m, sep=", ")))
        grid.add_row("time", f"headers {_ms(m.headers_ms)} ms, TTFT {_ms(m.ttft_ms)} ms, longest stall {_ms(m.longest_stall_ms)} ms")
        grid.add_row("tokens", f"{_tokens(m)} at {_rate(m.tps)} tok/s")
        grid.add_row("gaps", f"p50/p95/max {_gaps(m)} ms")
        counts = _event_counts(m)
        width = max((len(str(count)) for count, _ in counts), default=0)
        grid.add_row("events", Text("\n".join(f"{count:>{width}} {name}" for count, name in counts) or "none"))
        parts.append(grid)
    return Group(*parts)


def _console() -> Console:
    probe = Console(highlight=False)
    return probe if probe.is_terminal or "COLUMNS" in os.environ else Console(width=_PIPED_WIDTH, highlight=False)


def render(results: Sequence[tuple[Cassette, Sequence[Metrics]]], summary: Summary | None, console: Console | None = None) -> None:
    """Print each cassette's figures: the wide table where it fits the console, stacked lines where not."""
    console = console or _console()
    for cas, metrics in results:
        title = cas.path or "cassette"
        table = _wide(title, metrics)
        natural = Measurement.get(console, console.options.update_width(10_000), table).maximum
        fits = natural <= console.width
        console.print(table if fits else _stacked(title, metrics))
    if summary is not None:
        console.print(
            f"{summary.streams} stream(s) of {summary.interactions} interaction(s): "
            f"TTFT p50 {_ms(summary.ttft_p50_ms)} ms, p95 {_ms(summary.ttft_p95_ms)} ms; "
            f"tok/s p50 {_rate(summary.tps_p50)}, p95 {_rate(summary.tps_p95)}"
        )
    if any(m.tokens_from == "estimate" for _, ms in results for m in ms):
        console.print("[dim]tokens~ = estimated from the text (the stream reported no usage)[/dim]")
