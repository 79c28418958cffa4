"""Bug: a stream that ends cleanly before ``message_stop`` is shown as a complete answer.

Production: the proxy in front of the API captured the ``data:`` lines it forwarded
(``artifacts/no-message-stop.txt``): the body ended without an error after the last text
delta, with no ``content_block_stop``, ``message_delta`` or ``message_stop``. Neither SDK
raises anything: the stream just ends, and ``get_final_message()`` returns a message whose
``stop_reason`` is None. The app showed the cut-off answer as if it were whole.

Reproduce (one fixture line): ``reel.load(import_file("artifacts/no-message-stop.txt", end="complete"))``,
or ``streamreel import artifacts/no-message-stop.txt --end complete -o no-stop.yaml``. The
capture has ``data:`` lines only; the import restores each ``event:`` name from the JSON
``type`` (the SDK ignores unnamed events), and, since the stream stops before its final
event, says it will replay as a cut unless told ``--end complete``: production saw a clean
end of body, so that is what to ask for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import anthropic
import pytest

from streamreel.importer import import_file

ARTIFACT = Path(__file__).parent / "artifacts" / "no-message-stop.txt"
REQUEST: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [{"role": "user", "content": "Tell me about the fallback"}]}


class IncompleteAnswer(Exception):
    """The stream ended before the API said it was done."""


def answer_buggy(client: anthropic.Anthropic) -> str:
    with client.messages.stream(**REQUEST) as stream:
        return stream.get_final_text()


def answer_fixed(client: anthropic.Anthropic) -> str:
    with client.messages.stream(**REQUEST) as stream:
        message = stream.get_final_message()
    if message.stop_reason is None:
        raise IncompleteAnswer(f"the stream ended without message_stop after {len(message.content)} block(s)")
    return "".join(block.text for block in message.content if block.type == "text")


def check_a_truncated_answer_is_never_shown_as_whole(reel: Any, answer: Callable[[anthropic.Anthropic], str]) -> None:
    """The test a user writes from the artifact."""
    reel.load(import_file(ARTIFACT, end="complete"))
    with pytest.raises(IncompleteAnswer):
        answer(anthropic.Anthropic(base_url=reel.url, api_key="test", max_retries=0))


def test_the_fixed_handler_refuses_the_truncated_answer(reel: Any) -> None:
    check_a_truncated_answer_is_never_shown_as_whole(reel, answer_fixed)
    (sent,) = reel.settle()
    assert sent.ending == "end" and sent.events[-1].event == "content_block_delta"


def test_the_buggy_handler_shows_it_as_whole(reel: Any) -> None:
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        check_a_truncated_answer_is_never_shown_as_whole(reel, answer_buggy)
