"""Hostile cassette files: whatever the bytes, load() returns a Cassette or raises a CassetteError
naming the file and a line (and the field, when a field is wrong), in bounded time and memory."""

from __future__ import annotations

import copy
import math
import os
import re
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamreel.cassette import MAX_ALIAS_BYTES, MAX_ALIAS_NODES, MAX_DEPTH, Cassette, bundled, bundled_names, dumps, load, loads
from streamreel.errors import CassetteError
from streamreel.pipeline import plan

DATA = Path(__file__).parent / "data"
SEEDS = {name: bundled(name).read_text(encoding="utf-8") for name in bundled_names()}
VCR_SEEDS = {p.name: p.read_text(encoding="utf-8") for p in sorted(DATA.glob("*/*.yaml"))}
NAME = "fuzz/cassette.yaml"
LOAD_S = 5.0
BREAKS = re.compile("\r\n|[\r\n\x85\u2028\u2029]")  # what YAML counts as a line break

fuzz = settings(
    derandomize=True,
    deadline=None,
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def bounded(fn: Callable[[], Any], seconds: float = LOAD_S) -> Any:
    """Run ``fn`` on a daemon thread; fail the test if it does not return in ``seconds``."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(("ok", fn()))
        except BaseException as e:  # re-raised in the test's thread
            out.append(("err", e))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"loading did not finish in {seconds:g}s"
    kind, value = out[0]
    if kind == "err":
        raise value
    return value


def outcome(text: str) -> Cassette | CassetteError:
    """Load ``text``; any exception other than CassetteError fails the test."""
    try:
        cassette = bounded(lambda: loads(text, path=NAME))
    except CassetteError as e:
        assert str(e).startswith(f"{NAME}:{e.line}: "), str(e)
        assert e.line is not None and 1 <= e.line <= len(BREAKS.findall(text)) + 1, (e.line, str(e))
        assert e.reason.strip()
        return e
    assert isinstance(cassette, Cassette)
    usable(cassette)
    return cassette


def usable(cassette: Cassette) -> None:
    """A cassette that loads can be saved, reloaded and planned for replay."""
    again = loads(dumps(cassette), path=NAME)
    assert again == cassette
    for item in cassette.interactions:
        item.response.body_bytes()
        p = plan(item, (), speed=0)
        for _ in p.chunks:
            pass


# ---------------------------------------------------------------- generators

WRONG = st.one_of(
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.text(max_size=20),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.sampled_from([1e308, -1e308, -1, -0.5, 10**60, -(10**60), 2**63, float("inf"), float("nan")]),
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into plain YAML data (events lists trimmed, to keep the choice small)."""
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node[:3]):
            out += paths(v, (*prefix, i))
    return out


PARSED = {name: yaml.safe_load(text) for name, text in SEEDS.items()}
PATHS = {name: paths(doc)[1:] for name, doc in PARSED.items()}


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, tuple[Any, ...], str]:
    """A bundled cassette with one field changed: wrong type, huge number, deleted, or an unknown
    key (or list item) next to it; also returns where the change is."""
    name = draw(st.sampled_from(sorted(PARSED)))
    doc = copy.deepcopy(PARSED[name])
    where = draw(st.sampled_from(PATHS[name]))
    parent = doc
    for key in where[:-1]:
        parent = parent[key]
    how = draw(st.sampled_from(["wrong", "delete", "unknown"]))
    if how == "wrong":
        parent[where[-1]] = draw(WRONG)
    elif how == "delete":
        del parent[where[-1]]
    elif isinstance(parent, dict):
        parent[draw(st.sampled_from(["extra", "Status", "evnts", "t2"]))] = draw(WRONG)
    else:
        parent.append(draw(WRONG))
        where = (*where[:-1], len(parent) - 1)
    return name, where, yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


SNIPPETS = [
    "!!python/object/apply:os.system ['echo pwned']",
    "!!python/name:os.system",
    "!!binary aGVsbG8=",
    "!foo bar",
    "!!set {a, b}",
    "!!timestamp 2001-12-14",
    "&a [*a]",
    "*nowhere",
    "<<: *nowhere",
    "[" * 300,
    "{" * 300,
    "\t",
    "\x00",
    "\x85",
    "\ufeff",
    "\r\n",
    "\r",
    "'",
    '"',
    "%YAML 1.1\n---",
    "---",
    "...",
    "? [a, b]\n: c",
    "9" * 5000,
    "1e999",
    "-.inf",
    ".nan",
    "0x" + "f" * 200,
    "190:20:30",
    "~",
]


@st.composite
def spliced(draw: st.DrawFn) -> str:
    """A bundled cassette with text cut, repeated or replaced at a random place, or a hostile snippet put in."""
    text = SEEDS[draw(st.sampled_from(sorted(SEEDS)))]
    at = draw(st.integers(0, len(text)))
    end = draw(st.integers(at, min(len(text), at + 200)))
    piece = draw(st.one_of(st.sampled_from(SNIPPETS), st.text(max_size=30), st.just(text[at:end] * 2)))
    return text[:at] + piece + text[end:]


# ---------------------------------------------------------------- properties


@fuzz
@given(st.binary(max_size=2000))
def test_random_bytes_load_or_fail_with_file_and_line(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("bytes") / "c.yaml"
    path.write_bytes(data)
    try:
        cassette = bounded(lambda: load(path))
    except CassetteError as e:
        assert str(e).startswith(f"{path}:{e.line}: ") and e.line >= 1
        return
    usable(cassette)


@fuzz
@given(st.text(max_size=500))
def test_random_text_loads_or_fails_with_file_and_line(text: str) -> None:
    outcome(text)


@fuzz
@given(mutated())
def test_a_mutated_field_loads_or_is_named_in_the_error(case: tuple[str, tuple[Any, ...], str]) -> None:
    name, where, text = case
    result = outcome(text)
    if isinstance(result, CassetteError) and where[0] != "streamreel":
        assert result.field is not None, str(result)
        if where[0] == "interactions" and len(where) > 1:
            assert result.field.startswith(f"interactions[{where[1]}]") or result.field == "interactions", (where, str(result))


@fuzz
@given(spliced())
def test_spliced_text_loads_or_fails_with_file_and_line(text: str) -> None:
    outcome(text)


@fuzz
@given(st.sampled_from(sorted(SEEDS)), st.sampled_from(["bom", "crlf", "cr", "tabs"]))
def test_encodings_and_line_ends_of_a_bundled_cassette(name: str, how: str) -> None:
    text = SEEDS[name]
    changed = {"bom": "\ufeff" + text, "crlf": text.replace("\n", "\r\n"), "cr": text.replace("\n", "\r"), "tabs": text.replace("  ", "\t")}[how]
    result = outcome(changed)
    if how in ("bom", "crlf", "cr"):
        assert result == loads(text)
    else:
        assert isinstance(result, CassetteError) and "not valid YAML" in result.reason


# ---------------------------------------------------------------- one example per kind of bad input


def error(text: str) -> CassetteError:
    result = outcome(text)
    assert isinstance(result, CassetteError), f"loaded: {result!r}"
    return result


def one(response: str = "{status: 200}", request: str = "{method: POST}") -> str:
    return f"streamreel: 1\ninteractions:\n- request: {request}\n  response: {response}\n"


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "- a\n- b\n", "hello\n", "42\n", "streamreel\n"])
def test_empty_list_and_scalar_files_are_not_cassettes(text: str) -> None:
    e = error(text)
    assert e.line == 1 and "not a streamreel cassette" in e.reason


@pytest.mark.parametrize(
    "snippet, says",
    [
        ("!!python/object/apply:os.system ['touch /tmp/streamreel-pwned']", "could not determine a constructor"),
        ("!!python/object/new:subprocess.Popen [['true']]", "could not determine a constructor"),
        ("!foo bar", "could not determine a constructor for the tag '!foo'"),
    ],
)
def test_yaml_tags_are_never_executed(snippet: str, says: str) -> None:
    e = error(one(response=f"{{status: 200, body: {snippet}}}"))
    assert says in e.reason and e.line == 4
    assert not Path("/tmp/streamreel-pwned").exists()


def test_binary_tag_is_bytes_where_bytes_are_allowed_and_an_error_elsewhere() -> None:
    cassette = outcome(one(response="{status: 200, body: !!binary aGVsbG8=}"))
    assert isinstance(cassette, Cassette) and cassette.interactions[0].response.body == b"hello"
    e = error(one(response="{events: [{t: 0, data: !!binary aGVsbG8=}]}"))
    assert e.field == "interactions[0].response.events[0].data" and "bytes" in e.reason


@pytest.mark.parametrize("value", ["!!timestamp 2001-12-14x", "!!int abc", "!!float x", "!!bool maybe", "!!null x", "!!binary '%%%'"])
def test_a_value_that_does_not_fit_its_tag_names_the_field(value: str) -> None:
    e = error(one(response=f"{{status: 200, headers: {{x-a: {value}}}}}"))
    assert e.line == 4 and e.field is not None and e.field.startswith("interactions[0].response.headers"), str(e)


@pytest.mark.parametrize("value, says", [("2001-12-14", "date"), ("!!set {a, b}", "set"), (".nan", "nan"), ("{1: x}", "keys are strings")])
def test_bodies_hold_only_json_data(value: str, says: str) -> None:
    for side in ("request", "response"):
        text = one(request=f"{{body: {{a: {value}}}}}") if side == "request" else one(response=f"{{body: {{a: {value}}}}}")
        e = error(text)
        assert e.field is not None and e.field.startswith(f"interactions[0].{side}.body") and says in e.reason, str(e)


def laughs(levels: int, width: int = 10) -> str:
    lines = ["streamreel: 1", "interactions:", "- request:", "    body:", f"      l0: &l0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"      l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    lines.append("  response: {status: 200}")
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_refused_in_bounded_time_and_memory() -> None:
    tracemalloc.start()
    try:
        started = time.perf_counter()
        e = error(laughs(9))
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "aliases expand" in e.reason and e.field is not None and e.field.startswith("interactions[0].request.body.l")
    assert elapsed < 2.0 and peak < 20 * 1024 * 1024, (elapsed, peak)


def test_a_few_aliases_still_load() -> None:
    cassette = outcome(laughs(3))
    assert isinstance(cassette, Cassette)
    assert len(cassette.interactions[0].request.body["l2"]) == 10
    assert MAX_ALIAS_NODES >= 10**5


def long_string_aliased(size: int, copies: int, where: str, nest: int) -> str:
    """One long string anchored once and aliased ``copies`` times (in event data, a body, headers), under ``nest`` lists."""
    anchor = f"&big '{'x' * size}'"
    refs = ", ".join(["*big"] * copies)
    wrap = lambda inner: "[" * nest + inner + "]" * nest  # noqa: E731
    if where == "events":
        response = f"{{status: 200, events: [{{t: 0, data: {anchor}}}, {{t: 1, data: {wrap(refs)}}}]}}"
        return one(response=response)
    if where == "body":
        return one(request=f"{{body: {{a: {anchor}, b: {wrap(refs)}}}}}")
    return one(request=f"{{body: {anchor}, headers: {{x-a: *big}}}}", response=f"{{status: 200, body: {wrap(refs)}}}")


@fuzz
@given(
    size=st.integers(min_value=1024, max_value=1 << 20),
    copies=st.integers(min_value=2, max_value=1000),
    where=st.sampled_from(["events", "body", "headers"]),
    nest=st.integers(min_value=0, max_value=3),
)
def test_aliases_that_multiply_bytes_are_refused_before_anything_is_built(size: int, copies: int, where: str, nest: int) -> None:
    """A few nodes can still be a gigabyte: one long string aliased many times (which a replay would send
    in full) is refused in bounded time when the text it adds passes MAX_ALIAS_BYTES, and loads below it."""
    text = long_string_aliased(size, copies, where, nest)
    if size * copies > MAX_ALIAS_BYTES + size:
        e = error(text)
        assert "characters of text" in e.reason and e.field is not None
    else:
        try:
            bounded(lambda: loads(text, path=NAME))
        except CassetteError as e:
            assert "characters of text" not in e.reason


def test_an_alias_inside_itself_is_an_error_not_a_crash() -> None:
    e = error(one(response="{events: [{t: 0, data: &a [1, *a]}]}"))
    assert "recursive" in e.reason and e.field == "interactions[0].response.events[0].data[1]"


@pytest.mark.parametrize("opener, closer", [("[", "]"), ("{a: ", "}")])
def test_deep_nesting_is_refused(opener: str, closer: str) -> None:
    e = error(opener * 10_000 + closer * 10_000)
    assert e.line == 1 and "nesting" in e.reason
    nested = opener * (MAX_DEPTH + 5) + "1" + closer * (MAX_DEPTH + 5)
    e = error(one(request=f"{{body: {nested}}}"))
    assert f"deeper than {MAX_DEPTH}" in e.reason and e.line == 3 and e.field is not None and e.field.startswith("interactions[0].request.body")


@pytest.mark.parametrize(
    "response, field, says",
    [
        ("{status: 99999999999999999999999999}", "status", "HTTP status"),
        ("{status: " + "9" * 5000 + "}", "status", "5000 digits"),
        ("{headers_at: " + "9" * 400 + "}", "headers_at", ">= 0"),
        ("{headers_at: 1.0e+999}", "headers_at", "inf"),
        ("{headers_at: -1}", "headers_at", ">= 0"),
        ("{events: [{t: " + "9" * 1001 + ", data: x}]}", "events[0].t", "1001 digits"),
        ("{events: [{t: .nan, data: x}]}", "events[0].t", "nan"),
        ("{events: [{t: 5, data: x}, {t: 1, data: y}]}", "events[1].t", "earlier"),
        ("{events: [{t: 0, retry: -5}]}", "events[0].retry", "whole number"),
        ("{events: [], end: {t: -1.0e+308}}", "end.t", ">= 0"),
        ("{events: [{t: 1e3, data: x}]}", "events[0].t", "write 1.0e+3"),
    ],
)
def test_huge_negative_and_nan_numbers_name_the_field(response: str, field: str, says: str) -> None:
    e = error(one(response=response))
    assert e.field == f"interactions[0].response.{field}" and says in e.reason and e.line == 4, str(e)


def test_a_huge_but_finite_time_loads() -> None:
    cassette = outcome(one(response="{events: [{t: 1.0e+308, data: x}]}"))
    assert isinstance(cassette, Cassette) and cassette.interactions[0].response.events[0].t == 1e308


@pytest.mark.parametrize(
    "text, field",
    [
        ("streamreel: 1\nstreamreel: 1\n", "streamreel"),
        (one(response="{status: 200, status: 500}"), "interactions[0].response.status"),
        (one(request="{body: {model: a, model: b}}"), "interactions[0].request.body.model"),
    ],
)
def test_duplicate_keys_are_an_error_not_a_silent_overwrite(text: str, field: str) -> None:
    e = error(text)
    assert e.field == field and "duplicate key" in e.reason


@pytest.mark.parametrize(
    "response, request_, field",
    [
        ("{events: {}}", "{}", "interactions[0].response.events"),
        ("{status: 200}", "[]", "interactions[0].request"),
        ("{status: 200}", "0", "interactions[0].request"),
        ("{headers: {'bad name': x}}", "{}", "interactions[0].response.headers.bad name"),
        ("{headers: {x-a: \"a\\x01b\"}}", "{}", "interactions[0].response.headers.x-a"),
        ("{status: 200, colour: red}", "{}", "interactions[0].response.colour"),
        ("{body: x, events: []}", "{}", "interactions[0].response"),
    ],
)
def test_wrong_types_and_unknown_fields_name_the_field(response: str, request_: str, field: str) -> None:
    e = error(one(response=response, request=request_))
    assert e.field == field, str(e)


def test_interactions_that_is_a_mapping_is_an_error() -> None:
    e = error("streamreel: 1\ninteractions: {}\n")
    assert e.field == "interactions" and "list" in e.reason


@pytest.mark.parametrize(
    "raw, line",
    [
        (b"streamreel: 1\ninteractions:\n- response: {body: \xff\xfe}\n", 3),
        (b"\xef\xbb\xbfstreamreel: 1\n# caf\xe9\n", 2),
        (b"streamreel: 1\n\xc3\x28\n", 2),
    ],
)
def test_non_utf8_files_name_the_line(tmp_path: Path, raw: bytes, line: int) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(raw)
    with pytest.raises(CassetteError) as info:
        load(path)
    assert info.value.line == line and str(info.value).startswith(f"{path}:{line}: not UTF-8")


def test_control_characters_and_surrogates_name_the_line() -> None:
    e = error("streamreel: 1\n\n# x\nfoo: \x00\n")
    assert e.line == 4 and "U+0000" in e.reason
    e = error("streamreel: 1\nfoo: \ud800\n")
    assert e.line == 2 and "U+D800" in e.reason


def test_a_directory_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(CassetteError) as info:
        load(tmp_path)
    assert str(info.value).startswith(f"{tmp_path}: cannot read")


def test_bom_crlf_and_the_vcr_cassettes_in_tests_data() -> None:
    text = SEEDS["text"]
    assert outcome("\ufeff" + text.replace("\n", "\r\n")) == loads(text)
    for name, vcr in VCR_SEEDS.items():
        e = error(vcr)
        assert "not a streamreel cassette" in e.reason and "streamreel import" in e.reason, name


def test_every_bundled_cassette_still_loads_and_round_trips() -> None:
    for name, text in SEEDS.items():
        cassette = outcome(text)
        assert isinstance(cassette, Cassette) and len(cassette) >= 1, name
        assert not any(math.isnan(e.t) for i in cassette.interactions for e in i.response.events or ())
