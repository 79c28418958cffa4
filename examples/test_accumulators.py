"""Property tests for message accumulators, through the real SDKs at in-process speed.

Every drawn stream carries ``.message``, the final object it encodes; an accumulator fed the
SDK's raw events must end with the same. The correct accumulators pass hundreds of streams;
each accumulator with a bug fails within 200 examples, with a short falsifying example.
"""

from __future__ import annotations

from typing import Any, Callable

import anthropic
import openai
import pytest
from accumulators import BUGS, CompletionAccumulator, MessageAccumulator
from hypothesis import HealthCheck, Phase, given, settings

from streamreel.strategies import StreamCassette, anthropic_messages, openai_chat_streams

REQUEST: dict[str, Any] = {"model": "claude-haiku-4-5", "max_tokens": 1024, "messages": [{"role": "user", "content": "What's the weather?"}]}
CHAT: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "What's the weather?"}]}

messages = anthropic_messages()
completions = openai_chat_streams(max_choices=2)


def without_none(value: Any) -> Any:
    """The API leaves out what the SDK fills with None (and the other way round): compare without."""
    if isinstance(value, dict):
        return {k: without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_none(v) for v in value]
    return value


def rebuilt_message(kind: type[MessageAccumulator], client: anthropic.Anthropic) -> Any:
    acc = kind()
    with client.messages.create(**REQUEST, stream=True) as stream:
        for event in stream:
            acc.feed(event)
    return acc.message


def rebuilt_completion(kind: type[CompletionAccumulator], client: openai.OpenAI) -> Any:
    acc = kind()
    with client.chat.completions.create(**CHAT, stream=True) as stream:
        for chunk in stream:
            acc.feed(chunk)
    return acc.result()


@settings(max_examples=300, deadline=None)
@given(stream=messages)
def test_the_accumulator_rebuilds_every_message(reel_session: Any, inprocess_anthropic_client: anthropic.Anthropic, stream: StreamCassette) -> None:
    reel_session.load(stream)
    assert without_none(rebuilt_message(MessageAccumulator, inprocess_anthropic_client)) == without_none(stream.message)


@settings(max_examples=300, deadline=None)
@given(stream=completions)
def test_the_accumulator_rebuilds_every_completion(reel_session: Any, inprocess_openai_client: openai.OpenAI, stream: StreamCassette) -> None:
    reel_session.load(stream)
    assert without_none(rebuilt_completion(CompletionAccumulator, inprocess_openai_client)) == without_none(stream.message)


FIND_WITHIN = settings(max_examples=200, derandomize=True, database=None, deadline=None, phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))
"""The budget the issue sets: a bug the protocol can show is found within 200 examples."""


@pytest.mark.parametrize("bug", list(BUGS))
def test_each_accumulator_bug_is_found_within_200_examples(bug: str, reel_session: Any, inprocess_anthropic_client: anthropic.Anthropic, inprocess_openai_client: openai.OpenAI) -> None:
    kind = BUGS[bug]
    chat = issubclass(kind, CompletionAccumulator)
    failing: list[StreamCassette] = []

    @FIND_WITHIN
    @given(stream=completions if chat else messages)
    def rebuilds(stream: StreamCassette) -> None:
        reel_session.load(stream)
        read: Callable[[], Any] = (lambda: rebuilt_completion(kind, inprocess_openai_client)) if chat else (lambda: rebuilt_message(kind, inprocess_anthropic_client))
        try:
            assert without_none(read()) == without_none(stream.message)
        except Exception:
            failing.append(stream)
            raise

    with pytest.raises(Exception):
        rebuilds()
    smallest = failing[-1]
    assert len(repr(smallest)) < 400, f"the falsifying example should read at a glance: {smallest!r}"
