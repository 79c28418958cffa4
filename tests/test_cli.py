from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
from pathlib import Path

import anthropic
import pytest

from streamreel.cassette import bundled, load

DATA = Path(__file__).parent / "data"


def streamreel(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamreel", *args], capture_output=True, text=True, timeout=60, **kwargs)  # type: ignore[call-overload]


def start_server(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "streamreel", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    assert ready, "the server printed nothing within 30 s"
    first = proc.stdout.readline()
    match = re.fullmatch(r"listening on (http://127\.0\.0\.1:\d+)\n", first)
    assert match, f"first line was {first!r}; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
    return proc, match.group(1)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_prints_its_url_first_serves_and_exits_0_on_signal(sig: signal.Signals) -> None:
    proc, url = start_server("serve", str(bundled("text")), "--speed", "0")
    try:
        client = anthropic.Anthropic(base_url=url, api_key="sk-test")
        with client.messages.stream(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]) as stream:
            assert stream.get_final_message().stop_reason == "end_turn"
    finally:
        proc.send_signal(sig)
        code = proc.wait(timeout=20)
    assert code == 0


def test_serve_applies_fault_flags() -> None:
    proc, url = start_server("serve", str(bundled("text")), "--fault", "speed:0")
    try:
        client = anthropic.Anthropic(base_url=url, api_key="sk-test")
        with client.messages.stream(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]) as stream:
            assert stream.get_final_message().stop_reason == "end_turn"
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0


def test_serve_rejects_a_bad_fault_spec_listing_known_faults() -> None:
    result = streamreel("serve", str(bundled("text")), "--fault", "nosuchfault")
    assert result.returncode == 2
    assert "unknown fault 'nosuchfault'; known faults:" in result.stderr
    assert "speed" in result.stderr


def test_serve_reports_a_bad_cassette_with_file_and_line_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("streamreel: 1\ninteractions:\n- response:\n    events:\n    - {t: soon, data: x}\n")
    result = streamreel("serve", str(bad))
    assert result.returncode == 1
    assert f"{bad}:5: interactions[0].response.events[0].t: expected a number" in result.stderr
    assert "Traceback" not in result.stderr


def test_import_writes_a_cassette_that_loads(tmp_path: Path) -> None:
    out = tmp_path / "c.yaml"
    result = streamreel("import", str(DATA / "anthropic-sdk-python" / "basic_response.txt"), "-o", str(out), "--gap-ms", "15")
    assert result.returncode == 0, result.stderr
    assert "9 events, ended complete" in result.stdout
    events = load(out).interactions[0].response.events
    assert events is not None and len(events) == 9
    assert events[1].t - events[0].t == 15


def test_import_end_override(tmp_path: Path) -> None:
    out = tmp_path / "c.yaml"
    result = streamreel("import", str(DATA / "anthropic-sdk-python" / "basic_response.txt"), "-o", str(out), "--end", "timeout")
    assert result.returncode == 0, result.stderr
    assert load(out).interactions[0].response.end.reason == "timeout"


def test_demo_runs_the_sdk_over_bundled_cassettes() -> None:
    result = streamreel("demo", "--speed", "0", env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "time to first token" in out
    assert "Hello! I'm doing well, thank you for asking. How are you doing today? Is there anything I can help you with?" in out
    assert "stop reason: end_turn" in out
    assert "stop reason: tool_use" in out
    assert "tool call: json(" in out


def test_serve_on_a_busy_port_says_so_without_a_traceback() -> None:
    proc, url = start_server("serve", str(bundled("text")))
    try:
        result = streamreel("serve", str(bundled("text")), "--port", url.rsplit(":", 1)[1])
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert result.returncode == 1
    assert "cannot listen" in result.stderr and "address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_negative_speed_is_a_usage_error() -> None:
    result = streamreel("serve", str(bundled("text")), "--speed", "-1")
    assert result.returncode == 2 and "--speed" in result.stderr and "Traceback" not in result.stderr


def test_serve_a_directory_picks_the_cassette_by_header(tmp_path: Path) -> None:
    from streamreel import Cassette, save
    from streamreel.providers.anthropic import TextBlock, message_events

    for name, text in [("calm.yaml", "all calm"), ("storm/cut.yaml", "a storm")]:
        save(Cassette.from_events(message_events([TextBlock((text,))])), tmp_path / name)
    proc, url = start_server("serve", str(tmp_path), "--speed", "0")
    try:
        for name, text in [("calm", "all calm"), ("storm/cut.yaml", "a storm")]:
            with anthropic.Anthropic(base_url=url, api_key="sk-test", max_retries=0, default_headers={"x-streamreel-cassette": name}) as client:
                with client.messages.stream(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]) as stream:
                    assert stream.get_final_text() == text
        with anthropic.Anthropic(base_url=url, api_key="sk-test", max_retries=0) as client:
            with pytest.raises(anthropic.BadRequestError, match=r"x-streamreel-cassette header.*calm\.yaml, storm/cut\.yaml"):
                client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0


@pytest.mark.parametrize("command", ["serve", "record"])
def test_a_non_loopback_host_warns_on_stderr_and_stdout_still_starts_with_the_url(command: str, tmp_path: Path) -> None:
    """Binds 0.0.0.0 for real and stops at once; nothing is sent to it (nor upstream)."""
    args = [str(bundled("text"))] if command == "serve" else ["-o", str(tmp_path / "c.yaml"), "--upstream", "http://127.0.0.1:9"]
    proc = subprocess.Popen([sys.executable, "-m", "streamreel", command, *args, "--host", "0.0.0.0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    assert ready, "the server printed nothing within 30 s"
    first = proc.stdout.readline()
    proc.terminate()
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert re.fullmatch(r"listening on http://0\.0\.0\.0:\d+\n", first), first
    assert "listening" not in out
    assert err.startswith("warning: ") and "NonLoopbackWarning" not in err
    assert "listens on 0.0.0.0, which is not loopback: it will accept connections from other machines" in err
