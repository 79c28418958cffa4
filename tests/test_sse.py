from __future__ import annotations

from pathlib import Path

import pytest
from anthropic._streaming import SSEDecoder as SDKDecoder
from hypothesis import given, settings
from hypothesis import strategies as st

from streamreel.sse import Decoder, Event, decode, encode, encode_all

DATA = Path(__file__).parent / "data"
RAW_CAPTURES = sorted((DATA / "anthropic-sdk-python").glob("*")) + sorted((DATA / "openai-python").glob("*.bin"))

line_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\0"), max_size=30)
names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\0"), min_size=1, max_size=12)
data_text = st.lists(line_text, min_size=1, max_size=4).map("\n".join)


@st.composite
def events(draw: st.DrawFn) -> Event:
    if draw(st.booleans()) and draw(st.integers(0, 4)) == 0:
        return Event(comment=draw(line_text))
    ev = Event(
        event=draw(st.none() | names),
        data=draw(st.none() | data_text),
        id=draw(st.none() | line_text),
        retry=draw(st.none() | st.integers(0, 10**6)),
    )
    if ev.event is None and ev.data is None and ev.id is None and ev.retry is None:
        ev = Event(data=draw(data_text))
    return ev


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(data[last:p])
        last = p
    pieces.append(data[last:])
    return pieces


@given(st.lists(events(), max_size=8), st.lists(st.integers(0, 10**6), max_size=20), st.sampled_from(["\n", "\r\n", "\r"]))
@settings(max_examples=300)
def test_decode_of_encode_is_identity_under_any_chunking_and_line_ending(evs: list[Event], cuts: list[int], eol: str) -> None:
    wire = encode_all(evs)
    if eol != "\n":
        wire = wire.replace(b"\n", eol.encode())
    dec = Decoder()
    got: list[Event] = []
    for piece in split_at(wire, cuts):
        got.extend(dec.feed(piece))
    got.extend(dec.flush())
    assert got == evs


@given(st.lists(events(), max_size=8), st.lists(st.integers(0, 10**6), max_size=20))
@settings(max_examples=300)
def test_each_feed_returns_exactly_the_events_its_bytes_complete(evs: list[Event], cuts: list[int]) -> None:
    # An event is due once its blank line is in; a comment may come out as soon as its own line ends.
    due, ready, offset = [], [], 0
    for ev in evs:
        offset += len(ev.wire)
        due.append(offset)
        ready.append(offset - 1 if ev.is_comment else offset)
    dec, fed, got = Decoder(), 0, []
    for i, piece in enumerate(split_at(encode_all(evs), cuts)):
        fed += len(piece)
        new = dec.feed(piece, t=float(i))
        assert all(ev.t == float(i) for ev in new)
        got.extend(new)
        assert sum(1 for end in due if end <= fed) <= len(got), "an event whose blank line arrived was held back"
        assert len(got) <= sum(1 for end in ready if end <= fed), "an event came out before its bytes"


def test_blank_line_alone_after_a_line_end_dispatches_at_once() -> None:
    dec = Decoder()
    assert dec.feed(b"data: a\n\ndata: b\n", 1.0) == [Event(t=1.0, data="a")]
    assert dec.feed(b"\n", 2.0) == [Event(t=2.0, data="b")]


def test_cr_at_chunk_end_then_lf_is_one_line_end_not_two() -> None:
    dec = Decoder()
    assert dec.feed(b"data: a\r") == []
    assert dec.feed(b"\n\r") == [Event(data="a")]
    assert dec.feed(b"\ndata: b\r\n\r\n") == [Event(data="b")]


def test_bom_is_stripped_once_even_when_split() -> None:
    wire = "\ufeffdata: x\n\n\ufeffdata: y\n\n".encode()
    dec = Decoder()
    got = dec.feed(wire[:1]) + dec.feed(wire[1:2]) + dec.feed(wire[2:])
    assert got[0] == Event(data="x")
    assert got[1:] == []  # a BOM after the start is an unknown field name, so that line is ignored


def test_multibyte_character_split_byte_by_byte() -> None:
    wire = 'data: {"text":"héllo 👋 世界"}\n\n'.encode()
    dec = Decoder()
    got = [ev for i in range(len(wire)) for ev in dec.feed(wire[i : i + 1])]
    assert got == [Event(data='{"text":"héllo 👋 世界"}')]


def test_invalid_utf8_becomes_replacement_character() -> None:
    assert decode(b"data: a\xffb\n\n") == [Event(data="a\ufffdb")]


def test_field_rules_follow_whatwg() -> None:
    wire = (
        b": keep-alive\n"
        b"data:no-space\n\n"
        b"data\n\n"  # a field with no colon has an empty value
        b"event: e\ndata: 1\ndata:  2\n\n"  # only one leading space is removed
        b"id: a\0b\ndata: z\n\n"  # an id containing NUL is ignored
        b"retry: 12x\nretry: 300\ndata: r\n\n"
        b"unknown: field\ndata: u\n\n"
    )
    assert decode(wire) == [
        Event(comment="keep-alive"),
        Event(data="no-space"),
        Event(data=""),
        Event(event="e", data="1\n 2"),
        Event(data="z"),
        Event(retry=300, data="r"),
        Event(data="u"),
    ]


def test_event_without_data_line_is_kept_like_the_sdks_do() -> None:
    assert decode(b"event: ping\n\n") == [Event(event="ping")]


def test_final_event_without_blank_line_is_returned_by_flush() -> None:
    dec = Decoder()
    assert dec.feed(b'event: message_stop\ndata: {"type":"message_stop"}') == []
    assert dec.pending
    assert dec.flush() == [Event(event="message_stop", data='{"type":"message_stop"}')]
    assert not dec.pending


def test_feed_stamps_events_with_arrival_time() -> None:
    dec = Decoder()
    assert dec.feed(b"data: a\n", t=5.0) == []
    assert dec.feed(b"\n", t=7.5) == [Event(t=7.5, data="a")]


def test_encode_splits_multiline_data_and_comments() -> None:
    assert encode(Event(event="x", data="a\nb")) == b"event: x\ndata: a\ndata: b\n\n"
    assert encode(Event(comment="hi")) == b": hi\n\n"
    assert encode(Event(data="a\r\nb")) == b"data: a\ndata: b\n\n"


@pytest.mark.parametrize("path", RAW_CAPTURES, ids=lambda p: p.name[:24])
def test_corpus_decodes_like_the_anthropic_sdk_decoder(path: Path) -> None:
    raw = path.read_bytes()
    ours = [(e.event, e.data) for e in decode(raw) if not e.is_comment]
    sdk = [(e.event, e.data) for e in SDKDecoder().iter_bytes(iter([raw + b"\n\n"]))]
    assert ours == sdk
    assert len(ours) > 3


@pytest.mark.parametrize("path", RAW_CAPTURES, ids=lambda p: p.name[:24])
def test_corpus_reencodes_data_lines_byte_for_byte(path: Path) -> None:
    raw = path.read_bytes()
    data_lines = [line for line in raw.splitlines() if line.startswith(b"data:")]
    rewire = encode_all(decode(raw))
    assert [line for line in rewire.splitlines() if line.startswith(b"data:")] == data_lines
