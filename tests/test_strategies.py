"""Strategies: what they draw is protocol-valid (checked by the real SDKs), reaches every kind of
boundary, and shrinks to the harmless case; bad arguments fail at once."""

from __future__ import annotations

import asyncio
import json
import re
import unicodedata
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import anthropic
import openai
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from streamreel import Cassette, StreamreelError
from streamreel.cassette import dumps, loads
from streamreel.providers.anthropic import TextBlock, ToolUseBlock, message_events
from streamreel.sse import Decoder
from streamreel.strategies import (
    BETA_BLOCK_KINDS,
    BLOCK_KINDS,
    InvalidStrategyArgument,
    StreamCassette,
    anthropic_messages,
    anthropic_streams,
    chunkings,
    markdown_texts,
    FAULT_KINDS,
    fault_plans,
    faulted,
    interrupted,
    openai_chat_streams,
    openai_responses_streams,
    openai_streams,
    splits,
    tool_inputs,
)


SHRINK = settings(max_examples=1000, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
"""``find`` for 'this is what a failure shrinks to': seeded, so the example is the same every run."""

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


# ---------------------------------------------------------------- the whole protocol


def comparable(value: Any, drop: frozenset[str] = frozenset()) -> Any:
    """``value`` without None-valued keys (the SDKs add theirs: ``stop_details``, ``audio``...) or ``drop`` keys."""
    if isinstance(value, dict):
        return {k: comparable(v, drop) for k, v in value.items() if v is not None and k not in drop}
    if isinstance(value, list):
        return [comparable(v, drop) for v in value]
    return value


OPENAI_ONLY = frozenset({"parsed", "parsed_arguments"})
"""What the openai SDK's accumulated completion adds to the API's shape: its parsing slots (and
each tool call's stream ``index``, which :func:`final_completion` takes out: the list position says it)."""

CHAT: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


ALL_BLOCKS = [*BLOCK_KINDS, *BETA_BLOCK_KINDS]


def final_message(client: anthropic.Anthropic, drawn: StreamCassette | None = None) -> dict[str, Any]:
    """The message the SDK accumulated, as JSON (a container's expiry is a datetime otherwise),
    read with the beta client when the drawn stream needs betas."""
    betas = list(drawn.betas) if drawn is not None else []
    with (client.beta.messages.stream(**MESSAGE, betas=betas) if betas else client.messages.stream(**MESSAGE)) as stream:
        return stream.get_final_message().to_dict(mode="json")


def final_completion(client: openai.OpenAI) -> dict[str, Any]:
    """The completion the SDK accumulated (it raises on ``length`` and ``content_filter``,
    carrying the completion: its parse step refuses those, the accumulation does not)."""
    try:
        with client.chat.completions.stream(**CHAT) as stream:
            completion = stream.get_final_completion().to_dict()
    except (openai.LengthFinishReasonError, openai.ContentFilterFinishReasonError) as e:
        completion = e.completion.to_dict()
    for choice in completion["choices"]:
        for position, call in enumerate(choice["message"].get("tool_calls") or ()):
            assert call.pop("index") == position
    return completion


@settings(max_examples=300, deadline=None)
@given(stream=anthropic_messages(max_blocks=6))
def test_the_anthropic_sdk_rebuilds_the_message_every_drawn_stream_encodes(reel_session: Any, inprocess_anthropic_client: anthropic.Anthropic, stream: StreamCassette) -> None:
    reel_session.load(stream)
    assert not stream.betas
    assert comparable(final_message(inprocess_anthropic_client)) == comparable(stream.message)


@settings(max_examples=200, deadline=None)
@given(stream=anthropic_messages(blocks=ALL_BLOCKS, max_blocks=6))
def test_the_beta_client_rebuilds_messages_with_beta_only_blocks(reel_session: Any, inprocess_anthropic_client: anthropic.Anthropic, stream: StreamCassette) -> None:
    """Compaction summaries and MCP calls, drawn when asked, read through ``client.beta.messages``."""
    reel_session.load(stream)
    assert comparable(final_message(inprocess_anthropic_client, stream)) == comparable(stream.message)


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")  # the plain client's misread blocks, serialized
def test_beta_only_blocks_are_drawn_only_when_asked_because_the_messages_client_cannot_read_them(reel_session: Any, inprocess_anthropic_client: anthropic.Anthropic) -> None:
    assert drawn(anthropic_messages(max_blocks=6), lambda s: set(s.betas)) == set()

    def both_with_content(s: StreamCassette) -> bool:
        mcp = [b for b in s.message["content"] if b["type"] == "mcp_tool_use"]
        return len(s.betas) == 2 and bool(mcp) and mcp[0]["input"] != {}

    stream = find(anthropic_messages(blocks=["text", *BETA_BLOCK_KINDS]), both_with_content, settings=SHRINK)
    assert stream.betas == ("compact-2026-01-12", "mcp-client-2025-11-20")
    reel_session.load(stream)
    plain = final_message(inprocess_anthropic_client)
    assert plain["content"][0] == {"type": "compaction", "content": None}  # the summary is lost
    assert next(b for b in plain["content"] if b["type"] == "mcp_tool_use")["input"] == {}  # and the MCP call's input
    reel_session.load(stream)
    assert comparable(final_message(inprocess_anthropic_client, stream)) == comparable(stream.message)


@settings(max_examples=30, deadline=None)
@given(stream=anthropic_messages(blocks=ALL_BLOCKS))
def test_the_anthropic_sdk_rebuilds_it_over_a_socket_too(reel_session: Any, anthropic_client: anthropic.Anthropic, stream: StreamCassette) -> None:
    reel_session.load(stream)
    assert comparable(final_message(anthropic_client, stream)) == comparable(stream.message)


@settings(max_examples=30, deadline=None)
@given(stream=anthropic_messages())
def test_the_async_anthropic_sdk_rebuilds_it(reel_session: Any, inprocess_async_anthropic_client: anthropic.AsyncAnthropic, stream: StreamCassette) -> None:
    async def final() -> dict[str, Any]:
        async with inprocess_async_anthropic_client.messages.stream(**MESSAGE) as s:
            return (await s.get_final_message()).to_dict(mode="json")

    reel_session.load(stream)
    assert comparable(asyncio.run(final())) == comparable(stream.message)


@settings(max_examples=200, deadline=None)
@given(stream=openai_chat_streams(max_choices=3))
def test_the_openai_sdk_rebuilds_the_completion_every_drawn_stream_encodes(reel_session: Any, inprocess_openai_client: openai.OpenAI, stream: StreamCassette) -> None:
    reel_session.load(stream)
    assert comparable(final_completion(inprocess_openai_client), OPENAI_ONLY) == comparable(stream.message)


@settings(max_examples=30, deadline=None)
@given(stream=openai_chat_streams(max_choices=2))
def test_the_openai_sdk_rebuilds_it_over_a_socket_too(reel_session: Any, openai_client: openai.OpenAI, stream: StreamCassette) -> None:
    reel_session.load(stream)
    assert comparable(final_completion(openai_client), OPENAI_ONLY) == comparable(stream.message)


def anthropic_kinds(stream: StreamCassette) -> set[str]:
    """What a drawn Messages stream exercises: block, delta and stop kinds, pings, usage fields."""
    out: set[str] = set()
    starts = stops = tools = 0
    for event in stream.events:
        payload = event.json()
        kind = payload["type"]
        if kind == "content_block_start":
            out.add("block:" + payload["content_block"]["type"])
            starts += 1
            tools += payload["content_block"]["type"] == "tool_use"
        elif kind == "content_block_delta":
            out.add("delta:" + payload["delta"]["type"])
        elif kind == "content_block_stop":
            stops += 1
        elif kind == "message_delta":
            out.add("stop:" + payload["delta"]["stop_reason"])
            out.update("delta usage:" + k for k in payload["usage"])
            out.update(k for k in ("context_management",) if k in payload)
            out.update(k for k in ("container",) if k in payload["delta"])
        elif kind == "ping":
            out.add("ping")
    if tools > 1:
        out.add("several tool calls")
    types = [b["type"] for b in stream.message["content"]]
    for before, after in zip(types, types[1:]):
        if after == "thinking" and before == "text":
            out.add("thinking after text")
        if after == "thinking" and before.endswith("_tool_result"):
            out.add("thinking after a server tool's result")
        if before == after == "server_tool_use":
            out.add("parallel server tool calls")
    if types[0].endswith("_tool_result"):
        out.add("a resumed turn starting with a server tool's result")
    if stream.stop_reason == "pause_turn" and types[-1] == "server_tool_use":
        out.add("pause_turn before the server tool ran")
    results = [b["content"] for b in stream.message["content"] if b["type"].endswith("_tool_result")]
    if any(isinstance(r, dict) and "error_code" in r for r in results):
        out.add("a server tool's error")
    if starts > stops:
        last = stream.message["content"][-1]
        out.add(f"max_tokens inside a {last['type']} block")
        spelled = "".join(stream.blocks[-1].json_deltas) if last["type"] == "tool_use" else ""
        if spelled and not _parses(spelled):
            out.add("max_tokens inside a tool's JSON")
    return out


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


RESULT_KINDS = ("web_search", "web_fetch", "code_execution", "bash_code_execution", "text_editor_code_execution", "tool_search")
ANTHROPIC_KINDS = {
    *(f"block:{k}" for k in ("text", "thinking", "redacted_thinking", "tool_use", "server_tool_use")),
    *(f"block:{k}_tool_result" for k in RESULT_KINDS),
    *(f"delta:{k}" for k in ("text_delta", "citations_delta", "thinking_delta", "signature_delta", "input_json_delta")),
    *(f"stop:{k}" for k in ("end_turn", "tool_use", "max_tokens", "stop_sequence", "pause_turn", "refusal", "model_context_window_exceeded")),
    *(f"delta usage:{k}" for k in ("output_tokens", "input_tokens", "cache_read_input_tokens", "server_tool_use")),
    "ping",
    "several tool calls",
    "max_tokens inside a text block",
    "max_tokens inside a tool_use block",
    "max_tokens inside a tool's JSON",
    "thinking after text",
    "thinking after a server tool's result",
    "parallel server tool calls",
    "a resumed turn starting with a server tool's result",
    "pause_turn before the server tool ran",
    "a server tool's error",
    "container",
}
BETA_KINDS = {
    "block:compaction", "delta:compaction_delta", "block:mcp_tool_use", "block:mcp_tool_result", "stop:compaction",
    "delta usage:iterations", "context_management", "max_tokens inside a mcp_tool_use block",
}  # fmt: skip


def chat_kinds(stream: StreamCassette) -> set[str]:
    """What a drawn chat stream exercises: choices, parallel calls keyed by index, refusals, usage."""
    out: set[str] = set()
    for event in stream.events:
        if event.data == "[DONE]":
            out.add("[DONE]")
            continue
        payload = event.json()
        if not payload["choices"]:
            out.add("usage chunk")
            continue
        (choice,) = payload["choices"]
        if choice["index"] > 0:
            out.add("several choices")
        if choice["finish_reason"]:
            out.add("finish:" + choice["finish_reason"])
        delta = choice["delta"]
        if delta.get("refusal"):
            out.add("refusal")
        calls = delta.get("tool_calls") or ()
        if len(calls) > 1:
            out.add("several calls in one chunk")
        if any(call["index"] != position for position, call in enumerate(calls)):
            out.add("a call whose index is not its position")
        if calls and "role" in delta:
            out.add("a call on the role chunk")
    if any(len(c.tool_calls) > 1 for c in stream.choices):
        out.add("parallel calls")
    return out


CHAT_KINDS = {
    "[DONE]", "usage chunk", "several choices", "refusal", "several calls in one chunk", "a call whose index is not its position",
    "a call on the role chunk", "parallel calls", *(f"finish:{k}" for k in ("stop", "length", "tool_calls", "content_filter")),
}  # fmt: skip

COVERAGE = settings(max_examples=300, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))


def drawn(strategy: Any, summarize: Callable[[Any], set[str]], examples: int = 300) -> set[str]:
    """Everything ``summarize`` finds over a fixed seed's few hundred draws."""
    seen: set[str] = set()

    @settings(COVERAGE, max_examples=examples)
    @given(strategy)
    def collect(stream: StreamCassette) -> None:
        seen.update(summarize(stream))

    collect()
    return seen


# Budgets are about twice what the fixed seed needs: hypothesis also draws constants from the
# project's source, so the examples it makes move a little whenever any module changes.
def test_a_few_hundred_messages_cover_every_block_delta_and_stop_reason() -> None:
    assert ANTHROPIC_KINDS - drawn(anthropic_messages(), anthropic_kinds, examples=600) == set()


def test_a_few_hundred_messages_asked_for_beta_blocks_cover_them_too() -> None:
    assert BETA_KINDS - drawn(anthropic_messages(blocks=ALL_BLOCKS), anthropic_kinds) == set()
    assert ANTHROPIC_KINDS - drawn(anthropic_messages(blocks=ALL_BLOCKS), anthropic_kinds, examples=2000) == set()


def test_a_few_hundred_chat_streams_cover_choices_parallel_calls_refusals_and_usage() -> None:
    assert CHAT_KINDS - drawn(openai_chat_streams(max_choices=3), chat_kinds) == set()


def shape_tokens(events: Sequence[Any]) -> list[str]:
    """Each event as its shape: its type; for a block's start, delta or stop which kind of block
    (so that pairs say which block follows which); for a chat chunk which delta fields it carries and whether it finishes its choice."""
    out = []
    blocks: dict[int, str] = {}
    for event in events:
        if event.is_comment:
            continue
        if event.data == "[DONE]":
            out.append("[DONE]")
            continue
        payload = event.json()
        kind = payload.get("type") or payload.get("object")
        if kind == "content_block_start":
            blocks[payload["index"]] = payload["content_block"]["type"]
            out.append("start:" + payload["content_block"]["type"])
        elif kind == "content_block_delta":
            out.append("delta:" + payload["delta"]["type"])
        elif kind == "content_block_stop":
            out.append("stop:" + blocks[payload["index"]])
        elif kind == "chat.completion.chunk":
            if not payload["choices"]:
                out.append("usage chunk")
                continue
            (choice,) = payload["choices"]
            fields = ",".join(sorted(k for k, v in choice["delta"].items() if v is not None))
            out.append(f"chunk:{fields}" + (":finish" if choice["finish_reason"] else ""))
        else:
            out.append(kind)
    return out


def transitions(events: Sequence[Any]) -> set[tuple[str, str]]:
    """The shape of a stream as the pairs of event shapes that follow each other in it."""
    tokens = ["^", *shape_tokens(events), "$"]
    return set(zip(tokens, tokens[1:]))


def real_streams(provider: str) -> list[tuple[str, Any]]:
    from streamreel.importer import import_file
    from streamreel.providers import provider_of_events

    found = []
    for path in sorted((Path(__file__).parent / "data").glob("*/*")):
        if path.name == "README.md" or path.parent.name == "artifacts":
            continue  # artifacts: logs and HAR files cut where a user's copy ended, not whole streams
        for interaction in import_file(path).interactions:
            events = interaction.response.events or ()
            if events and provider_of_events(events) == provider:
                found.append((f"{path.parent.name}/{path.name}", events))
    return found


@pytest.mark.parametrize(
    ("provider", "strategies"),
    [
        ("anthropic", [anthropic_messages(max_blocks=6), anthropic_messages(blocks=ALL_BLOCKS, max_blocks=6)]),
        ("openai", [openai_chat_streams(max_choices=3)]),
        ("openai-responses", [openai_responses_streams()]),
    ],
)
def test_every_real_stream_has_a_shape_the_strategies_draw(provider: str, strategies: list[Any]) -> None:
    """Every pair of consecutive event shapes in every real capture in tests/data (block kinds in
    the order they follow each other, delta kinds, pings, chunk fields, where choices and calls
    start) is one the strategies draw (the Anthropic beta-only blocks when asked for)."""
    reals = real_streams(provider)
    assert len(reals) >= (1 if provider == "openai-responses" else 5)
    drawn_pairs = set().union(*(drawn(strategy, lambda s: transitions(s.events), examples=800) for strategy in strategies))  # type: ignore[arg-type]
    missing = {name: sorted(transitions(events) - drawn_pairs) for name, events in reals}
    assert {name: pairs for name, pairs in missing.items() if pairs} == {}


def test_protocol_streams_shrink_to_one_text_block_of_one_delta_and_no_pings() -> None:
    assert repr(find(anthropic_messages(), lambda s: True)) == "anthropic_message(blocks=[text(('hello',))], stop_reason='end_turn')"
    assert repr(find(openai_chat_streams(max_choices=3), lambda s: True)) == "openai_chat(choices=[choice(content=('hello',), finish_reason='stop')])"


def test_a_failure_that_needs_a_second_tool_call_shrinks_to_two_empty_calls() -> None:
    two = find(anthropic_messages(blocks=["text", "tool_use"], max_blocks=3), lambda s: sum(isinstance(b, ToolUseBlock) for b in s.blocks) >= 2, settings=SHRINK)
    calls = [b for b in two.blocks if isinstance(b, ToolUseBlock)]
    assert calls == [ToolUseBlock("get_weather", ("{}",))] * 2 and two.stop_reason == "tool_use" and not two.pings
    assert all(b == TextBlock(("hello",)) for b in two.blocks if not isinstance(b, ToolUseBlock))
    calls = find(openai_chat_streams(kinds=["text", "tool_calls"]), lambda s: len(s.choices[0].tool_calls) >= 2, settings=SHRINK)
    (choice,) = calls.choices
    assert [(c.name, c.arguments) for c in choice.tool_calls] == [("get_weather", ("{}",))] * 2 and choice.finish_reason == "tool_calls"


def test_a_failure_at_max_tokens_shrinks_to_the_smallest_cut() -> None:
    cut = find(anthropic_messages(blocks=["tool_use"]), lambda s: s.open_last and not _parses("".join(s.blocks[-1].json_deltas)), settings=SHRINK)
    *whole, last = cut.blocks
    assert last.json_deltas == ("{",) and all(b.json_deltas == ("{}",) for b in whole)
    assert cut.message["content"][-1]["input"] == {} and cut.message["stop_reason"] == "max_tokens"


@given(stream=anthropic_messages(max_blocks=6))
def test_a_drawn_message_is_what_its_events_say(stream: StreamCassette) -> None:
    """The events follow the protocol; ``.message`` holds each block's content as the deltas join up."""
    events = stream.events
    unpinged = [e.event for e in events if e.event != "ping"]
    assert unpinged[0] == "message_start" and unpinged[-2:] == ["message_delta", "message_stop"]
    assert [i for i, e in enumerate(events) if e.event == "ping"] == [p + k for k, p in enumerate(stream.pings)]
    content = stream.message["content"]
    assert len(content) == len(stream.blocks)
    for block, final in zip(stream.blocks, content):
        if isinstance(block, TextBlock):
            assert final["text"] == "".join(block.deltas) and len(final.get("citations", ())) == len(block.citations)
        elif isinstance(block, ToolUseBlock) and not stream.open_last:
            assert final["input"] == json.loads("".join(block.json_deltas))
    assert stream.message["stop_reason"] == stream.stop_reason
    starts = sum(e.event == "content_block_start" for e in events)
    assert sum(e.event == "content_block_stop" for e in events) == starts - stream.open_last
    if stream.stop_reason == "tool_use":
        assert content[-1]["type"] == "tool_use"
    if stream.stop_reason == "pause_turn":
        assert content[-1]["type"].endswith("tool_result") or content[-1]["type"] == "server_tool_use"


@given(stream=openai_chat_streams(max_choices=3))
def test_a_drawn_completion_is_what_its_chunks_say(stream: StreamCassette) -> None:
    events = stream.events
    assert events[-1].data == "[DONE]"
    chunks = [e.json() for e in events[:-1]]
    assert (chunks[-1]["choices"] == []) == stream.usage
    firsts = list(dict.fromkeys(c["choices"][0]["index"] for c in chunks if c["choices"]))
    assert firsts == list(range(len(stream.choices))), "choices start in index order"
    for index, choice in enumerate(stream.message["choices"]):
        pieces = [c["choices"][0]["delta"] for c in chunks if c["choices"] and c["choices"][0]["index"] == index]
        text = "".join(p.get("content") or "" for p in pieces)
        assert (choice["message"]["content"] or "") == text
        calls: dict[int, str] = {}
        for p in pieces:
            for call in p.get("tool_calls") or ():
                calls[call["index"]] = calls.get(call["index"], "") + call["function"]["arguments"]
        assert [c["function"]["arguments"] for c in choice["message"].get("tool_calls", ())] == [calls[i] for i in sorted(calls)]


@pytest.mark.parametrize(
    ("strategy", "holds", "printed"),
    [
        (anthropic_messages(), lambda s: s is None, "s=anthropic_message(blocks=[text(('hello',))], stop_reason='end_turn'),"),
        (openai_chat_streams(), lambda s: s is None, "s=openai_chat(choices=[choice(content=('hello',), finish_reason='stop')]),"),
        (faulted(anthropic_messages(), kinds=["disconnect"]), lambda s: not s.faults, "s=anthropic_message(blocks=[text(('hello',))], stop_reason='end_turn', faults=['disconnect:after=5,how=eof']),"),
        (interrupted(anthropic_messages()), lambda s: not s.breaks, "s=anthropic_message(blocks=[text(('hello',))], stop_reason='end_turn', breaks=[upstream_disconnect after 5 of 6 events]),"),
        (interrupted(Cassette.from_events(message_events([TextBlock(("a", "b"))]))), lambda s: not s.breaks, "s=cassette(1 interaction(s), 8 events, breaks=[upstream_disconnect after 7 of 8 events]),"),
        (chunkings(b"data: hello" * 2), lambda s: len(s) < 2, "s=chunkings(22 bytes, cuts at [4 b'data'|b': he']),"),
    ],
)
def test_a_falsifying_example_reads_in_a_line(strategy: Any, holds: Callable[[Any], bool], printed: str) -> None:
    """What hypothesis prints for a failure: the content, deltas, cuts and faults, not the cassette."""

    @settings(database=None, derandomize=True, phases=[Phase.generate, Phase.shrink])
    @given(s=strategy)
    def fails(s: Any) -> None:
        assert holds(s)

    with pytest.raises(AssertionError) as info:
        fails()
    notes = "\n".join(getattr(info.value, "__notes__", ())).split("Explanation:")[0]
    assert printed in notes, notes
    assert "_cut(" not in notes and "Interaction(" not in notes and len(notes.splitlines()) <= 6


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: anthropic_messages(blocks=["text", "nosuch"]), "anthropic_messages(blocks=...): unknown 'nosuch'; choose from text, tool_use"),
        (lambda: anthropic_messages(blocks="text"), "anthropic_messages(blocks=...): expected a list of names"),
        (lambda: anthropic_messages(blocks=[]), "anthropic_messages(blocks=...): empty"),
        (lambda: anthropic_messages(max_blocks=0), "anthropic_messages(max_blocks=...): expected a whole number >= 1, got 0"),
        (lambda: anthropic_messages(stop_reasons=["pause_turn"], blocks=["text"]), "stop reason 'pause_turn' needs 'server_tool_use' blocks to end on"),
        (lambda: anthropic_messages(stop_reasons=["end_turn"], blocks=["tool_use"]), "stop reason 'end_turn' cannot follow a tool call"),
        (lambda: anthropic_messages(stop_reasons=["done"]), "anthropic_messages(stop_reasons=...): unknown 'done'"),
        (lambda: anthropic_messages(text=None), "leave a kind of block out with blocks=[...]"),
        (lambda: anthropic_messages(text=3), "text=3: expected a string"),
        (lambda: anthropic_messages(tool_input=[1]), "tool_input=[1]: a tool input is a JSON object"),
        (lambda: anthropic_messages(tool_names=[]), "anthropic_messages(tool_names=...): expected a non-empty list of non-empty strings"),
        (lambda: anthropic_messages(citations="yes"), "anthropic_messages(citations=...): expected True or False, got 'yes'"),
        (lambda: anthropic_messages(pings=1), "anthropic_messages(pings=...): expected True or False, got 1"),
        (lambda: anthropic_messages(server_tools=["web_search", "calculator"]), "anthropic_messages(server_tools=...): unknown 'calculator'"),
        (lambda: anthropic_messages(blocks=["text"], server_tools=["web_fetch"]), "no server tool is called without 'server_tool_use' in blocks=['text']"),
        (lambda: anthropic_messages(blocks=["text"], interleaved_thinking=True), "there is no thinking to place without 'thinking' or 'redacted_thinking'"),
        (lambda: anthropic_messages(interleaved_thinking="yes"), "anthropic_messages(interleaved_thinking=...): expected True or False, got 'yes'"),
        (lambda: anthropic_messages(blocks=["compaction"], stop_reasons=["end_turn"]), "stop reason 'end_turn' cannot end a message of a compaction block alone"),
        (lambda: openai_chat_streams(kinds=["text"], finish_reasons=["tool_calls"]), "no choice of kinds=['text'] can end with finish_reasons=['tool_calls']"),
        (lambda: openai_chat_streams(kinds=["audio"]), "openai_chat_streams(kinds=...): unknown 'audio'"),
        (lambda: openai_chat_streams(max_choices=0), "openai_chat_streams(max_choices=...): expected a whole number >= 1, got 0"),
        (lambda: openai_chat_streams(max_tool_calls=0), "openai_chat_streams(max_tool_calls=...): expected a whole number >= 1, got 0"),
        (lambda: openai_chat_streams(usage="always"), "openai_chat_streams(usage=...): expected True or False, got 'always'"),
        (lambda: openai_chat_streams(tool_input=None), "leave a kind of choice out with kinds=[...]"),
        (lambda: openai_responses_streams(kinds=["image"]), "openai_responses_streams(kinds=...): unknown 'image'"),
        (lambda: openai_responses_streams(statuses=["failed"]), "openai_responses_streams(statuses=...): unknown 'failed'"),
        (lambda: openai_responses_streams(max_items=0), "openai_responses_streams(max_items=...): expected a whole number >= 1, got 0"),
        (lambda: openai_responses_streams(annotations=None), "openai_responses_streams(annotations=...): expected True or False, got None"),
    ],
)
def test_bad_protocol_arguments_fail_when_the_strategy_is_built(build: Callable[[], Any], message: str) -> None:
    with pytest.raises(InvalidStrategyArgument, match=re.escape(message)):
        build()


def test_narrowed_kinds_leave_out_what_they_cannot_end_on() -> None:
    assert find(anthropic_messages(blocks=["tool_use"]), lambda s: True).stop_reason == "tool_use"
    stops = drawn(anthropic_messages(blocks=["text"]), lambda s: {s.stop_reason}, examples=100)
    assert stops == {"end_turn", "max_tokens", "stop_sequence", "refusal", "model_context_window_exceeded"}
    shapes = drawn(anthropic_messages(blocks=["compaction"]), lambda s: {f"{[b['type'] for b in s.message['content']]} {s.stop_reason}"}, examples=50)
    assert shapes == {"['compaction'] compaction"}  # a summary alone pauses the turn: nothing else can end it


def test_server_tools_narrows_the_tools_called_and_their_results() -> None:
    def called(s: StreamCassette) -> set[str]:
        return {b.get("name", b["type"]) for b in s.message["content"] if b["type"] not in ("text", "thinking", "redacted_thinking", "tool_use")}

    seen = drawn(anthropic_messages(blocks=["text", "server_tool_use"], server_tools=["web_fetch", "bash_code_execution"]), called, examples=100)
    assert seen == {"web_fetch", "web_fetch_tool_result", "bash_code_execution", "bash_code_execution_tool_result"}


def test_without_interleaved_thinking_thinking_only_comes_first() -> None:
    def orders(s: StreamCassette) -> set[str]:
        kinds = ["thinking" if b["type"] in ("thinking", "redacted_thinking") else "other" for b in s.message["content"]]
        return {"thinking after another block" if "thinking" in kinds[kinds.index("other"):] else "first"} if "other" in kinds else {"first"}

    every = ["thinking", "redacted_thinking", "text", "server_tool_use"]
    assert drawn(anthropic_messages(blocks=every, interleaved_thinking=False), orders, examples=200) == {"first"}
    assert drawn(anthropic_messages(blocks=every), orders, examples=200) == {"first", "thinking after another block"}


@settings(max_examples=100, deadline=None)
@given(stream=openai_responses_streams(statuses=["completed"]))
def test_the_openai_sdk_rebuilds_the_response_every_drawn_stream_encodes(reel_session: Any, inprocess_openai_client: openai.OpenAI, stream: StreamCassette) -> None:
    reel_session.load(stream)
    with inprocess_openai_client.responses.stream(model="gpt-4o", input="hi") as s:
        response = s.get_final_response().to_dict()
    assert comparable(response) == comparable(stream.message)


@settings(max_examples=30, deadline=None)
@given(stream=openai_responses_streams(statuses=["incomplete"]))
def test_an_incomplete_response_is_the_last_event_the_sdk_reads(reel_session: Any, inprocess_openai_client: openai.OpenAI, stream: StreamCassette) -> None:
    """``responses.stream()`` gives no final response without ``response.completed``: the raw
    events end with ``response.incomplete``, which carries it."""
    reel_session.load(stream)
    with inprocess_openai_client.responses.create(model="gpt-4o", input="hi", stream=True) as events:
        last = list(events)[-1]
    assert last.type == "response.incomplete"
    assert comparable(last.response.to_dict()) == comparable(stream.message)


def response_kinds(stream: StreamCassette) -> set[str]:
    out = {e.event or "" for e in stream.events}
    numbers = [e.json()["sequence_number"] for e in stream.events]
    if numbers == list(range(len(numbers))):
        out.add("sequence numbers from 0")
    if sum(e.event == "response.output_item.added" for e in stream.events) > 1:
        out.add("several items")
    return out


RESPONSE_KINDS = {
    "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
    "response.output_text.delta", "response.output_text.annotation.added", "response.output_text.done",
    "response.content_part.done", "response.function_call_arguments.delta", "response.function_call_arguments.done",
    "response.reasoning_summary_text.delta", "response.file_search_call.searching", "response.web_search_call.searching",
    "response.output_item.done", "response.completed", "response.incomplete", "sequence numbers from 0", "several items",
    "response.queued", "response.apply_patch_call_operation_diff.delta", "response.shell_call_command.delta",
    "response.mcp_list_tools.completed", "response.mcp_call_arguments.delta",
}  # fmt: skip


def test_a_few_hundred_responses_cover_every_item_and_ending() -> None:
    assert RESPONSE_KINDS - drawn(openai_responses_streams(), response_kinds) == set()


def test_responses_shrink_to_one_message_of_one_delta() -> None:
    assert repr(find(openai_responses_streams(), lambda s: True)) == "openai_response(blocks=[message(('hello',))], stop_reason='completed')"
