"""Scrubbing: what becomes `<scrubbed>`, and what is left exactly as it was."""

from __future__ import annotations

import json
import re

import pytest

from streamreel.scrub import DEFAULT_HEADERS, DEFAULT_JSON_KEYS, DEFAULT_PATTERNS, MAX_ECHO_LENGTH, SCRUBBED, Scrubber, safe_url
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


# ---------------------------------------------------------------- well-known key formats (made-up keys of the real shapes)

KEYS = {
    "anthropic": "sk-ant-" "api03-Zq3xV8mB1nK7pL2wR9tY4uI6oP0aS5dF-gH8jK1lZ2xC3vB4nM5qW6eR7tY8uI9oP0aS1dF2gH3jK4lZ5xC6vB7nM8qWEAAA",
    "anthropic admin": "sk-ant-" "admin01-Qw3Er4Ty5Ui6Op7As8Df9Gh0Jk1Lz2Xc3Vb4Nm5Qw6Er7Ty8Ui9Op0AsAA",
    "openai project": "sk-proj-" "Ab3De6Gh9Jk2Mn5Pq8St1Vw4Yz7Bc0Ef3Hi6Kl9No2Qr5Tu8Wx1Za4Cd7Fg0Ij3Lm6Op9Rs2Uv5Xy8Ab1De4T3BlbkFJ",
    "openai service account": "sk-svcacct-Xy9Wv8Ut7Sr6Qp5On4Ml3Kj2Ih1Gf0Ed9Cb8Az7Yx6Wv5Ut4Sr3Qp2On1Ml0Kj",
    "openai legacy": "sk-Ab12Cd34Ef56Gh78Ij90Kl12T3BlbkFJMn34Op56Qr78St90Uv12Wx34",
    "openai-compatible": "sk-0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "openrouter": "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",
    "google": "AIzaSyD3fG5hJ7kL9zX1cV3bN5mQ7wE9rT1yU3i",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "aws temporary": "ASIAY34FZKBOKMUTVV7A",
    "hugging face": "hf_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
    "groq": "gsk_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0u1V2w3X4",
    "github": "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "xai": "xai-" + "Q1w2E3r4T5y6U7i8O9p0A1s2D3f4G5h6J7k8L9z0X1c2V3b4N5m6",
    "github fine-grained": "github_pat_11ABCDEFG0" + "a1B2c3D4e5F6g7H8i9J0" * 4,
    "slack": "xoxb-" + "1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "stripe": "sk_" + "live_" + "51H8a2bC3dE4fG5hI6jK7lM8n",
    "pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1b2c3\n-----END RSA PRIVATE KEY-----",
}


@pytest.mark.parametrize("name", sorted(KEYS))
def test_well_known_key_formats_are_scrubbed_in_text_bodies_events_and_paths(name: str) -> None:
    key = KEYS[name]
    scrub = Scrubber()
    assert scrub.text(f"Error: invalid key '{key}'.") == f"Error: invalid key '{SCRUBBED}'."
    assert scrub.text(f'{{"k":"{key}"}}') == f'{{"k":"{SCRUBBED}"}}'
    assert scrub.request_body(json.dumps({"messages": [{"role": "user", "content": f"my key is {key} ok"}]}).encode()) == {
        "messages": [{"role": "user", "content": f"my key is {SCRUBBED} ok"}]
    }
    assert key not in scrub.event(Event(t=1.0, event="content_block_delta", data=json.dumps({"text": f"you said {key}"}))).data
    assert key not in scrub.target(f"/proxy/{key}/v1/messages")
    assert key not in str(scrub.body(f"unauthorized: {key}".encode()))
    assert key not in scrub.message(f"GET /x failed: Authorization: Bearer {key}")


@pytest.mark.parametrize(
    "text",
    [
        "msg_01XFDUDYJgAACzvnptvVoYEL toolu_01A09q90qw90lq917835lq9 chatcmpl-9aBcDeFgHiJkLmNoPqRsTuVwXyZ012 req_011CQ1234567890abcdef",
        "risk-assessment-2024-q3-final-report and task-management-tool-v2-2025-release",
        "sk-learn, scikit-learn 1.5, sk-ant, sk-proj and sk- are just words here",
        "The bearer of the 2024 championship trophy, and Bearer tokens in general",
        "AIza is short; AKIA123 is short; hf_hub_download; gsk_short; xai-grok; eyJ alone",
        "claude-sonnet-4-6-20250514 gpt-4o-2024-08-06 text-embedding-3-large e5f6a7b8-c9d0-1234-5678-90abcdef1234",
        "SELECT * FROM tokens WHERE token_count > 4096; max_tokens=1024",
    ],
)
def test_default_patterns_leave_ordinary_text_alone(text: str) -> None:
    assert Scrubber().text(text) == text


def test_bearer_tokens_in_text_lose_the_token_and_keep_the_scheme() -> None:
    assert Scrubber().message("sent Authorization: Bearer abc.DEF-123_456~789/xyz== upstream") == f"sent Authorization: Bearer {SCRUBBED} upstream"


def test_every_default_pattern_has_a_key_here_so_the_quick_check_is_tested_against_it() -> None:
    for pattern in DEFAULT_PATTERNS:
        assert any(pattern.search(key) for key in [*KEYS.values(), "Bearer abc.DEF-123_456~789/xyz=="]), pattern.pattern


def test_the_defaults_are_visible_and_user_patterns_extend_them() -> None:
    scrub = Scrubber(patterns=[r"corp-[0-9]{6}"])
    assert scrub.patterns[: len(DEFAULT_PATTERNS)] == DEFAULT_PATTERNS
    assert scrub.text(f"corp-123456 {KEYS['google']}") == f"{SCRUBBED} {SCRUBBED}"
    assert Scrubber(patterns=list(scrub.patterns)) == scrub  # no default is added twice


def test_secret_json_keys_are_scrubbed_at_any_depth_whatever_their_spelling() -> None:
    body = {
        "model": "gpt-4o",
        "api_key": "proxy-key-0001",
        "max_tokens": 64,
        "metadata": {"apiKey": "proxy-key-0002", "user": {"Password": "hunter2", "tokens": 5}},
        "tools": [{"name": "db", "auth": {"access_token": "at-0003", "refresh-token": "rt-0004"}}],
        "authorization": {"type": "bearer", "token": "tok-0005"},
        "secret": 42,
    }
    out = Scrubber(json_keys=["db_dsn"]).request_body(json.dumps({**body, "extra": {"DB_DSN": "postgres://u:p@h/db"}}).encode())
    assert out["api_key"] == SCRUBBED and out["metadata"]["apiKey"] == SCRUBBED and out["metadata"]["user"]["Password"] == SCRUBBED
    assert out["tools"][0]["auth"] == {"access_token": SCRUBBED, "refresh-token": SCRUBBED}
    assert out["authorization"] == {"type": "bearer", "token": SCRUBBED}
    assert out["extra"] == {"DB_DSN": SCRUBBED}
    assert (out["model"], out["max_tokens"], out["metadata"]["user"]["tokens"], out["secret"]) == ("gpt-4o", 64, 5, 42)
    assert {"api_key", "apiKey", "password", "secret", "token", "access_token", "authorization"} <= DEFAULT_JSON_KEYS


def test_secret_json_keys_quoted_in_a_message_or_a_text_body_lose_their_value() -> None:
    scrub = Scrubber()
    assert scrub.message('body.x: recorded {"a": 1}, asked {"api_key": "pk-1234567", "a": 2}') == f'body.x: recorded {{"a": 1}}, asked {{"api_key": "{SCRUBBED}", "a": 2}}'
    assert scrub.message('asked \'{"token": "tok-12345...') == f'asked \'{{"token": "{SCRUBBED}"'
    assert scrub.request_body(b'{"api_key": "pk-1234567", "q": "x"') == f'{{"api_key": "{SCRUBBED}", "q": "x"'


def test_found_collects_a_requests_credentials_to_blank_them_elsewhere() -> None:
    import base64

    scrub = Scrubber(headers=["x-team-token"])
    found = scrub.found(
        {
            "authorization": "Bearer tok-AAAA1111",
            "proxy-authorization": "Basic " + base64.b64encode(b"me:pw-BBBB2222").decode(),
            "x-team-token": "team-CCCC3333",
            "cookie": "session=sess-DDDD4444; theme=dark",
            "x-api-key": "short",
            "user-agent": "not-a-secret-at-all",
        },
        "/v1/x?alt=sse&key=key-EEEE5555",
        json.dumps({"api_key": "body-FFFF6666", "nested": [{"password": "pass-GGGG7777"}], "content": "plain-HHHH8888"}).encode(),
    )
    assert {"tok-AAAA1111", "Bearer tok-AAAA1111", "pw-BBBB2222", "team-CCCC3333", "sess-DDDD4444", "key-EEEE5555", "body-FFFF6666", "pass-GGGG7777"} <= found
    assert not {"short", "not-a-secret-at-all", "plain-HHHH8888", "dark"} & found


@pytest.mark.parametrize("size", [MAX_ECHO_LENGTH + 1, 2_000_000])
def test_a_megabyte_key_field_is_blanked_where_it_was_carried_and_not_searched_for_elsewhere(size: int) -> None:
    """A hostile request with a huge value in a key field: searching every text for it (in each of its
    encoded forms) would take minutes per request; it is blanked where it was carried, quickly."""
    huge = ("q7Rw2" * (size // 5 + 1))[:size]
    scrub = Scrubber()
    found = scrub.found({"authorization": "Bearer " + huge}, "/v1?key=" + huge, json.dumps({"api_key": huge}).encode())
    assert found == frozenset()
    assert scrub.also(found) is scrub
    assert scrub.header_map([("authorization", "Bearer " + huge)]) == {"authorization": SCRUBBED}
    assert scrub.request_body(json.dumps({"api_key": huge}).encode()) == {"api_key": SCRUBBED}
    assert huge not in scrub.target("/v1?key=" + huge)
    at_bound = huge[:MAX_ECHO_LENGTH]
    assert at_bound in scrub.found({"x-api-key": at_bound})  # the longest echo still looked for


def test_also_blanks_literal_secrets_in_their_encoded_forms_and_never_shows_them() -> None:
    import base64
    from urllib.parse import quote

    secret = "team/CCCC+3333=x"
    scrub = Scrubber().also([secret, "tiny"])
    assert scrub.secrets == frozenset({secret})
    for form in (secret, quote(secret, safe=""), json.dumps(secret)[1:-1].replace("/", "\\/"), base64.b64encode(secret.encode()).decode().rstrip("=")):
        assert scrub.text(f"echo [{form}]") == f"echo [{SCRUBBED}]", form
    assert secret not in repr(scrub) and "CCCC" not in repr(scrub)
    assert scrub.also([secret]) is scrub
    with pytest.raises(ValueError, match=r"secret #1 is shorter than 8") as caught:
        Scrubber(secrets=["abc"])
    assert "abc" not in str(caught.value)


# ---------------------------------------------------------------- forms and query strings

from urllib.parse import quote_plus

from hypothesis import given, settings
from hypothesis import strategies as st

from streamreel.scrub import DEFAULT_FORM_KEYS, DEFAULT_QUERY_PARAMS

_SECRET_NAMES = sorted(DEFAULT_JSON_KEYS | DEFAULT_QUERY_PARAMS | DEFAULT_FORM_KEYS)
_PLAIN_NAMES = ["grant_type", "client_id", "scope", "redirect_uri", "state", "alt", "beta", "model", "max_tokens", "user", "response_type"]


def _spelling(name: str, style: int) -> str:
    """One of the spellings the JSON key rules treat as the same name."""
    return [name, name.upper(), name.replace("_", "-"), name.replace("-", "_").title(), name.replace("_", "")][style]


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(
            st.one_of(st.tuples(st.sampled_from(_SECRET_NAMES), st.integers(0, 4)), st.tuples(st.sampled_from(_PLAIN_NAMES), st.just(0))),
            st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=24),
        ),
        min_size=1,
        max_size=6,
    ),
    as_query=st.booleans(),
)
def test_form_bodies_and_query_strings_lose_the_values_of_secret_names_and_keep_every_other_byte(pairs: list, as_query: bool) -> None:
    """The JSON key rules (any case, ``_`` or ``-``) plus the credential parameters and OAuth's fields:
    refresh_token, client_secret, password, code... blanked; every other pair exactly as sent."""
    scrub = Scrubber()
    encoded = [(quote_plus(_spelling(name, style)), quote_plus(value)) for (name, style), value in pairs]
    form = "&".join(f"{k}={v}" for k, v in encoded)
    out = scrub.target(f"/oauth/token?{form}").partition("?")[2] if as_query else scrub.request_body(form.encode())
    assert isinstance(out, str)
    kept = out.split("&")
    assert len(kept) == len(encoded)
    for ((name, _), value), (k, v), got in zip(pairs, encoded, kept):
        if name in _SECRET_NAMES:
            assert got == f"{k}={SCRUBBED}"
        else:
            assert got == f"{k}={v}" or SCRUBBED in got  # a plain value that is itself key-shaped still goes
    found = scrub.found({}, f"/oauth/token?{form}", b"" if as_query else form.encode())
    assert {value for (name, _), value in pairs if name in _SECRET_NAMES and len(value) >= 8} <= found


def test_oauth_fields_are_secret_in_forms_but_code_is_not_a_secret_json_key() -> None:
    scrub = Scrubber()
    assert scrub.request_body(b"grant_type=authorization_code&code=4%2F0AX4XfWh&code_verifier=abc") == f"grant_type=authorization_code&code={SCRUBBED}&code_verifier={SCRUBBED}"
    assert scrub.request_body(json.dumps({"input": {"code": "print(1)"}, "refresh_token": "rt-1"}).encode()) == {"input": {"code": "print(1)"}, "refresh_token": SCRUBBED}
    assert scrub.message("POST https://oauth2.example.test/token?client_secret=s3cr3t&x=1 failed") == f"POST https://oauth2.example.test/token?client_secret={SCRUBBED}&x=1 failed"


def test_credentials_with_bytes_that_are_not_utf8_are_blanked_without_error() -> None:
    """aiohttp hands a header's non-UTF-8 bytes over as surrogates; the scrubber's encoded forms must not choke on them."""
    value = b"sk-\xff\xfe-team-token-123".decode("utf-8", "surrogateescape")
    scrub = Scrubber().also(Scrubber().found({"x-api-key": value}))
    assert scrub.message(f"echo {value}") == f"echo {SCRUBBED}"
    assert scrub.text(quote_plus(value.encode("utf-8", "surrogateescape"))) == SCRUBBED


# ---------------------------------------------------------------- streams, as the client reads them


@settings(max_examples=400, derandomize=True, deadline=None)
@given(
    kind=st.sampled_from(["pem", "aws", "github", "slack", "json key", "url key", "x-api-key"]),
    provider=st.sampled_from(["anthropic text", "anthropic tool json", "openai chat", "openai responses", "gemini", "plain relay"]),
    token=st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789", min_size=16, max_size=40).map(lambda t: t[:-1] + "7"),
    before=st.text(alphabet="abc xyz.,é😀\"\\\t", max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
    ascii_only=st.booleans(),
)
def test_a_stream_scrubbed_event_by_event_reads_as_its_whole_text_scrubbed(kind: str, provider: str, token: str, before: str, cuts: list[int], ascii_only: bool) -> None:
    """Scrubbing the events (any split) and then joining their text is the same as joining and then scrubbing."""
    from functools import partial

    from _secrets_helpers import echo_of, piece_of, split_stream

    echo = echo_of(kind, token)
    text = f"{before} {echo.echo} {before}".replace("\n", " ") if provider == "plain relay" else f"{before} {echo.echo} {before}"
    points = sorted({c % (len(text) + 1) for c in cuts})
    pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)])]
    events = split_stream(provider, pieces, partial(json.dumps, ensure_ascii=ascii_only))
    scrub = Scrubber().also([token])
    out = scrub.events(events)
    joined = "".join(p for p in (piece_of(provider, e) for e in out) if p is not None)
    spans = scrub._spans(text)
    expected = "".join(SCRUBBED if i % 2 else part for i, part in enumerate(_cut(text, spans)))
    assert joined == expected and echo.secret not in joined
    assert all(a is b for a, b in zip(events, out) if piece_of(provider, a) is None or piece_of(provider, a) == piece_of(provider, b))


def _cut(text: str, spans: list[tuple[int, int]]) -> list[str]:
    """``text`` cut at ``spans``: outside, inside, outside, ... (inside parts at odd positions)."""
    parts, at = [], 0
    for a, b in spans:
        parts += [text[at:a], text[a:b]]
        at = b
    return [*parts, text[at:]]


def test_a_pem_key_whose_end_never_came_is_blanked_to_the_end_of_its_string() -> None:
    """A stream cut off mid-key (the client left) must not keep the key's body."""
    cut = "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC"
    assert Scrubber().text(f'{{"text":"{cut}","n":1}}') == f'{{"text":"{SCRUBBED}","n":1}}'
    pieces = [Event(t=0, event="d", data=json.dumps({"text": "-----BEGIN PRIVATE"})), Event(t=1, event="d", data=json.dumps({"text": " KEY-----\nMIIEvQIBADANBgkq"}))]
    assert [json.loads(e.data)["text"] for e in Scrubber().events(pieces)] == [SCRUBBED, ""]
