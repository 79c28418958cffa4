from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from streamreel.cassette import (
    Cassette,
    End,
    Event,
    Interaction,
    Request,
    Response,
    bundled,
    bundled_names,
    dumps,
    load,
    loads,
    save,
)
from streamreel.errors import CassetteError

PADDED = '{"type":"content_block_stop","index":0        }'


def sample() -> Cassette:
    events = (
        Event(t=380.1, event="message_start", data='{"type":"message_start"}'),
        Event(t=391.7, event="content_block_delta", data='{"text":"héllo 👋 \\"quoted\\""}'),
        Event(t=402.0, comment="ping"),
        Event(t=410.0, event="content_block_stop", data=PADDED),
        Event(t=420.5, data="line one\nline two", id="7", retry=3000),
        Event(t=421.0, data=" leading and trailing spaces  "),
    )
    return Cassette(
        interactions=(
            Interaction(
                request=Request(method="POST", path="/v1/messages?beta=true", headers={"anthropic-version": "2023-06-01"}, body={"model": "m", "messages": [{"role": "user", "content": "multi\nline"}]}),
                response=Response(status=200, headers={"request-id": "req_1"}, headers_at=212.4, events=events, end=End(t=1811.3, reason="upstream_disconnect")),
            ),
            Interaction(request=Request(method="POST", path="/v1/messages"), response=Response(status=529, body='{"type":"error"}')),
        ),
        faults=("speed:2",),
    )


def test_save_then_load_round_trips_every_field(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    save(sample(), path)
    assert load(path) == sample()


def test_data_is_kept_verbatim_including_padding_and_unicode(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    save(sample(), path)
    events = load(path).interactions[0].response.events
    assert events is not None
    assert events[3].data == PADDED
    assert events[3].wire == f"event: content_block_stop\ndata: {PADDED}\n\n".encode()
    assert "héllo 👋" in path.read_text(encoding="utf-8")


def test_events_are_written_one_per_line(tmp_path: Path) -> None:
    text = dumps(sample())
    assert "    - {t: 380.1, event: message_start, data: '{\"type\":\"message_start\"}'}" in text


def test_hand_written_cassette_may_give_data_as_mapping_and_omit_times() -> None:
    cas = loads(
        """
streamreel: 1
interactions:
- response:
    events:
    - {event: message_start, data: {type: message_start, n: 1}}
    - {t: 5, event: message_stop, data: {type: message_stop}}
"""
    )
    events = cas.interactions[0].response.events
    assert events is not None
    assert events[0] == Event(t=0.0, event="message_start", data='{"type":"message_start","n":1}')
    assert cas.interactions[0].request == Request()
    assert cas.interactions[0].response.end == End(t=None, reason="complete")


@pytest.mark.parametrize(
    ("text", "line", "field", "reason"),
    [
        (
            "streamreel: 1\ninteractions:\n- response:\n    events:\n    - {t: 1, data: x}\n    - {t: 2, data: y}\n    - {t: 3, data: z}\n    - {t: abc, data: w}\n",
            8,
            "interactions[0].response.events[3].t",
            "expected a number, got a string ('abc')",
        ),
        (
            "streamreel: 1\ninteractions:\n- response:\n    status: 200\n    evnets: []\n",
            5,
            "interactions[0].response.evnets",
            "unknown field 'evnets'",
        ),
        (
            "streamreel: 1\ninteractions:\n- response:\n    events: []\n    end: {reason: crashed}\n",
            5,
            "interactions[0].response.end.reason",
            "expected one of complete, upstream_disconnect, client_cancel, timeout",
        ),
        (
            "streamreel: 1\ninteractions:\n- response:\n    events:\n    - {t: 5, data: a}\n    - {t: 4, data: b}\n",
            6,
            "interactions[0].response.events[1].t",
            "earlier than the event before it",
        ),
        ("streamreel: 1\ninteractions:\n- response:\n    status: 99\n", 4, "interactions[0].response.status", "expected an HTTP status code"),
        ("streamreel: 1\nfaults:\n- speed:2\n- nosuchfault:x=1\n", 4, "faults[1]", "unknown fault 'nosuchfault'"),
        ("streamreel: 1\ninteractions:\n- request: {method: GET}\n", 3, "interactions[0]", "missing field 'response'"),
        ("streamreel: 1\ninteractions:\n- response:\n    events:\n    - {t: 1}\n", 5, "interactions[0].response.events[0]", "needs at least one of"),
    ],
)
def test_bad_cassette_error_names_file_line_and_field(tmp_path: Path, text: str, line: int, field: str, reason: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(CassetteError) as info:
        load(path)
    err = info.value
    assert (err.path, err.line, err.field) == (str(path), line, field)
    assert reason in str(err)
    assert str(err).startswith(f"{path}:{line}: {field}: ")


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("streamreel: 1\ninteractions:\n- response: {status: 200\n")
    with pytest.raises(CassetteError, match=r"x\.yaml:\d+: not valid YAML"):
        load(path)


def test_yaml_tags_are_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "x.yaml"
    path.write_text(f"streamreel: 1\ninteractions: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(CassetteError, match=r"x\.yaml:2: not valid YAML"):
        load(path)
    assert not marker.exists()


def test_file_without_version_suggests_import(tmp_path: Path) -> None:
    path = tmp_path / "vcr.yaml"
    path.write_text("interactions: []\nversion: 1\n")
    with pytest.raises(CassetteError, match="streamreel import"):
        load(path)


def test_newer_version_is_refused_clearly() -> None:
    with pytest.raises(CassetteError, match="unsupported cassette version 2"):
        loads("streamreel: 2\ninteractions: []\n")


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(CassetteError, match="nope.yaml: no such file"):
        load(tmp_path / "nope.yaml")


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.yaml"
    save(sample(), path)
    before = path.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", broken_replace)
    smaller = replace(sample(), interactions=sample().interactions[:1])
    with pytest.raises(OSError, match="disk gone"):
        save(smaller, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.yaml"]


def test_comment_lines_go_on_top_and_load_ignores_them(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    save(sample(), path, comment="source: somewhere (MIT)\nsecond line")
    assert path.read_text().startswith("# source: somewhere (MIT)\n# second line\nstreamreel: 1\n")
    assert load(path) == sample()


@pytest.mark.parametrize("name", bundled_names())
def test_bundled_cassettes_load_and_end_complete(name: str) -> None:
    cas = load(bundled(name))
    res = cas.interactions[0].response
    assert res.events and res.end.reason == "complete"
    assert [e.t for e in res.events] == sorted(e.t for e in res.events)


def _reply(events) -> str:
    """What the stream says: its text (Anthropic text deltas, OpenAI content) or else its tool input."""
    text, tool = "", ""
    for e in events:
        payload = json.loads(e.data) if isinstance(e.data, str) and e.data.startswith("{") else {}
        delta = payload.get("delta") if isinstance(payload.get("delta"), dict) else {}
        text += delta.get("text", "") + "".join((c.get("delta") or {}).get("content") or "" for c in payload.get("choices") or [])
        tool += delta.get("partial_json", "")
    return text or tool


@pytest.mark.parametrize("name", bundled_names())
def test_bundled_cassettes_hold_a_whole_conversation_from_its_first_event(name: str) -> None:
    events = load(bundled(name)).interactions[0].response.events
    first, last = json.loads(events[0].data), events[-1].data
    assert first.get("type") == "message_start" or first["choices"][0]["delta"].get("role") == "assistant"
    assert events[-1].event == "message_stop" or last == "[DONE]"
    reply = _reply(events)
    assert reply and not reply[0].isspace() and not reply[0].islower(), f"{name} starts mid-sentence: {reply[:40]!r}"


def test_bundled_names_cover_the_documented_set() -> None:
    assert {"text", "tool_use", "thinking", "pings", "openai_chat"} <= set(bundled_names())
    with pytest.raises(CassetteError, match="bundled: "):
        bundled("nope")


def test_line_endings_are_written_once_per_response_and_per_event_only_where_they_differ() -> None:
    events = [
        Event(t=1, data="a", line_ending="\r\n"),
        Event(t=2, data="b", line_ending="\r\n"),
        Event(t=3, event="x", data="c"),
        Event(t=4, data="d\ne", line_ending=("\r\n", "\n", "\r")),
    ]
    text = dumps(Cassette.from_events(events))
    assert "    line_ending: crlf\n    events:\n" in text
    assert "    - {t: 3, event: x, data: c, line_ending: lf}\n" in text
    assert "line_ending: [crlf, lf, cr]}" in text
    assert loads(text).interactions[0].response.events == tuple(events)
    assert "line_ending" not in dumps(Cassette.from_events([Event(t=1, data="a")]))


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ("    line_ending: crlf\n    body: x\n", "interactions[0].response.line_ending", "this response has no events"),
        ("    line_ending: CRLF\n    events: []\n", "interactions[0].response.line_ending", "expected one of lf, crlf, cr, got a string ('CRLF')"),
        ("    events:\n    - {data: a, line_ending: [lf]}\n", "interactions[0].response.events[0].line_ending", "1 line ends for an event of 2 lines"),
        ("    events:\n    - {data: a, line_ending: [lf, lf, 7]}\n", "interactions[0].response.events[0].line_ending[2]", "expected one of lf, crlf, cr"),
        ("    events:\n    - {data: a, line_ending: [cr, lf]}\n", "interactions[0].response.events[0].line_ending", "one crlf on the wire"),
    ],
)
def test_a_bad_line_ending_names_its_field(body: str, field: str, reason: str) -> None:
    with pytest.raises(CassetteError) as info:
        loads("streamreel: 1\ninteractions:\n- response:\n" + body, path="c.yaml")
    assert info.value.field == field
    assert reason in str(info.value)


@pytest.mark.parametrize(
    ("path", "route", "query"),
    [("/v1/messages?beta=true", "/v1/messages", "beta=true"), ("//[x]/a?q=1", "//[x]/a", "q=1"), ("//host:99", "//host:99", ""), ("/a#frag?x", "/a", "")],
)
def test_a_request_path_splits_into_route_and_query_without_a_host(path: str, route: str, query: str) -> None:
    request = Request(method="GET", path=path)
    assert (request.route, request.query) == (route, query)
