"""`streamreel record`: a real subprocess, real signals, the cassette it leaves behind."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any, Iterator

import anthropic
import pytest
from _recorder_helpers import MESSAGE, capture, cassette, files_under
from click.testing import CliRunner

from streamreel import Replayer, load
from streamreel.cassette import Request
from streamreel.cli import main
from streamreel.recorder import MODES

KEY = "sk-ant-api03-CLIRECORDKEY-0a1b2c3d"


def question(text: str) -> dict[str, Any]:
    return {**MESSAGE, "messages": [{"role": "user", "content": text}]}


@pytest.fixture
def upstream() -> Iterator[Replayer]:
    """A quick stream and a slow one (40 events, 50 ms apart), told apart by the question."""
    quick = capture(seed=1, gaps_ms=(1.0, 2.0), request=Request(method="POST", path="/v1/messages", body={**question("quick"), "stream": True}))
    slow_source = capture(seed=2, gaps_ms=(50.0, 50.0), request=Request(method="POST", path="/v1/messages", body={**question("slow"), "stream": True}))
    with Replayer(cassette(quick, slow_source)) as up:
        yield up


def start_recorder(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamreel.cli", "record", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith("listening on http://127.0.0.1:"), first
    return proc, first.split()[-1]


def wait_for_line(stream: IO[str], needle: str, timeout: float = 10.0) -> list[str]:
    """Read lines until one contains ``needle``; fails after ``timeout`` seconds."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(deadline - time.monotonic()):
                break
            line = stream.readline()
            if not line:
                break
            seen.append(line)
            if needle in line:
                return seen
    raise AssertionError(f"no line with {needle!r} within {timeout}s; saw {seen!r}")


def stream_events(url: str, text: str, *, stop_after: int | None = None, on_stop: Any = None) -> tuple[int, BaseException | None]:
    client = anthropic.Anthropic(base_url=url, api_key=KEY, max_retries=0, timeout=10.0)
    n = 0
    try:
        with client.messages.create(**question(text), stream=True) as stream:
            for _ in stream:
                n += 1
                if n == stop_after:
                    on_stop()
    except Exception as e:  # the cut the signal causes
        return n, e
    finally:
        client.close()
    return n, None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_0_and_leaves_a_cassette_with_the_stream_in_flight_kept(tmp_path: Path, upstream: Replayer, sig: signal.Signals) -> None:
    out = tmp_path / "rec" / "cli.yaml"
    proc, url = start_recorder("--upstream", upstream.url, "-o", str(out), "--mode", "all", "--timeout", "5")
    try:
        done, error = stream_events(url, "quick")
        assert error is None and done > 3
        seen, error = stream_events(url, "slow", stop_after=3, on_stop=lambda: proc.send_signal(sig))
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert error is not None and 3 <= seen < 40
    quick, slow = load(out).interactions
    assert quick.response.end.reason == "complete"
    assert slow.response.end.reason == "client_cancel"
    assert 3 <= len(slow.response.events or ()) < 40
    assert "recorded POST /v1/messages -> 200" in stderr
    for text in (stdout, stderr, *(p.read_text(errors="replace") for p in files_under(tmp_path))):
        assert KEY not in text
    assert files_under(tmp_path) == [out]


def test_killed_recorder_leaves_the_last_written_cassette_valid(tmp_path: Path, upstream: Replayer) -> None:
    out = tmp_path / "killed.yaml"
    proc, url = start_recorder("--upstream", upstream.url, "-o", str(out))
    try:
        assert proc.stderr is not None
        _, error = stream_events(url, "quick")
        assert error is None
        wait_for_line(proc.stderr, "(1 interactions)")
        seen, error = stream_events(url, "slow", stop_after=3, on_stop=lambda: os.kill(proc.pid, signal.SIGKILL))
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert error is not None
    (only,) = load(out).interactions
    assert only.request.body["messages"][0]["content"] == "quick"
    assert only.response.end.reason == "complete"
    for path in files_under(tmp_path):
        assert KEY not in path.read_text(errors="replace")


def test_existing_cassette_in_mode_once_is_replayed_and_says_so(tmp_path: Path, upstream: Replayer) -> None:
    out = tmp_path / "once.yaml"
    proc, url = start_recorder("--upstream", upstream.url, "-o", str(out), "--mode", "once")
    try:
        assert proc.stderr is not None
        stream_events(url, "quick")
        wait_for_line(proc.stderr, "(1 interactions)")
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    before = len(upstream.requests)
    proc, url = start_recorder("--upstream", upstream.url, "-o", str(out))
    try:
        n, error = stream_events(url, "quick")
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)
    assert error is None and n > 3
    assert len(upstream.requests) == before
    assert "replaying it only (mode once)" in stderr


def test_mode_choices_are_the_recorders() -> None:
    command = main.commands["record"]
    option = next(p for p in command.params if p.name == "mode")
    assert tuple(option.type.choices) == MODES  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mode", "none"], "no such file; mode 'none' only replays"),
        (["--scrub-pattern", "sk-[oops"], "scrub pattern #1 is not a valid regular expression"),
        (["--upstream", "api.anthropic.com"], "upstream must be an http(s) URL"),
        (["--timeout", "0"], "timeout must be a number of seconds > 0"),
    ],
)
def test_bad_options_fail_with_a_clear_message_before_listening(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["record", "-o", str(tmp_path / "c.yaml"), *args])
    assert result.exit_code == 1
    assert message in result.output
    assert "listening on" not in result.output
    assert "sk-[oops" not in result.output
