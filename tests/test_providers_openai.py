"""Chat Completions stream synthesis: choices, parallel tool calls keyed by index, refusals, usage."""

from __future__ import annotations

import pytest

from streamreel.providers.openai import Choice, ToolCall, chat_events, chat_stream, chunk_count


def deltas(events: tuple, index: int = 0) -> list[dict]:
    return [e.json()["choices"][0]["delta"] for e in events if e.data != "[DONE]" and e.json()["choices"] and e.json()["choices"][0]["index"] == index]


def test_a_tool_only_choice_carries_its_first_call_on_the_role_chunk_as_the_api_does() -> None:
    made = chat_stream([Choice(tool_calls=(ToolCall("f", ("{", "}")),))])
    first = deltas(made.events)[0]
    assert first["role"] == "assistant" and first["content"] is None and first["tool_calls"][0]["function"]["name"] == "f"
    assert made.completion["choices"][0]["finish_reason"] == "tool_calls"


def test_a_schedule_interleaves_calls_and_puts_several_in_one_chunk() -> None:
    calls = (ToolCall("f", ('{"a"', ": 1}")), ToolCall("g", ("{}",)))
    made = chat_stream([Choice(tool_calls=calls, schedule=((0,), (1, 0), (1,), (0,)))])
    entries = [[(c["index"], c.get("id") is not None) for c in d["tool_calls"]] for d in deltas(made.events) if d.get("tool_calls")]
    assert entries == [[(0, True)], [(1, True), (0, False)], [(1, False)], [(0, False)]]
    assert [c["function"]["arguments"] for c in made.completion["choices"][0]["message"]["tool_calls"]] == ['{"a": 1}', "{}"]


def test_choices_interleave_by_order_and_usage_comes_last_with_no_choices() -> None:
    made = chat_stream([Choice(content=("a", "b")), Choice(refusal=("no",))], order=[0, 1, 0, 1, 0, 1, 0], usage=True)
    indices = [e.json()["choices"][0]["index"] for e in made.events[:-2]]
    assert indices == [0, 1, 0, 1, 0, 1, 0]
    assert made.events[-2].json()["choices"] == [] and made.events[-1].data == "[DONE]"
    assert [c["message"]["content"] for c in made.completion["choices"]] == ["ab", None]
    assert made.completion["choices"][1]["message"]["refusal"] == "no"
    assert made.completion["usage"]["total_tokens"] == made.completion["usage"]["prompt_tokens"] + made.completion["usage"]["completion_tokens"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: chat_stream([Choice(tool_calls=(ToolCall("f", ("{}",)),), schedule=((1,),))]), "schedule chunk 0 names tool call 1; there are 1"),
        (lambda: chat_stream([Choice(tool_calls=(ToolCall("f", ("{}",)),), schedule=((0,),))]), "the schedule leaves tool calls [0] unfinished"),
        (lambda: chat_stream([Choice(tool_calls=(ToolCall("f", ()),), schedule=((0,), (0,)))]), "asks tool call 0 for piece 1; it has 0"),
        (lambda: chat_stream([Choice(content=("a",))], order=[0]), "order leaves choices [0] unfinished"),
        (lambda: chat_stream([Choice(content=("a",))], order=[0, 0, 0, 0]), "order names choice 0 more often than its 3 chunks"),
    ],
)
def test_an_impossible_schedule_or_order_says_why(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        make()  # type: ignore[operator]


def test_chunk_count_is_what_order_names_a_choice_by() -> None:
    choice = Choice(content=("a", "b"), tool_calls=(ToolCall("f", ("{", "}")),))
    assert chunk_count(choice) == len(deltas(chat_stream([choice]).events))


def test_chat_events_keeps_one_choice_of_text_then_calls() -> None:
    events = chat_events(["hi"], tool_calls=[("f", ["{}"])], usage=True)
    kinds = [sorted(k for k, v in d.items() if v is not None) for d in deltas(events)]
    assert kinds == [["content", "role"], ["content"], ["tool_calls"], ["tool_calls"], []]
