"""Anthropic on Vertex AI: the Messages stream on Google's paths, gateway errors in Google's shape."""

from __future__ import annotations

import asyncio
import json

import anthropic
import pytest

from streamreel import Replayer
from streamreel.providers import get
from streamreel.synth import synth_cassette

VERTEX = {"region": "us-east5", "project_id": "my-project", "access_token": "test-" + "token"}
REQUEST = {"model": "claude-sonnet-4-5@20250929", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("status", [401, 403, 404, 429])
def test_the_gateway_answers_in_googles_shape(status):
    body = get("anthropic-vertex").error_body(status)
    assert set(body) == {"error"} and body["error"]["code"] == status and body["error"]["status"].isupper()


@pytest.mark.parametrize(("status", "kind"), [(529, "overloaded_error"), (500, "api_error"), (400, "invalid_request_error")])
def test_the_models_own_failures_keep_the_anthropic_shape(status, kind):
    assert get("anthropic-vertex").error_body(status)["error"]["type"] == kind


def test_the_sdk_reads_the_stream_and_raises_by_status_sync_and_async():
    cas = synth_cassette("Hello from Vertex.", provider="anthropic-vertex")
    with Replayer(cas, speed=0) as r:
        with anthropic.AnthropicVertex(base_url=r.url + "/v1", max_retries=0, **VERTEX).messages.stream(**REQUEST) as stream:
            assert stream.get_final_text() == "Hello from Vertex."
        request = r.requests[0]
    assert request.path.endswith("/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict")
    assert "model" not in json.loads(request.body) and json.loads(request.body)["stream"] is True

    async def run():
        async with Replayer(cas, faults="http:status=429") as r:
            async with anthropic.AsyncAnthropicVertex(base_url=r.url + "/v1", max_retries=0, **VERTEX) as client:
                with pytest.raises(anthropic.RateLimitError) as info:
                    await client.messages.create(**REQUEST, stream=True)
                return info.value.body

    assert asyncio.run(run())["error"]["status"] == "RESOURCE_EXHAUSTED"
