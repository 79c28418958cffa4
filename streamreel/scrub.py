"""Scrubbing: secrets become ``<scrubbed>`` before anything reaches a cassette, a log or an error.

A :class:`Scrubber` always blanks the headers that carry credentials (:data:`DEFAULT_HEADERS`)
plus any the user names, and replaces every match of the user's regular expressions in
header values, paths, query strings, request bodies, event data and response bodies.
The replay side treats ``<scrubbed>`` in a recorded request as a wildcard (see
:mod:`streamreel.matching`), so a request whose body held a secret still matches.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .sse import Event

__all__ = ["SCRUBBED", "DEFAULT_HEADERS", "DEFAULT_QUERY_PARAMS", "Scrubber", "safe_url"]

SCRUBBED = "<scrubbed>"
"""What a secret is replaced with."""

DEFAULT_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "cookie",
        "set-cookie",
        "anthropic-organization-id",
        "openai-organization",
        "openai-project",
    }
)
"""Headers scrubbed always: credentials (Anthropic, OpenAI, Azure, Gemini), cookies, organisation ids."""

DEFAULT_QUERY_PARAMS = frozenset({"key", "api_key", "apikey", "api-key", "access_token", "token", "sig", "signature"})
"""Query parameters whose value is scrubbed always: they carry credentials (Gemini's ``?key=``, signed URLs)."""

_QUERY_SECRET = re.compile(r"(?i)(?<![\w-])(" + "|".join(re.escape(k) for k in sorted(DEFAULT_QUERY_PARAMS)) + r")=[^&\s'\"]+")


@dataclass(frozen=True)
class Scrubber:
    """Which headers (by name, any case) and which text patterns (regular expressions) to blank.

    ``headers`` are added to :data:`DEFAULT_HEADERS`; there is no way to keep those.
    """

    headers: frozenset[str] = field(default=DEFAULT_HEADERS)
    patterns: tuple[re.Pattern[str], ...] = ()

    def __init__(self, headers: Iterable[str] = (), patterns: Iterable[str | re.Pattern[str]] = ()) -> None:
        if isinstance(headers, str) or isinstance(patterns, (str, re.Pattern)):
            raise TypeError("Scrubber(headers=..., patterns=...) take lists, e.g. headers=['x-my-token']")
        compiled = []
        for i, pattern in enumerate(patterns):
            if isinstance(pattern, re.Pattern):
                compiled.append(pattern)
                continue
            try:
                compiled.append(re.compile(pattern))
            except re.error as e:
                # The pattern itself may be a literal secret: name it by position, never echo it.
                raise ValueError(f"scrub pattern #{i + 1} is not a valid regular expression: {e.msg} at position {e.pos}") from None
        object.__setattr__(self, "headers", DEFAULT_HEADERS | {h.strip().lower() for h in headers})
        object.__setattr__(self, "patterns", tuple(compiled))

    # ------------------------------------------------------------ text

    def text(self, value: str) -> str:
        """``value`` with every pattern match replaced."""
        for pattern in self.patterns:
            value = pattern.sub(SCRUBBED, value)
        return value

    def data(self, value: Any) -> Any:
        """A JSON-like value with every string in it scrubbed."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self.data(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.data(v) for v in value]
        return value

    def message(self, value: str) -> str:
        """A log line or error message: the patterns, and any ``key=...``-style credential in a URL."""
        return _QUERY_SECRET.sub(rf"\1={SCRUBBED}", self.text(value))

    # ------------------------------------------------------------ HTTP parts

    def target(self, target: str) -> str:
        """A request path and query for the cassette: credential parameters keep their name, their
        value becomes ``<scrubbed>`` (which matches any value on replay); then the patterns."""
        path, sep, query = target.partition("?")
        if sep and any(k.lower() in DEFAULT_QUERY_PARAMS for k, _ in parse_qsl(query, keep_blank_values=True)):
            pairs = [(k, SCRUBBED if k.lower() in DEFAULT_QUERY_PARAMS else v) for k, v in parse_qsl(query, keep_blank_values=True)]
            query = urlencode(pairs, safe="<>")
        return self.text(f"{path}?{query}" if sep else path)

    def header(self, name: str, value: str) -> str:
        return SCRUBBED if name.lower() in self.headers else self.text(value)

    def header_map(self, items: Iterable[tuple[str, str]] | Mapping[str, str]) -> dict[str, str]:
        """Lower-cased, scrubbed headers; a repeated header's values are joined with ``, ``."""
        pairs = items.items() if isinstance(items, Mapping) else items
        out: dict[str, str] = {}
        for name, value in pairs:
            key = name.lower()
            out[key] = f"{out[key]}, {value}" if key in out else value
        return {k: self.header(k, v) for k, v in out.items()}

    def body(self, raw: bytes) -> Any:
        """A request or response body for the cassette: a JSON value when the bytes are JSON that
        re-serialises to the same text, else the (scrubbed) text, else bytes; None when empty."""
        if not raw:
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            if not self.patterns:
                return bytes(raw)
            return self.text(raw.decode("latin-1")).encode("latin-1")
        text = self.text(text)
        try:
            parsed = json.loads(text)
        except ValueError:
            return text
        if isinstance(parsed, (dict, list)) and json.dumps(parsed, ensure_ascii=False, separators=(",", ":")) == text:
            return self.data(parsed)
        return text

    def request_body(self, raw: bytes) -> Any:
        """A request body for matching: any JSON object or array as a value (key order and spacing do not matter)."""
        if not raw:
            return None
        try:
            parsed = json.loads(self.text(raw.decode("utf-8")))
        except (UnicodeDecodeError, ValueError):
            return self.body(raw)
        return self.data(parsed) if isinstance(parsed, (dict, list)) else self.body(raw)

    def event(self, event: Event) -> Event:
        if not self.patterns:
            return event
        text = self.text
        return replace(
            event,
            event=None if event.event is None else text(event.event),
            data=None if event.data is None else text(event.data),
            id=None if event.id is None else text(event.id),
            comment=None if event.comment is None else text(event.comment),
        )


def safe_url(url: str) -> str:
    """``url`` without user:password and without its query (which may hold a key), for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
