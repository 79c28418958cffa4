from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from anthropic._streaming import SSEDecoder as SDKDecoder
from hypothesis import given, settings
from hypothesis import strategies as st

from streamreel.sse import LINE_ENDINGS, Decoder, Event, decode, encode, encode_all, usual_line_ending

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
    assert got == [replace(e, line_ending=eol) for e in evs]
    assert encode_all(got) == wire


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
    (a,) = dec.feed(b"\n\r")
    assert a.data == "a"
    assert dec.feed(b"\ndata: b\r\n\r\n") == [Event(data="b", line_ending="\r\n")]
    assert a == Event(data="a", line_ending="\r\n")


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
    assert encode(Event(data="a\r\nb")) == b"data: a\r\ndata: b\n\n"  # a break written in the data ends its line as written


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


# ---------------------------------------------------------------- line endings on the wire

ends = st.sampled_from(LINE_ENDINGS)


@st.composite
def wire_events(draw: st.DrawFn) -> bytes:
    """One event as a server might write it: fields in the usual order, each line ended its own way."""
    if draw(st.integers(0, 5)) == 0:
        end = draw(ends)  # a comment line, then the blank line after it
        text = draw(line_text)
        return f"{': ' + text if text else ':'}{end}{end}".encode()
    lines = []
    if draw(st.booleans()):
        lines.append(f"id: {draw(line_text)}")
    if draw(st.booleans()):
        lines.append(f"event: {draw(names)}")
    if draw(st.integers(0, 4)) == 0:
        lines.append(f"retry: {draw(st.integers(0, 10**6))}")
    lines += [f"data: {line}" for line in draw(st.lists(line_text, min_size=0 if lines else 1, max_size=3))]
    terminators = [draw(ends) for _ in lines]
    last = draw(ends)
    if terminators[-1] == "\r" and last == "\n":
        last = draw(st.sampled_from(["\r", "\r\n"]))  # CR then LF is one CRLF: that blank line could not be on the wire
    return ("".join(line + end for line, end in zip(lines, terminators)) + last).encode()


@given(st.lists(wire_events(), min_size=1, max_size=8), st.lists(st.integers(0, 10**6), max_size=20))
@settings(max_examples=400, derandomize=True)
def test_any_mix_of_line_ends_re_encodes_byte_for_byte_under_any_chunking(events: list[bytes], cuts: list[int]) -> None:
    wire = b"".join(events)
    dec = Decoder()
    got: list[Event] = []
    for piece in split_at(wire, cuts):
        got.extend(dec.feed(piece))
    got.extend(dec.flush())
    assert encode_all(got) == wire
    assert [e.wire for e in got] == events


@given(st.lists(wire_events(), min_size=1, max_size=6), st.lists(st.integers(0, 10**6), max_size=8))
@settings(max_examples=200, derandomize=True)
def test_a_stream_ending_without_its_last_line_end_takes_the_events_own(events: list[bytes], cuts: list[int]) -> None:
    wire = b"".join(events)
    cut = wire.rstrip(b"\r\n")
    dec = Decoder()
    got = [ev for piece in split_at(cut, cuts) for ev in dec.feed(piece)] + dec.flush()
    assert [(e.event, e.data, e.comment) for e in got] == [(e.event, e.data, e.comment) for e in decode(wire)]
    assert encode_all(got).startswith(cut)
    last = got[-1].line_ending
    assert (last if isinstance(last, str) else last[-1]) in LINE_ENDINGS


def test_a_cr_ending_a_chunk_dispatches_at_once_and_a_following_lf_makes_it_crlf() -> None:
    dec = Decoder()
    first = dec.feed(b"data: a\r\n\r", t=1.0)
    assert [(e.data, e.t) for e in first] == [("a", 1.0)]  # not held back until the next chunk
    assert first[0].line_ending == ("\r\n", "\r")
    assert dec.feed(b"\ndata: b\r\n\r\n", t=2.0) == [Event(t=2.0, data="b", line_ending="\r\n")]
    assert first[0].line_ending == "\r\n"
    assert first[0].wire == b"data: a\r\n\r\n"


def test_cr_only_streams_dispatch_each_event_as_its_cr_arrives() -> None:
    dec = Decoder()
    assert dec.feed(b"event: x\rdata: 1\r\r", t=1.0) == [Event(t=1.0, event="x", data="1", line_ending="\r")]
    assert dec.feed(b"data: 2\r\r", t=2.0) == [Event(t=2.0, data="2", line_ending="\r")]


def test_a_line_break_written_in_data_ends_that_line_as_written() -> None:
    assert encode(Event(data="a\rb")) == b"data: a\rdata: b\n\n"
    assert encode(Event(data="a\r\nb\nc", line_ending="\r")) == b"data: a\r\ndata: b\rdata: c\r\r"
    assert encode(Event(comment="x\ry", line_ending="\r\n")) == b": x\r: y\r\n\r\n"
    for ev in (Event(data="a\rb"), Event(data="a\r\nb"), Event(data="\r")):
        (back,) = decode(ev.wire)
        assert back.data == ev.data.replace("\r\n", "\n").replace("\r", "\n")  # what every SSE client reads
        assert back.wire == ev.wire


def test_a_per_line_line_ending_must_have_one_end_per_line() -> None:
    assert encode(Event(event="e", data="a", line_ending=("\r\n", "\n", "\r"))) == b"event: e\r\ndata: a\n\r"
    with pytest.raises(ValueError, match="2 line ends for an event of 3 lines"):
        encode(Event(event="e", data="a", line_ending=("\n", "\n")))
    with pytest.raises(ValueError, match="line_ending must be one of"):
        encode(Event(data="a", line_ending="\n\n"))


def test_usual_line_ending_is_the_most_common_whole_event_one() -> None:
    crlf, lf = Event(data="x", line_ending="\r\n"), Event(data="y")
    assert usual_line_ending([]) == "\n"
    assert usual_line_ending([crlf, lf, crlf]) == "\r\n"
    assert usual_line_ending([lf, crlf]) == "\n"
    assert usual_line_ending([Event(data="z", line_ending=("\r", "\n"))]) == "\n"
