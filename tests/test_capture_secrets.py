"""No secret reaches a capture dump, its name, a log line or the ring's listing, wherever the
request carried it, wherever the upstream echoed it, however the stream ended and was dumped."""

from __future__ import annotations

import base64
import json
import logging
from contextlib import nullcontext
from dataclasses import replace
from typing import Any

import httpx2
import pytest
from _secrets_helpers import ANT, BASIC, BEARER, BODY, CUSTOM, GOOGLE, NESTED, PROMPT, SECRETS, SPLIT_KINDS, SPLIT_PROVIDERS, TEAM_HEADER, CUTS, SAFE_TEXT, TOKENS, leaks, piece_of, split_echo
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from streamreel import Cassette, load
from streamreel.capture import Capture
from streamreel.cassette import End, Interaction, Request, Response
from streamreel.providers.anthropic import TextBlock, error_event, message_events
from streamreel.scrub import SCRUBBED, Scrubber
from streamreel.sse import decode
from streamreel.transport import BASE_URL, ReplayTransport

CARRIERS = {
    # where a request carries a secret -> (the secret, its name in SECRETS)
    "x-api-key header": ANT,
    "bearer header": BEARER,
    "custom header": CUSTOM,
    "query key": GOOGLE,
    "body api_key": BODY,
    "nested token": NESTED,
    "prompt": PROMPT,
    "basic proxy credentials": BASIC,
}
SHAPED = {ANT, BEARER, PROMPT, GOOGLE}
"""Secrets of a known format: blanked wherever they turn up, even when no request carried them."""
_NOISE = st.text(alphabet="abc xyz.,!é😀\"\\", max_size=12)


def request_with(carried: set[str]) -> tuple[str, dict[str, str], bytes]:
    """(target, headers, body) of a streamed Messages request carrying the secrets of ``carried``."""
    headers = {"content-type": "application/json"}
    message: dict[str, Any] = {"model": "claude-haiku-4-5", "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    target = "/v1/messages"
    if "x-api-key header" in carried:
        headers["x-api-key"] = ANT
    if "bearer header" in carried:
        headers["authorization"] = f"Bearer {BEARER}"
    if "custom header" in carried:
        headers[TEAM_HEADER] = CUSTOM
    if "basic proxy credentials" in carried:
        headers["proxy-authorization"] = "Basic " + base64.b64encode(f"org:{BASIC}".encode()).decode()
    if "query key" in carried:
        target += f"?key={GOOGLE}"
    if "body api_key" in carried:
        message["api_key"] = BODY
    if "nested token" in carried:
        message["metadata"] = {"user_id": "u-1", "auth": {"token": NESTED}}
    if "prompt" in carried:
        message["messages"][0]["content"] = f"my key is {PROMPT}, keep it"
    return target, headers, json.dumps(message).encode()


def upstream(echoes: list[tuple[int, str]], header_echo: str | None, ending: str) -> Cassette:
    """A stream that echoes each (delta index, text) and, in a header, ``header_echo``; ended as ``ending``."""
    deltas = [f"word{i} " for i in range(8)]
    for i, text in echoes:
        deltas[i] += text
    events = tuple(replace(e, t=float(i)) for i, e in enumerate(message_events([TextBlock(tuple(deltas))])))
    end = End(t=float(len(events)), reason="complete")
    if ending == "error event":
        events = (*events[:6], error_event(6.0, "overloaded_error", f"overloaded, {header_echo or 'sorry'}"))
    elif ending == "cut":
        events, end = events[:7], End(t=7.0, reason="upstream_disconnect")
    headers = {"content-type": "text/event-stream; charset=utf-8", "request-id": "req_011CQ"}
    if header_echo is not None:
        headers["x-echo"] = f"seen {header_echo}"
    item = Interaction(request=Request(method="POST", path="/v1/messages"), response=Response(status=200, headers=headers, headers_at=0.5, events=events, end=end))
    return Cassette(interactions=(item,))


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    carried=st.sets(st.sampled_from(sorted(CARRIERS)), min_size=1),
    data=st.data(),
    ending=st.sampled_from(["complete", "cut", "error event"]),
    how=st.sampled_from(["on demand", "on error", "app error", "sample"]),
    before=_NOISE,
    after=_NOISE,
)
def test_no_secret_reaches_a_dump_its_name_a_log_or_the_listing(
    tmp_path_factory: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture, carried: set[str], data: st.DataObject, ending: str, how: str, before: str, after: str
) -> None:
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    echoable = sorted({CARRIERS[c] for c in carried} | SHAPED)
    echoed = data.draw(st.lists(st.tuples(st.integers(0, 5), st.sampled_from(echoable)), max_size=4), label="echoed")
    header_echo = data.draw(st.none() | st.sampled_from(echoable), label="header echo")
    directory = tmp_path_factory.mktemp("dumps")
    capture = Capture(dump_dir=directory, on_error=how == "on error", sample=1.0 if how == "sample" else 0.0, seed=1, scrub=Scrubber(headers=[TEAM_HEADER]))
    target, headers, body = request_with(carried)
    inner = ReplayTransport(upstream([(i, f"{before} {s} {after}") for i, s in echoed], header_echo, ending), match_on=("method", "path"), ignore_query=("key",))
    with httpx2.Client(transport=capture.transport(inner)) as client:
        try:
            with capture.watch() if how == "app error" else nullcontext(), client.stream("POST", BASE_URL + target, headers=headers, content=body) as response:
                for line in response.iter_lines():
                    if how == "app error" and "text_delta" in line:
                        raise RuntimeError(f"the app choked on {line}")  # the app's own message quotes what it read
        except (RuntimeError, httpx2.TransportError):
            pass
    if how == "on demand":
        capture.dump(directory)
    assert capture.flush(10)
    written = list(directory.iterdir())
    expected = {"on demand": True, "app error": True, "on error": ending != "complete", "sample": ending != "cut"}[how]
    assert len(written) == (1 if expected else 0), (how, ending, written)
    texts = [p.read_text(encoding="utf-8") for p in written]
    for text in texts:
        assert "# the app raised builtins.RuntimeError: the app choked on data: " in text if how == "app error" else True
        if carried & {"x-api-key header", "bearer header", "custom header"}:
            assert SCRUBBED in text
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("streamreel")]  # (httpx2 logs its own request line)
    texts += [p.name for p in written] + ours + [repr(capture.streams), repr(capture)]
    assert leaks(texts) == []


def test_the_secrets_every_example_uses_are_the_recorders() -> None:
    """The fuzzer above draws from the recorder's own secrets, so both are held to the same set."""
    assert set(CARRIERS.values()) == set(SECRETS.values())


# ---------------------------------------------------------------- the recorder's fuzzer: secrets streamed back in pieces



@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(SPLIT_KINDS),
    provider=st.sampled_from(SPLIT_PROVIDERS),
    token=TOKENS,
    before=SAFE_TEXT,
    after=SAFE_TEXT,
    cuts=CUTS,
    ascii_only=st.booleans(),
    spaced=st.booleans(),
    reads=st.integers(0, 2**16),
)
def test_a_secret_streamed_back_in_pieces_never_reaches_a_dump_and_nothing_else_changes(
    tmp_path_factory: pytest.TempPathFactory, kind: str, provider: str, token: str, before: str, after: str, cuts: list[float], ascii_only: bool, spaced: bool, reads: int
) -> None:
    """The recorder's fuzzer, through the capture: the upstream echoes a secret of each kind across
    events at random split points, framed as each provider frames its text, arriving in random
    reads; the dump's joined text reads the same with the secret blanked, every other byte of
    every event as the app's client got it."""
    drawn = split_echo(kind, provider, token, before, after, cuts, ascii_only=ascii_only, spaced=spaced)
    assume(drawn is not None)
    assert drawn is not None
    echo, upstream = drawn.echo, drawn.upstream()
    inner = ReplayTransport(Cassette(interactions=(upstream,)), faults=[f"fragment:random,seed={reads}"], match_on=("method", "path"), ignore_query=("alt", "key"))
    capture = Capture()
    with httpx2.Client(transport=capture.transport(inner)) as client:
        with client.stream("POST", BASE_URL + echo.target, headers=echo.headers, content=echo.body) as response:
            got_wire = response.read()
    assert echo.secret in "".join(p for p in (piece_of(provider, e) for e in decode(got_wire)) if p is not None)  # the app got it as sent
    out = capture.dump(tmp_path_factory.mktemp("split") / "c.yaml")
    assert out is not None
    drawn.assert_kept_out_of(out.read_text(encoding="utf-8"), provider, load(out).interactions[0].response.events or ())
