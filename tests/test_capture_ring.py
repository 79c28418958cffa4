"""The capture's ring: the last N streams in at most M bytes of real memory, however many streams
go through it, whatever their sizes, cuts and overlaps."""

from __future__ import annotations

import gc
import random
import sys
from types import FunctionType, ModuleType
from typing import Any, Iterator

import httpx2
import pytest

from streamreel.capture import Capture, _Ring, _Scope, _Stream
from streamreel.providers.anthropic import TextBlock, message_events
from streamreel.sse import encode_all

SSE = {"content-type": "text/event-stream; charset=utf-8"}


def body(words: int, seed: int) -> bytes:
    rng = random.Random(seed)
    return encode_all(message_events([TextBlock(tuple(f"w{rng.randrange(10**6)} " for _ in range(words)))]))


def split(data: bytes, seed: int) -> list[bytes]:
    """``data`` in pieces of 1 to 8 KiB, as reads from a socket come."""
    rng = random.Random(seed)
    pieces, at = [], 0
    while at < len(data):
        n = rng.randrange(1024, 8192)
        pieces.append(data[at : at + n])
        at += n
    return pieces


class Pieces(httpx2.SyncByteStream):
    """A body's pieces, cut with a reset after ``cut_at`` of them."""

    def __init__(self, pieces: list[bytes], cut_at: int | None) -> None:
        self.pieces = pieces
        self.cut_at = cut_at
        self.request: httpx2.Request | None = None

    def __iter__(self) -> Iterator[bytes]:
        for i, piece in enumerate(self.pieces):
            if i == self.cut_at:
                raise httpx2.ReadError("[Errno 104] Connection reset by peer", request=self.request)
            yield piece


class Upstream(httpx2.BaseTransport):
    """Streams of every size (a few KiB to over the whole budget), some cut, some JSON; seeded."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.bodies = [[split(body(n, i), k) for k in range(3)] for i, n in enumerate((5, 40, 200, 900, 2500))]
        self.huge = split(body(8000, 9), 0)  # over the whole budget

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        kind = self.rng.random()
        if kind < 0.05:
            return httpx2.Response(200, headers={"content-type": "application/json"}, stream=httpx2.ByteStream(b'{"type":"message"}'), request=request)
        pieces = self.huge if kind < 0.052 else self.rng.choice(self.rng.choice(self.bodies))
        stream = Pieces(pieces, self.rng.randrange(1, 8) if kind > 0.9 else None)
        stream.request = request
        return httpx2.Response(200, headers={**SSE, "x-request-id": f"req_{self.rng.randrange(10**9)}"}, stream=stream, request=request)


def deep_size(objects: list[Any]) -> int:
    """Bytes of every object reachable from ``objects`` (each counted once), not following into
    classes, modules, functions or the capture's own machinery: what holding them costs."""
    seen: set[int] = set()
    stack = list(objects)
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (type, ModuleType, FunctionType, Capture, _Ring, _Scope)):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


def held(capture: Capture) -> int:
    ring = capture._ring
    return sys.getsizeof(ring.items) + deep_size(list(ring.items))


def test_ten_thousand_streams_never_take_more_memory_than_the_bound() -> None:
    budget, streams = 1 << 20, 40
    capture = Capture(streams=streams, max_bytes=budget)
    upstream = Upstream(seed=11)
    rng = random.Random(5)
    open_ones: list[tuple[Any, Iterator[bytes]]] = []
    peak = most = 0
    with httpx2.Client(transport=capture.transport(upstream), base_url="http://upstream.test") as client:
        for i in range(10_000):
            request = client.build_request("POST", "/v1/messages", json={"model": "m", "stream": True, "n": i})
            response = client.send(request, stream=True)
            if rng.random() < 0.03 and len(open_ones) < 6:  # left open part-read, finished later: streams in flight
                it = response.iter_raw()
                next(it, None)
                open_ones.append((response, it))
            else:
                try:
                    for n, _ in enumerate(response.iter_raw()):
                        if n > 2 and rng.random() < 0.05:
                            break  # the app stops reading
                except httpx2.ReadError:
                    pass
                response.close()
            if open_ones and rng.random() < 0.2:
                response, it = open_ones.pop(0)
                try:
                    for _ in it:
                        pass
                except httpx2.ReadError:
                    pass
                response.close()
            if i % 250 == 0 or i == 9_999:
                size = held(capture)
                peak = max(peak, size)
                assert size <= budget, (i, size)
                assert capture.held_bytes <= budget and len(capture._ring.items) <= streams
            most = max(most, len(capture._ring.items))
    assert peak > budget // 2 and most == streams  # both bounds were reached, not trivially met
    for response, _ in open_ones:
        response.close()
    kept = capture.streams
    assert 2 <= len(kept) <= streams and {s.ending for s in kept} <= {"complete", "client_cancel", "upstream_disconnect"}
    assert kept[-1].id > 9_000
    gc.collect()
    alive = [o for o in gc.get_objects() if type(o) is _Stream]
    assert len(alive) <= streams + 6  # nothing pushed out of the ring is held anywhere else


def test_a_stream_larger_than_the_whole_budget_is_let_go_and_said_once(caplog: pytest.LogCaptureFixture) -> None:
    capture = Capture(streams=4, max_bytes=64 * 1024)
    huge = body(9000, 1)
    assert len(huge) > 4 * 64 * 1024

    class Big(httpx2.BaseTransport):
        def handle_request(self, request: httpx2.Request) -> httpx2.Response:
            return httpx2.Response(200, headers=SSE, stream=Pieces(split(huge if "big" in request.url.path else body(5, 2), 3), None), request=request)

    with httpx2.Client(transport=capture.transport(Big()), base_url="http://upstream.test") as client:
        for path in ("/big", "/small", "/big", "/small"):
            with client.stream("POST", path) as response:
                assert response.read()  # the app reads all of it, whatever the capture keeps
            assert held(capture) <= 64 * 1024
    # A stream that outgrows the budget pushes out the older ones, then itself.
    assert [s.path for s in capture.streams] == ["/small"]
    assert caplog.text.count("pushed out of the ring while still being read") == 1


def test_credits_reserved_by_streams_in_flight_never_add_up_past_the_budget() -> None:
    """Many streams read at once, round robin, each growing: the room they reserve stays within the bound."""
    capture = Capture(streams=8, max_bytes=128 * 1024)
    data = body(900, 4)

    class Slow(httpx2.BaseTransport):
        def handle_request(self, request: httpx2.Request) -> httpx2.Response:
            return httpx2.Response(200, headers=SSE, stream=Pieces(split(data, int(request.url.path[1:])), None), request=request)

    with httpx2.Client(transport=capture.transport(Slow()), base_url="http://upstream.test") as client:
        responses = [client.send(client.build_request("GET", f"/{i}"), stream=True) for i in range(12)]
        iters = [r.iter_raw() for r in responses]
        alive = list(range(12))
        while alive:
            for i in list(alive):
                if next(iters[i], None) is None:
                    alive.remove(i)
                assert capture.held_bytes <= 128 * 1024 and held(capture) <= 128 * 1024
        for r in responses:
            r.close()
    kept = capture.streams
    assert 1 <= len(kept) <= 8 and all(s.ending == "complete" for s in kept)
