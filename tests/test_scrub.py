"""Scrubbing: what becomes `<scrubbed>`, and what is left exactly as it was."""

from __future__ import annotations

import json
import re

import pytest

from streamreel.scrub import DEFAULT_HEADERS, SCRUBBED, Scrubber, safe_url
from streamreel.sse import Event


def test_credential_headers_are_always_scrubbed_whatever_their_case() -> None:
    scrub = Scrubber(headers=["X-Team-Token"])
    out = scrub.header_map(
        [
            ("Authorization", "Bearer sk-ant-1"),
            ("X-Api-Key", "sk-ant-2"),
            ("Cookie", "a=1"),
            ("Set-Cookie", "s=2"),
            ("Set-Cookie", "t=3"),
            ("anthropic-organization-id", "org-1"),
            ("x-team-token", "tok"),
            ("anthropic-version", "2023-06-01"),
        ]
    )
    assert out == {
        "authorization": SCRUBBED,
        "x-api-key": SCRUBBED,
        "cookie": SCRUBBED,
        "set-cookie": SCRUBBED,
        "anthropic-organization-id": SCRUBBED,
        "x-team-token": SCRUBBED,
        "anthropic-version": "2023-06-01",
    }
    assert {"authorization", "x-api-key", "cookie", "set-cookie", "anthropic-organization-id"} <= DEFAULT_HEADERS


def test_repeated_headers_are_joined_before_patterns_run() -> None:
    scrub = Scrubber(patterns=[r"id-\d+"])
    assert scrub.header_map([("Via", "a id-1"), ("via", "b")]) == {"via": f"a {SCRUBBED}, b"}


def test_patterns_scrub_every_string_in_a_json_body_and_keep_the_rest() -> None:
    scrub = Scrubber(patterns=[r"sk-[A-Za-z0-9]+", re.compile(r"\b\d{3}-\d{4}\b")])
    raw = json.dumps({"model": "m", "messages": [{"role": "user", "content": "key sk-abc123, call 555-1234"}], "n": 2}).encode()
    assert scrub.request_body(raw) == {"model": "m", "messages": [{"role": "user", "content": f"key {SCRUBBED}, call {SCRUBBED}"}], "n": 2}


def test_patterns_see_the_raw_json_text_so_they_can_span_keys() -> None:
    scrub = Scrubber(patterns=[r'"user_id":\s*"[^"]*"'])
    body = scrub.request_body(b'{"metadata": {"user_id": "u-42"}}')
    assert isinstance(body, str) and "u-42" not in body and SCRUBBED in body


def test_a_response_body_is_a_mapping_only_when_that_replays_byte_for_byte() -> None:
    scrub = Scrubber()
    assert scrub.body(b'{"type":"error","error":{"type":"overloaded_error"}}') == {"type": "error", "error": {"type": "overloaded_error"}}
    assert scrub.body(b'{"type": "error"}') == '{"type": "error"}'
    assert scrub.body(b"plain text") == "plain text"
    assert scrub.body(b"") is None
    assert scrub.body(b"\xff\xfe") == b"\xff\xfe"


def test_binary_bodies_are_scrubbed_byte_for_byte_around_the_match() -> None:
    scrub = Scrubber(patterns=[r"secret"])
    assert scrub.body(b"\xff secret \xfe") == b"\xff " + SCRUBBED.encode() + b" \xfe"


def test_events_keep_their_time_and_fields_and_lose_only_the_matches() -> None:
    scrub = Scrubber(patterns=[r"alice@example\.com"])
    ev = Event(t=12.5, event="content_block_delta", data='{"text":"mail alice@example.com"}', id="7")
    assert scrub.event(ev) == Event(t=12.5, event="content_block_delta", data=f'{{"text":"mail {SCRUBBED}"}}', id="7")
    plain = Event(t=1.0, data="x")
    assert Scrubber().event(plain) is plain


def test_bad_pattern_names_its_position_not_its_text() -> None:
    with pytest.raises(ValueError) as caught:
        Scrubber(patterns=["fine", "sk-live-(abc"])
    assert "#2" in str(caught.value) and "sk-live" not in str(caught.value)


def test_a_single_string_is_refused_rather_than_read_letter_by_letter() -> None:
    with pytest.raises(TypeError, match="take lists"):
        Scrubber(headers="x-token")  # type: ignore[arg-type]


def test_safe_url_drops_credentials_and_query() -> None:
    assert safe_url("https://user:pw@api.example.com:8443/v1?key=abc") == "https://api.example.com:8443/v1"
    assert safe_url("http://[::1]:9000") == "http://[::1]:9000"


def test_credential_query_parameters_keep_their_name_and_lose_their_value() -> None:
    scrub = Scrubber()
    assert scrub.target("/v1beta/models/g:stream?alt=sse&key=AIzaSECRET") == "/v1beta/models/g:stream?alt=sse&key=<scrubbed>"
    assert scrub.target("/stream?q=cats&Access_Token=abc") == "/stream?q=cats&Access_Token=<scrubbed>"
    assert scrub.target("/stream?q=keys") == "/stream?q=keys"
    assert scrub.target("/plain") == "/plain"


def test_messages_lose_credentials_in_urls_but_keep_the_rest() -> None:
    message = "no match for POST /v1/x?alt=sse&key=AIzaSECRET (closest: /v1/x?monkey=1)"
    assert Scrubber().message(message) == "no match for POST /v1/x?alt=sse&key=<scrubbed> (closest: /v1/x?monkey=1)"
