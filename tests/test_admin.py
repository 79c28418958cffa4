"""The admin API under /__streamreel/: every route from Python, against a real replayer on 127.0.0.1."""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamreel import Cassette, Replayer
from streamreel.cassette import bundled, bundled_names, load, save
from streamreel.errors import CassetteNameError, NonLoopbackWarning
from streamreel.library import confine
from streamreel.recorder import Recorder
from streamreel.synth import synth_cassette

KEY = "sk-ant-api03-" + "Adm1nTestKey" * 4
START = "Hello! I'm doing well"
"""How the bundled ``text`` cassette's reply begins."""
EVENTS = len(load(bundled("text")).interactions[0].response.events or ())
"""How many events the bundled ``text`` cassette streams."""
REQUEST = {"model": "claude-test", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


def call(url: str, method: str, route: str, body: Any = None, *, raw: bytes | None = None, content_type: str = "application/json") -> tuple[int, Any, dict[str, str]]:
    """One admin call with the standard library's client; returns status, parsed JSON and headers."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url + "/__streamreel/" + route, data=data, method=method)
    if data is not None:
        req.add_header("content-type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read()), {k.lower(): v for k, v in resp.headers.items()}
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), {k.lower(): v for k, v in e.headers.items()}


def ask(url: str, **options: Any) -> str:
    with anthropic.Anthropic(base_url=url, api_key=KEY, max_retries=0, **options) as client:
        with client.messages.stream(**REQUEST) as stream:
            return stream.get_final_text()


def message_of(payload: Any) -> str:
    assert payload["type"] == "error", payload
    return str(payload["error"]["message"])


# ---------------------------------------------------------------- ground truth


def test_requests_lists_what_arrived_with_the_credentials_scrubbed() -> None:
    with Replayer(bundled("text"), speed=0) as r:
        ask(r.url)
        status, listed, _ = call(r.url, "GET", "requests")
    assert status == 200 and len(listed) == 1
    got = listed[0]
    assert (got["index"], got["method"], got["path"], got["query"]) == (0, "POST", "/v1/messages", "")
    assert got["body"] == {**REQUEST, "stream": True}
    assert got["headers"]["authorization"] == "<scrubbed>"
    assert got["headers"]["x-stainless-helper-method"] == "stream"
    assert got["body_bytes"] == len(r.requests[0].body)
    assert 0 <= got["arrived_ms"] < 60_000
    assert KEY not in json.dumps(listed)


def test_admin_calls_are_never_matched_against_the_cassette_nor_counted_as_requests() -> None:
    """Even a cassette recorded on a /__streamreel/ path does not answer it."""
    cas = Cassette.from_events(bundled_events(), path="/__streamreel/requests", method="GET")
    with Replayer(cas, speed=0) as r:
        for _ in range(3):
            status, listed, _ = call(r.url, "GET", "requests")
            assert status == 200 and listed == []
        assert r.requests == []


def bundled_events() -> tuple[Any, ...]:
    return load(bundled("text")).interactions[0].response.events or ()


def test_responses_report_the_ground_truth_of_each_response() -> None:
    with Replayer(bundled("text"), speed=0, faults="disconnect:after=5,how=close") as r:
        with pytest.raises(httpx2.RemoteProtocolError):
            ask(r.url)
        status, listed, _ = call(r.url, "GET", "responses")
        truth = r.settle()
    assert status == 200 and len(listed) == 1 == len(truth)
    got, sent = listed[0], truth[0]
    assert (got["request"], got["status"], got["events"], got["bytes"], got["ending"]) == (0, 200, sent.events_done, sent.bytes_sent, "close") == (0, 200, 5, len(sent.data), "close")
    assert [(f["spec"], f["fired"]) for f in got["faults"]] == [("disconnect:after=5,how=close", True)]
    assert got["faults"] == [o.as_dict() for o in sent.faults]
    assert got["stream"] is True and got["client_hung_up"] is False
    assert got["start_ms"] <= got["end_ms"] and got["interaction"] == 0
    assert got["error_event"] is None and got["retry_after_ms"] is None


def test_responses_waits_for_responses_in_flight_and_says_which_are_still_open() -> None:
    with Replayer(bundled("text"), speed=0, faults="stall:after=4,seconds=0.4") as r:
        worker = threading.Thread(target=ask, args=(r.url,))
        worker.start()
        try:
            status, listed, _ = call(r.url, "GET", "responses?timeout=10&requests=1")
        finally:
            worker.join(30)
    assert status == 200 and listed[0]["ending"] == "end" and listed[0]["events"] == EVENTS
    assert 350 <= listed[0]["silent_ms"] < 5000


def test_responses_times_out_with_a_504_naming_the_open_responses_and_timeout_0_shows_them() -> None:
    with Replayer(bundled("text"), speed=0, faults="stall:after=4") as r:
        with httpx2.Client(timeout=httpx2.Timeout(10, read=None)) as client:
            with client.stream("POST", r.url + "/v1/messages", json=REQUEST) as resp:
                lines = resp.iter_lines()  # kept: a for loop over iter_lines() closes the response when it breaks
                while not next(lines).startswith("event: content_block_delta"):
                    pass  # then the stream is past event 4 and silent
                status, payload, _ = call(r.url, "GET", "responses?timeout=0.2")
                assert status == 504
                assert "responses to requests [0] still in flight after 0.2s" in message_of(payload) and "?timeout=0" in message_of(payload)
                status, listed, _ = call(r.url, "GET", "responses?timeout=0")
                assert status == 200 and listed[0]["end_ms"] is None and (listed[0]["ending"], listed[0]["client_hung_up"]) == ("hang", False)
        after = r.settle()
    assert after[0].ending == "hang" and after[0].client_hung_up


def test_reset_forgets_requests_and_restarts_playback_and_fault_counts() -> None:
    with Replayer(bundled("text"), speed=0, faults="http:status=529") as r:
        with pytest.raises(anthropic.InternalServerError):
            ask(r.url)
        assert ask(r.url).startswith(START)
        status, body, _ = call(r.url, "POST", "reset")
        assert status == 200 and body == {"reset": True}
        assert call(r.url, "GET", "requests")[1] == [] and r.requests == []
        with pytest.raises(anthropic.InternalServerError):
            ask(r.url)
        listed = call(r.url, "GET", "responses")[1]
    assert [x["status"] for x in listed] == [529] and listed[0]["request"] == 0
    assert listed[0]["answered_by"] == "http:status=529"


# ---------------------------------------------------------------- load


def test_load_serves_a_bundled_cassette_by_name_with_faults_and_speed() -> None:
    with Replayer(None, speed=0) as r:
        status, body, _ = call(r.url, "POST", "load", {"cassette": "tool_use", "faults": ["http:status=529"], "speed": 0})
        assert status == 200 and body["loaded"] == "tool_use" and body["faults"] == ["http:status=529"]
        with pytest.raises(anthropic.InternalServerError):
            ask(r.url)
        with anthropic.Anthropic(base_url=r.url, api_key=KEY, max_retries=0) as client:
            with client.messages.stream(**REQUEST) as stream:
                assert stream.get_final_message().stop_reason == "tool_use"


def test_load_without_a_cassette_keeps_the_one_served_and_replaces_the_faults() -> None:
    with Replayer(bundled("text"), speed=0, faults="http:status=529") as r:
        assert call(r.url, "POST", "load", {"faults": "disconnect:after=4,how=close"})[0] == 200
        with pytest.raises(httpx2.RemoteProtocolError):
            ask(r.url)
        assert call(r.url, "POST", "load", {})[0] == 200
        assert ask(r.url).startswith(START)


def test_load_takes_the_cassette_yaml_itself() -> None:
    text = bundled("text").read_text(encoding="utf-8").replace('"text":"Hello"}', '"text":"Bonjour"}')
    with Replayer(None, speed=0) as r:
        status, body, _ = call(r.url, "POST", "load", {"cassette_yaml": text})
        assert status == 200 and body["loaded"] == "cassette_yaml" and body["interactions"] == 1
        assert ask(r.url).startswith("Bonjour! I'm doing well")


def test_load_on_a_directory_server_picks_the_cassette_for_unnamed_requests_and_the_faults_for_all(tmp_path: Path) -> None:
    save(synth_cassette("from a", seed=1), tmp_path / "a.yaml")
    save(synth_cassette("from b", seed=2), tmp_path / "sub" / "b.yaml")
    with Replayer(cassette_dir=tmp_path, speed=0) as r:
        assert call(r.url, "POST", "load", {"cassette": "sub/b"}) [0] == 200
        assert ask(r.url) == "from b"
        assert ask(r.url, default_headers={"x-streamreel-cassette": "a"}) == "from a"
        status, body, _ = call(r.url, "POST", "load", {"cassette": "a.yaml", "faults": ["http:status=529"]})
        assert status == 200 and body["loaded"] == "a.yaml"
        with pytest.raises(anthropic.InternalServerError):
            ask(r.url, default_headers={"x-streamreel-cassette": "sub/b"})
        status, body, _ = call(r.url, "POST", "load", {"faults": []})
        assert status == 200 and body["loaded"] == "a.yaml", "without a cassette, the one for unnamed requests stays"
        assert ask(r.url) == "from a"
        status, payload, _ = call(r.url, "POST", "load", {"cassette": "c"})
        assert status == 404 and "no cassette 'c' in the served directory; it holds: a.yaml, sub/b.yaml" in message_of(payload)
        status, payload, _ = call(r.url, "POST", "load", {"cassette": "text"})
        assert status == 404, "a bundled name is not a name in the served directory"
        status, payload, _ = call(r.url, "POST", "load", {"cassette_yaml": "streamreel: 1\ninteractions: []\n"})
        assert status == 400 and "by name" in message_of(payload)


HOSTILE_NAMES = ["../outside.yaml", "sub/../../outside.yaml", "/etc/passwd", "C:/x.yaml", "%2e%2e/x.yaml", "..\\x.yaml", "a\x00b", "", "."]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
@pytest.mark.parametrize("served", ["directory", "one cassette"])
def test_load_refuses_names_by_the_same_confinement_rule_as_everywhere(name: str, served: str, tmp_path: Path) -> None:
    save(synth_cassette("inside", seed=1), tmp_path / "shelf" / "in.yaml")
    save(synth_cassette("outside", seed=1), tmp_path / "outside.yaml")
    directory = tmp_path / "shelf" if served == "directory" else bundled("text").parent
    with pytest.raises(CassetteNameError) as refused:
        confine(directory, name)
    server = Replayer(cassette_dir=directory, speed=0) if served == "directory" else Replayer(bundled("text"), speed=0)
    with server as r:
        status, payload, _ = call(r.url, "POST", "load", {"cassette": name})
        assert status == 400
        assert refused.value.reason in message_of(payload)
        assert ask(r.url).startswith("inside" if served == "directory" else START), "a refused load changes nothing"


def test_load_refuses_a_symlink_that_leads_out_of_the_served_directory(tmp_path: Path) -> None:
    save(synth_cassette("inside", seed=1), tmp_path / "shelf" / "in.yaml")
    save(synth_cassette("outside", seed=1), tmp_path / "outside.yaml")
    os.symlink(tmp_path / "outside.yaml", tmp_path / "shelf" / "link.yaml")
    with Replayer(cassette_dir=tmp_path / "shelf", speed=0) as r:
        status, payload, _ = call(r.url, "POST", "load", {"cassette": "link.yaml"})
    assert status == 400 and "symlink that leads outside" in message_of(payload)


def test_an_unknown_bundled_name_is_a_404_listing_the_bundled_ones() -> None:
    with Replayer(bundled("text"), speed=0) as r:
        status, payload, _ = call(r.url, "POST", "load", {"cassette": "texts"})
    assert status == 404
    assert f"no bundled cassette 'texts' (bundled: {', '.join(bundled_names())})" in message_of(payload)


BAD_BODIES: list[tuple[Any, str]] = [
    (b"{not json", "the body is not valid JSON"),
    (b"\xff\xfe", "the body is not valid JSON"),
    ([1, 2], "must be a JSON object with the keys cassette, cassette_yaml, faults, speed, got a JSON list"),
    ({"casette": "text"}, "unknown key(s) 'casette'; load takes cassette, cassette_yaml, faults, speed"),
    ({"cassette": 3}, "cassette must be a name (a string), got a JSON number"),
    ({"cassette": "text", "cassette_yaml": "x"}, "not both"),
    ({"cassette_yaml": ["x"]}, "cassette_yaml must be the cassette's YAML text (a string), got a JSON array"),
    ({"cassette_yaml": "streamreel: 1\ninteractions:\n- response:\n    events:\n    - {t: soon, data: x}\n"}, "cassette_yaml:5: interactions[0].response.events[0].t"),
    ({"faults": {"stall": 1}}, "faults must be a list of fault specs"),
    ({"faults": ["nosuchfault"]}, "unknown fault 'nosuchfault'; known faults:"),
    ({"faults": ["stall:after=x"]}, "bad fault spec 'stall:after=x'"),
    ({"speed": -1}, "speed must be a number >= 0"),
    ({"speed": True}, "speed must be a number >= 0"),
    ({"speed": "fast"}, "speed must be a number >= 0"),
]


@pytest.mark.parametrize(("body", "message"), BAD_BODIES, ids=[m[:30] for _, m in BAD_BODIES])
def test_a_bad_load_body_is_a_400_saying_what_is_wrong_and_changes_nothing(body: Any, message: str) -> None:
    with Replayer(bundled("text"), speed=0, faults="http:status=529") as r:
        raw = body if isinstance(body, bytes) else None
        status, payload, headers = call(r.url, "POST", "load", None if raw else body, raw=raw)
        assert status == 400 and headers["content-type"].startswith("application/json")
        assert message in message_of(payload)
        with pytest.raises(anthropic.InternalServerError):
            ask(r.url)


def test_load_takes_only_json_so_a_page_cannot_post_to_it_without_a_preflight() -> None:
    with Replayer(bundled("text"), speed=0) as r:
        status, payload, _ = call(r.url, "POST", "load", raw=b"cassette=text", content_type="application/x-www-form-urlencoded")
        assert status == 415 and "Content-Type: application/json" in message_of(payload)
        status, payload, headers = call(r.url, "OPTIONS", "load")
        assert status == 403 and "cross-origin" in message_of(payload)
        assert not any(k.lower().startswith("access-control-") for k in headers)
        status, _, headers = call(r.url, "GET", "requests")
        assert status == 200 and not any(k.lower().startswith("access-control-") for k in headers)


def test_unknown_routes_are_404s_listing_the_routes_and_wrong_methods_405s() -> None:
    with Replayer(bundled("text"), speed=0) as r:
        status, payload, _ = call(r.url, "GET", "nothing?key=sk-ant-api03-" + "x" * 20)
        assert status == 404
        for route in ("GET /__streamreel/requests", "GET /__streamreel/responses", "POST /__streamreel/reset", "POST /__streamreel/load", "GET /__streamreel/verdicts"):
            assert route in message_of(payload)
        assert "sk-ant" not in message_of(payload)
        status, payload, headers = call(r.url, "POST", "requests")
        assert status == 405 and headers["allow"] == "GET" and "takes GET, not POST" in message_of(payload)
        status, payload, headers = call(r.url, "GET", "reset")
        assert status == 405 and headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("silence_s=0", "?silence_s= must be a number > 0"),
        ("silence_s=nan", "?silence_s= must be a number > 0"),
        ("max_streams=1.5", "?max_streams= must be a whole number >= 1"),
        ("max_streams=0", "?max_streams= must be a whole number >= 1"),
        ("grace_s=-1", "?grace_s= must be a number >= 0 and <= 600"),
        ("silence_s=1&silence_s=2", "?silence_s= is given 2 times"),
    ],
)
def test_bad_query_parameters_are_400s(query: str, message: str) -> None:
    with Replayer(bundled("text"), speed=0) as r:
        status, payload, _ = call(r.url, "GET", "verdicts?" + query)
    assert status == 400 and message in message_of(payload)


def test_verdicts_over_http_are_the_python_verdicts() -> None:
    from streamreel.verdicts import judge

    with Replayer(bundled("text"), speed=0, faults="error:after=4,type=overloaded_error") as r:
        with pytest.raises(anthropic.APIStatusError):
            ask(r.url)
        status, body, _ = call(r.url, "GET", "verdicts?silence_s=5&max_streams=4")
        python = judge(r, silence_s=5, max_streams=4)
    assert status == 200
    assert body == python.as_dict()
    assert body["failed"] == ["gave_up"] and body["ok"] is False
    evidence = body["verdicts"][0]["evidence"][0]
    assert evidence["requests"] == [0] and "overloaded_error sent mid-stream (5 events in all)" in evidence["detail"]


# ---------------------------------------------------------------- servers of every kind


def test_a_non_loopback_bind_still_warns_with_the_admin_api_mounted() -> None:
    """Binds 0.0.0.0 for real; the test talks to it over 127.0.0.1 only."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NonLoopbackWarning)
        with Replayer(bundled("text"), speed=0, host="0.0.0.0") as r:
            local = f"http://127.0.0.1:{r.port}"
            assert call(local, "GET", "requests")[0] == 200
    assert any(issubclass(w.category, NonLoopbackWarning) and "not loopback" in str(w.message) for w in caught)


def test_a_recorder_answers_the_admin_api_and_never_shows_the_real_key(tmp_path: Path) -> None:
    with Replayer(bundled("text"), speed=0) as upstream, Recorder(cassette=tmp_path / "c.yaml", upstream=upstream.url, speed=0) as rec:
        ask(rec.url)
        _, listed, _ = call(rec.url, "GET", "requests")
        _, responses, _ = call(rec.url, "GET", "responses")
        status, payload, _ = call(rec.url, "POST", "load", {"cassette": "text"})
    assert listed[0]["headers"]["authorization"] == "<scrubbed>" and KEY not in json.dumps(listed)
    assert responses[0]["status"] == 200 and responses[0]["events"] == EVENTS
    assert status == 409 and "a Recorder's cassette is fixed" in message_of(payload)


# ---------------------------------------------------------------- nothing leaks


SECRET_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"


@st.composite
def hostile_requests(draw: st.DrawFn) -> tuple[list[str], dict[str, str], str, bytes]:
    """A request carrying credentials wherever a client may put them, plus the credentials."""
    token = draw(st.text(SECRET_ALPHABET, min_size=16, max_size=40).filter(lambda t: any(c.isdigit() for c in t)))
    secret_key = draw(st.sampled_from(["api_key", "apiKey", "password", "client_secret", "access_token", "refresh_token", "x-api-key"]))
    known = draw(st.sampled_from(["sk-ant-api03-", "sk-proj-", "ghp_", "AIza", "hf_"])) + draw(st.text(SECRET_ALPHABET, min_size=40, max_size=44))
    if known.startswith("AIza"):
        known = known[:39]
    headers = {"content-type": "application/json"}
    where = draw(st.sampled_from(["authorization", "x-api-key", "api-key", "x-goog-api-key", "cookie", "proxy-authorization"]))
    headers[where] = {"authorization": f"Bearer {token}", "cookie": f"session={token}; theme=dark", "proxy-authorization": f"Basic {token}"}.get(where, token)
    headers["x-custom"] = draw(st.sampled_from([known, f"prefix {known} suffix"]))
    headers["last-event-id"] = known
    headers["x-streamreel-faults"] = draw(st.sampled_from(["", f"http:status=529,message={known}", "speed:0"]))
    if not headers["x-streamreel-faults"]:
        del headers["x-streamreel-faults"]
    body = {**REQUEST, "metadata": {"user": {secret_key: token}}, "note": f"my key is {known}"}
    if draw(st.booleans()):
        body["messages"] = [{"role": "user", "content": f"please use {token} and {known}"}]
    query = draw(st.sampled_from([f"key={token}", f"api_key={token}&beta=true", f"token={token}", ""]))
    path = draw(st.sampled_from(["/v1/messages", f"/v1/{known}/messages"]))
    return [token, known], headers, path + (f"?{query}" if query else ""), json.dumps(body).encode()


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=hostile_requests())
async def test_nothing_under_the_admin_prefix_shows_a_credential(case: tuple[list[str], dict[str, str], str, bytes]) -> None:
    secrets, headers, target, body = case
    async with Replayer(bundled("text"), speed=0) as r, aiohttp.ClientSession() as session:
        async with session.post(r.url + target, data=body, headers=headers) as resp:
            await resp.read()
        async with session.get(r.url + target, headers={**headers, "accept": "text/event-stream"}) as resp:
            await resp.read()
        seen = []
        for method, route, payload in [
            ("GET", "requests", None),
            ("GET", "responses", None),
            ("GET", "verdicts?silence_s=1&max_streams=1", None),
            ("POST", "load", {"cassette": secrets[1]}),
            ("POST", "load", {secrets[1]: 1}),
            ("POST", "load", {"faults": [f"http:status=529,message={secrets[1]}"]}),
            ("GET", f"nothing?key={secrets[0]}", None),
        ]:
            async with session.request(method, r.url + "/__streamreel/" + route, json=payload) as resp:
                seen.append(await resp.text())
    shown = "\n".join(seen)
    for secret in secrets:
        assert secret not in shown, f"{secret!r} shown by the admin API"
        assert secret[:24] not in shown


DOC = Path(__file__).resolve().parent.parent / "docs" / "admin.md"


def test_the_admin_doc_lists_every_check_and_route() -> None:
    from streamreel.admin import ROUTES
    from streamreel.verdicts import CHECKS

    text = DOC.read_text(encoding="utf-8")
    for check in CHECKS:
        assert f"| `{check}` |" in text
    for name, (method, _) in ROUTES.items():
        assert f"`{method} /__streamreel/{name}`" in text
