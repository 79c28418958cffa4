"""One recorder per cassette: a second one is refused naming the first, and no interaction is ever lost."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _recorder_helpers import MESSAGE, capture, cassette, files_under, raw_request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamreel import Replayer, load
from streamreel.cassette import Request
from streamreel.lockfile import CassetteLock, CassetteLockedError
from streamreel.recorder import Recorder


def _upstream() -> Replayer:
    item = capture(seed=5, gaps_ms=(0.5, 1.0), request=Request(method="POST", path="/v1/messages"))
    return Replayer(cassette(item), speed=0, match_on=("method", "path"))


async def _ask(url: str, tag: str) -> int:
    body = json.dumps({**MESSAGE, "stream": True, "metadata": {"user_id": tag}}).encode()
    reply = await raw_request(url, "POST", "/v1/messages", body=body, headers={"content-type": "application/json"})
    return reply.status


def _tags(path: Path) -> list[str]:
    return [i.request.body["metadata"]["user_id"] for i in load(path).interactions]


async def test_a_second_recorder_of_the_same_cassette_is_refused_naming_the_first(tmp_path: Path) -> None:
    out = tmp_path / "c.yaml"
    async with _upstream() as up:
        async with Recorder(upstream=up.url, cassette=out, mode="new_episodes") as first:
            assert await _ask(first.url, "a") == 200
            second = Recorder(upstream=up.url, cassette=out, mode="new_episodes")
            with pytest.raises(CassetteLockedError, match=rf"being recorded by another recorder \(pid {os.getpid()} on .*\); stop it first"):
                await second.start()
            assert second._runner is None and second._session is None  # nothing left open
            await first.asettle()
        async with Recorder(upstream=up.url, cassette=out, mode="new_episodes") as third:  # the lock went with the first
            assert await _ask(third.url, "b") == 200
    assert _tags(out) == ["a", "b"]
    assert files_under(tmp_path) == [out]  # the lock file is gone too


@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(plan=st.lists(st.tuples(st.integers(min_value=0, max_value=3), st.integers(min_value=1, max_value=3)), min_size=2, max_size=4))
def test_recorders_racing_for_one_cassette_take_turns_and_lose_nothing(tmp_path_factory: pytest.TempPathFactory, plan: list[tuple[int, int]]) -> None:
    """Sessions start in a drawn order and overlap (each waits a drawn number of turns before it
    records); a refused one waits for the holder and tries again. Every request of every session
    ends up in the file, and only one session ever holds the cassette."""
    out = tmp_path_factory.mktemp("race") / "c.yaml"
    holding: list[int] = []
    overlaps: list[int] = []

    async def session(n: int, delay: int, requests: int, url: str) -> None:
        for _ in range(delay):
            await asyncio.sleep(0)
        while True:
            rec = Recorder(upstream=url, cassette=out, mode="new_episodes")
            try:
                await rec.start()
            except CassetteLockedError:
                await asyncio.sleep(0.005)
                continue
            break
        holding.append(n)
        overlaps.append(len(holding))
        try:
            for i in range(requests):
                assert await _ask(rec.url, f"{n}.{i}") == 200
            await rec.asettle()
        finally:
            holding.remove(n)
            await rec.stop()

    async def main() -> None:
        async with _upstream() as up:
            await asyncio.wait_for(asyncio.gather(*(session(n, d, k, up.url) for n, (d, k) in enumerate(plan))), 60)

    asyncio.run(main())
    assert max(overlaps) == 1
    assert sorted(_tags(out)) == sorted(f"{n}.{i}" for n, (_, k) in enumerate(plan) for i in range(k))


def test_a_lock_whose_holder_was_killed_is_free_at_once(tmp_path: Path) -> None:
    """The kernel drops a dead process's lock: kill -9 leaves a lock file but no lock."""
    out = tmp_path / "c.yaml"
    code = "import sys, time; from streamreel.lockfile import CassetteLock; CassetteLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(CassetteLockedError, match=rf"pid {proc.pid} on "):
            CassetteLock(out).acquire()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert (tmp_path / ".c.yaml.lock").exists()
    lock = CassetteLock(out)
    assert lock.acquire()
    lock.release()
    assert files_under(tmp_path) == []


def test_streamreel_record_twice_on_one_file_fails_in_one_line_naming_the_first(tmp_path: Path) -> None:
    out = tmp_path / "c.yaml"
    cmd = [sys.executable, "-m", "streamreel", "record", "-o", str(out), "--mode", "new_episodes", "--upstream", "http://127.0.0.1:9"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert first.stdout is not None and first.stdout.readline().startswith("listening on ")
        started = time.monotonic()
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        assert time.monotonic() - started < 20
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=30)
    assert second.returncode == 1 and second.stdout == ""
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and f"being recorded by another recorder (pid {first.pid} on " in lines[0], second.stderr
    assert "Traceback" not in second.stderr and "Unclosed" not in second.stderr
