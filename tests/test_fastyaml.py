"""The fast cassette reader and writer agree with the full YAML loader and emitter, always.

Differential properties, over generated cassettes and every cassette in ``tests/data`` and
``streamreel/cassettes``:

- the fast writer's text is byte for byte what PyYAML's emitter writes;
- what the fast reader accepts, it reads exactly as the full loader does, and it accepts
  everything streamreel writes on one line per event;
- a file that is almost, but not quite, in that layout (a character or a line changed,
  moved, indented, quoted differently) loads with :func:`streamreel.load` to the same
  cassette as with the full loader, or fails with the same error, file, line and field.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamreel import _fastyaml
from streamreel.cassette import Cassette, End, Event, Interaction, Request, Response, _dumps_full, _load_full, _loads, bundled, bundled_names, dumps, load, loads, save
from streamreel.errors import CassetteError
from streamreel.sse import LINE_ENDINGS

DATA = Path(__file__).parent / "data"
FILES = sorted(DATA.rglob("*.yaml")) + [bundled(n) for n in bundled_names()]
SETTINGS = settings(max_examples=200, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Characters that decide how YAML quotes and reads a value, and the ones it refuses.
TRICKY = (
    " \t\n\r'\"\\#:,-?[]{}&*!|>%@`=~.<0123456789eE+xyz"
    "\x00\x07\x1b\x7f\x85\xa0\u2028\u2029\ufeff\ufffd\U0001f44b\U0010fffd\u4e16"
)
WORDS = ["yes", "no", "null", "~", "true", "1", "1.5", "0x1F", "1e5", ".inf", "---", "...", "- x", "a: b", "a #b", "#x", "<<", "=", "2001-12-14", "", " ", "'", "events:", "    - {t: 1, data: x}"]

text = st.one_of(st.sampled_from(WORDS), st.text(st.sampled_from(TRICKY), max_size=12), st.text(st.characters(blacklist_categories=("Cs",)), max_size=8))
one_line = text.filter(lambda s: "\n" not in s and "\r" not in s)
json_like = st.builds(lambda s: '{"type":"content_block_delta","delta":{"text":%s}}' % s, st.text(max_size=20).map(repr))


@st.composite
def line_ending(draw: st.DrawFn, ev: Event) -> str | tuple[str, ...]:
    if draw(st.integers(0, 5)) > 0:
        return draw(st.sampled_from(LINE_ENDINGS))
    try:
        lines = len(Event(data=ev.data, event=ev.event, id=ev.id, retry=ev.retry, comment=ev.comment, line_ending=("\n",)).wire)
    except ValueError as e:  # the message says how many lines the event has
        lines = int(str(e).split(" of ")[1].split(" ")[0])
    ends = draw(st.lists(st.sampled_from(LINE_ENDINGS), min_size=lines, max_size=lines))
    if ends[-2:] == ["\r", "\n"]:
        ends[-1] = "\r\n"
    return tuple(ends)


@st.composite
def events(draw: st.DrawFn, start: float) -> list[Event]:
    out = []
    t = start
    for _ in range(draw(st.integers(0, 5))):
        t += draw(st.sampled_from([0.0, 1.0, 0.001, 12.345, 1e6, 1e15, 1e16 + 2]) | st.floats(0, 1e4, allow_nan=False))
        ev = Event(
            t=t,
            event=draw(st.none() | one_line | st.sampled_from(["message_start", "content_block_delta", "response.output_text.delta"])),
            id=draw(st.none() | one_line),
            retry=draw(st.none() | st.integers(0, 10**6)),
            comment=draw(st.none() | text),
            data=draw(st.none() | text | json_like),
        )
        if ev.event is ev.id is ev.retry is ev.comment is ev.data is None:
            ev = Event(t=t, data=draw(json_like))
        out.append(Event(t=ev.t, event=ev.event, id=ev.id, retry=ev.retry, comment=ev.comment, data=ev.data, line_ending=draw(line_ending(ev))))
    return out


header_value = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)


@st.composite
def interactions(draw: st.DrawFn) -> Interaction:
    body = draw(st.none() | text | st.dictionaries(st.sampled_from(["model", "stream", "events"]), text | st.integers(0, 9) | st.booleans(), max_size=3))
    request = Request(method=draw(st.none() | st.sampled_from(["GET", "POST"])), path=draw(st.none() | st.sampled_from(["/v1/messages", "/x?q=1"])), headers=draw(st.dictionaries(st.sampled_from(["x-a", "content-type"]), header_value, max_size=2)), body=body)
    headers_at = draw(st.sampled_from([0.0, 212.4, 3.0]))
    if draw(st.integers(0, 4)) == 0:
        response = Response(status=draw(st.sampled_from([200, 529])), body=draw(text | st.dictionaries(st.just("error"), text, max_size=1)), headers_at=headers_at)
    else:
        evs = tuple(draw(events(headers_at)))
        last = evs[-1].t if evs else headers_at
        end = End(t=draw(st.none() | st.just(last) | st.just(last + 5)), reason=draw(st.sampled_from(["complete", "upstream_disconnect", "timeout"])))
        response = Response(headers={"content-type": "text/event-stream"}, headers_at=headers_at, events=evs, end=end)
    return Interaction(request=request, response=response)


cassettes = st.builds(lambda items, faults: Cassette(interactions=tuple(items), faults=faults), st.lists(interactions(), max_size=3), st.sampled_from([(), ("speed:2",)]))


def outcome(load_it: Callable[[], Cassette]) -> Any:
    """A cassette, or the error it failed with (message, file, line and field)."""
    try:
        return load_it()
    except CassetteError as e:
        return ("error", str(e), e.path, e.line, e.field)


def single_lines(cas: Cassette) -> bool:
    """Whether every event value is written on one line (YAML line breaks other than LF make a quoted value span lines)."""
    for item in cas.interactions:
        for ev in item.response.events or ():
            if type(ev.line_ending) is tuple:
                return False
            for value in (ev.event, ev.id, ev.comment, ev.data):
                if value is not None and any(c in value for c in "\x85\u2028\u2029") and "\n" not in value:
                    return False
    return True


@given(cassettes)
@SETTINGS
def test_the_fast_writer_writes_byte_for_byte_what_pyyaml_writes(cas: Cassette) -> None:
    assert dumps(cas, comment="provenance\n\nline two") == _dumps_full(cas, comment="provenance\n\nline two")


@given(cassettes)
@SETTINGS
def test_the_fast_reader_reads_what_the_full_loader_reads_and_takes_all_streamreel_writes(cas: Cassette) -> None:
    text = dumps(cas)
    fast = _fastyaml.load_lines(_fastyaml.iter_lines(text), "c.yaml")
    full = outcome(lambda: _loads(text, "c.yaml"))
    if fast is not None:
        assert fast == full
        assert fast.path == "c.yaml"
    if single_lines(cas) and isinstance(full, Cassette):
        assert fast is not None, "the fast reader refused a file in the layout it reads"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name[:40])
def test_every_cassette_in_the_repository_loads_the_same_both_ways(path: Path) -> None:
    full = outcome(lambda: _load_full(str(path)))
    assert outcome(lambda: load(path)) == full
    text = path.read_text(encoding="utf-8")
    assert outcome(lambda: loads(text, path=str(path))) == outcome(lambda: _loads(text, str(path)))
    if "cassettes" in path.parts:
        assert _fastyaml.load_lines(_fastyaml.iter_lines(text), str(path)) == full  # streamreel wrote these


INSERTS = ["'", '"', "\\", " ", "  ", "\t", "\n", "\r", "\r\n", "#", " # c", ":", ": ", ",", ", ", "{", "}", "[", "]", "&a ", "*a", "!!str ", "!!int ", "- ", "\x00", "\x85", "\u2028", "\ufeff", "e", "0", ".5", "-1", "''", "x", "t: 1, ", "data: y, ", "line_ending: cr, ", "events:", "\\x41", "\\q", "\\u00e9", "null", "|"]


@st.composite
def almost(draw: st.DrawFn, text: str) -> str:
    """``text`` with one small edit, mostly on event lines: what a careless hand or tool does."""
    lines = text.splitlines(keepends=True)
    if not lines:
        return draw(st.sampled_from(INSERTS))
    events_at = [i for i, line in enumerate(lines) if line.lstrip().startswith("- {t:")]
    i = draw(st.sampled_from(events_at)) if events_at and draw(st.booleans()) else draw(st.integers(0, len(lines) - 1))
    line = lines[i]
    how = draw(st.sampled_from(["insert", "delete", "replace", "duplicate", "drop", "swap", "indent", "dedent", "crlf", "block", "tail"]))
    if how in ("insert", "replace", "delete"):
        at = draw(st.integers(0, max(len(line) - 1, 0)))
        piece = draw(st.sampled_from(INSERTS))
        if how == "insert":
            line = line[:at] + piece + line[at:]
        elif how == "replace":
            line = line[:at] + piece + line[at + 1 :]
        else:
            line = line[:at] + line[at + draw(st.integers(1, 3)) :]
        lines[i] = line
    elif how == "duplicate":
        lines.insert(i, line)
    elif how == "drop":
        del lines[i]
    elif how == "swap" and i + 1 < len(lines):
        lines[i], lines[i + 1] = lines[i + 1], lines[i]
    elif how == "indent":
        lines[i] = " " * draw(st.integers(1, 2)) + line
    elif how == "dedent":
        lines[i] = line[draw(st.integers(1, 2)) :] if line.startswith("  ") else line
    elif how == "crlf":
        lines = [ln.replace("\n", "\r\n") for ln in lines]
    elif how == "block" and line.lstrip().startswith("- {"):  # the same event as a block mapping
        pad = line[: len(line) - len(line.lstrip())]
        body = line.strip()[3:-1]
        lines[i] = pad + "- " + ("\n" + pad + "  ").join(body.split(", ")) + "\n"
    elif how == "tail":
        lines[i] = line.rstrip("\n") + draw(st.sampled_from([" ", " # note", "}", ",", " x"])) + "\n"
    return "".join(lines)


@given(cassettes, st.data())
@SETTINGS
def test_a_file_almost_in_the_fast_layout_loads_or_fails_exactly_as_the_full_loader_says(cas: Cassette, data: st.DataObject) -> None:
    text = data.draw(almost(dumps(cas)))
    assert outcome(lambda: loads(text, path="c.yaml")) == outcome(lambda: _loads(text, "c.yaml"))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "c.yaml")
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        assert outcome(lambda: load(path)) == outcome(lambda: _load_full(path))


def test_a_large_cassette_goes_through_the_fast_path_to_the_same_events(tmp_path: Path) -> None:
    events = tuple(Event(t=i / 8, event="content_block_delta", data='{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" w%d"}}' % i) for i in range(20_000))
    cas = Cassette.from_events(events)
    path = tmp_path / "big.yaml"
    save(cas, path)
    with open(path, encoding="utf-8", newline="") as f:
        fast = _fastyaml.load_lines(f, str(path))
    assert fast is not None
    assert fast.interactions[0].response.events == events
    assert fast == _load_full(str(path))


def test_numbers_are_written_as_pyyaml_writes_them() -> None:
    for value in (0, 1, 12.5, 0.001, 1e16, 1.5e-7, 123456789.123):
        cas = Cassette.from_events([Event(t=value, data="x")])
        assert dumps(cas) == _dumps_full(cas)
    assert _fastyaml._number(math.inf) is None


def test_a_hand_edited_event_line_is_read_alone_by_the_full_loader_and_the_file_stays_on_the_fast_path() -> None:
    text = dumps(Cassette.from_events([Event(t=float(i), data=f"d{i}") for i in range(50)]))
    edited = text.replace("    - {t: 7, data: d7}\n", "    - {t: 7, data: {type: ping}, event: ping}   # by hand\n")
    fast = _fastyaml.load_lines(_fastyaml.iter_lines(edited), "c.yaml")
    assert fast is not None
    assert fast == _loads(edited, "c.yaml")
    assert (fast.interactions[0].response.events or ())[7] == Event(t=7.0, event="ping", data='{"type":"ping"}')


@pytest.mark.parametrize(
    "edit",
    [
        ("    - {t: 7, data: d7}\n", "    - {t: 7, data: &a d7}\n", "    - {t: 8, data: d8}\n", "    - {t: 8, data: *a}\n"),  # an alias across lines
        ("    - {t: 7, data: d7}\n", "    - {data: d7}\n"),  # no time: it is the one before
        ("    - {t: 7, data: d7}\n", "    - {t: 7, data: " + "[" * 197 + "]" * 197 + "}\n"),  # deep only where it sits in the file
    ],
    ids=["alias across lines", "no t", "depth"],
)
def test_an_event_line_that_leans_on_the_rest_of_the_file_goes_to_the_full_loader(edit: tuple[str, ...]) -> None:
    text = dumps(Cassette.from_events([Event(t=float(i), data=f"d{i}") for i in range(50)]))
    for old, new in zip(edit[::2], edit[1::2]):
        text = text.replace(old, new)
    assert _fastyaml.load_lines(_fastyaml.iter_lines(text), "c.yaml") is None
    assert outcome(lambda: loads(text, path="c.yaml")) == outcome(lambda: _loads(text, "c.yaml"))
