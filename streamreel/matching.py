"""Which recorded interaction answers a request, and why none did.

By default a request matches on method, path, query (minus the parameters SDKs add,
such as ``beta=true``) and JSON body. A field the cassette's request leaves out matches
anything. Identical requests get the recorded interactions in order; once those are used
up, the last one repeats, so a test or a hypothesis run may call as often as it likes.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import parse_qsl

from .cassette import Interaction
from .errors import NoMatchError
from .scrub import SCRUBBED, Scrubber

__all__ = ["ReceivedRequest", "Matcher", "Marks", "MATCH_ON", "SDK_QUERY_PARAMS", "Difference"]

MATCH_ON = ("method", "path", "query", "body")
SDK_QUERY_PARAMS = frozenset({"beta"})
"""Query parameters that SDKs add on their own, ignored when matching."""


_REPR_SCRUB = Scrubber()


@dataclass(frozen=True)
class ReceivedRequest:
    """A request as it arrived at the replayer (or recorder)."""

    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    at: float = 0.0

    @cached_property
    def _parsed(self) -> tuple[Any, str | None]:
        if not self.body:
            return None, "the body is empty"
        try:
            return json.loads(self.body.decode("utf-8")), None  # the API reads UTF-8 only (json.loads would guess UTF-16)
        except UnicodeDecodeError as e:
            return None, f"the body is not UTF-8 ({e.reason} at byte {e.start})"
        except ValueError as e:
            return None, f"the body is not valid JSON ({e})"
        except RecursionError:
            return None, "the body's JSON is nested too deeply to read"

    @property
    def json(self) -> Any:
        """The body parsed as JSON, or None when it is empty or not JSON."""
        return self._parsed[0]

    @property
    def json_error(self) -> str | None:
        """Why the body is not JSON (empty, not UTF-8, does not parse), or None when it is."""
        return self._parsed[1]

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path

    def __str__(self) -> str:
        return f"{self.method} {self.target}"

    def __repr__(self) -> str:
        """Header names and the body's size only, the query scrubbed: a failing assertion must not print a key."""
        return f"ReceivedRequest(method={self.method!r}, target={_REPR_SCRUB.target(self.target)!r}, headers={sorted(self.headers)!r}, body=<{len(self.body)} bytes>)"


@dataclass(frozen=True)
class Difference:
    """One way a recorded request differs from the one that arrived."""

    matcher: str
    detail: str


class Marks:
    """Which interactions ordered playback has used, in one process (thread-safe).

    A server of several processes gives its matchers marks kept in memory they share
    (:mod:`streamreel.workers`), so a repeat is played once across all of them.
    """

    def __init__(self, size: int) -> None:
        self._used = [False] * size
        self._lock = threading.Lock()

    def claim(self, candidates: Sequence[int]) -> int | None:
        """Mark the first unused of ``candidates`` used and return it; None when all are used."""
        with self._lock:
            for i in candidates:
                if not self._used[i]:
                    self._used[i] = True
                    return i
        return None

    def release(self, index: int) -> None:
        with self._lock:
            self._used[index] = False

    def reset(self) -> None:
        with self._lock:
            self._used = [False] * len(self._used)


class Matcher:
    """Picks the interaction for each request; thread-safe, with ordered playback of repeats.

    Once the matching interactions are used up the last one repeats, unless ``repeat_last``
    is False (the recorder's ``new_episodes`` mode records the extra request instead).
    ``marks`` says which interactions were used (by default, in this process only).
    """

    def __init__(
        self,
        interactions: Sequence[Interaction],
        *,
        match_on: Iterable[str] = MATCH_ON,
        ignore_query: Iterable[str] = SDK_QUERY_PARAMS,
        ignore_body_keys: Iterable[str] = (),
        empty: str = "the cassette has no interactions",
        marks: Marks | None = None,
    ) -> None:
        self.interactions = tuple(interactions)
        self.empty = empty
        """What a mismatch says when there are no interactions (why there are none)."""
        self.repeat_last = True
        self.match_on = tuple(match_on)
        unknown = set(self.match_on) - set(MATCH_ON)
        if unknown:
            raise ValueError(f"unknown matcher(s) {sorted(unknown)}; choose from {', '.join(MATCH_ON)}")
        self.ignore_query = frozenset(ignore_query)
        self.ignore_body_keys = frozenset(ignore_body_keys)
        self.marks = marks if marks is not None else Marks(len(self.interactions))
        self._queries: dict[str, tuple[tuple[str, str], ...]] = {}

    def differences(self, request: ReceivedRequest, interaction: Interaction) -> list[Difference]:
        """Every matcher that fails between ``request`` and ``interaction``'s recorded request."""
        rec = interaction.request
        out: list[Difference] = []
        if "method" in self.match_on and rec.method is not None and rec.method != request.method.upper():
            out.append(Difference("method", f"method: recorded {rec.method}, asked {request.method}"))
        if "path" in self.match_on and rec.route is not None and rec.route.rstrip("/") != request.path.rstrip("/") and not _scrubbed_match(rec.route, request.path):
            out.append(Difference("path", f"path: recorded {rec.route}, asked {request.path}"))
        if "query" in self.match_on and rec.path is not None:
            want, got = self._recorded_query(rec.query), self._query(request.query)
            if want != got and not _scrubbed_pairs_match(want, got):
                out.append(Difference("query", f"query: recorded {_show_query(want)}, asked {_show_query(got)}"))
        if "body" in self.match_on and rec.body is not None:
            detail = self._body_difference(rec.body, request)
            if detail:
                out.append(Difference("body", detail))
        return out

    def _query(self, query: str) -> tuple[tuple[str, str], ...]:
        if not query:
            return ()
        return tuple(sorted((k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in self.ignore_query))

    def _recorded_query(self, query: str) -> tuple[tuple[str, str], ...]:
        """A recorded request's query, parsed once (every request compares against it)."""
        known = self._queries.get(query)
        if known is None:
            known = self._queries[query] = self._query(query)
        return known

    def _body_difference(self, recorded: Any, request: ReceivedRequest) -> str | None:
        if isinstance(recorded, (str, bytes)):
            got_raw = request.body if isinstance(recorded, bytes) else request.body.decode("utf-8", "replace")
            if got_raw == recorded or _scrubbed_match(recorded, got_raw):
                return None
            parsed = request.json
            if isinstance(recorded, str) and parsed is not None:
                try:
                    if json.loads(recorded) == parsed:
                        return None
                except ValueError:
                    pass
            return f"body: recorded {_short(recorded)}, asked {_short(got_raw)}"
        got = request.json
        if got is None:
            return "body: recorded a JSON body, asked " + ("no body" if not request.body else f"a non-JSON body {_short(request.body)}")
        return _first_json_difference(self._strip(recorded), self._strip(got), "body")

    def _strip(self, value: Any) -> Any:
        if self.ignore_body_keys and isinstance(value, dict):
            return {k: v for k, v in value.items() if k not in self.ignore_body_keys}
        return value

    def find(self, request: ReceivedRequest) -> int:
        """Index of the interaction that answers ``request`` (marking it used); raises :class:`NoMatchError`."""
        candidates = [i for i, item in enumerate(self.interactions) if not self.differences(request, item)]
        if not candidates:
            raise NoMatchError(self.explain(request), request=request)
        claimed = self.marks.claim(candidates)
        if claimed is not None:
            return claimed
        if not self.repeat_last:
            raise NoMatchError(f"every recorded interaction matching {request} was already played ({len(candidates)})", request=request)
        return candidates[-1]

    def release(self, index: int) -> None:
        """Give an interaction back for ordered playback (a faulted answer did not use it)."""
        self.marks.release(index)

    def reset(self) -> None:
        self.marks.reset()

    def explain(self, request: ReceivedRequest, *, limit: int = 3) -> str:
        """Says what was asked and which recorded requests came closest, and how they differ."""
        asked = f"{request.method} {request.target}"
        summary = _summarize_body(request.json)
        if summary:
            asked += f" ({summary})"
        if not self.interactions:
            return f"no recorded interaction matches {asked}: {self.empty}"
        scored = []
        for i, item in enumerate(self.interactions):
            diffs = self.differences(request, item)
            weight = sum(3 if d.matcher in ("method", "path") else 1 for d in diffs)
            scored.append((weight, i, item, diffs))
        scored.sort(key=lambda s: (s[0], s[1]))
        lines = [f"no recorded interaction matches {asked}; closest recorded:"]
        for _, i, item, diffs in scored[:limit]:
            rec = item.request
            lines.append(f"  #{i} {rec.method or '*'} {rec.path or '*'}: " + "; ".join(d.detail for d in diffs))
        if len(self.interactions) > limit:
            lines.append(f"  ... and {len(self.interactions) - limit} more")
        return "\n".join(lines)


def _first_json_difference(want: Any, got: Any, where: str) -> str | None:
    if isinstance(want, dict) and isinstance(got, dict):
        for key in want:
            if key not in got:
                return f"{where}.{key}: recorded {_short(want[key])}, asked nothing"
            found = _first_json_difference(want[key], got[key], f"{where}.{key}")
            if found:
                return found
        for key in got:
            if key not in want:
                return f"{where}.{key}: recorded nothing, asked {_short(got[key])}"
        return None
    if isinstance(want, list) and isinstance(got, list):
        for i, (a, b) in enumerate(zip(want, got)):
            found = _first_json_difference(a, b, f"{where}[{i}]")
            if found:
                return found
        if len(want) != len(got):
            return f"{where}: recorded {len(want)} items, asked {len(got)}"
        return None
    if want == got and isinstance(want, bool) == isinstance(got, bool):
        return None
    if isinstance(want, str) and isinstance(got, str) and _scrubbed_match(want, got):
        return None
    return f"{where}: recorded {_short(want)}, asked {_short(got)}"


@lru_cache(maxsize=512)
def _scrubbed_regex(recorded: str) -> re.Pattern[str]:
    return re.compile(".*?".join(re.escape(part) for part in recorded.split(SCRUBBED)), re.DOTALL)


def _scrubbed_match(recorded: Any, got: Any) -> bool:
    """A recorded value with ``<scrubbed>`` in it matches any text in those places (the secret was blanked)."""
    if isinstance(recorded, bytes):
        recorded = recorded.decode("latin-1")
        got = got.decode("latin-1") if isinstance(got, bytes) else got
    if not isinstance(recorded, str) or not isinstance(got, str) or SCRUBBED not in recorded:
        return False
    return _scrubbed_regex(recorded).fullmatch(got) is not None


def _scrubbed_pairs_match(want: tuple[tuple[str, str], ...], got: tuple[tuple[str, str], ...]) -> bool:
    if len(want) != len(got):
        return False
    return all(wk == gk and (wv == gv or _scrubbed_match(wv, gv)) for (wk, wv), (gk, gv) in zip(want, got))


def _short(value: Any, limit: int = 60) -> str:
    try:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    except RecursionError:
        text = "(JSON nested too deeply to show)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _show_query(pairs: tuple[tuple[str, str], ...]) -> str:
    return "&".join(f"{k}={v}" for k, v in pairs) if pairs else "(none)"


def _summarize_body(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    parts = []
    if "model" in body:
        parts.append(f"model={body['model']!r}")
    messages = body.get("messages") or body.get("input")
    if isinstance(messages, list) and messages:
        last = messages[-1]
        content = last.get("content") if isinstance(last, dict) else last
        if isinstance(content, list) and content and isinstance(content[-1], dict):
            content = content[-1].get("text", content[-1].get("type"))
        parts.append(f"{len(messages)} message(s), last {_short(content, 40)}")
    return ", ".join(parts)
