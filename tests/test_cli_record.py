"""`streamreel record`: a real subprocess, real signals, the cassette it leaves behind."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any, Iterator

import anthropic
import pytest
from _recorder_helpers import MESSAGE, capture, cassette, files_under, raw_request
from _secrets_helpers import TEAM_HEADER, leaks, leaky_requests, leaky_upstream
from click.testing import CliRunner

from streamreel import Replayer, load, save
from streamreel.cassette import Request
from streamreel.cli import main
from streamreel.recorder import MODES

KEY = "sk-ant-test-not-a-key-CLIRECORD-0a1b2c3d"


def question(text: str) -> dict[str, Any]:
    return {**MESSAGE, "messages": [{"role": "user", "content": text}]}


@pytest.fixture
def upstream() -> Iterator[Replayer]:
    """A quick stream and a slow one (40 events, 50 ms apart), told apart by the question."""
    quick = capture(seed=1, gaps_ms=(1.0, 2.0), request=Request(method="POST", path="/v1/messages", body={**question("quick"), "stream": True}))
    slow_source = capture(seed=2, gaps_ms=(50.0, 50.0), request=Request(method="POST", path="/v1/messages", body={**question("slow"), "stream": True}))
    with Replayer(cassette(quick, slow_source)) as up:
        yield up


_LIMITED = """import resource, runpy, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, ({}, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
sys.argv[0] = "streamreel"
runpy.run_module("streamreel", run_name="__main__", alter_sys=True)
"""


class Running:
    """A `streamreel record` subprocess: its URL, and its stderr lines as they come (read on a thread)."""

    def __init__(self, *args: str, file_size_limit: int | None = None) -> None:
        command = [sys.executable, "-m", "streamreel", "record", *args]
        if file_size_limit is not None:  # a full disk, for root too: writes past this many bytes fail with EFBIG
            command[1:3] = ["-c", _LIMITED.format(file_size_limit)]
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, args=(self.proc.stderr,), daemon=True)
        self._reader.start()
        first = self.proc.stdout.readline()
        assert first.startswith("listening on http://127.0.0.1:"), (first, self.stderr)
        self.url = first.split()[-1]

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self.lines.append("")  # end of stream
            self._changed.notify_all()

    def wait_for_line(self, needle: str, timeout: float = 10.0) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: any(needle in line for line in self.lines) or "" in self.lines, timeout):
                raise AssertionError(f"no stderr line with {needle!r} within {timeout}s; saw {self.lines!r}")
            if not any(needle in line for line in self.lines):
                raise AssertionError(f"the recorder exited without a line with {needle!r}; saw {self.lines!r}")

    def finish(self, sig: int | None = signal.SIGTERM, timeout: float = 20.0) -> tuple[str, str]:
        """Send ``sig`` (None: just wait), wait for the exit; returns (stdout, stderr)."""
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout)
        assert self.proc.stdout is not None
        return self.proc.stdout.read(), self.stderr

    @property
    def stderr(self) -> str:
        return "".join(self.lines)


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
    rec = Running("--upstream", upstream.url, "-o", str(out), "--mode", "all", "--timeout", "5")
    try:
        done, error = stream_events(rec.url, "quick")
        assert error is None and done > 3
        seen, error = stream_events(rec.url, "slow", stop_after=3, on_stop=lambda: rec.proc.send_signal(sig))
    finally:
        stdout, stderr = rec.finish(None)
    assert rec.proc.returncode == 0, stderr
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
    rec = Running("--upstream", upstream.url, "-o", str(out))
    try:
        _, error = stream_events(rec.url, "quick")
        assert error is None
        rec.wait_for_line("(1 interactions)")
        seen, error = stream_events(rec.url, "slow", stop_after=3, on_stop=lambda: os.kill(rec.proc.pid, signal.SIGKILL))
    finally:
        rec.finish(None)
    assert rec.proc.returncode == -signal.SIGKILL
    assert error is not None
    (only,) = load(out).interactions
    assert only.request.body["messages"][0]["content"] == "quick"
    assert only.response.end.reason == "complete"
    for path in files_under(tmp_path):
        assert KEY not in path.read_text(errors="replace")


def test_existing_cassette_in_mode_once_is_replayed_and_says_so(tmp_path: Path, upstream: Replayer) -> None:
    out = tmp_path / "once.yaml"
    rec = Running("--upstream", upstream.url, "-o", str(out), "--mode", "once")
    try:
        stream_events(rec.url, "quick")
        rec.wait_for_line("(1 interactions)")
    finally:
        rec.finish()
    before = len(upstream.requests)
    rec = Running("--upstream", upstream.url, "-o", str(out))
    try:
        n, error = stream_events(rec.url, "quick")
    finally:
        _, stderr = rec.finish()
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


def test_a_cassette_that_cannot_be_written_makes_the_exit_status_1(tmp_path: Path, upstream: Replayer) -> None:
    (tmp_path / "file").write_text("")
    rec = Running("--upstream", upstream.url, "-o", str(tmp_path / "file" / "c.yaml"), "--mode", "all")
    try:
        _, error = stream_events(rec.url, "quick")
        assert error is None
        rec.wait_for_line("could not write the cassette")
    finally:
        _, stderr = rec.finish()
    assert rec.proc.returncode == 1
    assert "Error: could not write the cassette" in stderr


def write_previous(out: Path) -> bytes:
    save(cassette(capture(seed=3, gaps_ms=(1.0, 2.0), request=Request(method="POST", path="/v1/messages", body={**question("previous"), "stream": True}))), out)
    return out.read_bytes()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_stream_keeps_the_previous_cassette_and_appends_what_was_recorded(tmp_path: Path, upstream: Replayer, sig: signal.Signals) -> None:
    out = tmp_path / "kept.yaml"
    write_previous(out)
    previous = load(out).interactions[0]
    rec = Running("--upstream", upstream.url, "-o", str(out), "--mode", "new_episodes", "--timeout", "5")
    try:
        _, error = stream_events(rec.url, "quick")
        assert error is None
        seen, error = stream_events(rec.url, "slow", stop_after=3, on_stop=lambda: rec.proc.send_signal(sig))
    finally:
        _, stderr = rec.finish(None)
    assert rec.proc.returncode == 0, stderr
    assert error is not None and 3 <= seen < 40
    kept, quick, slow = load(out).interactions
    assert kept == previous
    assert [quick.response.end.reason, slow.response.end.reason] == ["complete", "client_cancel"]
    assert 3 <= len(slow.response.events or ()) < 40
    assert files_under(tmp_path) == [out]


def test_a_full_disk_keeps_the_previous_cassette_byte_for_byte_and_exits_1_naming_it(tmp_path: Path, upstream: Replayer) -> None:
    out = tmp_path / "full.yaml"
    before = write_previous(out)
    rec = Running("--upstream", upstream.url, "-o", str(out), "--mode", "new_episodes", file_size_limit=100)
    try:
        n, error = stream_events(rec.url, "quick")
        assert error is None and n > 3  # served in full although its recording could not be written
        rec.wait_for_line("could not write the cassette")
        seen, error = stream_events(rec.url, "slow", stop_after=3, on_stop=lambda: rec.proc.send_signal(signal.SIGTERM))
    finally:
        _, stderr = rec.finish(None)
    assert rec.proc.returncode == 1, stderr
    assert f"Error: could not write the cassette {out}: File too large" in stderr
    assert out.read_bytes() == before
    assert files_under(tmp_path) == [out]


def test_no_key_reaches_the_clis_output_or_files(tmp_path: Path) -> None:
    """Every credential of the secrets tests, through `streamreel record`; the last request finds the upstream gone (a logged warning)."""
    out = tmp_path / "secret.yaml"
    with Replayer(leaky_upstream(), speed=0, ignore_query=("beta", "key")) as up:
        rec = Running("--upstream", up.url, "-o", str(out), "--mode", "all", "--scrub-header", TEAM_HEADER, "--timeout", "5")
        try:
            statuses = [asyncio.run(raw_request(rec.url, m, t, body=b, headers=h)).status for m, t, b, h in leaky_requests()]
            rec.wait_for_line("(2 interactions)")
        except BaseException:
            rec.finish()
            raise
    try:
        m, t, b, h = leaky_requests()[0]
        gone = asyncio.run(raw_request(rec.url, m, t, body=b, headers=h))
        rec.wait_for_line("failed:")
    finally:
        stdout, stderr = rec.finish()
    assert statuses == [200, 401] and gone.status == 502
    assert rec.proc.returncode == 0, stderr
    assert "recorded POST /v1/messages?beta=true&key=<scrubbed> -> 200" in stderr
    assert leaks([stdout, stderr, gone.body, *(p.read_bytes() for p in files_under(tmp_path))]) == []


def test_scrub_json_key_and_scrub_env_blank_a_users_own_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret, ref = "hunter2-but-longer-0xC0FFEE", "ref-7d1e5b4c9a"
    monkeypatch.setenv("SR_TEST_SECRET", secret)
    out = tmp_path / "own.yaml"
    quick = capture(seed=3, gaps_ms=(1.0, 2.0), request=Request(method="POST", path="/v1/messages"))
    body = json.dumps({**question(f"my password is {secret}"), "stream": True, "metadata": {"session_ref": ref}}).encode()
    with Replayer(cassette(quick), speed=0, match_on=("method", "path")) as up:
        rec = Running("--upstream", up.url, "-o", str(out), "--mode", "all", "--scrub-json-key", "session_ref", "--scrub-env", "SR_TEST_SECRET")
        try:
            reply = asyncio.run(raw_request(rec.url, "POST", "/v1/messages", body=body, headers={"content-type": "application/json", "x-api-key": KEY}))
            rec.wait_for_line("(1 interactions)")
        finally:
            stdout, stderr = rec.finish()
    assert reply.status == 200, stderr
    text = out.read_text()
    assert "my password is <scrubbed>" in text and "session_ref: <scrubbed>" in text
    assert [s for s in (secret, ref, KEY) if s in stdout + stderr + text] == []


def test_scrub_env_naming_an_unset_variable_fails_before_listening(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SR_TEST_UNSET", raising=False)
    result = CliRunner().invoke(main, ["record", "-o", str(tmp_path / "c.yaml"), "--scrub-env", "SR_TEST_UNSET"])
    assert result.exit_code == 2
    assert "not set or empty: SR_TEST_UNSET" in result.output
    assert "listening on" not in result.output
