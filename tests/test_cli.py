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


# ---------------------------------------------------------------- failures are one line

import socket as _socket


def _taken_port() -> tuple[_socket.socket, int]:
    held = _socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    return held, held.getsockname()[1]


@pytest.mark.parametrize("command", ["serve", "record"])
@pytest.mark.parametrize(
    "options",
    [
        ["--port", "70000"],
        ["--port", "-1"],
        ["--port", "65536"],
        ["--port", "99999999999999999999999"],
        ["--port", "http"],
        ["--host", ""],
        ["--host", "   "],
        ["--host", "no-such-host.invalid"],
        ["--port", "TAKEN"],
        ["--host", "127.0.0.1", "--port", "TAKEN"],
    ],
)
def test_every_start_failure_is_one_line_naming_the_problem(tmp_path: Path, command: str, options: list[str]) -> None:
    """A bad port or host, or one already taken: exit code 1 or 2, one line on stderr, nothing else (no traceback, no 'Unclosed client session')."""
    held, port = _taken_port()
    try:
        args = [str(bundled("text"))] if command == "serve" else ["-o", str(tmp_path / "c.yaml"), "--upstream", "http://127.0.0.1:9"]
        done = streamreel(command, *args, *[str(port) if o == "TAKEN" else o for o in options])
    finally:
        held.close()
    assert done.returncode in (1, 2) and done.stdout == "", (done.returncode, done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith(("Usage:", "Try "))]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error:") and ("port" in lines[0].lower() or "host" in lines[0].lower() or "listen" in lines[0]), lines[0]
    assert "Traceback" not in done.stderr and "Unclosed" not in done.stderr
    assert not (tmp_path / "c.yaml").exists() and not (tmp_path / ".c.yaml.lock").exists()


# ---------------------------------------------------------------- serve: bundled names, a line per response, the admin API


def test_serve_takes_a_bundled_cassette_by_name() -> None:
    proc, url = start_server("serve", "tool_use", "--speed", "0", "-q")
    try:
        client = anthropic.Anthropic(base_url=url, api_key="sk-test", max_retries=0)
        with client.messages.stream(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]) as stream:
            assert stream.get_final_message().stop_reason == "tool_use"
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0


def test_serve_refuses_a_name_that_is_neither_a_file_nor_bundled() -> None:
    result = streamreel("serve", "txet")
    assert result.returncode == 2
    assert "no such file or directory, nor a bundled cassette (bundled: openai_chat, pings, text, thinking, tool_use)" in result.stderr


def test_serve_prints_a_line_per_response_and_writes_json_lines_to_the_log(tmp_path: Path) -> None:
    import json

    log = tmp_path / "responses.jsonl"
    proc, url = start_server("serve", "text", "--speed", "0", "--fault", "http:status=529", "--log", str(log))
    try:
        client = anthropic.Anthropic(base_url=url, api_key="sk-ant-api03-" + "LogLineKey" * 4, max_retries=1)
        with client.messages.stream(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]) as stream:
            stream.get_final_message()
        with pytest.raises(anthropic.NotFoundError):
            client.models.list()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    lines = err.splitlines()
    assert len(lines) == 3, err
    assert re.fullmatch(r"#0 POST /v1/messages -> 529 text\.yaml#0, fired http:status=529, end, 0 events, \d+ B, \d+ ms", lines[0]), lines[0]
    events = len(load(bundled("text")).interactions[0].response.events or ())
    assert re.fullmatch(rf"#1 POST /v1/messages -> 200 text\.yaml#0, end, {events} events, \d+ B, \d+ ms", lines[1]), "a fault that did not fire is not named"
    assert lines[2].startswith("#2 GET /v1/models -> 404 no match, end, 0 events")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["request"], r["status"], r["events"], r["ending"]) for r in records] == [(0, 529, 0, "end"), (1, 200, events, "end"), (2, 404, 0, "end")]
    assert [[(f["spec"], f["fired"]) for f in r["faults"]] for r in records] == [[("http:status=529", True)], [("http:status=529", False)], []]
    assert "LogLineKey" not in err + log.read_text()


def test_serve_quiet_prints_nothing_per_response() -> None:
    proc, url = start_server("serve", "text", "--speed", "0", "-q")
    try:
        client = anthropic.Anthropic(base_url=url, api_key="sk-test", max_retries=0)
        with client.messages.stream(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]) as stream:
            stream.get_final_message()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and err == ""


def test_serve_answers_the_admin_api(tmp_path: Path) -> None:
    import json
    import urllib.request

    from streamreel.cassette import save
    from streamreel.synth import synth_cassette

    save(synth_cassette("first", seed=1), tmp_path / "first.yaml")
    save(synth_cassette("second", seed=2), tmp_path / "second.yaml")
    proc, url = start_server("serve", str(tmp_path), "--speed", "0", "-q")
    try:
        load = urllib.request.Request(url + "/__streamreel/load", data=json.dumps({"cassette": "second"}).encode(), headers={"content-type": "application/json"}, method="POST")
        with urllib.request.urlopen(load, timeout=20) as resp:
            assert json.loads(resp.read())["loaded"] == "second.yaml"
        client = anthropic.Anthropic(base_url=url, api_key="sk-test", max_retries=0)
        with client.messages.stream(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]) as stream:
            assert stream.get_final_text() == "second"
        with urllib.request.urlopen(url + "/__streamreel/responses", timeout=20) as resp:
            listed = json.loads(resp.read())
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0
    assert [(r["cassette"], r["status"], r["ending"]) for r in listed] == [("second.yaml", 200, "end")]
