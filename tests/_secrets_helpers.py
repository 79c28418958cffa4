"""Made-up credentials of real shapes, an upstream that leaks them back, and the requests that carry them."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import replace
from typing import Iterable
from urllib.parse import quote, quote_plus

from _recorder_helpers import MESSAGE, capture, cassette
from streamreel.cassette import Cassette, Interaction, Request, Response

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
