"""Property tests for the partial tool-call JSON accumulator: in process, and through the real SDK under faults."""

from __future__ import annotations

import json
from typing import Any, Iterator

import anthropic
import httpx2
import pytest
from hypothesis import given, seed, settings
from hypothesis import strategies as st
from tool_json import StreamFailed, ToolCallAccumulator, parse_partial, stream_tool_call

from streamreel.strategies import FAULT_KINDS, StreamCassette, anthropic_streams, faulted, interrupted, tool_inputs

REQUEST: dict[str, Any] = {"model": "claude-haiku-4-5", "max_tokens": 1024, "messages": [{"role": "user", "content": "What's the weather?"}]}
STALL_READ_TIMEOUT_S = 0.3

tool_streams = anthropic_streams(text=None, tool_input=tool_inputs())


def grows_into(partial: Any, final: Any) -> bool:
    """True when ``partial`` shows nothing that ``final`` will contradict: object keys in the
    final order with all but the last value final, list items likewise, strings as prefixes,
    and every other value exactly."""
    if isinstance(partial, dict):
        if not isinstance(final, dict):
            return False
        keys, final_keys = list(partial), list(final)
        if keys != final_keys[: len(keys)]:
            return False
        return all(partial[k] == final[k] for k in keys[:-1]) and (not keys or grows_into(partial[keys[-1]], final[keys[-1]]))
    if isinstance(partial, list):
        if not isinstance(final, list) or len(partial) > len(final):
            return False
        return all(a == b for a, b in zip(partial[:-1], final)) and (not partial or grows_into(partial[-1], final[len(partial) - 1]))
    if isinstance(partial, str):
        return isinstance(final, str) and final.startswith(partial)
    return type(partial) is type(final) and partial == final


def check_accumulator(acc: Any, stream: StreamCassette) -> None:
    seen: Any = None
    for piece in stream.json_deltas:
        now = acc.feed(piece)
        assert now is None or grows_into(now, stream.tool_input), f"{now!r} will not grow into {stream.tool_input!r}"
        assert seen is None or grows_into(seen, now), f"went back from {seen!r} to {now!r}"
        seen = now
    assert acc.result() == stream.tool_input


@given(tool_streams)
def test_partial_parses_never_raise_never_go_back_and_end_as_the_input(stream: StreamCassette) -> None:
    check_accumulator(ToolCallAccumulator(), stream)


@given(st.data())
def test_every_prefix_parses_to_something_the_whole_grows_into(data: st.DataObject) -> None:
    value = data.draw(tool_inputs())
    text = json.dumps(value, ensure_ascii=data.draw(st.booleans()))
    for i in range(len(text) + 1):
        partial = parse_partial(text[:i])
        assert partial is None or grows_into(partial, value), (text[:i], partial)
    assert parse_partial(text) == value


class ClosesBracketsAndHopes:
    """A common shortcut: close the open string and brackets, then ``json.loads``; shows
    ``1`` for ``12`` and drops back to nothing when the guess does not parse."""

    def __init__(self) -> None:
        self.text = ""

    def feed(self, piece: str) -> Any:
        self.text += piece
        closers, in_string, escaped = [], False, False
        for c in self.text:
            if in_string:
                if escaped:
                    escaped = False
                elif c == "\\":
                    escaped = True
                elif c == '"':
                    in_string = False
            elif c == '"':
                in_string = True
            elif c in "{[":
                closers.append("}" if c == "{" else "]")
            elif c in "}]" and closers:
                closers.pop()
        guess = self.text + ('"' if in_string else "") + "".join(reversed(closers))
        try:
            return json.loads(guess)
        except ValueError:
            return None

    def result(self) -> Any:
        return json.loads(self.text)


@pytest.mark.parametrize("run", range(3))
def test_a_close_the_brackets_parser_is_caught_within_the_default_budget(run: int) -> None:
    @seed(run)
    @settings(max_examples=100, database=None, report_multiple_bugs=False, deadline=None)
    @given(tool_streams)
    def prop(stream: StreamCassette) -> None:
        check_accumulator(ClosesBracketsAndHopes(), stream)

    with pytest.raises(AssertionError):
        prop()


# ---------------------------------------------------------------- through the SDK


@pytest.fixture(scope="module")
def client(reel_session: Any) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=reel_session.url, api_key="sk-test", max_retries=0) as c:
        yield c


def sent_json(response: Any) -> str:
    """The tool input JSON the server really sent before the response ended (ground truth)."""
    pieces = []
    for event in response.events:
        if event.event == "content_block_delta":
            delta = event.json()["delta"]
            if delta["type"] == "input_json_delta":
                pieces.append(delta["partial_json"])
    return "".join(pieces)


@settings(max_examples=200, deadline=None)
@given(stream=tool_streams)
def test_tool_calls_through_the_sdk_arrive_whole(reel_session: Any, client: anthropic.Anthropic, stream: StreamCassette) -> None:
    reel_session.load(stream)
    shown: list[Any] = []
    call = stream_tool_call(client, on_partial=shown.append, **REQUEST)
    assert (call.name, call.input, call.partials) == (stream.tool_name, stream.tool_input, ())
    assert all(s is None or grows_into(s, stream.tool_input) for s in shown)


def check_recovery(reel: Any, client: anthropic.Anthropic, stream: StreamCassette) -> None:
    reel.load(stream)
    kept = len(stream.interactions[0].response.events or ())
    call = stream_tool_call(client, **REQUEST)
    assert (call.name, call.input) == (stream.tool_name, stream.tool_input)
    first = reel.responses[0]
    assert first.events_done == kept
    assert len(call.partials) == 1
    partial = call.partials[0]
    assert partial.json == sent_json(first), "the partial keeps exactly what arrived before the break"
    assert partial.shown is None or grows_into(partial.shown, stream.tool_input)
    assert [r.ending for r in reel.responses][1:] == ["end"]


@settings(max_examples=100, deadline=None)
@given(stream=interrupted(tool_streams, endings=["upstream_disconnect"]))
def test_a_cut_tool_call_keeps_its_partial_and_the_retry_completes(reel_session: Any, client: anthropic.Anthropic, stream: StreamCassette) -> None:
    check_recovery(reel_session, client, stream)
    assert reel_session.responses[0].ending == "close"


@settings(max_examples=5, deadline=None)
@given(stream=interrupted(tool_streams, endings=["timeout"]))
def test_a_stalled_tool_call_keeps_its_partial_and_the_retry_completes(reel_session: Any, client: anthropic.Anthropic, stream: StreamCassette) -> None:
    impatient = client.with_options(timeout=httpx2.Timeout(5.0, read=STALL_READ_TIMEOUT_S))
    check_recovery(reel_session, impatient, stream)
    assert reel_session.responses[0].client_hung_up

def loses_content_silently(stream: StreamCassette) -> bool:
    """Whether the fault plan may remove part of the reply without any client being able to
    tell: ``drop`` by index (it may hit a delta), or ``truncate`` to nothing (the anthropic
    SDK skips an event whose data is empty; the random-fault properties found that)."""
    from streamreel.fault_injection import Drop, Truncate, parse

    faults = parse(list(stream.faults))
    return any(
        (isinstance(f, Drop) and any(isinstance(e, int) for e in f.events)) or (isinstance(f, Truncate) and f.keep_fraction == 0) for f in faults
    )



@settings(max_examples=100, deadline=None)
@given(stream=faulted(tool_streams, kinds=[k for k in FAULT_KINDS if k != "stall"]).filter(lambda s: not loses_content_silently(s)))
def test_under_random_faults_partial_arguments_never_contradict_the_input(reel_session: Any, client: anthropic.Anthropic, stream: StreamCassette) -> None:
    """Unless the plan loses content silently, what arrives is a prefix of the JSON: the
    arguments shown never contradict the input, and the call either completes or fails
    keeping its partials; it never crashes."""
    reel_session.load(stream)
    shown: list[Any] = []
    try:
        call = stream_tool_call(client.with_options(max_retries=2), on_partial=shown.append, **REQUEST)
    except StreamFailed as failed:
        assert len(failed.partials) == 3
        assert all((stream.tool_json or "").startswith(p.json) for p in failed.partials)
    else:
        assert (call.name, call.input) == (stream.tool_name, stream.tool_input)
    assert all(s is None or grows_into(s, stream.tool_input) for s in shown)


def test_a_delta_the_sdk_skips_leaves_arguments_that_do_not_parse_and_the_call_is_retried(reel: Any) -> None:
    """``truncate`` to nothing empties the data of the piece that closes the JSON; the SDK
    skips such an event without a word, so the stream completes with ``{"city": "Paris"``."""
    from streamreel import Cassette
    from streamreel.providers.anthropic import ToolUseBlock, message_events

    events = message_events([ToolUseBlock("get_weather", ('{"city": ', '"Paris"', "}"))])
    closing = next(i for i, e in enumerate(events) if e.data and '"partial_json":"}"' in e.data)
    reel.load(Cassette.from_events(events), faults=[f"truncate:event={closing},keep=0"])
    with anthropic.Anthropic(base_url=reel.url, api_key="sk-test", max_retries=0) as c, pytest.raises(StreamFailed) as failed:
        stream_tool_call(c, **REQUEST)
    assert [p.json for p in failed.value.partials] == ['{"city": "Paris"'] * 3
    assert all(p.error.startswith("arguments do not parse") for p in failed.value.partials)
    assert [r.ending for r in reel.responses] == ["end"] * 3
