"""Hypothesis strategies for fault objects and fault plans, bounded so a replay stays fast."""

from __future__ import annotations

from hypothesis import strategies as st

from streamreel.fault_injection import Disconnect, Drop, Error, Fault, Fragment, Http, Latency, Pings, Speed, Stall, Throttle, Truncate
from streamreel.fault_injection.error import ERROR_TYPES

selectors = st.one_of(st.integers(-12, 12), st.sampled_from(["message_stop", "ping", "content_block_delta", "[DONE]", "message_delta"]))
cut_points = st.one_of(
    st.fixed_dictionaries({"after_events": st.integers(0, 12)}),
    st.fixed_dictionaries({"after_bytes": st.integers(0, 2000)}),
)
small_ms = st.floats(0, 5, allow_nan=False).map(lambda x: round(x, 2))
times = st.one_of(st.none(), st.integers(1, 3))


def latency() -> st.SearchStrategy[Latency]:
    return st.builds(Latency, first_ms=small_ms.map(lambda x: x + 0.01), each_ms=small_ms, jitter_ms=small_ms, headers_ms=small_ms, seed=st.integers(0, 2**16), times=times)


def stall(*, hang: bool = True) -> st.SearchStrategy[Stall]:
    timed = st.floats(0.001, 0.02).map(lambda x: round(x, 3))
    seconds = st.one_of(st.none(), timed) if hang else timed
    return cut_points.flatmap(lambda cut: st.builds(Stall, seconds=seconds, times=times, **{k: st.just(v) for k, v in cut.items()}))


def disconnect() -> st.SearchStrategy[Disconnect]:
    inside = st.fixed_dictionaries({"inside": st.integers(1, 12), "keep_bytes": st.one_of(st.none(), st.integers(1, 40))})
    return st.one_of(cut_points, inside).flatmap(
        lambda cut: st.builds(Disconnect, how=st.sampled_from(["reset", "close", "eof"]), times=times, **{k: st.just(v) for k, v in cut.items()})
    )


def fragment() -> st.SearchStrategy[Fragment]:
    return st.builds(Fragment, size_bytes=st.integers(1, 64), random=st.booleans(), max_bytes=st.integers(1, 64), seed=st.integers(0, 2**16))


def throttle() -> st.SearchStrategy[Throttle]:
    return st.builds(Throttle, bytes_per_s=st.sampled_from([200_000.0, 500_000.0, 1e6]))


def truncate() -> st.SearchStrategy[Truncate]:
    return st.builds(Truncate, events=st.lists(selectors, min_size=1, max_size=2).map(tuple), keep_fraction=st.floats(0, 0.99).map(lambda x: round(x, 2)))


def drop() -> st.SearchStrategy[Drop]:
    return st.builds(Drop, events=st.lists(selectors, min_size=1, max_size=3).map(tuple))


def error() -> st.SearchStrategy[Error]:
    return st.builds(Error, after_events=st.integers(0, 12), error_type=st.sampled_from(ERROR_TYPES))


def pings() -> st.SearchStrategy[Pings]:
    return st.builds(Pings, every_ms=st.sampled_from([5.0, 10.0, 50.0]), style=st.sampled_from(["auto", "event", "comment"]))


def http() -> st.SearchStrategy[Http]:
    return st.builds(
        Http,
        status=st.sampled_from([400, 429, 500, 503, 529]),
        times=st.integers(1, 3),
        retry_after_s=st.one_of(st.none(), st.sampled_from([0.0, 0.01, 1.0])),
        should_retry=st.one_of(st.none(), st.booleans()),
    )


def speed() -> st.SearchStrategy[Speed]:
    return st.builds(Speed, factor=st.sampled_from([0.0, 0.5, 2.0, 100.0]))


def any_fault() -> st.SearchStrategy[Fault]:
    """One fault of any kind, with any legal values (for spec round trips)."""
    return st.one_of(latency(), stall(), disconnect(), fragment(), throttle(), truncate(), drop(), error(), pings(), http(), speed())


def stream_fault_plans(*, max_size: int = 4) -> st.SearchStrategy[list[Fault]]:
    """Fault plans a replay of a short stream finishes quickly under (no http: it answers without a stream)."""
    one = st.one_of(latency(), stall(), disconnect(), fragment(), throttle(), truncate(), drop(), error(), pings())
    return st.lists(one, max_size=max_size)
