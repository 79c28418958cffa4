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


# ---------------------------------------------------------------- deadlines it cannot arm

import math
import resource

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamreel.clock import MAX_AHEAD_S, DeadlineError, _timerfd

_unarmable = st.one_of(
    st.just(math.nan),
    st.just(math.inf),
    st.floats(min_value=MAX_AHEAD_S * 1.0000001, max_value=1.7e308),
    st.sampled_from([MAX_AHEAD_S + 1.0, 2.0**63 / 1e9, 2.0**64 / 1e9, 1e300, 9.3e9, 1e19]),
)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _good_sleeps_stay_on_time(clock: Clock, loop: asyncio.AbstractEventLoop) -> None:
    """Later sleepers wake after their deadline and within a generous bound."""
    for _ in range(3):
        due = loop.time() + 0.003
        await asyncio.wait_for(clock.sleep_until(due), 2.0)
        assert due <= loop.time() < due + 0.5


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(ahead=_unarmable, precise=st.booleans())
def test_a_deadline_the_timer_cannot_hold_is_refused_and_leaves_nothing_queued(ahead: float, precise: bool) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        reported: list[dict] = []
        loop.set_exception_handler(lambda _loop, context: reported.append(context))
        clock = Clock(loop, precise=precise)
        try:
            with pytest.raises(DeadlineError, match=r"cannot sleep|not a number"):
                await asyncio.wait_for(clock.sleep_until(loop.time() + ahead), 1.0)
            assert clock._heap == []
            await _good_sleeps_stay_on_time(clock, loop)
        finally:
            clock.close()
        assert reported == []

    asyncio.run(main())


async def test_a_refused_deadline_among_waiting_sleepers_neither_spins_nor_breaks_them() -> None:
    """The loop stays idle while sleepers wait (no timer armed in the past), and each wakes at its time."""
    loop = asyncio.get_running_loop()
    clock = Clock(loop)
    reported: list[dict] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        later = [asyncio.ensure_future(clock.sleep_until(loop.time() + 0.3 + i * 0.01)) for i in range(5)]
        for ahead in (1e12, 2.0**63 / 1e9, math.inf, math.nan):
            with pytest.raises(DeadlineError):
                await clock.sleep_until(loop.time() + ahead)
        idle_from = _cpu_s()
        await asyncio.sleep(0.2)
        idle_cpu = _cpu_s() - idle_from
        await asyncio.wait_for(asyncio.gather(*later), 2.0)
        await _good_sleeps_stay_on_time(clock, loop)
    finally:
        loop.set_exception_handler(None)
        clock.close()
    assert idle_cpu < 0.1, f"the loop spun: {idle_cpu:.2f} s of CPU in 0.2 s of waiting"
    assert reported == []


@linux_only
@settings(max_examples=100, deadline=None, derandomize=True)
@given(ns=st.one_of(st.integers(min_value=2**63, max_value=2**200), st.integers(max_value=0)))
def test_the_timerfd_arms_only_values_a_timespec_holds(ns: int) -> None:
    made = _timerfd()
    assert made is not None
    fd, arm = made
    try:
        with pytest.raises((OverflowError, OSError, ValueError)):
            arm(ns)
    finally:
        os.close(fd)


async def test_cancelled_sleepers_do_not_pile_up_in_the_queue() -> None:
    loop = asyncio.get_running_loop()
    clock = Clock(loop)
    try:
        for _ in range(10):
            tasks = [asyncio.ensure_future(clock.sleep_until(loop.time() + 3600)) for _ in range(100)]
            await asyncio.sleep(0)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        assert len(clock._heap) <= 200
        await _good_sleeps_stay_on_time(clock, loop)
    finally:
        clock.close()


@pytest.mark.skipif(_timerfd() is None, reason="needs a Linux timerfd: elsewhere a Clock is asyncio.sleep and has no queue to look at")
async def test_behind_wakes_sleepers_past_due_while_the_loop_is_busy_and_counts_them_until_they_run() -> None:
    loop = asyncio.get_running_loop()
    clock = Clock(loop)
    try:
        order: list[str] = []

        async def sleeper(name: str, ahead: float) -> None:
            await clock.sleep_until(loop.time() + ahead)
            order.append(name)

        due = asyncio.ensure_future(sleeper("due", 0.05))
        later = asyncio.ensure_future(sleeper("later", 5.0))
        await asyncio.sleep(0)
        assert not clock.behind()
        busy_until = loop.time() + 0.1  # the loop polls nothing meanwhile: only behind() can see the deadline pass
        while loop.time() < busy_until:
            pass
        assert clock.behind() and clock.behind()  # woken, and still behind until it has run
        assert order == []
        await due
        assert order == ["due"]
        assert not clock.behind()
        later.cancel()
        with pytest.raises(asyncio.CancelledError):
            await later
        assert not clock.behind()
        left = asyncio.ensure_future(sleeper("left", 0.05))  # woken, then its client leaves before it runs
        await asyncio.sleep(0)
        busy_until = loop.time() + 0.1
        while loop.time() < busy_until:
            pass
        assert clock.behind()
        left.cancel()
        with pytest.raises(asyncio.CancelledError):
            await left
        assert not clock.behind()
    finally:
        clock.close()
