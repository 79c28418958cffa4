"""``http``: the provider's real error status, body and headers for the first k requests, then the stream."""

from __future__ import annotations

import json
import time

import anthropic
import httpx2
import openai
import pytest
from _fault_helpers import anthropic_cassette, interaction, openai_cassette

from streamreel import Cassette, Replayer
from streamreel.cassette import Interaction
from streamreel.fault_injection import Http
from streamreel.pipeline import plan

REQUEST = {"model": "claude-test", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def test_the_first_k_attempts_get_the_error_then_the_recording_goes_through() -> None:
    inter = interaction(anthropic_cassette())
    fault = Http(status=529, times=2)
    answers = [plan(inter, [fault], attempts={0: n}) for n in range(3)]
    assert [p.status for p in answers] == [529, 529, 200]
    assert answers[0].answered_by == fault and answers[2].answered_by is None
    assert json.loads(answers[0].body) == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}, "request_id": answers[0].headers["request-id"]}


def test_anthropic_error_headers_drive_the_sdk_retry_policy() -> None:
    p = plan(interaction(anthropic_cassette()), "http:status=429,retry_after=1.5")
    assert p.headers["x-should-retry"] == "true"
    assert p.headers["retry-after"] == "2" and p.headers["retry-after-ms"] == "1500"
    assert p.headers["request-id"].startswith("req_011C")
    assert plan(interaction(anthropic_cassette()), "http:status=400").headers["x-should-retry"] == "false"
    assert plan(interaction(anthropic_cassette()), "http:status=529,should_retry=false").headers["x-should-retry"] == "false"


def test_openai_streams_get_openais_error_shape_and_request_id_header() -> None:
    p = plan(interaction(openai_cassette()), "http:status=429")
    assert json.loads(p.body) == {"error": {"message": "Rate limit reached for requests. Please try again later.", "type": "requests", "param": None, "code": "rate_limit_exceeded"}}
    assert p.headers["x-request-id"].startswith("req_") and "request-id" not in p.headers


def test_request_ids_are_deterministic_and_differ_per_attempt() -> None:
    inter = interaction(anthropic_cassette())
    ids = [plan(inter, "http:status=529,times=3", attempts={0: n}).headers["request-id"] for n in range(3)]
    assert len(set(ids)) == 3
    assert ids == [plan(inter, "http:status=529,times=3", attempts={0: n}).headers["request-id"] for n in range(3)]


def test_the_replayer_counts_attempts_across_requests_and_clear_restarts_them() -> None:
    with Replayer(anthropic_cassette(), speed=0, faults="http:status=503,times=2") as r, httpx2.Client() as client:
        statuses = [client.post(r.url + "/v1/messages", content=b"{}").status_code for _ in range(3)]
        r.clear()
        again = client.post(r.url + "/v1/messages", content=b"{}").status_code
    assert statuses == [503, 503, 200] and again == 503


def test_an_http_answer_does_not_use_up_the_recorded_interaction() -> None:
    first, second = interaction(anthropic_cassette()), interaction(anthropic_cassette("anthropic-stream-b-fallback.sse"))
    cas = Cassette(interactions=(first, second))
    with Replayer(cas, speed=0, faults="http:status=529,retry_after=10ms") as r, anthropic.Anthropic(base_url=r.url, api_key="k", max_retries=1) as client:
        text = "".join(e.delta.text for e in client.messages.create(**REQUEST, stream=True) if e.type == "content_block_delta")
        responses = r.settle()
    assert [x.interaction for x in responses] == [0, 0]
    assert [x.answered_by for x in responses] == ["http:status=529,retry_after=10ms", None]
    assert text == "Hello there!"


def test_a_per_request_header_fault_is_counted_across_the_sdks_retries() -> None:
    with Replayer(anthropic_cassette(), speed=0) as r, anthropic.Anthropic(base_url=r.url, api_key="k", max_retries=2, default_headers={"x-streamreel-faults": "http:status=529,times=2,retry_after=10ms"}) as client:
        text = "".join(e.delta.text for e in client.messages.create(**REQUEST, stream=True) if e.type == "content_block_delta")
        requests = r.requests
    assert text == "Hello there!"
    assert [q.headers["x-stainless-retry-count"] for q in requests] == ["0", "1", "2"]


def test_the_sdk_waits_the_retry_after_the_fault_sends() -> None:
    with Replayer(openai_cassette(), speed=0, faults="http:status=429,retry_after=300ms") as r, openai.OpenAI(base_url=r.url + "/v1", api_key="k", max_retries=1) as client:
        t0 = time.perf_counter()
        chunks = list(client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True))
        took = time.perf_counter() - t0
    assert len(chunks) == 5 and took >= 0.3


def test_should_retry_false_stops_the_sdk_retrying_even_a_529() -> None:
    with Replayer(anthropic_cassette(), speed=0, faults="http:status=529,should_retry=false") as r, anthropic.Anthropic(base_url=r.url, api_key="k", max_retries=3) as client:
        with pytest.raises(anthropic.OverloadedError):
            client.messages.create(**REQUEST)
        assert len(r.requests) == 1


def test_a_plain_json_interaction_gets_the_same_error_treatment() -> None:
    inter = Interaction(request=interaction(anthropic_cassette()).request, response=interaction(anthropic_cassette()).response.__class__(status=200, body={"type": "message"}))
    p = plan(inter, "http:status=500")
    assert p.status == 500 and json.loads(p.body)["error"]["type"] == "api_error"
