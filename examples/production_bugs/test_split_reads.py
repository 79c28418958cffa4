"""Bug: a hand-written stream reader breaks when the network splits a line or a UTF-8 character across reads.

Production: the app forwards answers through its own SSE reader over the SDK's raw
response (``with_streaming_response``), decoding each network read as UTF-8 and splitting
it into lines. It passed every local test, where a whole response arrives in one or two
reads; behind a proxy, reads ended mid-line and in the middle of an emoji, and the reader
failed on answers full of ``→``, ``—`` and ``📦``. The body copied from devtools
(``artifacts/utf8-response.sse``) is fine: it is how it arrived that breaks the reader.

Reproduce (one fixture line):
``reel.load(import_file("artifacts/utf8-response.sse"), faults=["fragment:size=7,gap=0.2ms"])``,
which sends the same bytes in 7-byte writes, so reads end inside lines and inside
characters, as production's did.
"""

from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import Any, Callable, Iterator

import anthropic
import pytest

from streamreel.importer import import_file
from streamreel.metrics import delta_text

ARTIFACT = Path(__file__).parent / "artifacts" / "utf8-response.sse"
SPLIT_READS = ["fragment:size=7,gap=0.2ms"]
REQUEST: dict[str, Any] = {"model": "claude-opus-4-6", "max_tokens": 4096, "messages": [{"role": "user", "content": "Summarise the docs"}]}


def texts_buggy(reads: Iterator[bytes]) -> Iterator[str]:
    """Each read decoded and split on its own."""
    for read in reads:
        for line in read.decode("utf-8").split("\n"):
            if line.startswith("data: "):
                payload = json.loads(line[6:])
                if payload.get("type") == "content_block_delta" and payload["delta"].get("type") == "text_delta":
                    yield payload["delta"]["text"]


def texts_fixed(reads: Iterator[bytes]) -> Iterator[str]:
    """Bytes are decoded incrementally and lines kept until they are whole."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    pending = ""
    for read in reads:
        pending += decoder.decode(read)
        *lines, pending = pending.split("\n")
        for line in lines:
            if line.startswith("data: "):
                payload = json.loads(line[6:])
                if payload.get("type") == "content_block_delta" and payload["delta"].get("type") == "text_delta":
                    yield payload["delta"]["text"]


def check_the_forwarded_text_is_the_answer(reel: Any, texts: Callable[[Iterator[bytes]], Iterator[str]]) -> None:
    """The test a user writes from the artifact."""
    cassette = import_file(ARTIFACT)
    reel.load(cassette, faults=SPLIT_READS)
    client = anthropic.Anthropic(base_url=reel.url, api_key="test", max_retries=0)
    with client.messages.with_streaming_response.create(**REQUEST, stream=True) as response:
        forwarded = "".join(texts(response.iter_bytes()))
    assert forwarded == "".join(delta_text(e) for e in cassette.interactions[0].response.events or ())


def test_the_fixed_reader_forwards_every_character(reel: Any) -> None:
    check_the_forwarded_text_is_the_answer(reel, texts_fixed)
    (sent,) = reel.settle()
    assert sent.faults[0].fired and "→" in sent.data.decode("utf-8") and "📦" in sent.data.decode("utf-8")


def test_the_buggy_reader_breaks_on_a_split_line_or_character(reel: Any) -> None:
    with pytest.raises((UnicodeDecodeError, json.JSONDecodeError)):
        check_the_forwarded_text_is_the_answer(reel, texts_buggy)

