"""Bug: a stream that goes silent mid-answer escapes the app's timeout handling.

Production: the app's log (``artifacts/stall.log``) shows the first words of an answer,
then nothing, then, ten seconds later, ``httpx.ReadTimeout``. The app handles timeouts by
catching ``anthropic.APITimeoutError``, which the SDK raises when the API is slow to
*answer*; once a stream has started, a read timeout comes out of the anthropic SDK raw, as
``httpx2.ReadTimeout``, so it went past the handler and the user got a 500.

Reproduce (one fixture line): ``reel.load(import_file("artifacts/stall.log", end="timeout"))``,
or ``streamreel import artifacts/stall.log --end timeout -o stall.yaml``. The import takes
each event's time from the log's timestamps and skips the app's own lines; the stream stops
without its final event, and ``--end timeout`` replays that as silence with the connection
open, as production saw it, rather than as a cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import anthropic
import httpx2
import pytest

from streamreel.importer import import_file

ARTIFACT = Path(__file__).parent / "artifacts" / "stall.log"
REQUEST: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [{"role": "user", "content": "Write my tax guide"}]}
READ_TIMEOUT_S = 0.3
SHOWN_BEFORE_THE_STALL = "I'll create a comprehensive tax guide for someone with multiple W2s and save it in a file called taxes.txt. Let"


@dataclass
class Answer:
    text: str
    interrupted: bool = False


def answer_buggy(client: anthropic.Anthropic) -> Answer:
    text = ""
    try:
        for event in client.messages.create(**REQUEST, stream=True):
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                text += event.delta.text
    except anthropic.APITimeoutError:
        return Answer(text, interrupted=True)
    return Answer(text)


def answer_fixed(client: anthropic.Anthropic) -> Answer:
    text = ""
    try:
        for event in client.messages.create(**REQUEST, stream=True):
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                text += event.delta.text
    except (anthropic.APITimeoutError, httpx2.TimeoutException):
        return Answer(text, interrupted=True)
    return Answer(text)


def check_a_stalled_stream_is_shown_as_interrupted(reel: Any, answer: Callable[[anthropic.Anthropic], Answer]) -> None:
    """The test a user writes from the artifact."""
    reel.load(import_file(ARTIFACT, end="timeout"))
    client = anthropic.Anthropic(base_url=reel.url, api_key="test", max_retries=0, timeout=httpx2.Timeout(5.0, read=READ_TIMEOUT_S))
    assert answer(client) == Answer(SHOWN_BEFORE_THE_STALL, interrupted=True)


def test_the_fixed_handler_keeps_the_partial_answer_and_says_it_was_interrupted(reel: Any) -> None:
    check_a_stalled_stream_is_shown_as_interrupted(reel, answer_fixed)
    (sent,) = reel.settle()
    assert sent.client_hung_up and sent.events_done == 7


def test_the_buggy_handler_lets_the_read_timeout_escape(reel: Any) -> None:
    with pytest.raises(httpx2.ReadTimeout):
        check_a_stalled_stream_is_shown_as_interrupted(reel, answer_buggy)
