"""Bug: an ``overloaded_error`` in the middle of an HTTP 200 stream, which the app's retry logic never sees.

Production: the log in ``artifacts/overloaded.log`` shows a stream that sent its first
words, then ``event: error`` with ``overloaded_error``; the user got an error page and
pressed retry. The app does retry overloaded requests, but it checks the HTTP status
(529), and a stream that fails after it started is a 200: the anthropic SDK raises a bare
``APIStatusError`` with ``status_code`` 200 and ``type`` ``overloaded_error``, and never
retries it itself.

Reproduce (one fixture line): ``reel.load(import_file("artifacts/overloaded.log"))``, or on
the command line ``streamreel import artifacts/overloaded.log -o overloaded.yaml`` and
``@pytest.mark.reel("overloaded.yaml")``. The log holds both responses, so the replay
serves the failed attempt first and the good one to whoever asks again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import anthropic
import pytest

from streamreel.importer import import_file

ARTIFACT = Path(__file__).parent / "artifacts" / "overloaded.log"
REQUEST: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [{"role": "user", "content": "How are you?"}]}
ANSWER = "Hello! I'm doing well, thank you for asking. How are you doing today? Is there anything I can help you with?"
RETRYABLE_STATUS = (429, 500, 503, 529)


def answer_buggy(client: anthropic.Anthropic) -> str:
    """Retries what it believes is overload: a 429/5xx status."""
    for attempt in range(3):
        try:
            with client.messages.stream(**REQUEST) as stream:
                return stream.get_final_text()
        except anthropic.APIStatusError as e:
            if e.status_code not in RETRYABLE_STATUS or attempt == 2:
                raise
    raise AssertionError("unreachable")


def answer_fixed(client: anthropic.Anthropic) -> str:
    """Also retries an error that arrives inside the stream (status 200, the error's type says why)."""
    for attempt in range(3):
        try:
            with client.messages.stream(**REQUEST) as stream:
                return stream.get_final_text()
        except anthropic.APIStatusError as e:
            failed_mid_stream = e.status_code == 200 and getattr(e, "type", None) in ("overloaded_error", "api_error")
            if not (e.status_code in RETRYABLE_STATUS or failed_mid_stream) or attempt == 2:
                raise
    raise AssertionError("unreachable")


def check_the_answer_survives_an_overloaded_stream(reel: Any, answer: Callable[[anthropic.Anthropic], str]) -> None:
    """The test a user writes from the artifact."""
    reel.load(import_file(ARTIFACT))
    client = anthropic.Anthropic(base_url=reel.url, api_key="test", max_retries=2)
    assert answer(client) == ANSWER


def test_the_fixed_handler_retries_and_answers(reel: Any) -> None:
    check_the_answer_survives_an_overloaded_stream(reel, answer_fixed)
    assert [r.status for r in reel.settle()] == [200, 200] and reel.responses[0].events[-1].event == "error"


def test_the_buggy_handler_fails_as_production_did(reel: Any) -> None:
    with pytest.raises(anthropic.APIStatusError) as failed:
        check_the_answer_survives_an_overloaded_stream(reel, answer_buggy)
    assert (failed.value.status_code, failed.value.type) == (200, "overloaded_error")
    assert len(reel.requests) == 1, "the SDK does not retry a stream that failed after it started"
