"""The precise clock: never early, on time where asyncio.sleep is up to 1 ms late, and leaves no descriptor behind."""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys

import pytest

from streamreel.clock import Clock

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timerfd is Linux's")


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_sleepers_never_wake_before_their_deadline_and_wake_in_order() -> None:
    loop = asyncio.get_running_loop()
    clock = Clock(loop)
    rng = random.Random(7)
    base = loop.time()
    deadlines = [base + 0.02 + rng.uniform(0.0, 0.02) for _ in range(200)]
    woke: list[tuple[float, float]] = []

    async def sleeper(when: float) -> None:
        await clock.sleep_until(when)
        woke.append((when, loop.time()))

    try:
        await asyncio.gather(*(sleeper(d) for d in deadlines))
    finally:
        clock.close()
    assert len(woke) == len(deadlines)
    assert all(now >= when for when, now in woke)
    assert [w for w, _ in woke] == sorted(deadlines)


async def test_a_passed_deadline_returns_without_waiting() -> None:
    loop = asyncio.get_running_loop()
    clock = Clock(loop)
    try:
        task = asyncio.ensure_future(clock.sleep_until(loop.time() - 1.0))
        await asyncio.sleep(0)
        assert task.done()
    finally:
        clock.close()


async def test_a_cancelled_sleeper_does_not_hold_back_the_others() -> None:
    loop = asyncio.get_running_loop()
    clock = Clock(loop)
    try:
        early = asyncio.ensure_future(clock.sleep_until(loop.time() + 0.002))
        later = asyncio.ensure_future(clock.sleep_until(loop.time() + 0.004))
        await asyncio.sleep(0)
        early.cancel()
        await asyncio.wait_for(later, 2.0)
        assert early.cancelled()
    finally:
        clock.close()


@linux_only
async def test_wakes_closer_to_the_deadline_than_asyncio_sleep() -> None:
    loop = asyncio.get_running_loop()
    clock = Clock(loop)
    assert clock.precise
    rng = random.Random(3)

    async def lateness(sleep_until) -> float:  # type: ignore[no-untyped-def]
        out = []
        for _ in range(40):
            due = loop.time() + rng.uniform(0.0011, 0.0029)
            await sleep_until(due)
            out.append(loop.time() - due)
        return statistics.median(out)

    try:
        ours = await lateness(clock.sleep_until)
        plain = await lateness(lambda due: asyncio.sleep(due - loop.time()))
    finally:
        clock.close()
    assert ours < plain / 2, (ours, plain)


@linux_only
async def test_close_releases_the_descriptor_and_cancels_waiters() -> None:
    loop = asyncio.get_running_loop()
    before = _fds()
    clock = Clock(loop)
    assert _fds() == before + 1
    waiter = asyncio.ensure_future(clock.sleep_until(loop.time() + 60))
    await asyncio.sleep(0)
    clock.close()
    assert _fds() == before
    with pytest.raises(asyncio.CancelledError):
        await waiter


async def test_imprecise_clock_opens_nothing_and_still_waits() -> None:
    loop = asyncio.get_running_loop()
    before = _fds() if sys.platform.startswith("linux") else 0
    clock = Clock(loop, precise=False)
    assert not clock.precise
    due = loop.time() + 0.002
    await clock.sleep_until(due)
    assert loop.time() >= due
    if sys.platform.startswith("linux"):
        assert _fds() == before
