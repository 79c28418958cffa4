"""The OpenAI Responses dialect: synthesis the real openai SDK accepts, errors, detection, metrics."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamreel import Cassette, Replayer
from streamreel.metrics import interaction_metrics
from streamreel.providers import detect_provider, get, provider_of_events
from streamreel.providers.openai_responses import (
    McpCallItem,
    McpListToolsItem,
    PatchCallItem,
    SearchCallItem,
    ShellCallItem,
    FunctionCallItem,
    MessageItem,
    ReasoningItem,
    final_response,
    response_events,
    stream_error_events,
)

KEY = "sk-" + "test"
ITEMS = (
    ReasoningItem(("**Weighing", " the options**")),
    MessageItem(("The capital", " of France", " is Paris.")),
    FunctionCallItem("lookup", ('{"city', '":"Par', 'is"}')),
)


def serve(events) -> Cassette:
    return Cassette.from_events(events, path="/v1/responses")


def payloads(events):
    return [json.loads(ev.data) for ev in events]


def test_every_event_names_its_type_and_numbers_itself_in_order():
    events = response_events(ITEMS)
    body = payloads(events)
    assert [ev.event for ev in events] == [p["type"] for p in body]
    assert [p["sequence_number"] for p in body] == list(range(len(events)))
    assert body[0]["type"] == "response.created" and body[-1]["type"] == "response.completed"
    assert [ev.event for ev in events].count("response.output_item.added") == 3


def test_the_same_items_give_the_same_bytes_and_other_items_other_ids():
    assert response_events(ITEMS) == response_events(ITEMS)
    other = response_events((MessageItem(("Hi",)),))
    assert final_response(other)["id"] != final_response(response_events(ITEMS))["id"]


def test_the_final_response_holds_every_item_whole_and_the_usage():
    final = final_response(response_events(ITEMS, input_tokens=20, output_tokens=33, reasoning_tokens=7))
    assert final["status"] == "completed"
    reasoning, message, call = final["output"]
    assert reasoning["summary"] == [{"type": "summary_text", "text": "**Weighing the options**"}]
    assert message["content"][0]["text"] == "The capital of France is Paris."
    assert (call["name"], call["arguments"]) == ("lookup", '{"city":"Paris"}')
    assert final["usage"]["output_tokens"] == 33 and final["usage"]["output_tokens_details"] == {"reasoning_tokens": 7}
    assert final["usage"]["total_tokens"] == 53


def test_an_incomplete_response_ends_with_response_incomplete_and_its_reason():
    events = response_events((MessageItem(("cut",)),), status="incomplete")
    last = json.loads(events[-1].data)
    assert last["type"] == "response.incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert interaction_metrics(serve(events).interactions[0]).stop_reason == "max_output_tokens"
    with pytest.raises(ValueError, match="stream error"):
        response_events(ITEMS, status="failed")


def test_the_openai_sdk_accumulates_the_synthesised_stream_into_the_same_response():
    events = response_events(ITEMS)
    with Replayer(serve(events), speed=0) as r, openai.OpenAI(base_url=r.url + "/v1", api_key=KEY, max_retries=0) as client:
        with client.responses.stream(model="gpt-5", input="hi") as stream:
            deltas = [ev.delta for ev in stream if ev.type == "response.output_text.delta"]
            final = stream.get_final_response()
    assert "".join(deltas) == "The capital of France is Paris."
    assert final.output_text == "The capital of France is Paris."
    assert final.model_dump(mode="json", exclude_none=True)["output"] == _without_nones(final_response(events)["output"])
    assert final.usage.output_tokens == final_response(events)["usage"]["output_tokens"]
    call = final.output[2]
    assert (call.type, call.name, json.loads(call.arguments)) == ("function_call", "lookup", {"city": "Paris"})


def _without_nones(value):
    if isinstance(value, dict):
        return {k: _without_nones(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nones(v) for v in value]
    return value


def test_create_stream_true_yields_every_event_sync_and_async():
    events = response_events(ITEMS)

    def sync() -> list[str]:
        with Replayer(serve(events), speed=0) as r, openai.OpenAI(base_url=r.url + "/v1", api_key=KEY, max_retries=0) as client:
            return [ev.type for ev in client.responses.create(model="gpt-5", input="hi", stream=True)]

    async def asynchronous() -> list[str]:
        async with Replayer(serve(events), speed=0) as r:
            async with openai.AsyncOpenAI(base_url=r.url + "/v1", api_key=KEY, max_retries=0) as client:
                return [ev.type async for ev in await client.responses.create(model="gpt-5", input="hi", stream=True)]

    names = [ev.event for ev in events]
    assert sync() == names
    assert asyncio.run(asynchronous()) == names


ITEM = st.one_of(
    st.builds(MessageItem, st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=5).map(tuple)),
    st.builds(ReasoningItem, st.lists(st.text(min_size=1, max_size=8), max_size=4).map(tuple)),
    st.builds(
        FunctionCallItem,
        st.sampled_from(["lookup", "get_weather"]),
        st.dictionaries(st.text(max_size=4), st.integers(), max_size=3).map(lambda d: json.dumps(d)).flatmap(
            lambda s: st.lists(st.integers(0, len(s)), max_size=3).map(lambda cuts: tuple(s[a:b] for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), len(s)])))
        ),
    ),
)


@given(st.lists(ITEM, min_size=1, max_size=4))
@settings(max_examples=25, deadline=None, derandomize=True)
def test_any_mix_of_items_is_a_stream_the_sdk_completes_to_its_final_response(items):
    events = response_events(items)
    with Replayer(serve(events), speed=0) as r, openai.OpenAI(base_url=r.url + "/v1", api_key=KEY, max_retries=0) as client:
        with client.responses.stream(model="gpt-5", input="hi") as stream:
            for _ in stream:
                pass
            final = stream.get_final_response()
    expected = final_response(events)["output"]
    assert final.model_dump(mode="json", exclude_none=True)["output"] == _without_nones(expected)


def test_a_mid_stream_error_continues_the_numbering_and_fails_the_announced_response():
    before = response_events(ITEMS)[:6]
    error, failed = stream_error_events(before, 12.0, 529)
    assert error.event == "error" and failed.event == "response.failed"
    body = json.loads(error.data)
    assert body["sequence_number"] == 6 and body["error"]["code"] == "server_error"
    assert json.loads(failed.data)["sequence_number"] == 7
    assert json.loads(failed.data)["response"]["status"] == "failed"
    assert get("openai-responses").is_complete((*before, error, failed))
    assert not get("openai-responses").is_complete(before)


def test_the_sdk_raises_the_mid_stream_error_as_an_api_error_with_its_body():
    events = response_events(ITEMS)
    with Replayer(serve(events), speed=0, faults="error:after=8,type=rate_limit_error") as r, openai.OpenAI(base_url=r.url + "/v1", api_key=KEY, max_retries=0) as client:
        with pytest.raises(openai.APIError) as info:
            for _ in client.responses.create(model="gpt-5", input="hi", stream=True):
                pass
    assert info.value.body == {"type": "requests", "code": "rate_limit_exceeded", "message": "Rate limit reached for requests. Please try again later.", "param": None}


def test_detection_by_path_and_by_events():
    events = response_events(ITEMS)
    assert detect_provider(serve(events).interactions[0]) == "openai-responses"
    assert detect_provider(Cassette.from_events(events, path="/custom/relay").interactions[0]) == "openai-responses"
    assert provider_of_events(events) == "openai-responses"


def test_metrics_count_every_delta_kind_and_read_the_final_usage():
    events = response_events(ITEMS, output_tokens=40)
    timed = tuple(ev.__class__(t=float(i), event=ev.event, data=ev.data) for i, ev in enumerate(events))
    m = interaction_metrics(serve(timed).interactions[0])
    first = next(i for i, ev in enumerate(events) if ev.event == "response.reasoning_summary_text.delta")
    assert m.ttft_ms == float(first)
    assert (m.output_tokens, m.tokens_from, m.stop_reason, m.provider) == (40, "usage", "completed", "openai-responses")


def test_annotations_arrive_between_the_text_deltas_and_stay_in_the_part() -> None:
    note = {"type": "url_citation", "url": "https://e/", "title": "E", "start_index": 0, "end_index": 2}
    events = response_events([MessageItem(("Pa", "ris"), annotations=((1, note), (2, note)))])
    kinds = [e.event for e in events]
    first = kinds.index("response.output_text.delta")
    assert kinds[first : first + 4] == ["response.output_text.delta", "response.output_text.annotation.added", "response.output_text.delta", "response.output_text.annotation.added"]
    assert [e.json()["annotation_index"] for e in events if e.event == "response.output_text.annotation.added"] == [0, 1]
    (message,) = final_response(events)["output"]
    assert message["content"][0]["annotations"] == [note, note] and message["content"][0]["text"] == "Paris"


@pytest.mark.parametrize("kind", ["file_search_call", "web_search_call"])
def test_a_search_call_runs_in_progress_searching_completed(kind: str) -> None:
    events = response_events([SearchCallItem(kind, "capital of France", results=True)])
    assert [e.event for e in events][3:6] == [f"response.{kind}.in_progress", f"response.{kind}.searching", f"response.{kind}.completed"]
    (item,) = final_response(events)["output"]
    assert item["type"] == kind and item["status"] == "completed"
    assert (item["results"] if kind == "file_search_call" else item["action"]["sources"])
    with pytest.raises(ValueError, match="a search call is one of file_search_call, web_search_call"):
        response_events([SearchCallItem("code_interpreter_call", "x")])


def test_patch_shell_and_mcp_items_stream_their_pieces_and_end_whole() -> None:
    items = [
        PatchCallItem("notes.md", ("+## To", "do\n")),
        ShellCallItem((("ls", " -a"), ("pwd",))),
        McpListToolsItem("zip1", ("shorten",)),
        McpCallItem("zip1", "shorten", ('{"url"', ': "https://e/"}'), output="ok"),
    ]
    events = response_events(items, background=True)
    kinds = [e.event for e in events]
    assert kinds[:3] == ["response.created", "response.queued", "response.in_progress"]
    assert json.loads(events[0].data)["response"]["status"] == "queued"
    assert kinds.count("response.apply_patch_call_operation_diff.delta") == 2 and kinds.count("response.shell_call_command.added") == 2
    assert kinds.index("response.mcp_call_arguments.delta") > kinds.index("response.mcp_call.in_progress")
    patch, shell, tools, call = final_response(events)["output"]
    assert patch["operation"]["diff"] == "+## Todo\n" and shell["action"]["commands"] == ["ls -a", "pwd"]
    assert [t["name"] for t in tools["tools"]] == ["shorten"] and (call["arguments"], call["output"], call["status"]) == ('{"url": "https://e/"}', "ok", "completed")
