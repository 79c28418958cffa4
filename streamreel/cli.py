"""The ``streamreel`` command: serve, import and demo (record, inspect, plot and synth build on it)."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import click

from . import cassette as _cassette
from .errors import NonLoopbackWarning, StreamreelError
from .recorder import DEFAULT_TIMEOUT, DEFAULT_UPSTREAM, MODES

__all__ = ["main", "run_until_signal"]


_SYNTH_PROVIDERS = ("anthropic", "openai", "openai-responses", "gemini", "anthropic-vertex", "anthropic-bedrock")
"""``synth --provider`` choices, named here so ``--help`` needs no import of the providers (a test pins them to :data:`streamreel.synth.PROVIDERS`)."""

SERVE_HISTORY = 100
"""Requests and responses `serve` keeps (for no one to read): a long session must not grow without bound."""

SERVE_HISTORY_BYTES = 64 * 1024 * 1024
"""And at most about this many bytes of them: a hundred 30 MB requests would otherwise be kept whole."""


class _Fault(click.ParamType):
    """A ``--fault`` value, parsed (and rejected with the valid choices) before anything starts."""

    name = "fault"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from .fault_injection import parse

        try:
            return parse(value)
        except StreamreelError as e:
            self.fail(str(e), param, ctx)


class _Speed(click.ParamType):
    """A ``--speed``: 0 (no waiting) or a playback rate within the range a timer can keep."""

    name = "factor"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from .fault_injection import check_speed

        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"expected a number, got {value!r}", param, ctx)
        try:
            return check_speed(number)
        except StreamreelError as e:
            self.fail(str(e), param, ctx)


def _fault_list(values: Sequence[tuple[Any, ...]]) -> tuple[Any, ...]:
    return tuple(f for group in values for f in group)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="streamreel")
def main() -> None:
    """Record LLM streams with their timing; replay them with faults."""


def settle_heap() -> None:
    """Once a server is up, move what it loaded (modules, the cassette) out of the cycle collector's
    sight (``gc.freeze``): none of it becomes garbage, and a full collection walking a large
    cassette in the middle of a burst of requests stalled every stream for tens of ms."""
    gc.collect()
    gc.freeze()


def run_until_signal(start: Any, stop: Any, banner: Callable[[], str]) -> None:
    """Run ``start()``, print ``banner`` flushed as the first line, serve until SIGINT/SIGTERM, ``stop()``, exit 0.

    A :class:`NonLoopbackWarning` from ``start()`` goes to stderr as ``warning: ...``, so stdout still starts with the banner.
    """

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, done.set)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", NonLoopbackWarning)
                await start()
        except OSError as e:
            raise click.ClickException(f"cannot listen: {e.strerror or e}") from None
        except (StreamreelError, ValueError, OverflowError) as e:
            raise click.ClickException(" ".join(str(e).split())) from None
        for w in caught:
            if issubclass(w.category, NonLoopbackWarning):
                click.echo(f"warning: {w.message}", err=True)
            else:
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        settle_heap()
        click.echo(banner())
        sys.stdout.flush()
        try:
            await done.wait()
        finally:
            await stop()

    asyncio.run(serve())


_PORT = click.IntRange(0, 65535)


def _host(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.strip():
        raise click.BadParameter("an empty host would listen on every interface, each on its own port; give 127.0.0.1 (the default), ::1, or 0.0.0.0")
    return value


@main.command()
@click.argument("cassette")
@click.option("--host", default="127.0.0.1", show_default=True, callback=_host, help="Interface to bind (loopback by default; others warn).")
@click.option("--port", default=0, show_default=True, type=_PORT, help="Port; 0 picks a free one.")
@click.option("--idle-timeout", default=None, type=click.FloatRange(min=0, min_open=True, max=86400), help="Seconds a client may take to send a request head, pause a body, or leave a response unread before it is cut (default 60).")
@click.option("--speed", default=1.0, show_default=True, type=_Speed(), help="Playback rate: 2 = twice as fast, 0 = no waiting (0.001 to 1000).")
@click.option("--fault", "faults", multiple=True, type=_Fault(), help="Fault spec, e.g. 'disconnect:after=5'; repeatable.")
@click.option("--ids", is_flag=True, help="Number the events (id: N) so a browser's EventSource resumes with Last-Event-ID.")
@click.option("--retry-ms", default=None, type=click.IntRange(min=0), help="Send `retry:` with this reconnect delay (1000 with --ids).")
@click.option("-q", "--quiet", is_flag=True, help="No line per response on stderr.")
@click.option("--log", "log_file", default=None, type=click.Path(dir_okay=False, writable=True), help="Append one JSON line per response to this file (what GET /__streamreel/responses lists).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Processes serving the port, one core each; requests are counted, played in order and faulted as by one.")
def serve(cassette: str, host: str, port: int, idle_timeout: float | None, speed: float, faults: tuple[tuple[Any, ...], ...], ids: bool, retry_ms: int | None, quiet: bool, log_file: str | None, workers: int) -> None:
    """Serve CASSETTE until interrupted; prints `listening on http://HOST:PORT` first, then a line per response on stderr.

    CASSETTE is a cassette file, a bundled cassette's name (`text`, `tool_use`, ...), or a
    directory: each request then names its cassette with the `x-streamreel-cassette` header
    (or `?streamreel_cassette=`). Tests drive and inspect the server under /__streamreel/
    (see docs/admin.md).
    """
    from .replayer import Replayer

    source = _served(cassette)
    directory = source.is_dir()
    options: dict[str, Any] = {
        "cassette": None if directory else source,
        "cassette_dir": source if directory else None,
        "speed": speed,
        "faults": _fault_list(faults),
        "host": host,
        "port": port,
        "ids": ids,
        "retry_ms": retry_ms,
        **({} if idle_timeout is None else {"idle_timeout": idle_timeout}),
    }
    from .guard import raise_open_files

    limited = raise_open_files()
    if limited is not None:
        click.echo(f"warning: {limited}", err=True)
    if workers > 1:
        _serve_workers(options, workers, quiet=quiet, log_file=log_file)
        return
    try:
        replayer = Replayer(**options, history=SERVE_HISTORY, history_bytes=SERVE_HISTORY_BYTES)
    except (StreamreelError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    log = _ResponseLog(replayer, quiet=quiet, path=log_file)
    if not quiet or log_file:
        replayer.on_response = log  # quiet with no log file: no response is described at all

    async def stop() -> None:
        await replayer.stop()
        log.close()

    run_until_signal(replayer.start, stop, lambda: f"listening on {replayer.url}")


def _serve_workers(options: dict[str, Any], workers: int, *, quiet: bool, log_file: str | None) -> None:
    from .workers import serve as serve_workers

    def listening(url: str) -> None:
        click.echo(f"listening on {url}")
        sys.stdout.flush()

    try:
        code = serve_workers(
            options,
            workers=workers,
            on_listening=listening,
            make_log=lambda pool: _ResponseLog(pool, quiet=quiet, path=log_file),
            history=SERVE_HISTORY,
            history_bytes=SERVE_HISTORY_BYTES,
            say=lambda message: click.echo(message, err=True),
        )
    except OSError as e:
        raise click.ClickException(f"cannot listen: {e.strerror or e}") from None
    except (StreamreelError, ValueError, OverflowError) as e:
        raise click.ClickException(" ".join(str(e).split())) from None
    if code:
        sys.exit(code)


def _served(cassette: str) -> Path:
    """A file or directory as given, else the bundled cassette of that name."""
    path = Path(cassette)
    if path.exists():
        return path
    if cassette in _cassette.bundled_names() or cassette.removesuffix(".yaml") in _cassette.bundled_names():
        return _cassette.bundled(cassette)
    raise click.BadParameter(f"no such file or directory, nor a bundled cassette (bundled: {', '.join(_cassette.bundled_names())})", param_hint=f"CASSETTE {cassette!r}")


class _ResponseLog:
    """What `serve` says about each finished response: a short line on stderr (unless quiet) and a JSON line in ``path``."""

    def __init__(self, server: Any, *, quiet: bool, path: str | None) -> None:
        self.server = server
        self.quiet = quiet
        self.file = open(path, "a", encoding="utf-8", buffering=1) if path else None  # noqa: SIM115 (closed on stop)
        self.path = path

    def __call__(self, request: Any, response: Any, worker: tuple[int, int] | None = None) -> None:
        """Log a finished response; ``worker`` is the ``(number, pid)`` of the process that served it under ``--workers``."""
        if self.quiet and self.file is None:
            return  # nothing to say: spare the server describing the response
        from .verdicts import exchanges

        e = exchanges([request], [response], epoch=self.server.epoch)[0]
        if not self.quiet:
            line = self.line(e)
            click.echo(line if worker is None else f"{line}, worker {worker[0]}", err=True)
        if self.file is not None:
            record = e.as_dict() if worker is None else {**e.as_dict(), "worker": worker[0], "worker_pid": worker[1]}
            try:
                self.file.write(json.dumps(record) + "\n")
            except OSError as err:
                click.echo(f"warning: cannot write {self.path}: {err.strerror or err}; no more JSON lines go there", err=True)
                self.close()

    def line(self, e: Any) -> str:
        cassette = e.cassette
        if cassette is None and self.server.cassette_dir is None:
            path = self.server.cassette.path
            cassette = Path(path).name if path else None
        where = "no match" if e.interaction is None else f"{cassette or 'cassette'}#{e.interaction}"
        parts = [f"#{e.request} {e.method} {e.path} -> {e.status} {where}"]
        fired = [f["spec"] for f in e.faults if f["fired"]]
        if fired:
            parts.append("fired " + " ".join(fired))
        ending = e.ending or "open"
        if e.client_hung_up and ending != "client_hung_up":
            ending += " (client left)"
        parts.append(f"{ending}, {e.events} events, {e.bytes} B, {(e.end_ms or e.start_ms) - e.arrived_ms:.0f} ms")
        return ", ".join(parts)

    def close(self) -> None:
        file, self.file = self.file, None
        if file is not None:
            file.close()


@main.command(name="import")
@click.argument("source", type=click.Path(exists=True))
@click.option("-o", "--output", required=True, type=click.Path(), help="Cassette to write (a directory when SOURCE is one).")
@click.option("--gap-ms", default=20.0, show_default=True, help="Synthetic gap between events.")
@click.option("--jitter-ms", default=0.0, show_default=True, help="Spread each gap uniformly by up to this much either way.")
@click.option("--seed", default=0, show_default=True, help="Seed for the jitter.")
@click.option("--first-ms", default=None, type=float, help="Time to the first event (default: one gap after the headers).")
@click.option("--headers-ms", default=0.0, show_default=True, help="Time to the response headers.")
@click.option("--end", type=click.Choice(_cassette.END_REASONS), default=None, help="How the stream ended, whatever the capture says: complete (clean end of body), upstream_disconnect (cut), timeout (silence).")
@click.option("--method", default=None, help="Request method to match (default from the provider).")
@click.option("--path", "req_path", default=None, help="Request path to match, e.g. /v1/messages or /stream?q=1.")
@click.option("--format", "fmt", type=click.Choice(["auto", "sse", "log", "har", "chunks", "vcrpy", "eventstream"]), default="auto", show_default=True, help="What SOURCE holds.")
def import_(
    source: str,
    output: str,
    gap_ms: float,
    jitter_ms: float,
    seed: int,
    first_ms: float | None,
    headers_ms: float,
    end: str | None,
    method: str | None,
    req_path: str | None,
    fmt: str,
) -> None:
    """Turn a capture into a cassette: raw SSE text, a log with a timestamp on each SSE line, a HAR
    file, JSON chunks per line, a raw Bedrock event stream, or a vcrpy / pytest-recording cassette.

    Several responses back to back become several interactions. Prints what it restored or
    guessed, one line each. Given a directory, imports every vcrpy cassette under it into
    OUTPUT, keeping relative paths.
    """
    from .importer import Timing, import_capture, import_directory

    timing = Timing(gap_ms=gap_ms, jitter_ms=jitter_ms, seed=seed, first_ms=first_ms, headers_ms=headers_ms)
    if Path(source).is_dir():
        if method or req_path or fmt not in ("auto", "vcrpy"):
            raise click.UsageError("--method, --path and --format apply to one capture file, not a directory of vcrpy cassettes")
        try:
            results = import_directory(source, output, timing=timing, end=end)
        except StreamreelError as e:
            raise click.ClickException(str(e)) from None
        for r in results:
            click.echo(f"wrote {r.output}: {r.interactions} interaction(s)" if r.output else f"skipped {r.reason}", err=r.output is None)
        written = sum(1 for r in results if r.output)
        click.echo(f"imported {written} of {len(results)} YAML file(s) into {output}")
        if not written:
            raise click.ClickException(f"{source}: no vcrpy cassettes imported")
        return
    try:
        imported = import_capture(source, format=fmt, timing=timing, end=end, method=method, path=req_path)
    except StreamreelError as e:
        raise click.ClickException(str(e)) from None
    cas = imported.cassette
    _cassette.save(cas, output, comment=f"imported from {Path(source).name} by `streamreel import` ({imported.timing})")
    n = sum(len(i.response.events or ()) for i in cas.interactions)
    reasons = ", ".join(sorted({i.response.end.reason for i in cas.interactions}))
    click.echo(f"wrote {output}: {len(cas.interactions)} interaction(s), {n} events, ended {reasons}")
    for note in imported.notes:
        click.echo(f"note: {note}")


@main.command(name="merge")
@click.argument("cassettes", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Cassette to write.")
def merge_(cassettes: tuple[str, ...], output: str) -> None:
    """Join CASSETTES into one, their interactions in the order given (a failed attempt, then its retry).

    Each is checked as it loads; the result is scrubbed as a recording is, and its faults
    must still apply to some response.
    """
    from .importer import merge

    try:
        merged = merge([_cassette.load(path) for path in cassettes])
        _cassette.save(merged, output, comment=f"merged by `streamreel merge` from {', '.join(Path(p).name for p in cassettes)}")
    except (StreamreelError, OSError) as e:
        raise click.ClickException(str(e)) from None
    n = sum(len(i.response.events or ()) for i in merged.interactions)
    click.echo(f"wrote {output}: {len(merged.interactions)} interaction(s) from {len(cassettes)} cassette(s), {n} events")



# ---------------------------------------------------------------- inspect, plot, synth


def _load_for_inspect(target: str) -> tuple[list[Any], list[str]]:
    """Cassettes at ``target`` (a file, or every *.yaml/*.yml under a directory) and the skipped files' reasons."""
    path = Path(target)
    if path.is_file():
        try:
            return [_cassette.load(path)], []
        except StreamreelError as e:
            raise click.ClickException(str(e)) from None
    files = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    loaded, skipped = [], []
    for f in files:
        try:
            loaded.append(_cassette.load(f))
        except StreamreelError as e:
            skipped.append(str(e))
    if not loaded:
        raise click.ClickException(f"{target}: no streamreel cassettes found" + (f" ({len(skipped)} YAML file(s) skipped)" if skipped else ""))
    return loaded, skipped


@main.command(name="inspect")
@click.argument("target", type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per interaction (JSON Lines), then a summary line.")
@click.option("--stall-ms", default=500.0, show_default=True, help="A silence at least this long counts as a stall.")
def inspect_(target: str, as_json: bool, stall_ms: float) -> None:
    """Show TTFT, tokens/s, gaps, stalls and endings of CASSETTE, or of every cassette in a DIRECTORY."""
    import json

    from .metrics import cassette_metrics, summarize

    cassettes, skipped = _load_for_inspect(target)
    for reason in skipped:
        click.echo(f"skipped {reason}", err=True)
    results = [(cas, cassette_metrics(cas, stall_ms=stall_ms)) for cas in cassettes]
    everything = [m for _, ms in results for m in ms]
    summary = summarize(everything) if len(everything) > 1 else None
    if as_json:
        for cas, ms in results:
            for m in ms:
                click.echo(json.dumps({"cassette": cas.path, **m.as_dict()}, ensure_ascii=False))
        if summary is not None:
            click.echo(json.dumps({"summary": summary.as_dict()}))
        return
    from ._inspect_table import render

    render(results, summary)


@main.command(name="plot")
@click.argument("cassette", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Image to write: .png or .svg.")
@click.option("--index", default=None, type=int, help="Draw only this interaction (0-based).")
@click.option("--stall-ms", default=500.0, show_default=True, help="Shade silences at least this long.")
def plot_(cassette: str, output: str, index: int | None, stall_ms: float) -> None:
    """Draw CASSETTE's streams: event arrivals, cumulative tokens, TTFT, stalls and the ending (needs streamreel[plot])."""
    from .plot import plot_cassette

    try:
        written = plot_cassette(_cassette.load(cassette), output, index=index, stall_ms=stall_ms)
    except StreamreelError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"wrote {written}")


@main.command(name="synth")
@click.option("--text", "text_file", type=click.File("r", encoding="utf-8"), default=None, help="File with the reply text, or - for stdin.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Cassette to write.")
@click.option("--provider", type=click.Choice(list(_SYNTH_PROVIDERS)), default="anthropic", show_default=True, help="API dialect of the stream.")
@click.option("--ttft-ms", default=400.0, show_default=True, help="Time to the first token.")
@click.option("--tps", default=60.0, show_default=True, help="Output tokens per second after the first.")
@click.option("--jitter-ms", default=0.0, show_default=True, help="Move each delta by up to this much either way.")
@click.option("--seed", default=0, show_default=True, help="Seed for token splits and jitter.")
@click.option("--headers-ms", default=None, type=float, help="Time to the response headers (default 60% of --ttft-ms).")
@click.option("--tool-input", default=None, help="JSON input of a tool call streamed after the text.")
@click.option("--tool-name", default="tool", show_default=True, help="Name of that tool.")
@click.option("--thinking", "thinking_file", type=click.File("r", encoding="utf-8"), default=None, help="File with thinking text (Anthropic thinking, a Responses reasoning summary, Gemini thoughts).")
@click.option("--model", default=None, help="Model name the stream reports.")
def synth_(
    text_file: Any,
    output: str,
    provider: str,
    ttft_ms: float,
    tps: float,
    jitter_ms: float,
    seed: int,
    headers_ms: float | None,
    tool_input: str | None,
    tool_name: str,
    thinking_file: Any,
    model: str | None,
) -> None:
    """Write a protocol-valid synthetic stream with realistic timing, for tests that have no capture yet."""
    import json

    from .synth import synth_cassette

    text = text_file.read() if text_file is not None else ""
    parsed = None
    if tool_input is not None:
        try:
            parsed = json.loads(tool_input)
        except ValueError as e:
            raise click.BadParameter(f"not valid JSON: {e}", param_hint="--tool-input") from None
    try:
        cas = synth_cassette(
            text,
            provider=provider,
            ttft_ms=ttft_ms,
            tps=tps,
            jitter_ms=jitter_ms,
            seed=seed,
            headers_ms=headers_ms,
            thinking=thinking_file.read() if thinking_file is not None else None,
            tool_input=parsed,
            tool_name=tool_name,
            model=model,
        )
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    _cassette.save(cas, output, comment=f"synthesized by `streamreel synth` ({provider}, ttft {ttft_ms:g} ms, {tps:g} tok/s, jitter {jitter_ms:g} ms, seed {seed})")
    events = cas.interactions[0].response.events or ()
    click.echo(f"wrote {output}: {len(events)} events over {events[-1].t:.0f} ms")


@main.command()
@click.option("--upstream", default=DEFAULT_UPSTREAM, show_default=True, help="API to forward to (base URL).")
@click.option("-o", "--output", "cassette", required=True, type=click.Path(dir_okay=False), help="Cassette to write (and, by mode, replay from).")
@click.option("--host", default="127.0.0.1", show_default=True, callback=_host, help="Interface to bind (loopback by default; others warn).")
@click.option("--port", default=0, show_default=True, type=_PORT, help="Port; 0 picks a free one.")
@click.option("--mode", type=click.Choice(MODES), default="once", show_default=True, help="Record mode, as in vcrpy.")
@click.option("--scrub-header", "scrub_headers", multiple=True, metavar="NAME", help="Header to blank (credential headers always are); repeatable.")
@click.option("--scrub-pattern", "scrub_patterns", multiple=True, metavar="REGEX", help="Regular expression blanked in bodies, events, paths and headers; repeatable.")
@click.option("--scrub-json-key", "scrub_json_keys", multiple=True, metavar="NAME", help="JSON key whose value is blanked at any depth of a request body (api_key, password, token... always are); repeatable.")
@click.option("--scrub-env", "scrub_env", multiple=True, metavar="VAR", help="Environment variable whose value is blanked wherever it appears (a secret never typed on the command line); repeatable.")
@click.option("--timeout", default=DEFAULT_TIMEOUT, show_default=True, help="Seconds the upstream may stay silent before the stream is kept as `timeout`.")
def record(
    cassette: str,
    upstream: str,
    host: str,
    port: int,
    mode: str,
    scrub_headers: tuple[str, ...],
    scrub_patterns: tuple[str, ...],
    scrub_json_keys: tuple[str, ...],
    scrub_env: tuple[str, ...],
    timeout: float,
) -> None:
    """Proxy to --upstream and record into a cassette until interrupted; prints `listening on http://HOST:PORT` first."""
    import logging

    from .recorder import Recorder
    from .scrub import Scrubber

    missing = [name for name in scrub_env if not os.environ.get(name)]
    if missing:
        raise click.BadParameter(f"not set or empty: {', '.join(missing)}", param_hint="--scrub-env")
    try:
        scrub = Scrubber(headers=scrub_headers, patterns=scrub_patterns, json_keys=scrub_json_keys, secrets=[os.environ[name] for name in scrub_env])
        recorder = Recorder(
            upstream=upstream,
            cassette=cassette,
            host=host,
            port=port,
            mode=mode,
            scrub=scrub,
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
        await recorder.stop()
        if recorder.write_error is not None:
            raise click.ClickException(str(recorder.write_error))

    run_until_signal(start, stop, lambda: f"listening on {recorder.url}")




@main.command()
@click.option("--speed", default=1.0, show_default=True, type=_Speed(), help="Playback rate of the bundled recordings (0 = no waiting, 0.001 to 1000).")
def demo(speed: float) -> None:
    """Replay bundled recordings through the real anthropic SDK and show what a user sees."""
    from .demo import run

    raise SystemExit(run(speed=speed))
