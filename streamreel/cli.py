"""The ``streamreel`` command: serve, import and demo (record, inspect, plot and synth build on it)."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any, Sequence

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


def run_until_signal(start: Any, stop: Any, banner: str) -> None:
    """Run ``start()``, print ``banner`` flushed as the first line, serve until SIGINT/SIGTERM, ``stop()``, exit 0."""

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, done.set)
        await start()
        click.echo(banner() if callable(banner) else banner)
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
@click.option("--first-ms", default=None, type=float, help="Time to the first event (default: one gap after the headers).")
@click.option("--headers-ms", default=0.0, show_default=True, help="Time to the response headers.")
@click.option("--end", type=click.Choice(_cassette.END_REASONS), default=None, help="Override how the stream ended.")
@click.option("--method", default=None, help="Request method to match (default from the provider).")
@click.option("--path", "req_path", default=None, help="Request path to match, e.g. /v1/messages or /stream?q=1.")
def import_(source: str, output: str, gap_ms: float, first_ms: float | None, headers_ms: float, end: str | None, method: str | None, req_path: str | None) -> None:
    """Turn a raw SSE capture (a stream's text as logged or copied from devtools) into a cassette."""
    from .importer import import_file

    try:
        cas = import_file(source, gap_ms=gap_ms, first_ms=first_ms, headers_ms=headers_ms, end=end, method=method, path=req_path)
    except StreamreelError as e:
        raise click.ClickException(str(e)) from None
    _cassette.save(cas, output, comment=f"imported from {Path(source).name} by `streamreel import` (synthetic timing, {gap_ms:g} ms gaps)")
    n = sum(len(i.response.events or ()) for i in cas.interactions)
    reasons = ", ".join(sorted({i.response.end.reason for i in cas.interactions}))
    click.echo(f"wrote {output}: {len(cas.interactions)} interaction(s), {n} events, ended {reasons}")



@main.command()
@click.option("--upstream", default="https://api.anthropic.com", show_default=True, help="API to forward to (base URL).")
@click.option("-o", "--output", "cassette", required=True, type=click.Path(dir_okay=False), help="Cassette to write (and, by mode, replay from).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (loopback by default).")
@click.option("--port", default=0, show_default=True, help="Port; 0 picks a free one.")
@click.option("--mode", type=click.Choice(["none", "once", "new_episodes", "all"]), default="once", show_default=True, help="Record mode, as in vcrpy.")
@click.option("--scrub-header", "scrub_headers", multiple=True, metavar="NAME", help="Header to blank (credential headers always are); repeatable.")
@click.option("--scrub-pattern", "scrub_patterns", multiple=True, metavar="REGEX", help="Regular expression blanked in bodies, events, paths and headers; repeatable.")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds the upstream may stay silent before the stream is kept as `timeout`.")
def record(cassette: str, upstream: str, host: str, port: int, mode: str, scrub_headers: tuple[str, ...], scrub_patterns: tuple[str, ...], timeout: float) -> None:
    """Proxy to --upstream and record into a cassette until interrupted; prints `listening on http://HOST:PORT` first."""
    import logging

    from .recorder import Recorder
    from .scrub import Scrubber

    try:
        recorder = Recorder(
            upstream=upstream,
            cassette=cassette,
            host=host,
            port=port,
            mode=mode,
            scrub=Scrubber(headers=scrub_headers, patterns=scrub_patterns),
            timeout=timeout,
        )
    except (StreamreelError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    log = logging.getLogger("streamreel.recorder")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False

    async def start() -> None:
        await recorder.start()
        if not recorder.recording:
            log.info("%s exists: replaying it only (mode %s); use --mode new_episodes to add to it or --mode all to re-record", cassette, mode)

    async def stop() -> None:
        try:
            await recorder.stop()
        except StreamreelError as e:
            raise click.ClickException(str(e)) from None

    run_until_signal(start, stop, lambda: f"listening on {recorder.url}")


if __name__ == "__main__":  # pragma: no cover
    main()
