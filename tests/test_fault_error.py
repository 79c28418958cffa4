"""``error``: the provider's own mid-stream error inside an HTTP 200 stream, which then ends."""

from __future__ import annotations

import json

import pytest
from _fault_helpers import anthropic_cassette, events_of, interaction, openai_cassette, run, shape, wire

from streamreel import Cassette, Event
from streamreel.fault_injection.error import ERROR_TYPES


def test_anthropic_gets_event_error_exactly_as_the_api_writes_it_and_nothing_after() -> None:
    original = interaction(anthropic_cassette()).response.events
    p, chunks = run(anthropic_cassette(), "error:after=4", speed=0)
    assert wire(chunks).endswith(b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}\n\n')
    assert shape(events_of(chunks)[:4]) == shape(original[:4]) and len(events_of(chunks)) == 5
    assert p.ending.how == "end"


@pytest.mark.parametrize("kind", ERROR_TYPES)
def test_every_anthropic_error_type_can_be_injected_with_its_usual_message(kind: str) -> None:
    last = events_of(run(anthropic_cassette(), f"error:after=1,type={kind}", speed=0)[1])[-1]
    payload = last.json()
    assert payload["error"]["type"] == kind and payload["error"]["message"]


def test_a_custom_message_goes_into_the_error() -> None:
    last = events_of(run(anthropic_cassette(), "error:after=0,type=api_error,message=boom", speed=0)[1])[-1]
    assert last.json() == {"type": "error", "error": {"type": "api_error", "message": "boom"}}


def test_openai_chat_completions_gets_an_error_chunk_then_done() -> None:
    got = events_of(run(openai_cassette(), "error:after=2", speed=0)[1])
    original = interaction(openai_cassette()).response.events
    assert shape(got[:2]) == shape(original[:2])
    assert json.loads(got[2].data) == {"error": {"message": "The engine is currently overloaded, please try again later.", "type": "server_error", "param": None, "code": None}}
    assert got[3].data == "[DONE]" and len(got) == 4


def test_openai_responses_streams_get_event_error_then_response_failed() -> None:
    created = {"type": "response.created", "response": {"id": "resp_1", "object": "response", "status": "in_progress"}, "sequence_number": 0}
    delta = {"type": "response.output_text.delta", "delta": "Hi", "sequence_number": 1}
    cas = Cassette.from_events(
        [Event(t=0, event="response.created", data=json.dumps(created)), Event(t=1, event="response.output_text.delta", data=json.dumps(delta))],
        path="/v1/responses",
    )
    got = events_of(run(cas, "error:after=2,type=api_error")[1])
    assert [e.event for e in got] == ["response.created", "response.output_text.delta", "error", "response.failed"]
    err, failed = got[2].json(), got[3].json()
    assert err["type"] == "error" and err["error"]["code"] == "server_error" and err["sequence_number"] == 2
    assert failed["response"]["id"] == "resp_1" and failed["response"]["status"] == "failed" and failed["sequence_number"] == 3
