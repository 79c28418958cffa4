"""Scrubbing: secrets become ``<scrubbed>`` before anything reaches a cassette, a log or an error.

A :class:`Scrubber` always blanks the headers that carry credentials (:data:`DEFAULT_HEADERS`)
plus any the user names, the values of credential query parameters (:data:`DEFAULT_QUERY_PARAMS`)
and of JSON keys whose name says secret, at any depth of a request body (:data:`DEFAULT_JSON_KEYS`),
and every match of the well-known credential formats (:data:`DEFAULT_PATTERNS`) and of the user's
regular expressions in header values, paths, query strings, request bodies, event data, response
bodies, log lines and error messages. A credential seen in one place of a request (a header, the
query, a secret JSON key) is a literal secret too (:meth:`Scrubber.found`, :meth:`Scrubber.also`),
so an upstream that echoes it back in an error body does not leak it, whatever its format.
Query strings and form-encoded bodies follow the same key rules as JSON (plus OAuth's form
fields, :data:`DEFAULT_FORM_KEYS`). A stream is also scrubbed as its client reads it
(:meth:`Scrubber.events`): the text of each content block, tool call or plain-text stream,
joined across its events, so a secret streamed back in pieces is blanked in every piece while
every other byte of every event stays as it was.
The replay side treats ``<scrubbed>`` in a recorded request as a wildcard (see
:mod:`streamreel.matching`), so a request whose body held a secret still matches.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Iterator, Mapping, Sequence
from urllib.parse import parse_qsl, quote, quote_plus, unquote_plus, urlsplit, urlunsplit

from .sse import Event

__all__ = [
    "SCRUBBED",
    "DEFAULT_HEADERS",
    "DEFAULT_QUERY_PARAMS",
    "DEFAULT_JSON_KEYS",
    "DEFAULT_FORM_KEYS",
    "DEFAULT_PATTERNS",
    "CREDENTIAL_HEADERS",
    "MIN_SECRET_LENGTH",
    "MAX_ECHO_LENGTH",
    "Scrubber",
    "safe_url",
]

SCRUBBED = "<scrubbed>"
"""What a secret is replaced with."""

DEFAULT_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "x-amz-security-token",
        "cookie",
        "set-cookie",
        "anthropic-organization-id",
        "openai-organization",
        "openai-project",
    }
)
"""Headers scrubbed always: credentials (Anthropic, OpenAI, Azure, Gemini, AWS session tokens), cookies, organisation ids."""

CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key"})
"""Headers an API reads its key from: a request whose value there is not UTF-8 text gets a 400."""

DEFAULT_QUERY_PARAMS = frozenset({"key", "api_key", "apikey", "api-key", "access_token", "token", "sig", "signature"})
"""Query parameters whose value is scrubbed always: they carry credentials (Gemini's ``?key=``, signed URLs).
Every secret JSON key (:data:`DEFAULT_JSON_KEYS`) and OAuth field (:data:`DEFAULT_FORM_KEYS`) is one too."""

DEFAULT_FORM_KEYS = frozenset({"code", "code_verifier", "device_code", "assertion", "client_assertion", "subject_token", "actor_token"})
"""OAuth fields of form-encoded bodies and query strings (an authorization code, a PKCE verifier, a JWT
assertion), scrubbed there besides the JSON keys; not in JSON bodies, where ``code`` is a tool's input."""

DEFAULT_JSON_KEYS = frozenset(
    {
        "api_key",
        "apiKey",
        "x-api-key",
        "password",
        "passwd",
        "secret",
        "client_secret",
        "secret_key",
        "secret_access_key",
        "aws_secret_access_key",
        "private_key",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "auth_token",
        "session_token",
        "bearer_token",
        "authorization",
    }
)
"""JSON keys whose string value is scrubbed at any depth of a request body (OpenAI-compatible
proxies take ``"api_key"`` in the body; OAuth bodies carry tokens). Names compare without case,
``_`` or ``-``, so ``apiKey``, ``api_key`` and ``API-KEY`` are one name."""

DEFAULT_PATTERNS: tuple[re.Pattern[str], ...] = (
    # Anthropic API and admin keys (sk-ant-api03-..., sk-ant-admin01-...) and OpenAI project,
    # service-account and admin keys (sk-proj-..., sk-svcacct-..., sk-admin-...): the prefix says
    # key, so 8 more characters are enough (also a key cut short in a message).
    re.compile(r"(?<![\w-])sk-(?:ant|proj|svcacct|admin)-[A-Za-z0-9_-]{8,}"),
    # Legacy OpenAI keys (sk- and 48 characters) and the sk-... keys of OpenAI-compatible APIs
    # (DeepSeek, Moonshot, OpenRouter's sk-or-v1-...): 20 or more key characters, one a digit.
    re.compile(r"(?<![\w-])sk-(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{20,}"),
    # Google API keys (Gemini, Vertex express): AIza and 35 characters.
    re.compile(r"(?<![\w-])AIza[0-9A-Za-z_-]{35}(?![\w-])"),
    # AWS access key ids: AKIA (long-term) or ASIA (temporary) and 16 upper-case letters or digits.
    re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Za-z0-9])"),
    # Hugging Face (hf_), Groq (gsk_), xAI (xai-), GitHub (ghp_, gho_, ghu_, ghs_, ghr_, github_pat_),
    # Slack (xoxb-, xoxp-, ...) and Stripe secret or restricted keys (sk_live_, rk_live_, sk_test_).
    re.compile(
        r"(?<![\w-])(?:hf_[A-Za-z0-9]{30,}|gsk_[A-Za-z0-9]{40,}|xai-[A-Za-z0-9]{40,}|gh[pousr]_[A-Za-z0-9]{36,}"
        r"|github_pat_[A-Za-z0-9_]{60,}|xox[abposr]-[A-Za-z0-9-]{10,}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,})"
    ),
    # JSON Web Tokens: three base64url parts, the first two JSON objects ({" is eyJ).
    re.compile(r"(?<![\w-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    # A bearer token quoted in text ("Authorization: Bearer ..."): 16 or more token characters, one a digit.
    re.compile(r"(?<=[Bb]earer )(?=[A-Za-z0-9._~+/-]*\d)[A-Za-z0-9._~+/-]{16,}=*"),
    # PEM private keys; one cut off before its END line (a stream that stopped) up to the end of its string.
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?:.*?-----END [A-Z ]*PRIVATE KEY-----|(?:[^\"\\]|\\.)*)", re.DOTALL),
)
"""Well-known credential formats, scrubbed in every text (add your own with ``Scrubber(patterns=...)``).

Conservative by design: each needs a vendor prefix and a long run of key characters (most also a
digit), so ordinary prose, ids such as ``msg_01...`` or ``chatcmpl-...`` and kebab-case words stay.
Formats: Anthropic (``sk-ant-api03-``, ``sk-ant-admin01-``), OpenAI (``sk-proj-``, ``sk-svcacct-``,
``sk-admin-``, legacy ``sk-`` + 48), Google API keys (``AIza`` + 35), AWS access key ids (``AKIA``/``ASIA``
+ 16), Hugging Face ``hf_``, Groq ``gsk_``, xAI ``xai-``, GitHub ``ghp_``/``github_pat_``, Slack ``xox?-``,
Stripe ``sk_live_``, JWTs (``eyJ...``), ``Bearer`` tokens in text, PEM private keys. An AWS secret
key has no prefix to find it by: name it (a header, a JSON key) or pass it with ``secrets=``."""

_DEFAULT_HINT = re.compile(r"sk-|[sr]k_|AIza|AKIA|ASIA|hf_|gsk_|xai-|gh[pousr]_|github_pat_|xox|eyJ|[Bb]earer |-----BEGIN")
"""What every default pattern starts with: one quick search spares the patterns the text holding none (most event data)."""

MIN_SECRET_LENGTH = 8
"""Shortest literal secret scrubbed wherever it appears (shorter ones are scrubbed only where they were found)."""

MAX_ECHO_LENGTH = 16_384
"""Longest credential a request carries that is also looked for wherever it is echoed. Real keys
and tokens (JWTs, session tokens) are far shorter; a value of megabytes in a key field is not a
key, and searching every text for it in its encoded forms would take a recording minutes. It is
still blanked where it was carried (the header, the query, the JSON or form field)."""

_PARAM = re.compile(r"(?<![\w.%+-])([A-Za-z][\w.%+-]*)=([^&;\s'\"<>]*)")
"""``name=value`` in a query string, a form body or a message; the name is checked against the key rules."""
_URL_PARAM = re.compile(r"(?<=[?&])([A-Za-z][\w.%+-]*)=([^&;\s'\"<>]*)")
"""The same in a stream's text, only inside a URL's query (``?code=`` in prose is not a credential)."""
_JSON_PAIR = re.compile(r'"([A-Za-z][A-Za-z0-9_-]*)"(\s*:\s*)"((?:[^"\\]|\\.)*)(?:"|$)')
_AUTH_SCHEME = re.compile(r"(?i)^(?:bearer|basic|token|digest|apikey)\s+(\S+)$")


def _key_name(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


@dataclass(frozen=True)
class Scrubber:
    """Which headers (by name, any case), JSON keys, text patterns (regular expressions) and literal secrets to blank.

    Each argument adds to its default (:data:`DEFAULT_HEADERS`, :data:`DEFAULT_PATTERNS`,
    :data:`DEFAULT_JSON_KEYS`); there is no way to keep those. ``secrets`` are literal values
    (an API key from the environment) blanked wherever they appear, also URL-encoded, JSON-escaped
    or base64-encoded; they never show in the repr.
    """

    headers: frozenset[str] = field(default=DEFAULT_HEADERS)
    patterns: tuple[re.Pattern[str], ...] = DEFAULT_PATTERNS
    json_keys: frozenset[str] = field(default=DEFAULT_JSON_KEYS)
    secrets: frozenset[str] = field(default=frozenset(), repr=False)
    _names: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)
    _form_names: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)
    _literal: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __init__(
        self,
        headers: Iterable[str] = (),
        patterns: Iterable[str | re.Pattern[str]] = (),
        json_keys: Iterable[str] = (),
        secrets: Iterable[str] = (),
    ) -> None:
        for name, given in (("headers", headers), ("patterns", patterns), ("json_keys", json_keys), ("secrets", secrets)):
            if isinstance(given, (str, bytes, re.Pattern)):
                raise TypeError(f"Scrubber(headers=..., patterns=..., json_keys=..., secrets=...) take lists, e.g. {name}=[...]")
        compiled = list(DEFAULT_PATTERNS)
        for i, pattern in enumerate(patterns):
            if not isinstance(pattern, re.Pattern):
                try:
                    pattern = re.compile(pattern)
                except re.error as e:
                    # The pattern itself may be a literal secret: name it by position, never echo it.
                    raise ValueError(f"scrub pattern #{i + 1} is not a valid regular expression: {e.msg} at position {e.pos}") from None
            if pattern not in compiled:
                compiled.append(pattern)
        literal = frozenset(secrets)
        for i, secret in enumerate(literal):
            if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
                raise ValueError(f"scrub secret #{i + 1} is shorter than {MIN_SECRET_LENGTH} characters: too common to blank everywhere")
        keys = DEFAULT_JSON_KEYS | frozenset(json_keys)
        object.__setattr__(self, "headers", DEFAULT_HEADERS | {h.strip().lower() for h in headers})
        object.__setattr__(self, "patterns", tuple(compiled))
        object.__setattr__(self, "json_keys", keys)
        object.__setattr__(self, "secrets", literal)
        object.__setattr__(self, "_names", frozenset(_key_name(k) for k in keys))
        object.__setattr__(self, "_form_names", frozenset(_key_name(k) for k in keys | DEFAULT_QUERY_PARAMS | DEFAULT_FORM_KEYS))
        object.__setattr__(self, "_literal", _literal_pattern(literal))

    def also(self, secrets: Iterable[str]) -> Scrubber:
        """This scrubber, also blanking ``secrets`` (those shorter than :data:`MIN_SECRET_LENGTH` are left out)."""
        new = frozenset(s for s in secrets if len(s) >= MIN_SECRET_LENGTH) - self.secrets
        return replace(self, secrets=self.secrets | new) if new else self

    def found(self, headers: Iterable[tuple[str, str]] | Mapping[str, str] = (), target: str = "", body: bytes | str = b"") -> frozenset[str]:
        """The credentials a request carries, to blank wherever else they turn up (an error body that
        echoes the key): the values of scrubbed headers (and the token after ``Bearer``/``Basic``),
        of credential query parameters and of secret JSON keys; those of :data:`MIN_SECRET_LENGTH` to
        :data:`MAX_ECHO_LENGTH` characters."""
        out: set[str] = set()
        for name, value in headers.items() if isinstance(headers, Mapping) else headers:
            name, value = name.lower(), value.strip()
            if name not in self.headers:
                continue
            out.add(value)
            scheme = _AUTH_SCHEME.match(value)
            if scheme:
                out.add(scheme[1])
                if value[:5].lower() == "basic":
                    out.update(_basic_credentials(scheme[1]))
            if name in ("cookie", "set-cookie"):
                out.update(part.partition("=")[2].strip() for part in value.split(";"))
        out.update(self._form_secret_values(target.partition("?")[2]))
        if body:
            try:
                out.update(self._json_secret_values(json.loads(body)))
            except (UnicodeDecodeError, ValueError):
                text = body.decode("utf-8", "surrogateescape") if isinstance(body, bytes) else body
                out.update(self._form_secret_values(text))
        return frozenset(s for s in out if MIN_SECRET_LENGTH <= len(s) <= MAX_ECHO_LENGTH)

    # ------------------------------------------------------------ text

    def text(self, value: str) -> str:
        """``value`` with every literal secret and every pattern match replaced."""
        if self._literal is not None:
            value = self._literal.sub(SCRUBBED, value)
        patterns = self.patterns if _DEFAULT_HINT.search(value) else self.patterns[len(DEFAULT_PATTERNS) :]
        for pattern in patterns:
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
        """A log line or error message: the secrets and patterns, any ``key=...``-style credential
        in a URL, and the value of any secret JSON key quoted in it."""
        return self._json_text(self._form_text(self.text(value)))

    # ------------------------------------------------------------ HTTP parts

    def target(self, target: str) -> str:
        """A request path and query for the cassette: credential parameters keep their name, their
        value becomes ``<scrubbed>`` (which matches any value on replay); then the patterns."""
        path, sep, query = target.partition("?")
        return self.text(f"{path}?{self._form_text(query)}" if sep else path)

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
        """A request body for matching: any JSON object or array as a value (key order and spacing do
        not matter), with the values of secret keys (:data:`DEFAULT_JSON_KEYS`) blanked at any depth."""
        if not raw:
            return None
        try:
            parsed = json.loads(self.text(raw.decode("utf-8")))
        except (UnicodeDecodeError, ValueError):
            kept = self.body(raw)
            return self._json_text(self._form_text(kept)) if isinstance(kept, str) else kept
        if isinstance(parsed, (dict, list)):
            return self._json_secrets(self.data(parsed))
        return self.body(raw)

    def event(self, event: Event) -> Event:
        """``event`` with its fields scrubbed; the same object when nothing in it is secret (its wire bytes stay cached)."""
        def text(value: str | None) -> str | None:
            return None if value is None else self.text(value)

        name, data, id_, comment = text(event.event), text(event.data), text(event.id), text(event.comment)
        if (name, data, id_, comment) == (event.event, event.data, event.id, event.comment):
            return event
        return replace(event, event=name, data=data, id=id_, comment=comment)

    def events(self, events: Sequence[Event]) -> tuple[Event, ...]:
        """A stream's events scrubbed as its client reads them, then each on its own (:meth:`event`).

        The text of every content block, tool call, choice or plain-text stream is joined across
        its events (see :func:`_stream_texts`); a secret found there (any pattern, literal, secret
        JSON key or credential parameter) is blanked in each piece it spans: the first piece holds
        ``<scrubbed>``, the later ones lose their part. Every other byte of every event, JSON
        spacing and escapes included, stays as it was, so the stream replays byte for byte
        except for the secrets. Events with nothing secret are the same objects."""
        edits: dict[int, list[tuple[tuple[Any, ...] | None, int, int, str]]] = {}
        for pieces in _stream_texts(events).values():
            joined = "".join(text for _, _, text in pieces)
            spans = self._spans(joined)
            if not spans:
                continue
            starts = [0]
            for _, _, text in pieces:
                starts.append(starts[-1] + len(text))
            for a, b in spans:
                first = True
                for k, (index, path, _) in enumerate(pieces):
                    lo, hi = max(a, starts[k]), min(b, starts[k + 1])
                    if lo < hi:
                        edits.setdefault(index, []).append((path, lo - starts[k], hi - starts[k], SCRUBBED if first else ""))
                        first = False
        out = list(events)
        for index, changes in edits.items():
            out[index] = replace(out[index], data=_edit_data(out[index].data or "", changes))
        return tuple(self.event(e) for e in out)

    def _spans(self, text: str) -> list[tuple[int, int]]:
        """Where ``text`` holds a secret: literal secrets, patterns, the values of secret JSON keys
        and of credential parameters in a URL (``?key=...``); overlapping spans merged."""
        found: list[tuple[int, int]] = []
        if self._literal is not None:
            found += [m.span() for m in self._literal.finditer(text)]
        patterns = self.patterns if _DEFAULT_HINT.search(text) else self.patterns[len(DEFAULT_PATTERNS) :]
        for pattern in patterns:
            found += [m.span() for m in pattern.finditer(text) if m.end() > m.start()]
        if '"' in text:
            found += [m.span(3) for m in _JSON_PAIR.finditer(text) if m.end(3) > m.start(3) and self._is_secret_key(m[1])]
        if "=" in text:
            found += [m.span(2) for m in _URL_PARAM.finditer(text) if m.end(2) > m.start(2) and self._is_form_key(m[1])]
        found.sort()
        merged: list[tuple[int, int]] = []
        for a, b in found:
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
            else:
                merged.append((a, b))
        return merged

    # ------------------------------------------------------------ forms and queries

    def _is_form_key(self, name: str) -> bool:
        return _key_name(unquote_plus(name)) in self._form_names

    def _form_text(self, text: str) -> str:
        """``name=value`` pairs (a query string, a form body, a URL in a message) with the values of
        secret names blanked: the JSON key rules, the credential parameters and OAuth's fields."""
        if "=" not in text:
            return text
        return _PARAM.sub(lambda m: f"{m[1]}={SCRUBBED}" if m[2] and self._is_form_key(m[1]) else m[0], text)

    def _form_secret_values(self, text: str) -> Iterator[str]:
        if "=" not in text:
            return
        for m in _PARAM.finditer(text):
            if m[2] and self._is_form_key(m[1]):
                yield unquote_plus(m[2])
                yield m[2]

    # ------------------------------------------------------------ JSON keys

    def _is_secret_key(self, key: Any) -> bool:
        return isinstance(key, str) and _key_name(key) in self._names

    def _json_secrets(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: SCRUBBED if isinstance(v, str) and self._is_secret_key(k) else self._json_secrets(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._json_secrets(v) for v in value]
        return value

    def _json_secret_values(self, value: Any) -> Iterable[str]:
        if isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, str) and self._is_secret_key(k):
                    yield v
                else:
                    yield from self._json_secret_values(v)
        elif isinstance(value, list):
            for v in value:
                yield from self._json_secret_values(v)

    def _json_text(self, text: str) -> str:
        """``"api_key": "..."`` quoted in text (a body that is not JSON, an error message): the value blanked."""
        return _JSON_PAIR.sub(lambda m: f'"{m[1]}"{m[2]}"{SCRUBBED}"' if self._is_secret_key(m[1]) else m[0], text)


_INDEX_KEYS = frozenset({"index", "output_index", "content_index", "summary_index", "item_id"})
"""Sibling keys that say which block, choice, tool call or output item a piece of text belongs to."""


def _stream_texts(events: Sequence[Event]) -> dict[tuple[Any, ...], list[tuple[int, tuple[Any, ...] | None, str]]]:
    """The texts a client reads from a stream, each as its pieces ``(event index, path in the data, text)``.

    A piece is a string in an event's JSON data (or the whole data, when it is not JSON); pieces
    belong to one text when their events have the same name and the strings sit at the same path
    under the same ``index``-like keys: an Anthropic content block's ``delta.text`` or
    ``delta.partial_json``, an OpenAI choice's ``delta.content`` or a tool call's ``arguments``,
    a Responses item's ``delta``, a relay's plain ``data:`` lines (path None)."""
    texts: dict[tuple[Any, ...], list[tuple[int, tuple[Any, ...] | None, str]]] = {}
    by_name: dict[str | None, list[tuple[int, str, Any]]] = {}
    for index, event in enumerate(events):
        if event.data:
            try:
                parsed = json.loads(event.data)
            except ValueError:
                parsed = None
            by_name.setdefault(event.event, []).append((index, event.data, parsed))
    for name, items in by_name.items():
        # JSON events (objects, arrays) carry their text in strings; a relay's plain tokens are text
        # themselves, even the ones that happen to parse as JSON: a name with any plain data besides
        # OpenAI's closing "[DONE]" is read as plain text.
        structured = all(isinstance(parsed, (dict, list)) or data == "[DONE]" for _, data, parsed in items)
        for index, data, parsed in items:
            if not (structured and isinstance(parsed, (dict, list))):
                texts.setdefault((name, None), []).append((index, None, data))
                continue
            for path, where, text in _strings(parsed):
                pieces = texts.get((name, where))
                if pieces is None:
                    pieces = texts[(name, where)] = []
                pieces.append((index, path, text))
    return texts


def _strings(root: dict[str, Any] | list[Any]) -> list[tuple[tuple[Any, ...], tuple[Any, ...], str]]:
    """Every non-empty string in a parsed JSON value: its path, and where it sits (the path with the
    values of the ``index``-like keys of each mapping on the way), which names the text it belongs to."""
    out: list[tuple[tuple[Any, ...], tuple[Any, ...], str]] = []
    stack: list[tuple[Any, tuple[Any, ...], tuple[Any, ...]]] = [(root, (), ())]
    index_keys = _INDEX_KEYS
    while stack:
        value, path, where = stack.pop()
        if type(value) is dict:
            if not index_keys.isdisjoint(value):
                where = (*where, tuple(sorted((k, v) for k, v in value.items() if k in index_keys and isinstance(v, (int, str)))))
            for k, v in value.items():
                if type(v) is str:
                    if v:
                        out.append(((*path, k), (*where, k), v))
                elif isinstance(v, (dict, list)):
                    stack.append((v, (*path, k), (*where, k)))
        else:
            for i, v in enumerate(value):
                if type(v) is str:
                    if v:
                        out.append(((*path, i), (*where, i), v))
                elif isinstance(v, (dict, list)):
                    stack.append((v, (*path, i), (*where, i)))
    return out


_TOKEN = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|([{}\[\],:])|[^\s{}\[\],:"]+)', re.DOTALL)
_ESCAPE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|\\.|[^\\]", re.DOTALL)


def _string_literals(data: str) -> dict[tuple[Any, ...], tuple[int, int]]:
    """Where each string value of a JSON text sits: its path mapped to the span of its literal's
    content (between the quotes, escapes as written)."""
    spans: dict[tuple[Any, ...], tuple[int, int]] = {}
    stack: list[list[Any]] = []  # [kind, key or index, expecting a key]
    path: tuple[Any, ...] = ()
    for m in _TOKEN.finditer(data):
        punct = m[2]
        if punct is None:
            frame = stack[-1] if stack else None
            if m[1] is not None and frame is not None and frame[0] == "{" and frame[2]:
                frame[1] = json.loads(f'"{m[1]}"')
                frame[2] = False
            elif m[1] is not None:
                spans[(*path, frame[1]) if frame is not None else ()] = m.span(1)
            continue
        if punct in "{[":
            if stack:
                path = (*path, stack[-1][1])
            stack.append([punct, 0 if punct == "[" else None, punct == "{"])
        elif punct in "}]":
            stack.pop()
            path = path[:-1] if stack else ()
        elif punct == ",":
            frame = stack[-1]
            if frame[0] == "[":
                frame[1] += 1
            else:
                frame[2] = True
    return spans


def _edit_data(data: str, changes: list[tuple[tuple[Any, ...] | None, int, int, str]]) -> str:
    """``data`` with stretches of its strings (by path and offsets in the decoded text; path None:
    the data is plain text) replaced, every other byte kept."""
    literals = _string_literals(data) if any(path is not None for path, *_ in changes) else {}
    raw: list[tuple[int, int, str]] = []
    for path, lo, hi, text in changes:
        if path is None:
            raw.append((lo, hi, text))
            continue
        start, end = literals[path]
        offsets = [m.start() for m in _ESCAPE.finditer(data, start, end)] + [end]
        raw.append((offsets[lo], offsets[hi], text))
    for lo, hi, text in sorted(raw, reverse=True):
        data = data[:lo] + text + data[hi:]
    return data


def _literal_pattern(secrets: frozenset[str]) -> re.Pattern[str] | None:
    """One pattern for every secret and its encoded forms, longest first (so no secret is half-replaced)."""
    forms: set[str] = set()
    for secret in secrets:
        raw = secret.encode("utf-8", "surrogateescape")  # a header's non-UTF-8 bytes arrive as surrogates
        forms.update(
            (
                secret,
                quote(raw, safe=""),
                quote_plus(raw),
                json.dumps(secret)[1:-1],
                json.dumps(secret)[1:-1].replace("/", "\\/"),
                base64.b64encode(raw).decode("ascii").rstrip("="),
                base64.urlsafe_b64encode(raw).decode("ascii").rstrip("="),
            )
        )
    if not forms:
        return None
    return re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))


def _basic_credentials(token: str) -> tuple[str, ...]:
    try:
        user, _, password = base64.b64decode(token, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return ()
    return (password, f"{user}:{password}")


def safe_url(url: str) -> str:
    """``url`` without user:password and without its query (which may hold a key), for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
