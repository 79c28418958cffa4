"""Made-up credentials of real shapes, an upstream that leaks them back, and the requests that carry them."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Iterable
from urllib.parse import quote, quote_plus

from _recorder_helpers import MESSAGE, capture, cassette
from streamreel.cassette import Cassette, End, Interaction, Request, Response
from streamreel.sse import Event

ANT = "sk-ant-" "api03-Zq3xV8mB1nK7pL2wR9tY4uI6oP0aS5dF-gH8jK1lZ2xC3vB4nM5qW6eR7tY8uI9oP0aS1dF2gH3jK4lZ5xC6vBnM8qWEAAA"
BEARER = "sk-ant-" "api03-Bearer0Token1Of2The3Sdk4Client5Kk6Ll7Mm8Nn9Oo0Pp1Qq2Rr3Ss4Tt5Uu6Vv7Ww8Xx9Yy0Zz1AaBbCcDdAA"
PROMPT = "sk-proj-" "Ab3De6Gh9Jk2Mn5Pq8St1Vw4Yz7Bc0Ef3Hi6Kl9No2Qr5Tu8Wx1Za4Cd7Fg0Ij3Lm6Op9Rs2Uv5Xy8Ab1De4T3BlbkFJ"
GOOGLE = "AIzaSyD3fG5hJ7kL9zX1cV3bN5mQ7wE9rT1yU3i"
CUSTOM = "team-7f3a9c2e5b1d4086a2f4"  # no known format: only its header name says it is secret
BODY = "proxy+key/0c9d8e7f6a5b4c3d2e1f"  # no known format: only its JSON key says it is secret
NESTED = "nested-tok-5e4d3c2b1a09"
BASIC = "basic-pw-8a7b6c5d4e3f"
SECRETS = {"x-api-key": ANT, "bearer": BEARER, "prompt": PROMPT, "query": GOOGLE, "custom header": CUSTOM, "body api_key": BODY, "nested token": NESTED, "basic password": BASIC}
TEAM_HEADER = "x-team-token"


def forms(secret: str) -> set[str]:
    """A secret as it could leak: plain, URL-encoded, JSON-escaped, base64 (alone and as a Basic credential)."""
    out = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1], json.dumps(secret)[1:-1].replace("/", "\\/")}
    out.add(base64.b64encode(secret.encode()).decode().rstrip("="))
    out.add(base64.b64encode(f"org:{secret}".encode()).decode().rstrip("="))
    return out


def leaks(texts: Iterable[str | bytes]) -> list[tuple[str, str]]:
    """Which secret (by name) turns up in which form in any of ``texts``."""
    found = []
    for text in texts:
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        for name, secret in SECRETS.items():
            found += [(name, form) for form in forms(secret) if form in text]
    return found


def leaky_upstream() -> Cassette:
    """A stream that echoes the prompt's key and the team token and sends keys in its headers; a 401 that echoes two keys."""
    streamed = capture(seed=21, gaps_ms=(1.0, 2.0), request=Request(method="POST", path="/v1/messages"))
    events = []
    echoed = False
    for ev in streamed.response.events or ():
        if ev.event == "content_block_delta" and not echoed:
            data = ev.json()
            data["delta"]["text"] = f"You pasted {PROMPT} and {CUSTOM}; never share keys."
            ev = replace(ev, data=json.dumps(data))
            echoed = True
        events.append(ev)
    headers = {**streamed.response.headers, "x-echo-key": ANT, "set-cookie": f"session={CUSTOM}; Path=/", "x-request-id": "req_011CQ1234567890abcdef"}
    streamed = replace(streamed, response=replace(streamed.response, headers=headers, events=tuple(events)))
    error = {"error": {"message": f"Incorrect API key provided: {BODY} (team {CUSTOM}).", "type": "invalid_request_error", "code": "invalid_api_key"}}
    rejected = Interaction(
        request=Request(method="POST", path="/v1/chat/completions"),
        response=Response(status=401, headers={"content-type": "application/json", "www-authenticate": f'Bearer realm="{CUSTOM}"'}, body=json.dumps(error, indent=1)),
    )
    return cassette(streamed, rejected)


def leaky_requests(*, variant: int = 0) -> list[tuple[str, str, bytes, dict[str, str]]]:
    """(method, target, body, headers) carrying every secret; ``variant`` changes each key (for the replay) and nothing else."""

    def k(secret: str) -> str:
        return secret if not variant else secret[:-4] + f"{variant:04d}"

    message = {
        **MESSAGE,
        "messages": [{"role": "user", "content": f"Here is my key {k(PROMPT)}, keep it safe"}],
        "stream": True,
        "api_key": k(BODY),
        "metadata": {"user_id": "u-1", "auth": {"token": k(NESTED)}},
    }
    chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "apiKey": k(BODY)}
    basic = base64.b64encode(f"org:{k(BASIC)}".encode()).decode()
    return [
        (
            "POST",
            f"/v1/messages?beta=true&key={k(GOOGLE)}",
            json.dumps(message).encode(),
            {"x-api-key": k(ANT), "authorization": f"Bearer {k(BEARER)}", TEAM_HEADER: k(CUSTOM), "content-type": "application/json"},
        ),
        ("POST", "/v1/chat/completions", json.dumps(chat).encode(), {"authorization": f"Basic {basic}", TEAM_HEADER: k(CUSTOM), "content-type": "application/json"}),
    ]


async def garbage_upstream() -> tuple[asyncio.AbstractServer, str]:
    """An upstream that answers every request with a broken status line: aiohttp's error then quotes the full URL."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 banana\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


# ---------------------------------------------------------------- secrets streamed back in pieces

SPLIT_KINDS = ("bearer", "x-api-key", "api-key", "x-goog-api-key", "query key", "url key", "body secret", "form secret", "aws", "github", "slack", "pem", "json key")
"""Every kind of secret the scrubber knows, as an upstream could echo it back."""

SPLIT_PROVIDERS = ("anthropic text", "anthropic tool json", "openai chat", "openai responses", "gemini", "plain relay")


@dataclass(frozen=True)
class Echo:
    """A secret of one kind, how the request carries it (if it does), and how the upstream echoes it."""

    kind: str
    secret: str
    echo: str
    allowed: frozenset[str]  # what the echo may become once scrubbed
    headers: dict[str, str]
    target: str
    body: bytes


def echo_of(kind: str, token: str) -> Echo:
    """``token`` (random key characters) as a secret of ``kind``."""
    from streamreel.scrub import SCRUBBED as S

    plain = frozenset({S})
    json_body = json.dumps({**MESSAGE, "stream": True}).encode()
    carried = {
        "bearer": ({"authorization": f"Bearer {token}"}, "/v1/messages", json_body, f"Bearer {token}", frozenset({S, f"Bearer {S}"})),
        "x-api-key": ({"x-api-key": token}, "/v1/messages", json_body, token, plain),
        "api-key": ({"api-key": token}, "/v1/messages", json_body, token, plain),
        "x-goog-api-key": ({"x-goog-api-key": token}, "/v1/messages", json_body, token, plain),
        "query key": ({}, f"/v1/messages?alt=sse&key={token}", json_body, token, plain),
        "body secret": ({}, "/v1/messages", json.dumps({**MESSAGE, "stream": True, "api_key": token}).encode(), token, plain),
        "form secret": ({"content-type": "application/x-www-form-urlencoded"}, "/oauth/token", f"grant_type=refresh_token&refresh_token={token}&client_id=me".encode(), token, plain),
    }
    if kind in carried:
        headers, target, body, echo, allowed = carried[kind]
        headers = {"content-type": "application/json", **headers}
        return Echo(kind, token, echo, allowed, headers, target, body)
    shaped = {
        "url key": (token, f"https://api.example.test/v1/models?alt=sse&key={token}", frozenset({f"https://api.example.test/v1/models?alt=sse&key={S}"})),
        "aws": (f"AKIA{token.upper()[:16].ljust(16, '7')}", None, plain),
        "github": (f"ghp_{(token * 3)[:36]}", None, plain),
        "slack": (f"xoxb-{token}-{token[::-1]}", None, plain),
        "pem": (
            f"-----BEGIN RSA PRIVATE KEY-----\nMIIEow{token}\n{token[::-1]}==\n-----END RSA PRIVATE KEY-----",
            None,
            plain,
        ),
        "json key": (token, f'{{"client_secret": "{token}", "grant": "x"}}', frozenset({f'{{"client_secret": "{S}", "grant": "x"}}'})),
    }
    secret, echo, allowed = shaped[kind]
    return Echo(kind, secret, echo or secret, allowed, {"content-type": "application/json"}, "/v1/messages", json.dumps({**MESSAGE, "stream": True}).encode())


def split_stream(provider: str, pieces: list[str], dumps: Any) -> tuple[Event, ...]:
    """A stream whose client-read text is ``pieces`` joined, one piece per event, framed as ``provider`` frames it."""

    def ev(name: str | None, payload: Any) -> Event:
        return Event(t=float(len(events)), event=name, data=payload if isinstance(payload, str) else dumps(payload))

    events: list[Event] = []
    if provider.startswith("anthropic"):
        tool = provider == "anthropic tool json"
        events.append(ev("message_start", {"type": "message_start", "message": {"id": "msg_01", "type": "message", "role": "assistant", "content": []}}))
        block = {"type": "tool_use", "id": "toolu_01", "name": "t", "input": {}} if tool else {"type": "text", "text": ""}
        events.append(ev("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}))
        for piece in pieces:
            delta = {"type": "input_json_delta", "partial_json": piece} if tool else {"type": "text_delta", "text": piece}
            events.append(ev("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}))
        events.append(ev("content_block_stop", {"type": "content_block_stop", "index": 0}))
        events.append(ev("message_stop", {"type": "message_stop"}))
    elif provider == "openai chat":
        for piece in pieces:
            events.append(ev(None, {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": piece}}]}))
        events.append(ev(None, "[DONE]"))
    elif provider == "openai responses":
        for piece in pieces:
            events.append(ev("response.output_text.delta", {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": piece}))
        events.append(ev("response.completed", {"type": "response.completed"}))
    elif provider == "gemini":
        for piece in pieces:
            events.append(ev(None, {"candidates": [{"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}]}))
    else:
        events += [ev("token", piece) for piece in pieces]
    return tuple(events)


def piece_of(provider: str, event: Event) -> str | None:
    """The client-read text one event of :func:`split_stream` carries (None for framing events)."""
    if provider == "plain relay":
        return event.data if event.event == "token" else None
    data = event.json(default=None)
    if not isinstance(data, dict):
        return None
    if provider.startswith("anthropic"):
        delta = data.get("delta") or {}
        return delta.get("text", delta.get("partial_json")) if data.get("type") == "content_block_delta" else None
    if provider == "openai chat":
        return data["choices"][0]["delta"]["content"]
    if provider == "openai responses":
        return data.get("delta")
    return data["candidates"][0]["content"]["parts"][0]["text"]


def with_piece(provider: str, event: Event, text: str, dumps: Any) -> str:
    """``event``'s data with its piece replaced by ``text``, serialised as the upstream serialised it."""
    if provider == "plain relay":
        return text
    data = event.json()
    if provider.startswith("anthropic"):
        delta = data["delta"]
        delta["text" if "text" in delta else "partial_json"] = text
    elif provider == "openai chat":
        data["choices"][0]["delta"]["content"] = text
    elif provider == "openai responses":
        data["delta"] = text
    else:
        data["candidates"][0]["content"]["parts"][0]["text"] = text
    return dumps(data)


def assert_blanked_in_pieces(provider: str, events: tuple[Event, ...], kept: tuple[Event, ...], echo: Echo, before: str, after: str, dumps: Any) -> None:
    """What a cassette written from a stream of :func:`split_stream` must hold: the same events,
    whose joined text reads ``before``, the secret blanked, ``after``; every event the secret did
    not touch byte for byte as sent, the others changed only in their piece of text."""
    from streamreel.scrub import SCRUBBED as S

    assert [e.event for e in kept] == [e.event for e in events]
    got = [piece_of(provider, e) for e in kept]
    joined = "".join(p for p in got if p is not None)
    assert joined.startswith(f"{before} ") and joined.endswith(f" {after}"), joined
    assert joined[len(before) + 1 : len(joined) - len(after) - 1] in echo.allowed
    for original, written, piece in zip(events, kept, got):
        if piece is None or piece == piece_of(provider, original):
            assert written.data == original.data  # untouched, byte for byte
        else:
            assert written.data == with_piece(provider, original, piece, dumps)  # only the piece's text changed
            assert S in piece or piece == "" or S in joined


def echoed_text(provider: str, echo: Echo, before: str, after: str, cuts: Iterable[float]) -> tuple[Echo, str, list[str]] | None:
    """The text an upstream streams back (``before``, the echo, ``after``) and its pieces at ``cuts``
    (fractions of its length), with the echo as the provider can carry it; None when the draw
    cannot be streamed as plain relay text (one piece that is itself a JSON value is a JSON
    event, whose strings are read as JSON, not as text)."""
    if provider == "plain relay":  # raw CR/LF in a plain data line would be SSE framing, not text
        before, after = before.replace("\n", " "), after.replace("\n", " ")
        echo = replace(echo, echo=echo.echo.replace("\n", " "), secret=echo.secret.replace("\n", " "))
    text = f"{before} {echo.echo} {after}"
    points = sorted({round(c * len(text)) for c in cuts})
    pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)])]
    if provider == "plain relay" and any(_is_json_container(p) for p in pieces):
        return None
    return echo, text, pieces


@dataclass(frozen=True)
class SplitEcho:
    """One draw of the split-secret fuzzers: an echo streamed back as ``events`` (JSON written by ``dumps``)."""

    echo: Echo
    events: tuple[Event, ...]
    before: str
    after: str
    dumps: Any

    def upstream(self) -> Interaction:
        """A recorded upstream that answers the echo's request with these events."""
        return Interaction(
            request=Request(method="POST", path=self.echo.target.partition("?")[0]),
            response=Response(status=200, headers={"content-type": "text/event-stream"}, headers_at=1.0, events=self.events, end=End(t=float(len(self.events)), reason="complete")),
        )

    def assert_kept_out_of(self, written: str, provider: str, kept: tuple[Event, ...]) -> None:
        """The written cassette holds the secret nowhere, and ``kept`` (its events) read as :func:`assert_blanked_in_pieces` says."""
        secret = self.echo.secret
        assert secret not in written and secret.replace("\n", "\\n") not in written
        assert leaks([written]) == []
        assert_blanked_in_pieces(provider, self.events, kept, self.echo, self.before, self.after, self.dumps)


def split_echo(kind: str, provider: str, token: str, before: str, after: str, cuts: Iterable[float], *, ascii_only: bool, spaced: bool = True) -> SplitEcho | None:
    """A secret of ``kind`` echoed between ``before`` and ``after``, cut at ``cuts`` and framed as ``provider``
    frames its text, JSON ASCII-only or not, spaced or compact; None when it cannot be streamed (see :func:`echoed_text`)."""
    drawn = echoed_text(provider, echo_of(kind, token), before, after, cuts)
    if drawn is None:
        return None
    echo, _, pieces = drawn
    if provider == "plain relay":
        before, after = before.replace("\n", " "), after.replace("\n", " ")
    dumps = partial(json.dumps, ensure_ascii=ascii_only, separators=(", ", ": ") if spaced else (",", ":"))
    return SplitEcho(echo, split_stream(provider, pieces, dumps), before, after, dumps)


def _is_json_container(text: str) -> bool:
    try:
        return isinstance(json.loads(text), (dict, list))
    except ValueError:
        return False


def _strategies() -> tuple[Any, Any, Any]:
    from hypothesis import strategies as st

    safe = st.text(alphabet="abcdefghij klmno.,!?é😀\"\\\n\t", max_size=30)
    token = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789", min_size=16, max_size=40).map(lambda t: t[:-1] + "7")
    cuts = st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=6)
    return safe, token, cuts


SAFE_TEXT, TOKENS, CUTS = _strategies()
"""The split-secret fuzzers' draws: text around the echo (quotes, backslashes, newlines and
non-ASCII to escape, nothing key-shaped), random key characters, and where to split (fractions
of the text's length)."""
