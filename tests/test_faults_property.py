"""Properties over random fault plans: the replayer never crashes or hangs, and the ground truth is exact.

Over a real socket, what a raw HTTP/1.1 client read is byte for byte what the replayer
reports sending, ended the way it reports, and is what the socketless pipeline yields
for the same plan. Without a socket, byte faults only delay, split and cut: the chunks
are always a prefix of the encoded events, in time order, counting events correctly.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate
from typing import Iterator

import pytest
from _fault_helpers import anthropic_cassette, openai_cassette, raw_request
from _fault_strategies import stream_fault_plans
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamreel import Cassette, Replayer
from streamreel.errors import FaultSpecError
from streamreel.pipeline import plan
from streamreel.sse import encode_all

CASSETTES = {
    "anthropic": anthropic_cassette(),
    "anthropic-long": anthropic_cassette("anthropic-sdk-python/stream-b-fallback.sse"),
    "openai": openai_cassette(),
}
HANG_TIMEOUT_S = 0.25
"""How long the raw client waits in silence before it calls a response hung."""

READ_END = {"reset": "reset", "close": "eof", "end": "terminator", "hang": "timeout"}


@pytest.fixture(scope="module")
def replayer() -> Iterator[Replayer]:
    with Replayer(speed=0) as r:
        yield r


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(CASSETTES)), faults=stream_fault_plans(max_size=4))
def test_a_raw_client_reads_exactly_what_the_ground_truth_says_was_sent(replayer: Replayer, name: str, faults: list) -> None:
    cassette: Cassette = CASSETTES[name]
    try:
        replayer.load(cassette, faults=faults, speed=0)
    except FaultSpecError as e:
        assert any(repr(str(f)) in str(e) for f in faults) or "cannot be applied" in str(e), str(e)
        return
    reply = raw_request(replayer.url, path=cassette.interactions[0].request.path or "/", timeout=HANG_TIMEOUT_S)
    (sent,) = replayer.settle(requests=1)

    assert sent.status == 200
    assert [o.fired for o in sent.faults] == [True] * len(faults), sent.faults
    assert reply.body == sent.data
    assert reply.ended_by == READ_END[sent.ending if sent.ending != "client_hung_up" else "hang"]
    assert sent.client_hung_up == (sent.ending in ("hang", "client_hung_up"))

    expected = plan(cassette.interactions[0], faults, speed=0)
    chunks = list(expected.chunks)
    assert sent.data == b"".join(c.data for c in chunks)
    assert sent.events_done == (chunks[-1].events_done if chunks else 0)
    if sent.ending != "client_hung_up":
        assert sent.ending == expected.ending.how


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(CASSETTES)), faults=stream_fault_plans(max_size=5), speed=st.sampled_from([0.0, 1.0, 3.0]))
def test_byte_faults_only_delay_split_and_cut_the_encoded_events(name: str, faults: list, speed: float) -> None:
    p = plan(CASSETTES[name].interactions[0], faults, speed=speed)
    chunks = list(p.chunks)
    whole = encode_all(p.events)
    sent = b"".join(c.data for c in chunks)
    assert whole.startswith(sent)
    assert all(c.data for c in chunks)
    times = [c.at_ms for c in chunks]
    assert times == sorted(times) and all(t >= 0 for t in times)
    ends = list(accumulate(len(e.wire) for e in p.events))
    offset = 0
    for c in chunks:
        offset += len(c.data)
        assert c.events_done == bisect_right(ends, offset), "a chunk must count exactly the events complete once it is written"
