"""Strategies: what they draw is protocol-valid (checked by the real SDKs), reaches every kind of
boundary, and shrinks to the harmless case; bad arguments fail at once."""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any, Callable, Iterator, Sequence

import anthropic
import openai
import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from streamreel import Cassette, StreamreelError
from streamreel.cassette import dumps, loads
from streamreel.sse import Decoder
from streamreel.strategies import (
    InvalidStrategyArgument,
    StreamCassette,
    anthropic_streams,
    chunkings,
    markdown_texts,
    FAULT_KINDS,
    fault_plans,
    faulted,
    interrupted,
    openai_streams,
    splits,
    tool_inputs,
)

FIND = settings(max_examples=1000, database=None, suppress_health_check=list(HealthCheck))
"""``find`` budget for 'this boundary is reachable': far above what the strategies need."""

MESSAGE: dict[str, Any] = {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


def joined(pieces: Sequence[str]) -> str:
    return "".join(pieces)


# ---------------------------------------------------------------- shrinking


def test_streams_shrink_to_one_delta_of_the_simplest_text() -> None:
    assert find(anthropic_streams(), lambda s: True).text_deltas == ("hello",)
    assert find(openai_streams(), lambda s: True).text_deltas == ("hello",)


def test_tool_streams_shrink_to_an_empty_input_in_one_piece() -> None:
    smallest = find(anthropic_streams(text=None, tool_input=tool_inputs()), lambda s: True)
    assert (smallest.tool_input, smallest.json_deltas) == ({}, ("{}",))


def test_contents_shrink_to_the_harmless_case() -> None:
    assert find(markdown_texts(), lambda t: True) == "hello"
    assert find(tool_inputs(), lambda v: True) == {}
    assert find(splits("any text"), lambda d: True) == ("any text",)
    assert find(chunkings(b"data: x\n\n"), lambda c: True) == (b"data: x\n\n",)


def test_a_failure_that_needs_one_cut_shrinks_to_one_cut() -> None:
    found = find(splits("a **b** c"), lambda d: any(p.endswith("*") and not p.endswith("**") for p in d), settings=FIND)
    assert found in (("a *", "*b** c"), ("a **b*", "* c"))


# ---------------------------------------------------------------- boundaries


def cut_between(deltas: Sequence[str], before: Callable[[str], bool], after: Callable[[str], bool]) -> bool:
    """Some cut has ``before`` true of the text up to it and ``after`` of the text from it."""
    text = joined(deltas)
    at = 0
    for d in deltas[:-1]:
        at += len(d)
        if before(text[:at]) and after(text[at:]):
            return True
    return False


def in_fence(head: str) -> bool:
    return head.count("```") % 2 == 1


BOUNDARIES: dict[str, tuple[Any, Callable[[Sequence[str]], bool]]] = {
    "inside a word": (markdown_texts(), lambda d: cut_between(d, lambda h: h[-1].isalpha(), lambda t: t[0].isalpha())),
    "between the two * of **": (markdown_texts(), lambda d: cut_between(d, lambda h: h.endswith("*") and not h.endswith("**"), lambda t: t.startswith("*") and not t.startswith("**"))),
    "inside a fence marker": (markdown_texts(), lambda d: cut_between(d, lambda h: h.endswith("`"), lambda t: t.startswith("``"))),
    "inside a code block": (markdown_texts(), lambda d: cut_between(d, lambda h: in_fence(h) and not h.endswith("`"), lambda t: not t.startswith("`"))),
    "inside a grapheme cluster": (markdown_texts(), lambda d: cut_between(d, lambda h: True, lambda t: unicodedata.combining(t[0]) > 0 or t[0] in "\u200d\ufe0f" or 0x1F3FB <= ord(t[0]) <= 0x1F3FF)),
    "between CR and LF": (None, lambda c: any(a.endswith(b"\r") and b.startswith(b"\n") for a, b in zip(c, c[1:]))),
}


@pytest.mark.parametrize("kind", [k for k, (s, _) in BOUNDARIES.items() if s is not None])
def test_text_splits_reach_every_kind_of_boundary(kind: str) -> None:
    texts, hit = BOUNDARIES[kind]
    find(texts.flatmap(splits), hit, settings=FIND)


JSON_BOUNDARIES: dict[str, Callable[[str, str], bool]] = {
    "inside a string": lambda h, t: h.count('"') % 2 == 1 and h[-1] not in '"\\' and t[0] != '"',
    "inside an escape": lambda h, t: h.endswith("\\") and not h.endswith("\\\\"),
    "inside a \\uXXXX escape": lambda h, t: "\\u" in h[-5:] and t[0] in "0123456789abcdef",
    "between surrogate escapes": lambda h, t: h[-6:-4] == "\\u" and h[-4:-2] in ("d8", "d9", "da", "db") and t.startswith("\\ud"),
    "inside a number": lambda h, t: h[-1].isdigit() and (t[0].isdigit() or t[0] in ".eE"),
    "inside true/false/null": lambda h, t: h[-1] in "tfn" and t[0] in "rau",
}


@pytest.mark.parametrize("kind", list(JSON_BOUNDARIES))
def test_tool_json_splits_reach_every_kind_of_boundary(kind: str) -> None:
    def hit(s: StreamCassette) -> bool:
        text = joined(s.json_deltas)
        return any(JSON_BOUNDARIES[kind](text[:i], text[i:]) for i in _cuts(s.json_deltas))

    find(anthropic_streams(text=None, tool_input=tool_inputs()), hit, settings=FIND)


def _cuts(deltas: Sequence[str]) -> Iterator[int]:
    at = 0
    for d in deltas[:-1]:
        at += len(d)
        yield at


def test_chunkings_reach_inside_utf8_and_between_cr_and_lf() -> None:
    data = "data: café 👍\r\n\r\n".encode()
    find(chunkings(data), lambda c: any(a and (a[-1] & 0xC0) == 0xC0 for a in c[:-1]), settings=FIND)
    find(chunkings(data), BOUNDARIES["between CR and LF"][1], settings=FIND)


# ---------------------------------------------------------------- what they draw


@given(st.data())
def test_splits_are_non_empty_pieces_that_join_back(data: st.DataObject) -> None:
    text = data.draw(markdown_texts())
    deltas = data.draw(splits(text))
    assert joined(deltas) == text and all(deltas)


@given(stream=anthropic_streams(tool_input=tool_inputs(), thinking=markdown_texts()))
def test_content_fields_describe_the_stream(stream: StreamCassette) -> None:
    assert joined(stream.text_deltas) == stream.text
    assert joined(stream.thinking_deltas) == stream.thinking
    assert json.loads(stream.tool_json or "") == stream.tool_input
    events = stream.interactions[0].response.events or ()
    assert [e.event for e in events][:1] == ["message_start"] and [e.event for e in events][-2:] == ["message_delta", "message_stop"]
    deltas = [e.json()["delta"] for e in events if e.event == "content_block_delta"]
    assert [d["text"] for d in deltas if d["type"] == "text_delta"] == list(stream.text_deltas)
    assert [d["partial_json"] for d in deltas if d["type"] == "input_json_delta" and d["partial_json"]] == list(stream.json_deltas)


@given(stream=anthropic_streams(tool_input=tool_inputs()))
def test_streams_round_trip_through_the_cassette_file_format(stream: StreamCassette) -> None:
    """A falsifying example can be saved as a cassette and replayed as it was."""
    again = loads(dumps(stream))
    assert again.interactions == stream.interactions


@given(st.data())
def test_the_sse_decoder_gives_the_same_events_for_every_chunking(data: st.DataObject) -> None:
    stream = data.draw(anthropic_streams(tool_input=tool_inputs()))
    chunks = data.draw(chunkings(stream))
    assert b"".join(chunks) == b"".join(e.wire for e in stream.interactions[0].response.events or ())
    decoder = Decoder()
    events = [e for chunk in chunks for e in decoder.feed(chunk)] + decoder.flush()
    assert [(e.event, e.data) for e in events] == [(e.event, e.data) for e in stream.interactions[0].response.events or ()]


@given(value=tool_inputs())
def test_tool_inputs_are_json_objects_that_round_trip(value: dict[str, Any]) -> None:
    assert isinstance(value, dict)
    assert json.loads(json.dumps(value)) == value


# ---------------------------------------------------------------- through the real SDKs


@pytest.fixture(scope="module")
def anthropic_client(reel_session: Any) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=reel_session.url, api_key="sk-test", max_retries=0) as client:
        yield client


@pytest.fixture(scope="module")
def openai_client(reel_session: Any) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=reel_session.url + "/v1", api_key="sk-test", max_retries=0) as client:
        yield client


@settings(max_examples=60, deadline=None)
@given(stream=anthropic_streams(tool_input=tool_inputs(), thinking=markdown_texts()))
def test_anthropic_sdk_accumulates_what_the_stream_says(reel_session: Any, anthropic_client: anthropic.Anthropic, stream: StreamCassette) -> None:
    reel_session.load(stream)
    with anthropic_client.messages.stream(**MESSAGE) as s:
        message = s.get_final_message()
    thinking, text, tool = message.content
    assert (thinking.type, thinking.thinking) == ("thinking", stream.thinking)
    assert (text.type, text.text) == ("text", stream.text)
    assert (tool.type, tool.name, tool.input) == ("tool_use", stream.tool_name, stream.tool_input)
    assert message.stop_reason == "tool_use"


@settings(max_examples=60, deadline=None)
@given(stream=openai_streams(tool_input=tool_inputs()))
def test_openai_sdk_accumulates_what_the_stream_says(reel_session: Any, openai_client: openai.OpenAI, stream: StreamCassette) -> None:
    reel_session.load(stream)
    text, arguments, name = [], [], None
    for chunk in openai_client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True):
        delta = chunk.choices[0].delta
        text.append(delta.content or "")
        for call in delta.tool_calls or ():
            name = call.function.name or name
            arguments.append(call.function.arguments or "")
    assert joined(text) == stream.text
    assert (name, json.loads(joined(arguments))) == (stream.tool_name, stream.tool_input)


# ---------------------------------------------------------------- interruptions


def test_interruptions_shrink_to_the_gentlest_break() -> None:
    whole = find(anthropic_streams(), lambda s: True)
    broken = find(interrupted(whole), lambda c: True)
    first, second = broken.interactions
    assert second == whole.interactions[0]
    assert first.response.events == (whole.interactions[0].response.events or ())[:-1]
    assert first.response.end.reason == "upstream_disconnect"


@given(stream=interrupted(anthropic_streams(), attempts=2))
def test_interrupted_breaks_each_attempt_before_its_last_event_then_plays_whole(stream: StreamCassette) -> None:
    *broken, whole = stream.interactions
    events = whole.response.events or ()
    assert len(broken) == 2
    for attempt in broken:
        kept = attempt.response.events or ()
        assert 1 <= len(kept) < len(events) and kept == events[: len(kept)]
        assert attempt.response.end.reason in ("upstream_disconnect", "timeout")
    assert joined(stream.text_deltas) == stream.text, "the content fields survive"


@settings(max_examples=30, deadline=None)
@given(stream=interrupted(anthropic_streams(), endings=["upstream_disconnect"], attempts=2))
def test_the_sdk_meets_each_break_then_the_whole_stream(reel_session: Any, anthropic_client: anthropic.Anthropic, stream: StreamCassette) -> None:
    reel_session.load(stream)
    outcomes = []
    for _ in range(3):
        try:
            with anthropic_client.messages.stream(**MESSAGE) as s:
                outcomes.append(s.get_final_text())
        except Exception as e:  # what a cut raises depends on where it falls (see FIELD-NOTES)
            outcomes.append(type(e).__name__)
    assert outcomes[2] == stream.text
    assert [r.ending for r in reel_session.responses] == ["close", "close", "end"]


# ---------------------------------------------------------------- faults


def test_fault_plans_shrink_to_no_fault_and_faulted_to_the_cassette_unchanged() -> None:
    assert find(fault_plans(), lambda plan: True) == []
    stream = find(anthropic_streams(), lambda s: True)
    assert find(faulted(stream), lambda c: True) == stream


GENTLEST = {
    "latency": "latency:first=1ms",
    "pings": "pings",
    "fragment": "fragment:size=16",
    "throttle": "throttle:bytes_per_s=2000000",
    "stall": "stall:after=10,seconds=10ms",
    "http": "http:status=529,retry_after=10ms",
    "drop": "drop:event=ping",
    "truncate": "truncate:event=-1",
    "error": "error:after=10",
    "disconnect": "disconnect:after=9,how=eof",
}


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_a_needed_fault_shrinks_to_its_gentlest_form(kind: str) -> None:
    assert find(fault_plans(kinds=[kind], events=10), lambda plan: len(plan) > 0, settings=FIND) == [GENTLEST[kind]]


def test_a_needed_break_shrinks_to_the_latest_cut() -> None:
    from streamreel.fault_injection import parse

    plan = find(fault_plans(kinds=["disconnect"], events=10), lambda plan: any(f.how == "reset" for f in parse(plan)), settings=FIND)
    assert plan == ["disconnect:after=9"]  # how=reset is the default, so the spec leaves it out


@given(plan=fault_plans())
def test_every_drawn_spec_parses_and_round_trips(plan: list[str]) -> None:
    from streamreel.fault_injection import parse_one

    assert len(plan) <= 2
    assert [str(parse_one(spec)) for spec in plan] == plan


@given(stream=faulted(anthropic_streams(), kinds=["disconnect", "stall", "error", "truncate", "drop"]))
def test_faulted_cuts_fall_within_the_stream(stream: StreamCassette) -> None:
    from streamreel.fault_injection import parse

    events = len(stream.interactions[0].response.events or ())
    for fault in parse(list(stream.faults)):
        for name in ("after_events", "after_bytes"):
            value = getattr(fault, name, None)
            assert value is None or 0 <= value <= (events if name == "after_events" else len(b"".join(e.wire for e in stream.interactions[0].response.events or ())))


# ---------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: anthropic_streams(text=3), "text=3: expected a string"),
        (lambda: anthropic_streams(text=None), "text, tool_input and thinking are all None"),
        (lambda: anthropic_streams(tool_input=[1, 2]), "tool_input=[1, 2]: a tool input is a JSON object"),
        (lambda: anthropic_streams(tool_input={"x": float("nan")}), "not JSON-serializable"),
        (lambda: anthropic_streams(tool_input={"x": object()}), "not JSON-serializable"),
        (lambda: anthropic_streams(thinking=b"bytes"), "thinking=b'bytes': expected a string"),
        (lambda: anthropic_streams(tool_name=""), "tool_name must be a non-empty string"),
        (lambda: openai_streams(text=None), "text, tool_input and thinking are all None"),
        (lambda: openai_streams(model=None), "model must be a non-empty string"),
        (lambda: splits(b"bytes"), "splits(text): expected a string"),
        (lambda: splits("abc", boundaries=[3]), "boundaries: 3 is not a cut position inside a text of length 3 (1..2)"),
        (lambda: chunkings("text"), "chunkings(data): expected bytes or a Cassette"),
        (lambda: chunkings(Cassette()), "the cassette's first interaction is not a stream"),
        (lambda: markdown_texts(max_fragments=0), "expected a whole number >= 1, got 0"),
        (lambda: tool_inputs(max_bytes=-1), "expected a whole number >= 0, got -1"),
        (lambda: interrupted(Cassette()), "the first interaction must be a stream of at least two events"),
        (lambda: interrupted("c.yaml"), "expected a Cassette or a strategy of them, got str"),
        (lambda: interrupted(anthropic_streams(), endings=["complete"]), "expected some of upstream_disconnect, timeout, got ['complete']"),
        (lambda: interrupted(anthropic_streams(), attempts=0), "interrupted(attempts=...): expected a whole number >= 1, got 0"),
        (lambda: fault_plans(kinds=["latency", "nosuch"]), "fault_plans(kinds=...): unknown 'nosuch'; choose from latency, pings,"),
        (lambda: fault_plans(kinds="latency"), "fault_plans(kinds=...): expected a list of fault names, got 'latency'"),
        (lambda: fault_plans(kinds=[]), "fault_plans(kinds=...): no kinds; choose from"),
        (lambda: fault_plans(max_faults=-1), "fault_plans(max_faults=...): expected a whole number >= 0, got -1"),
        (lambda: fault_plans(events=0), "fault_plans(events=...): expected a whole number >= 1, got 0"),
        (lambda: faulted("c.yaml"), "faulted(cassette): expected a Cassette or a strategy of them, got str"),
    ],
)
def test_bad_arguments_fail_when_the_strategy_is_built(build: Callable[[], Any], message: str) -> None:
    with pytest.raises(InvalidStrategyArgument, match=re.escape(message)) as info:
        build()
    assert isinstance(info.value, StreamreelError) and isinstance(info.value, InvalidArgument)


def test_a_content_strategy_that_draws_the_wrong_type_fails_naming_it() -> None:
    @given(anthropic_streams(text=st.integers()))
    def prop(stream: StreamCassette) -> None:
        pass

    with pytest.raises(InvalidStrategyArgument, match="the text strategy drew 0: expected a string"):
        prop()
