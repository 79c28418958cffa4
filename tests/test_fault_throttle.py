"""``throttle``: a bandwidth cap; bytes trickle out in 10 ms pieces, never faster than the cap."""

from __future__ import annotations

import time

import httpx2
from _fault_helpers import anthropic_cassette, run, wire

from streamreel import Replayer


def test_no_prefix_of_the_stream_goes_out_faster_than_the_cap() -> None:
    _, plain = run(anthropic_cassette(), (), speed=0)
    _, chunks = run(anthropic_cassette(), "throttle:bytes_per_s=2000", speed=0)
    assert wire(chunks) == wire(plain)
    assert max(len(c.data) for c in chunks) == 20
    sent = 0
    for c in chunks:
        assert sent <= 2000 * c.at_ms / 1000 + 1e-6
        sent += len(c.data)
    assert chunks[-1].at_ms == (len(wire(plain)) - len(chunks[-1].data)) * 1000 / 2000


def test_throttled_pieces_complete_events_only_at_the_end_of_each_event() -> None:
    _, chunks = run(anthropic_cassette(), "throttle:bytes_per_s=2000", speed=0)
    completes = [c.events_done for c in chunks]
    assert sorted(completes) == completes and completes[-1] == 9
    assert len(set(completes)) == 10


def test_a_throttled_stream_takes_as_long_as_its_size_over_the_cap() -> None:
    with Replayer(anthropic_cassette(), speed=0, faults="throttle:bytes_per_s=5000") as r, httpx2.Client() as client:
        t0 = time.perf_counter()
        body = client.post(r.url + "/v1/messages", content=b"{}").content
        took = time.perf_counter() - t0
    assert len(body) == 1048
    assert took >= (1048 - 50) / 5000
