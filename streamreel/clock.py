"""Precise sleeps on the event loop: wake within tens of microseconds of a deadline, not up to 1 ms late.

asyncio's selector loop on Linux waits in ``epoll_wait``, whose timeout is whole milliseconds
rounded up, so ``asyncio.sleep`` wakes 0–1 ms late (0.5 ms on average) and every replayed gap
would carry that error. A :class:`Clock` arms one Linux timerfd to the earliest deadline in
nanoseconds on the same monotonic clock as ``loop.time()``; epoll returns the moment it
fires. Where there is no timerfd (macOS, whose kqueue already waits in nanoseconds; Windows),
a Clock is ``asyncio.sleep``.

A deadline the clock cannot arm (not a number, infinite, or further ahead than
:data:`MAX_AHEAD_S`) is refused with a :class:`DeadlineError` before it is queued: a timer
armed to a value that overflows would wrap into the past and fire again and again, and an
entry left in the queue would break every later sleeper.
"""

from __future__ import annotations

import asyncio
import ctypes
import heapq
import os
import sys
import time
from itertools import count
from typing import Callable

from .errors import StreamreelError

__all__ = ["Clock", "DeadlineError", "MAX_AHEAD_S", "MAX_SLACK_S"]

MAX_AHEAD_S = 30 * 86400.0
"""The furthest ahead a sleep may end: 30 days. Any real wait (a recorded gap, a stall, a
throttled stream) is far shorter; a larger one comes from a fault value or a speed so extreme
that the timer could not hold it (it would wrap to the past and spin the loop)."""

MAX_SLACK_S = 250e-6
"""The most a wake-up is delayed so that deadlines close together share it. Each wake-up is a
loop iteration; 200 jittered streams would otherwise wake the loop once per event and spend
twice the CPU of ``asyncio.sleep``'s millisecond batches. The slack grows with the number of
sleepers (2 µs each, as timers crowd), so a lone stream is on time to the microsecond."""

_SLACK_PER_SLEEPER_S = 2e-6

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = 0o4000
_TFD_CLOEXEC = 0o2000000
_TFD_TIMER_ABSTIME = 1
_MAX_NS = 2**63 - 1


class DeadlineError(StreamreelError, ValueError):
    """A sleep the clock refuses: its deadline is not a number, or too far ahead to arm."""


def _check(when: float, now: float) -> float:
    """How far ahead ``when`` is, or a :class:`DeadlineError` saying why it cannot be slept to."""
    try:
        ahead = when - now
    except TypeError:
        raise DeadlineError(f"a sleep deadline must be a number of seconds, got {type(when).__name__}") from None
    if ahead != ahead:
        raise DeadlineError("a sleep deadline is not a number (NaN); it comes from a fault value or speed that has no meaning")
    if ahead > MAX_AHEAD_S:
        raise DeadlineError(
            f"cannot sleep {ahead:.3g} s: at most {MAX_AHEAD_S:.0f} s (30 days) ahead; a fault value or a speed this extreme cannot take effect"
        )
    return ahead


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _timerfd() -> tuple[int, Callable[[int], None]] | None:
    """A non-blocking timerfd on CLOCK_MONOTONIC and a function arming it to an absolute time in ns; None if unavailable."""
    if not sys.platform.startswith("linux") or time.get_clock_info("monotonic").implementation != "clock_gettime(CLOCK_MONOTONIC)":
        return None
    create = getattr(os, "timerfd_create", None)
    if create is not None:  # Python >= 3.13
        fd = create(os.CLOCK_MONOTONIC, flags=os.TFD_NONBLOCK | os.TFD_CLOEXEC)  # type: ignore[attr-defined]
        return fd, lambda ns: os.timerfd_settime_ns(fd, flags=os.TFD_TIMER_ABSTIME, initial=ns)  # type: ignore[attr-defined]
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.timerfd_settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec), ctypes.c_void_p]
        fd = libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
    except (OSError, AttributeError):
        return None
    if fd < 0:
        return None
    spec = _Itimerspec()
    settime = libc.timerfd_settime

    def arm(ns: int) -> None:
        if not 0 < ns < _MAX_NS:
            raise OverflowError(f"timer value {ns} ns does not fit a timespec")
        spec.it_value.tv_sec, spec.it_value.tv_nsec = divmod(ns, 1_000_000_000)
        if settime(fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")

    return fd, arm


class Clock:
    """Sleeps to absolute ``loop.time()`` deadlines for one running loop; :meth:`close` frees its fd.

    All sleepers share one timerfd armed to the earliest deadline, so a thousand concurrent
    streams cost one descriptor and one wake-up per distinct moment.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, *, precise: bool = True) -> None:
        self._loop = loop
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = count()
        self._armed: float | None = None
        self._cancelled = 0
        self._woken = 0
        self._fd: int | None = None
        self._arm: Callable[[int], None] | None = None
        if precise and isinstance(loop, asyncio.SelectorEventLoop) and _uses_monotonic(loop):
            made = _timerfd()
            if made is not None:
                self._fd, self._arm = made
                loop.add_reader(self._fd, self._fire)

    @property
    def precise(self) -> bool:
        """Whether sleeps wake on a timerfd (else they are ``asyncio.sleep``)."""
        return self._fd is not None

    async def sleep_until(self, when: float) -> None:
        """Return at ``when`` (in ``loop.time()`` seconds), or at once if it has passed.

        Raises :class:`DeadlineError` for a deadline that is NaN, not a number, or more than
        :data:`MAX_AHEAD_S` ahead; nothing of it is kept.
        """
        loop = self._loop
        delay = _check(when, loop.time())
        if delay <= 0:
            return
        if self._arm is None:
            await asyncio.sleep(delay)
            return
        future: asyncio.Future[None] = loop.create_future()
        entry = (when, next(self._seq), future)
        heapq.heappush(self._heap, entry)
        if self._armed is None or when < self._armed:
            try:
                self._set(when)
            except (OverflowError, OSError, ValueError) as e:
                self._drop(entry)
                raise DeadlineError(f"cannot arm the timer for a sleep of {delay:.3g} s: {e}") from None
        try:
            await future
        except asyncio.CancelledError:
            if future.cancelled():
                self._forget_cancelled()
            raise
        finally:
            if future.done() and not future.cancelled():
                self._woken -= 1  # woken by _fire: it has run (or left) now

    def _drop(self, entry: tuple[float, int, asyncio.Future[None]]) -> None:
        """Take ``entry`` out of the queue and re-arm for the earliest one left."""
        heap = self._heap
        heap.remove(entry)
        heapq.heapify(heap)
        self._armed = None
        if heap:
            self._set(heap[0][0])

    def _forget_cancelled(self) -> None:
        """Once most of the queue is cancelled sleepers (clients that left), rebuild it without them,
        so a long-running server does not keep an entry per abandoned stream until its deadline."""
        heap = self._heap
        self._cancelled += 1
        if self._cancelled > 64 and self._cancelled * 2 > len(heap):
            heap[:] = [entry for entry in heap if not entry[2].done()]
            heapq.heapify(heap)
            self._cancelled = 0

    def _set(self, when: float) -> None:
        assert self._arm is not None
        slack = min(len(self._heap) * _SLACK_PER_SLEEPER_S, MAX_SLACK_S)
        self._arm(int((when + slack) * 1_000_000_000) + 1)
        self._armed = when

    def behind(self) -> bool:
        """Whether some sleeper's deadline has passed and its stream has not run since; those
        past due are woken now, without waiting for the loop to poll the timer. A server busy
        starting many new streams asks between them, and lets the loop run first while it is
        behind: the streams already under way are not held up by the newcomers."""
        heap = self._heap
        if heap and self._fd is not None and heap[0][0] <= self._loop.time():
            self._fire()
        return self._woken > 0

    def _fire(self) -> None:
        assert self._fd is not None
        try:
            os.read(self._fd, 8)
        except BlockingIOError:
            pass
        heap = self._heap
        loop = self._loop
        self._armed = None
        while heap:
            now = loop.time()
            if heap[0][0] > now:
                self._set(heap[0][0])  # never armed in the past: a timer that fires at once costs a wake-up for nothing
                return
            while heap and heap[0][0] <= now:
                future = heapq.heappop(heap)[2]
                if not future.done():
                    future.set_result(None)
                    self._woken += 1

    def close(self) -> None:
        """Release the timerfd; sleepers still waiting are cancelled."""
        fd, self._fd, self._arm = self._fd, None, None
        if fd is None:
            return
        if not self._loop.is_closed():
            self._loop.remove_reader(fd)
        os.close(fd)
        for _, _, future in self._heap:
            future.cancel()
        self._heap.clear()


def _uses_monotonic(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop.time()`` is ``time.monotonic()`` (a custom loop clock cannot drive a CLOCK_MONOTONIC timer)."""
    return type(loop).time is asyncio.BaseEventLoop.time
