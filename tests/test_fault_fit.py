"""No fault can silently do nothing: over random specs and cassettes, each is refused with a
message, or it fires (the ground truth says so) and what goes out is not what goes out without it.

Specs are drawn from every registered fault's own keys, with values in range and out of it
(typos in names, indices past the end, 1e-300 rates, hour-long waits), so the check covers
faults added later without a change here.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

import pytest
from _fault_helpers import DATA, anthropic_cassette, openai_cassette, raw_request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamreel import Cassette, Event, Replayer
from streamreel.cassette import End, Interaction, Request, Response
from streamreel.errors import FaultSpecError
from streamreel.fault_injection import REGISTRY, RequestFault, Speed, parse
from streamreel.importer import Timing, import_file
from streamreel.pipeline import Plan, check_fit, plan
from streamreel.strategies import anthropic_streams


def _hung() -> Cassette:
    cas = anthropic_cassette()
    res = cas.interactions[0].response
    events = (res.events or ())[:5]
    return Cassette(interactions=(dataclasses.replace(cas.interactions[0], response=dataclasses.replace(res, events=events, end=End(t=events[-1].t + 50, reason="timeout"))),))


def _body() -> Cassette:
    return Cassette(interactions=(Interaction(Request(method="POST", path="/v1/messages"), Response(status=529, body={"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})),))


def _same_time() -> Cassette:
    """Every event at one moment, as a synthetic cassette can have them."""
    cas = anthropic_cassette()
    res = cas.interactions[0].response
    events = tuple(dataclasses.replace(e, t=10.0) for e in res.events or ())
    return Cassette(interactions=(dataclasses.replace(cas.interactions[0], response=dataclasses.replace(res, events=events, end=End(t=10.0, reason="complete"))),))


def _retry_pair() -> Cassette:
    """A failed attempt (cut after 4 events) and its retry, as a production log holds them."""
    whole = anthropic_cassette().interactions[0]
    res = whole.response
    cut = dataclasses.replace(whole, response=dataclasses.replace(res, events=(res.events or ())[:4], end=End(t=(res.events or ())[3].t, reason="upstream_disconnect")))
    return Cassette(interactions=(cut, whole))


CASSETTES: dict[str, Cassette] = {
    "anthropic": anthropic_cassette(),
    "anthropic-thinking": anthropic_cassette("anthropic-sdk-python/stream-b-fallback.sse"),
    "anthropic-cut-tool": anthropic_cassette("anthropic-sdk-python/incomplete_partial_json_response.txt"),
    "anthropic-chunks": import_file(DATA / "vercel-ai/anthropic-json-tool.2.chunks.txt", timing=Timing(gap_ms=7)),
    "openai": openai_cassette(),
    "hung": _hung(),
    "same-time": _same_time(),
    "retry-pair": _retry_pair(),
    "body": _body(),
}

BUILT_IN = sorted(name for name, cls in REGISTRY.items() if cls.__module__.startswith("streamreel."))
"""Every fault streamreel ships (a test may register a stand-in of its own, which is not checked here)."""

NAMES = ["message_start", "content_block_delta", "message_stop", "message-stop", "ping", "[DONE]", "error", "content_block_stop", "nosuch"]


def _value(kind: str, choices: tuple[str, ...]) -> st.SearchStrategy[str]:
    ints = st.one_of(st.integers(-2, 24), st.integers(25, 5000), st.sampled_from([10**12, 2**63]))
    if kind == "int":
        return ints.map(str)
    if kind == "float":
        return st.sampled_from(["0", "0.5", "1", "2", "0.9", "1e-300", "1e-308", "1e300", "100", "5000", "2e6", "1e10", "-1"])
    if kind in ("ms", "s"):
        return st.sampled_from(["0", "1ms", "5ms", "20ms", "0.3s", "2", "50", "60m", "3600s", "3601s", "99999999ms", "-5ms"])
    if kind == "bool":
        return st.sampled_from(["true", "false"])
    if kind == "choice":
        return st.sampled_from([*choices, "nosuch"])
    if kind == "ints_or_names":
        one = st.one_of(st.integers(-12, 14).map(str), st.sampled_from(NAMES))
        return st.lists(one, min_size=1, max_size=2).map("|".join)
    return st.sampled_from(["x", "boom"])


@st.composite
def specs(draw: Any) -> str:
    """One spec of any registered fault, with a random set of its keys."""
    name = draw(st.sampled_from(BUILT_IN))
    fields = [f for f in dataclasses.fields(REGISTRY[name]) if "key" in f.metadata]
    chosen = draw(st.lists(st.sampled_from(fields), max_size=3, unique_by=lambda f: f.name))
    parts = [f"{f.metadata['key']}={draw(_value(f.metadata['kind'], f.metadata['choices']))}" for f in chosen]
    return f"{name}:{','.join(parts)}" if parts else name


def _writes(p: Plan) -> list[tuple[float, bytes]]:
    """The writes a plan makes: chunks due at the same moment go out together, unless the plan
    keeps its writes apart (``fragment``), when each chunk is a write of its own."""
    out: list[tuple[float, bytes]] = []
    for c in p.chunks:
        if out and out[-1][0] == c.at_ms and not p.separate_writes:
            out[-1] = (c.at_ms, out[-1][1] + c.data)
        else:
            out.append((c.at_ms, c.data))
    return out


def _shape(p: Plan) -> tuple[Any, ...]:
    return (p.status, p.headers_at_ms, p.body, _writes(p), p.ending.how, p.ending.at_ms)


def _parsed_or_refused(spec: str) -> Any:
    try:
        return parse(spec)[0]
    except FaultSpecError as e:
        assert repr(spec) in str(e) and e.reason
        return None


@settings(max_examples=1500, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), name=st.sampled_from(sorted(CASSETTES)), speed=st.sampled_from([0.0, 1.0, 2.5]))
def test_a_fault_is_refused_or_fires_and_changes_what_is_sent(spec: str, name: str, speed: float) -> None:
    fault = _parsed_or_refused(spec)
    if fault is None:
        return
    cassette = CASSETTES[name]
    try:
        check_fit(cassette.interactions, [fault], speed=speed, source=name)
    except FaultSpecError as e:
        assert repr(str(fault)) in str(e) or "cannot be applied" in str(e), str(e)
        refused = True
    else:
        refused = False
    fired_somewhere = False
    for interaction in cassette.interactions:
        try:
            faulted = plan(interaction, [fault], speed=speed)
        except FaultSpecError:
            assert refused
            continue
        (outcome,) = faulted.outcomes
        assert outcome.spec == str(fault) and outcome.detail
        fired_somewhere |= outcome.fired
        clean = _shape(plan(interaction, (), speed=speed))
        if isinstance(fault, Speed):
            assert outcome.fired
        elif outcome.fired:
            assert _shape(faulted) != clean, f"{fault} says it fired but changed nothing"
        else:
            assert _shape(faulted) == clean and (isinstance(fault, RequestFault) or faulted.unfit == (0,))
    assert refused != fired_somewhere or isinstance(fault, RequestFault), f"{fault}: refused={refused}, fired={fired_somewhere}"


@settings(max_examples=200, derandomize=True, deadline=None)
@given(stream=anthropic_streams(), spec=specs())
def test_drawn_streams_refuse_or_fire_too(stream: Cassette, spec: str) -> None:
    fault = _parsed_or_refused(spec)
    if fault is None or isinstance(fault, RequestFault):
        return
    try:
        check_fit(stream.interactions, [fault], speed=0.0)
    except FaultSpecError:
        assert not any(plan(i, [fault], speed=0.0).outcomes[0].fired for i in stream.interactions)
        return
    assert any(plan(i, [fault], speed=0.0).outcomes[0].fired for i in stream.interactions)


# ---------------------------------------------------------------- over a real socket

STREAMS = {k: v for k, v in CASSETTES.items() if k not in ("body", "retry-pair")}


@pytest.fixture(scope="module")
def replayer() -> Iterator[Replayer]:
    with Replayer(speed=0) as r:
        yield r


@settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(spec=specs(), name=st.sampled_from(sorted(STREAMS)))
def test_over_a_socket_a_loaded_fault_fires_and_the_ground_truth_says_so(replayer: Replayer, spec: str, name: str) -> None:
    fault = _parsed_or_refused(spec)
    if fault is None:
        return
    cassette = STREAMS[name]
    try:
        replayer.load(cassette, faults=[fault], speed=0)
    except FaultSpecError as e:
        assert repr(str(fault)) in str(e) or "cannot be applied" in str(e), str(e)
        return
    path = cassette.interactions[0].request.path or "/"
    raw_request(replayer.url, path=path, timeout=0.25)
    (sent,) = replayer.settle(requests=1)
    assert sent.fault_specs == (str(fault),)
    assert sent.faults[0].fired, sent.faults
    replayer.load(cassette, speed=0)
    raw_request(replayer.url, path=path, timeout=0.25)
    (clean,) = replayer.settle(requests=1)
    changes_bytes = fault.name in ("drop", "truncate", "error", "pings", "disconnect", "http") or (fault.name == "stall" and getattr(fault, "seconds", 0) is None)
    if changes_bytes:
        assert (sent.status, sent.data, sent.ending) != (clean.status, clean.data, clean.ending)


def test_the_issue_examples_are_refused_naming_the_fault_and_what_the_stream_holds() -> None:
    cassette = anthropic_cassette()
    for spec, says in [
        ("drop:event=message-stop", "event=message-stop picks no event; the stream holds 9 events: message_start, content_block_start, ping, content_block_delta x3, content_block_stop, message_delta, message_stop"),
        ("truncate:event=99", "event=99 is past the stream's events (indices 0..8"),
        ("disconnect:after=999", "after=999 is past the end; the stream holds 9 events"),
    ]:
        with pytest.raises(FaultSpecError) as info:
            Replayer(cassette, faults=spec)
        assert f"bad fault spec {spec!r}: cannot apply to any response" in str(info.value)
        assert says in str(info.value)


def test_a_cassettes_own_faults_are_refused_when_it_loads(tmp_path: Any) -> None:
    from streamreel import save

    path = tmp_path / "c.yaml"
    save(dataclasses.replace(anthropic_cassette(), faults=("pings:every=10s",)), path)
    with pytest.raises(FaultSpecError) as info:
        Replayer(path)
    assert "'pings:every=10000ms'" in str(info.value) and str(path) in str(info.value)
    assert "not more than every=10000ms" in str(info.value)


def test_a_schedule_no_timer_could_keep_is_refused_at_load() -> None:
    cassette = Cassette.from_events([Event(t=float(i), data="x" * 100) for i in range(200)])
    with pytest.raises(FaultSpecError) as info:
        Replayer(cassette, faults="throttle:bytes_per_s=1; fragment:size=1,gap=3600s")
    assert "would send its last byte" in str(info.value) and "a replay may last at most 365 days" in str(info.value)


def test_a_directory_server_checks_each_cassettes_own_faults_and_its_own_per_response(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    import httpx2

    from streamreel import save
    from streamreel.library import CASSETTE_HEADER

    save(dataclasses.replace(anthropic_cassette(), faults=("drop:event=message-stop",)), tmp_path / "typo.yaml")
    save(openai_cassette(), tmp_path / "openai.yaml")
    with Replayer(cassette_dir=tmp_path, speed=0, faults="drop:event=ping") as r, httpx2.Client() as client:
        typo = client.post(f"{r.url}/v1/messages", json={}, headers={CASSETTE_HEADER: "typo.yaml"})
        served = client.post(f"{r.url}/v1/chat/completions", json={}, headers={CASSETTE_HEADER: "openai.yaml"})
        _, sent = r.settle(requests=2)
    assert typo.status_code == 400 and "drop:event=message-stop" in typo.json()["error"]["message"] and "picks no event" in typo.json()["error"]["message"]
    assert served.status_code == 200 and not sent.faults[0].fired and "event=ping picks no event" in sent.faults[0].detail
    assert any("drop:event=ping did not fire" in rec.getMessage() for rec in caplog.records if rec.name == "streamreel.faults")


pytest_plugins = ["pytester"]


def test_the_marker_and_reel_load_refuse_a_fault_that_cannot_apply(pytester: pytest.Pytester) -> None:
    from streamreel import save

    save(anthropic_cassette(), pytester.path / "c.yaml")
    pytester.makepyfile(
        """
        import pytest
        from pathlib import Path

        CASSETTE = Path(__file__).parent / "c.yaml"

        @pytest.mark.reel(CASSETTE, faults=["truncate:event=99"])
        def test_marker(reel):
            pass

        def test_load(reel):
            reel.load(CASSETTE, faults=["disconnect:after=999"])
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(errors=1, failed=1)
    result.stdout.fnmatch_lines(["*bad fault spec 'truncate:event=99': cannot apply to any response of *c.yaml*", "*bad fault spec 'disconnect:after=999': cannot apply*past the end; the stream holds 9 events*"])
