"""``streamreel serve --workers N``: the real command in a subprocess, driven by the real anthropic SDK
over loopback; one ground truth, ordered playback and fault counts across every worker process."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import anthropic
import pytest

from streamreel.cassette import Cassette, bundled, save
from streamreel.synth import synth_cassette
from streamreel.workers import MAX_WORKERS

pytestmark = pytest.mark.skipif(not sys.platform.startswith(("linux", "darwin")), reason="several workers need fork()")

WAIT_S = 30


class Server:
    def __init__(self, proc: subprocess.Popen[str], url: str, log: Path) -> None:
        self.proc = proc
        self.url = url
        self.log = log

    def admin(self, name: str, *, method: str = "GET", query: str = "") -> Any:
        request = urllib.request.Request(f"{self.url}/__streamreel/{name}{query}", data=b"{}" if method == "POST" else None, headers={"content-type": "application/json"}, method=method)
        with urllib.request.urlopen(request, timeout=WAIT_S) as resp:
            return json.loads(resp.read())

    def logged(self) -> list[dict[str, Any]]:
        """The --log lines, once every response in flight has finished and reached the hub (which writes them)."""
        self.admin("responses")
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    started: list[subprocess.Popen[str]] = []

    def start(cassette: str, *options: str) -> Server:
        log = tmp_path / f"log{len(started)}.jsonl"
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamreel", "serve", cassette, "--speed", "0", "-q", "--log", str(log), *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], WAIT_S)
        assert ready, f"the server printed nothing within {WAIT_S} s"
        first = proc.stdout.readline()
        match = re.fullmatch(r"listening on (http://127\.0\.0\.1:\d+)\n", first)
        assert match, f"first line was {first!r}; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
        return Server(proc, match.group(1), log)

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.terminate()  # the first process stops its workers and hub
        try:
            proc.communicate(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()  # its children notice within a second and stop
            proc.communicate()


def _ask(url: str, **client: Any) -> str:
    """One streamed message over a connection of its own (a new client), so the kernel picks a worker for it."""
    with anthropic.Anthropic(base_url=url, api_key="sk-test", max_retries=0, **client) as sdk:
        with sdk.messages.stream(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]) as stream:
            return stream.get_final_text()


def _status(url: str) -> int:
    try:
        _ask(url)
    except anthropic.APIStatusError as e:
        return e.status_code
    return 200


def _numbered(tmp_path: Path, count: int) -> Path:
    """A cassette of ``count`` recordings of the same request, answering ``reply 0``, ``reply 1``, ..."""
    path = tmp_path / "numbered.yaml"
    save(Cassette(interactions=tuple(synth_cassette(f"reply {i}", seed=i).interactions[0] for i in range(count))), path)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_requests_spread_over_worker_processes_and_the_ground_truth_accounts_for_every_one(serve: Any) -> None:
    server = serve(str(bundled("text")), "--workers", "2")
    with ThreadPoolExecutor(4) as pool:
        texts = list(pool.map(lambda _: _ask(server.url), range(24)))
    assert len(set(texts)) == 1 and texts[0]
    responses = server.admin("responses", query="?requests=24")
    requests = server.admin("requests")
    assert sorted(r["request"] for r in responses) == list(range(24)), "every request has one index, whichever worker counted it"
    assert [(r["status"], r["ending"]) for r in responses] == [(200, "end")] * 24
    assert sorted(r["index"] for r in requests) == list(range(24))
    logged = server.logged()
    assert sorted(r["request"] for r in logged) == list(range(24))
    pids = {r["worker_pid"] for r in logged}
    assert len(pids) == 2 and server.proc.pid not in pids, f"24 connections were served by worker processes {pids}"
    assert {r["worker"] for r in logged} == {1, 2}
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(timeout=WAIT_S) == 0
    assert not any(_alive(pid) for pid in pids), "the workers stop with the server"


def test_ordered_playback_runs_in_order_across_workers_and_reset_restarts_it_for_all(serve: Any, tmp_path: Path) -> None:
    count = 24
    server = serve(str(_numbered(tmp_path, count)), "--workers", "2")
    in_order = [_ask(server.url) for _ in range(count + 1)]
    assert in_order == [f"reply {i}" for i in range(count)] + [f"reply {count - 1}"], "each recording once, in order, then the last repeats"
    assert len({r["worker_pid"] for r in server.logged()}) == 2, "both workers served some of them"
    assert server.admin("reset", method="POST") == {"reset": True}
    assert server.admin("responses") == [] and server.admin("requests") == []
    with ThreadPoolExecutor(6) as pool:
        at_once = list(pool.map(lambda _: _ask(server.url), range(count)))
    assert sorted(at_once) == sorted(f"reply {i}" for i in range(count)), "concurrent requests on both workers each claim a different recording"
    assert sorted(r["request"] for r in server.admin("responses", query=f"?requests={count}")) == list(range(count))


def test_a_times_1_fault_fires_once_across_workers_and_again_once_after_reset(serve: Any) -> None:
    server = serve("text", "--workers", "2", "--fault", "http:status=529,times=1")
    for round_ in range(2):
        with ThreadPoolExecutor(5) as pool:
            statuses = list(pool.map(lambda _: _status(server.url), range(20)))
        assert sorted(statuses) == [200] * 19 + [529], f"round {round_}: {statuses}"
        responses = server.admin("responses", query="?requests=20")
        fired = [r["request"] for r in responses if any(f["fired"] for f in r["faults"])]
        assert len(responses) == 20 and len(fired) == 1
        assert server.admin("reset", method="POST") == {"reset": True}
    assert len({r["worker_pid"] for r in server.logged()}) == 2


def test_the_admin_api_loads_a_cassette_in_every_worker(serve: Any, tmp_path: Path) -> None:
    save(synth_cassette("first", seed=1), tmp_path / "first.yaml")
    save(synth_cassette("second", seed=2), tmp_path / "second.yaml")
    server = serve(str(tmp_path), "--workers", "2")
    assert [_ask(server.url, default_headers={"x-streamreel-cassette": "first"}) for _ in range(4)] == ["first"] * 4
    request = urllib.request.Request(server.url + "/__streamreel/load", data=json.dumps({"cassette": "second"}).encode(), headers={"content-type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=WAIT_S) as resp:
        assert json.loads(resp.read())["loaded"] == "second.yaml"
    assert server.admin("responses") == [], "a load clears every worker's ground truth"
    texts = [_ask(server.url) for _ in range(16)]
    assert texts == ["second"] * 16
    logged = server.logged()
    assert len({r["worker_pid"] for r in logged if r["cassette"] == "second.yaml"}) == 2, "both workers serve what was loaded"


@pytest.mark.parametrize("workers", ["0", "-1", str(MAX_WORKERS + 1)])
def test_a_worker_count_out_of_range_is_a_usage_error(workers: str) -> None:
    result = subprocess.run([sys.executable, "-m", "streamreel", "serve", "text", "--workers", workers], capture_output=True, text=True, timeout=WAIT_S)
    assert result.returncode == 2
    assert "--workers" in result.stderr and f"1<=x<={MAX_WORKERS}" in result.stderr, result.stderr


def test_without_fork_several_workers_are_refused_not_served_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import multiprocessing

    from streamreel import workers
    from streamreel.errors import StreamreelError

    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    with pytest.raises(StreamreelError, match="fork"):
        workers.serve({"cassette": bundled("text")}, workers=2, on_listening=lambda url: pytest.fail(f"listened on {url}"))


def test_a_worker_that_dies_is_replaced_and_said_so(serve: Any) -> None:
    server = serve("text", "--workers", "2")
    while len({r["worker_pid"] for r in server.logged()}) < 2:
        assert _ask(server.url)
        assert len(server.logged()) < 64, "64 connections all reached one worker"
    victim = server.logged()[0]
    os.kill(victim["worker_pid"], signal.SIGKILL)
    assert server.proc.stderr is not None
    ready, _, _ = select.select([server.proc.stderr], [], [], WAIT_S)
    assert ready, f"nothing said within {WAIT_S} s of a worker's death"
    said = server.proc.stderr.readline()
    replaced = re.fullmatch(rf"warning: worker {victim['worker']} \(pid {victim['worker_pid']}\) was killed by SIGKILL; worker {victim['worker']} now runs as pid (\d+)\n", said)
    assert replaced, said
    served_before = len(server.logged())
    assert all(_ask(server.url) for _ in range(16))
    after = server.logged()[served_before:]
    assert len(after) == 16 and victim["worker_pid"] not in {r["worker_pid"] for r in after}
    assert {(r["worker"], r["worker_pid"]) for r in after if r["worker"] == victim["worker"]} == {(victim["worker"], int(replaced.group(1)))}, "the replacement serves under the dead worker's number"
    server.proc.terminate()
    assert server.proc.wait(timeout=WAIT_S) == 0


def test_the_ground_truth_lists_streams_still_open_on_every_worker(serve: Any) -> None:
    server = serve("text", "--workers", "2", "--fault", "stall:after=2")
    with contextlib.ExitStack() as open_streams:
        for _ in range(16):
            sdk = open_streams.enter_context(anthropic.Anthropic(base_url=server.url, api_key="sk-test", max_retries=0, timeout=WAIT_S))
            stream = open_streams.enter_context(sdk.messages.stream(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]))
            assert next(iter(stream)).type == "message_start"
        now = server.admin("responses", query="?timeout=0")
        assert sorted(r["request"] for r in now) == list(range(16)), "the open streams of both workers"
        assert [(r["end_ms"], r["events"]) for r in now] == [(None, 2)] * 16, "each open, two events sent"
    done = server.admin("responses", query="?requests=16")
    assert all(r["end_ms"] is not None and r["client_hung_up"] for r in done), [(r["end_ms"], r["client_hung_up"]) for r in done]
    assert len({r["worker_pid"] for r in server.logged()}) == 2


def _event_source(url: str, last_event_id: str | None = None) -> list[str]:
    """An EventSource's GET on a connection of its own: the events it got, as their raw text (without ``retry:``)."""
    headers = {"accept": "text/event-stream", **({"last-event-id": last_event_id} if last_event_id is not None else {})}
    with urllib.request.urlopen(urllib.request.Request(url + "/v1/messages", headers=headers), timeout=WAIT_S) as resp:
        events = resp.read().decode().split("\n\n")
    return ["\n".join(line for line in e.splitlines() if not line.startswith("retry:")) for e in events if e.strip()]


def test_a_last_event_id_resume_continues_the_stream_served_on_its_path_whichever_worker_gets_it(serve: Any, tmp_path: Path) -> None:
    count = 12
    server = serve(str(_numbered(tmp_path, count)), "--workers", "2", "--ids")
    for k in range(count):
        full = _event_source(server.url)
        deltas = [json.loads(line[6:]) for e in full for line in e.splitlines() if line.startswith("data: ")]
        assert "".join(d["delta"].get("text", "") for d in deltas if d["type"] == "content_block_delta") == f"reply {k}", "ordered playback"
        resumed = _event_source(server.url, last_event_id="3")
        assert resumed == full[4:], f"stream {k}: a resume after id 3 sends the rest of the stream last served on the path"
    logged = server.logged()
    assert len(logged) == 2 * count and len({r["worker_pid"] for r in logged}) == 2


def test_a_second_server_is_refused_the_port_and_the_port_is_free_again_once_it_stops(serve: Any) -> None:
    first = serve("text", "--workers", "2")
    port = first.url.rsplit(":", 1)[1]
    assert _ask(first.url)
    refused = subprocess.run([sys.executable, "-m", "streamreel", "serve", "text", "--workers", "2", "--port", port], capture_output=True, text=True, timeout=WAIT_S)
    assert (refused.returncode, refused.stdout) == (1, ""), "SO_REUSEPORT alone would have let it take a share of the first server's connections"
    assert refused.stderr.strip() == "Error: cannot listen: Address already in use"
    first.proc.terminate()
    assert first.proc.wait(timeout=WAIT_S) == 0
    again = serve("text", "--workers", "2", "--port", port)  # its connections may linger in TIME_WAIT
    assert again.url == first.url and _ask(again.url)


def test_a_cassette_loaded_as_yaml_with_faults_reaches_every_worker(serve: Any, tmp_path: Path) -> None:
    count = 16
    server = serve("text", "--workers", "2")
    assert _ask(server.url)
    body = {"cassette_yaml": _numbered(tmp_path, count).read_text(), "faults": ["http:status=529,times=1"]}
    request = urllib.request.Request(server.url + "/__streamreel/load", data=json.dumps(body).encode(), headers={"content-type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=WAIT_S) as resp:
        assert json.loads(resp.read())["loaded"] == "cassette_yaml"
    assert _status(server.url) == 529, "the fault fires on the first request after the load, and is counted for all workers"
    assert [_ask(server.url) for _ in range(count)] == [f"reply {i}" for i in range(count)], "the faulted answer used no recording"
    assert len({r["worker_pid"] for r in server.logged()[-count:]}) == 2, "both workers served the loaded cassette"


def test_any_burst_is_counted_played_and_faulted_as_by_one_server(serve: Any, tmp_path: Path) -> None:
    """Drawn: a times=N fault, R requests, C at a time. Whatever reaches which worker, the fault fires
    min(N, R) times, the other requests take the recordings once each in order (then the last
    repeats), and the ground truth holds R requests numbered 0..R-1."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    count = 6
    server = serve(str(_numbered(tmp_path, count)), "--workers", "2")

    def answer(_: int) -> str:
        try:
            return _ask(server.url)
        except anthropic.APIStatusError as e:
            return str(e.status_code)

    @settings(max_examples=12, deadline=None, derandomize=True)
    @given(times=st.integers(1, 4), requests=st.integers(1, 12), at_once=st.integers(1, 4))
    def check(times: int, requests: int, at_once: int) -> None:
        load = urllib.request.Request(server.url + "/__streamreel/load", data=json.dumps({"faults": [f"http:status=529,times={times}"]}).encode(), headers={"content-type": "application/json"}, method="POST")
        urllib.request.urlopen(load, timeout=WAIT_S).close()
        with ThreadPoolExecutor(at_once) as pool:
            got = list(pool.map(answer, range(requests)))
        fired = min(times, requests)
        played = requests - fired
        expected = [f"reply {i}" for i in range(min(played, count))] + [f"reply {count - 1}"] * max(played - count, 0)
        assert sorted(got) == sorted(["529"] * fired + expected)
        assert sorted(r["request"] for r in server.admin("responses", query=f"?requests={requests}")) == list(range(requests))

    check()
