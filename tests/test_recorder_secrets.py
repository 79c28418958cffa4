"""No secret reaches a cassette, a log line, an error message or a repr, wherever the request or the upstream put it."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest
from _recorder_helpers import files_under, raw_request
from _secrets_helpers import BODY, CUSTOM, GOOGLE, NESTED, PROMPT, SECRETS, TEAM_HEADER, garbage_upstream, leaks, leaky_requests, leaky_upstream

from streamreel import Replayer, load
from streamreel.recorder import Recorder
from streamreel.scrub import SCRUBBED, Scrubber


async def test_keys_in_headers_query_body_prompt_and_upstream_echoes_reach_nothing_written_or_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, at every level
    out = tmp_path / "cassettes" / "secret.yaml"
    async with Replayer(leaky_upstream(), speed=0, ignore_query=("beta", "key")) as up:
        async with Recorder(upstream=up.url, cassette=out, mode="all", scrub=Scrubber(headers=[TEAM_HEADER])) as rec:
            replies = [await raw_request(rec.url, m, t, body=b, headers=h) for m, t, b, h in leaky_requests()]
            await rec.asettle()
    streamed, rejected = replies
    assert (streamed.status, streamed.ended, rejected.status) == (200, "end", 401)
    assert PROMPT.encode() in streamed.body and BODY.encode() in rejected.body  # the client got the upstream's answer as it was
    assert up.requests[0].headers["x-api-key"] and TEAM_HEADER in up.requests[1].headers  # and the upstream got the credentials

    assert files_under(tmp_path) == [out]
    assert leaks([out.read_bytes()]) == []
    assert leaks([caplog.text, *(r.getMessage() for r in caplog.records)]) == []
    assert "recorded POST /v1/messages?beta=true&key=<scrubbed> -> 200" in caplog.text
    assert leaks([repr(rec.requests), repr(rec.recorded), repr(rec.cassette), repr(rec.scrubber)]) == []

    first, second = load(out).interactions
    assert first.request.path == f"/v1/messages?beta=true&key={SCRUBBED}"
    assert {first.request.headers[h] for h in ("x-api-key", "authorization", TEAM_HEADER)} == {SCRUBBED}
    assert first.request.body["api_key"] == SCRUBBED and first.request.body["metadata"] == {"user_id": "u-1", "auth": {"token": SCRUBBED}}
    assert first.request.body["messages"][0]["content"] == f"Here is my key {SCRUBBED}, keep it safe"
    assert first.response.headers["x-echo-key"] == SCRUBBED and first.response.headers["x-request-id"] == "req_011CQ1234567890abcdef"
    assert f"You pasted {SCRUBBED} and {SCRUBBED}; never share keys." in "".join(e.data or "" for e in first.response.events or ())
    assert second.request.headers["authorization"] == SCRUBBED and second.request.body["apiKey"] == SCRUBBED
    assert second.response.status == 401 and f"Incorrect API key provided: {SCRUBBED} (team {SCRUBBED})." in second.response.body
    assert second.response.headers["www-authenticate"] == f'Bearer realm="{SCRUBBED}"'

    # the scrubbed cassette answers the same requests made with other keys: <scrubbed> matches anything
    async with Replayer(out, speed=0) as again:
        replayed = [await raw_request(again.url, m, t, body=b, headers=h) for m, t, b, h in leaky_requests(variant=1)]
    assert [r.status for r in replayed] == [200, 401]
    assert replayed[0].ended == "end" and replayed[0].body.count(b"\n\n") == len(first.response.events or ())
    assert json.loads(replayed[1].body)["error"]["code"] == "invalid_api_key"


async def test_error_messages_the_recorder_makes_carry_no_key(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A broken upstream (aiohttp's error quotes the URL with ?key=), an unreachable one, and a 404 explaining the closest match."""
    caplog.set_level(logging.DEBUG)
    method, target, body, headers = leaky_requests()[0]
    server, garbage_url = await garbage_upstream()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_url = f"http://127.0.0.1:{s.getsockname()[1]}"
    messages = []
    async with server:
        for url in (garbage_url, closed_url):
            async with Recorder(upstream=url, cassette=tmp_path / "none.yaml", mode="all", scrub=Scrubber(headers=[TEAM_HEADER])) as rec:
                reply = await raw_request(rec.url, method, target, body=body, headers=headers)
                await rec.asettle()
            assert reply.status == 502
            messages.append(json.loads(reply.body)["error"]["message"])
    assert "failed: ClientResponseError" in messages[0] and "key=<scrubbed>" in messages[0]  # the URL is there, the key is not
    assert "Cannot connect" in messages[1] or "ClientConnectorError" in messages[1]
    assert not (tmp_path / "none.yaml").exists()

    # mode none: the 404 explains the closest recorded request, quoting what was asked
    async with Replayer(leaky_upstream(), speed=0, ignore_query=("beta", "key")) as up:
        async with Recorder(upstream=up.url, cassette=tmp_path / "c.yaml", mode="all") as rec:
            await raw_request(rec.url, method, target, body=body, headers=headers)
    other = json.loads(body)
    other["metadata"]["user_id"] = "u-2"
    other["messages"][0]["content"] = f"A different question with {PROMPT} and {CUSTOM}"
    async with Recorder(cassette=tmp_path / "c.yaml", mode="none", scrub=Scrubber(headers=[TEAM_HEADER])) as rec:
        missed = await raw_request(rec.url, method, target, body=json.dumps(other).encode(), headers=headers)
    assert missed.status == 404
    explained = json.loads(missed.body)["error"]["message"]
    assert "closest recorded" in explained and "body." in explained
    messages.append(explained)
    assert leaks(messages) == []
    assert leaks([caplog.text]) == []


def test_the_recorders_secret_literals_cover_every_credential_the_request_carried() -> None:
    """The unknown-format secrets (a team token, a proxy key in the body) are only found because the request named them."""
    method, target, body, headers = leaky_requests()[0]
    found = Scrubber(headers=[TEAM_HEADER]).found(headers, target, body)
    assert {CUSTOM, BODY, NESTED, GOOGLE} <= found
    assert set(SECRETS.values()) - {PROMPT, SECRETS["basic password"]} <= found
    assert leaks([repr(Scrubber().also(found))]) == []  # the repr does not show them


async def test_a_replayers_404_explanation_quotes_the_request_without_its_keys(tmp_path: Path) -> None:
    """A test runner prints the SDK's NotFoundError, and CI keeps the log: the closest-match explanation must not carry the key."""
    async with Replayer(leaky_upstream(), speed=0) as up:
        method, target, body, headers = leaky_requests()[0]
        missed = await raw_request(up.url, method, target, body=body, headers={**headers, "x-api-key": CUSTOM})
    explained = json.loads(missed.body)["error"]["message"]
    assert missed.status == 404 and "query: recorded (none), asked key=<scrubbed>" in explained
    assert leaks([explained]) == []


# ---------------------------------------------------------------- secrets streamed back in pieces

import asyncio

from _recorder_helpers import cassette as one_cassette
from _secrets_helpers import CUTS, SAFE_TEXT, SPLIT_KINDS, SPLIT_PROVIDERS, TOKENS, piece_of, split_echo
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from streamreel.sse import decode



@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    kind=st.sampled_from(SPLIT_KINDS),
    provider=st.sampled_from(SPLIT_PROVIDERS),
    token=TOKENS,
    before=SAFE_TEXT,
    after=SAFE_TEXT,
    cuts=CUTS,
    ascii_only=st.booleans(),
    spaced=st.booleans(),
)
def test_a_secret_streamed_back_in_pieces_is_blanked_in_each_piece_and_nothing_else_changes(
    tmp_path_factory: pytest.TempPathFactory, kind: str, provider: str, token: str, before: str, after: str, cuts: list[float], ascii_only: bool, spaced: bool
) -> None:
    """The upstream echoes a secret of each kind across events at random split points, framed as each
    provider frames its text; the real recorder writes a cassette where the joined text reads the
    same with the secret blanked, and every byte of every event outside it is as the upstream sent it."""
    drawn = split_echo(kind, provider, token, before, after, cuts, ascii_only=ascii_only, spaced=spaced)
    assume(drawn is not None)
    assert drawn is not None
    echo, upstream = drawn.echo, drawn.upstream()
    out = tmp_path_factory.mktemp("split") / "c.yaml"

    async def record() -> None:
        async with Replayer(one_cassette(upstream), speed=0, ignore_query=("alt", "key"), match_on=("method", "path")) as up:
            async with Recorder(upstream=up.url, cassette=out, mode="all") as rec:
                reply = await raw_request(rec.url, "POST", echo.target, body=echo.body, headers=echo.headers)
                await rec.asettle()
        assert reply.status == 200
        assert echo.secret in "".join(p for p in (piece_of(provider, e) for e in decode(reply.body)) if p is not None)  # the client got it as sent

    asyncio.run(record())
    drawn.assert_kept_out_of(out.read_text(encoding="utf-8"), provider, load(out).interactions[0].response.events or ())
