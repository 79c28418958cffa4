"""The ``streamreel`` command: serve, import and demo (record, inspect, plot and synth build on it)."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import click

from . import cassette as _cassette
from .errors import StreamreelError

__all__ = ["main"]


class _Fault(click.ParamType):
    """A ``--fault`` value, parsed (and rejected with the valid choices) before anything starts."""

    name = "fault"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from .fault_injection import parse

        try:
            return parse(value)
        except StreamreelError as e:
            self.fail(str(e), param, ctx)


def _fault_list(values: Sequence[tuple[Any, ...]]) -> tuple[Any, ...]:
    return tuple(f for group in values for f in group)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="streamreel")
def main() -> None:
    """Record LLM streams with their timing; replay them with faults."""


def run_until_signal(start: Any, stop: Any, banner: Callable[[], str]) -> None:
    """Run ``start()``, print ``banner`` flushed as the first line, serve until SIGINT/SIGTERM, ``stop()``, exit 0."""

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, done.set)
        await start()
        click.echo(banner())
        sys.stdout.flush()
        try:
            await done.wait()
        finally:
            await stop()

    asyncio.run(serve())


@main.command()
@click.argument("cassette", type=click.Path(exists=True, dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (loopback by default).")
@click.option("--port", default=0, show_default=True, help="Port; 0 picks a free one.")
@click.option("--speed", default=1.0, show_default=True, help="Playback rate: 2 = twice as fast, 0 = no waiting.")
@click.option("--fault", "faults", multiple=True, type=_Fault(), help="Fault spec, e.g. 'disconnect:after=5'; repeatable.")
def serve(cassette: str, host: str, port: int, speed: float, faults: tuple[tuple[Any, ...], ...]) -> None:
    """Serve CASSETTE until interrupted; prints `listening on http://HOST:PORT` first."""
    from .replayer import Replayer

    try:
        replayer = Replayer(cassette, speed=speed, faults=_fault_list(faults), host=host, port=port)
    except StreamreelError as e:
        raise click.ClickException(str(e)) from None
    run_until_signal(replayer.start, replayer.stop, lambda: f"listening on {replayer.url}")


@main.command(name="import")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Cassette to write.")
@click.option("--gap-ms", default=20.0, show_default=True, help="Synthetic gap between events.")
@click.option("--jitter-ms", default=0.0, show_default=True, help="Spread each gap uniformly by up to this much either way.")
@click.option("--seed", default=0, show_default=True, help="Seed for the jitter.")
@click.option("--first-ms", default=None, type=float, help="Time to the first event (default: one gap after the headers).")
@click.option("--headers-ms", default=0.0, show_default=True, help="Time to the response headers.")
@click.option("--end", type=click.Choice(_cassette.END_REASONS), default=None, help="Override how the stream ended.")
@click.option("--method", default=None, help="Request method to match (default from the provider).")
@click.option("--path", "req_path", default=None, help="Request path to match, e.g. /v1/messages or /stream?q=1.")
def import_(source: str, output: str, gap_ms: float, jitter_ms: float, seed: int, first_ms: float | None, headers_ms: float, end: str | None, method: str | None, req_path: str | None) -> None:
    """Turn a raw SSE capture (a stream's text as logged or copied from devtools) into a cassette."""
    from .importer import import_file

    try:
        cas = import_file(source, gap_ms=gap_ms, jitter_ms=jitter_ms, seed=seed, first_ms=first_ms, headers_ms=headers_ms, end=end, method=method, path=req_path)
    except StreamreelError as e:
        raise click.ClickException(str(e)) from None
    _cassette.save(cas, output, comment=f"imported from {Path(source).name} by `streamreel import` (synthetic timing, {gap_ms:g} ms gaps)")
    n = sum(len(i.response.events or ()) for i in cas.interactions)
    reasons = ", ".join(sorted({i.response.end.reason for i in cas.interactions}))
    click.echo(f"wrote {output}: {len(cas.interactions)} interaction(s), {n} events, ended {reasons}")


if __name__ == "__main__":  # pragma: no cover
    main()


@main.command()
@click.option("--speed", default=1.0, show_default=True, help="Playback rate of the bundled recordings.")
def demo(speed: float) -> None:
    """Replay bundled recordings through the real anthropic SDK and show what a user sees."""
    from .demo import run

    raise SystemExit(run(speed=speed))
