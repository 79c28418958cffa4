"""``latency``: fixed and jittered delays, seeded, added on top of the recorded timing."""

from __future__ import annotations

import time

import httpx2
from _fault_helpers import anthropic_cassette, run

from streamreel import Replayer
from streamreel.fault_injection import Latency


def test_first_and_each_delays_add_up_and_move_everything_after_them() -> None:
    cas = anthropic_cassette(gap_ms=10, first_ms=10)
    base, plain = run(cas, "speed:1")
    p, chunks = run(cas, "latency:first=300ms,each=20ms,headers=50ms")
    assert p.headers_at_ms == base.headers_at_ms + 50
    assert [c.at_ms - b.at_ms for c, b in zip(chunks, plain)] == [50 + 300 + 20 * i for i in range(len(plain))]
    assert p.ending.at_ms == base.ending.at_ms + 50 + 300 + 20 * (len(plain) - 1)
    assert [c.data for c in chunks] == [c.data for c in plain]


def test_latency_is_wall_clock_time_on_top_of_speed() -> None:
    _, chunks = run(anthropic_cassette(), "speed:0; latency:first=100ms,each=1ms")
    assert [c.at_ms for c in chunks] == [100 + i for i in range(len(chunks))]


def test_jitter_is_seeded_bounded_and_never_makes_a_delay_negative() -> None:
    cas = anthropic_cassette(gap_ms=0, first_ms=0)
    times = lambda spec: [c.at_ms for c in run(cas, spec)[1]]  # noqa: E731
    a = times("latency:each=10ms,jitter=5ms,seed=7")
    assert a == times("latency:each=10ms,jitter=5ms,seed=7")
    assert a != times("latency:each=10ms,jitter=5ms,seed=8")
    gaps = [y - x for x, y in zip(a, a[1:])]
    assert all(5 <= g <= 15 for g in gaps) and len(set(gaps)) > 1
    wide = times("latency:each=1ms,jitter=50ms,seed=1")
    assert all(y >= x for x, y in zip(wide, wide[1:]))


def test_delays_are_the_ones_the_fault_draws() -> None:
    fault = Latency(first_ms=30, each_ms=10, jitter_ms=2, seed=3)
    delays = fault.delays(5)
    assert delays == fault.delays(5)
    assert 28 <= delays[0] <= 32 and all(8 <= d <= 12 for d in delays[1:])


def test_a_client_waits_for_the_headers_delay_before_it_gets_a_response() -> None:
    with Replayer(anthropic_cassette(), speed=0, faults="latency:headers=150ms") as r, httpx2.Client() as client:
        t0 = time.perf_counter()
        with client.stream("POST", r.url + "/v1/messages", content=b"{}") as resp:
            headers_s = time.perf_counter() - t0
            resp.read()
    assert headers_s >= 0.15
