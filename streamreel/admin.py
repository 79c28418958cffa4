"""The admin API: ground truth and control over HTTP, for clients in any language.

Every replay server answers under the reserved prefix ``/__streamreel/`` (never matched
against a cassette, never recorded in ``requests``):

- ``GET requests``: the requests that arrived, credentials scrubbed;
- ``GET responses[?timeout=S&requests=N]``: ground truth per response, once those in flight
  have finished (``timeout=0``: as it is now);
- ``POST reset``: forget requests and responses, restart playback and fault counts;
- ``POST load`` with ``{"cassette": NAME | "cassette_yaml": TEXT, "faults": [...], "speed": X}``;
- ``GET verdicts[?silence_s=S&max_streams=N&grace_s=S]``: the resilience verdicts
  (:mod:`streamreel.verdicts`).

Errors are JSON in the API's error shape, with a message saying what to send instead. The
routes send no CORS headers and ``load`` takes only ``application/json``, so a web page
the developer happens to visit cannot drive the server. The module reads the server only
through :class:`Served`, so a front for several servers can answer the same routes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Protocol, Sequence

from aiohttp import web

from . import cassette as _cassette
from .errors import CassetteError, CassetteNameError, StreamreelError
from .library import Library
from .scrub import Scrubber
from .verdicts import GroundTruth, ajudge, exchanges

if TYPE_CHECKING:
    from .cassette import Cassette
    from .matching import ReceivedRequest
    from .replayer import SentResponse

__all__ = ["PREFIX", "ROUTES", "Served", "mount", "request_json", "responses_json"]

PREFIX = "/__streamreel/"

ROUTES: dict[str, tuple[str, str]] = {
    "requests": ("GET", "the requests that arrived (credentials scrubbed)"),
    "responses": ("GET", "ground truth per response (?timeout=S waits for those in flight, default 5; ?requests=N for N answered)"),
    "reset": ("POST", "forget requests and responses, restart playback and fault counts"),
    "load": ("POST", 'serve {"cassette": NAME} or {"cassette_yaml": TEXT}, with "faults": [...] and "speed": X'),
    "verdicts": ("GET", "resilience verdicts (?silence_s=S, ?max_streams=N, ?grace_s=S)"),
}

SETTLE_S = 5.0
MAX_WAIT_S = 600.0
LOAD_KEYS = ("cassette", "cassette_yaml", "faults", "speed")

_SCRUB = Scrubber()
_LOG = logging.getLogger("streamreel.admin")


class Served(GroundTruth, Protocol):
    """What the admin routes read and drive: a :class:`~streamreel.replayer.Replayer`."""

    @property
    def cassette(self) -> Cassette: ...

    @property
    def cassette_dir(self) -> Path | None: ...

    @property
    def default_name(self) -> str | None: ...

    def clear(self) -> None: ...

    def load(self, cassette: Any, *, faults: Sequence[Any] | str = ..., speed: float | None = ...) -> None: ...

    async def catch_up(self) -> None:
        """Until every process serving behind it has applied the last ``clear``/``load`` and reported
        what it has in flight (a :class:`~streamreel.replayer.Replayer` is one process: nothing to do)."""


class AdminError(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


def mount(app: web.Application, server: Served) -> None:
    """Add the admin routes to ``app`` (before its catch-all route)."""
    handlers = {"requests": _requests, "responses": _responses, "reset": _reset, "load": _load, "verdicts": _verdicts}

    def route(name: str) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                return await handlers[name](request, server)
            except AdminError as e:
                return _error(e.status, e.kind, str(e))
            except Exception as e:  # a bug: still JSON, and logged with its traceback
                _LOG.exception("admin route %s failed", name)
                return _error(500, "api_error", f"{PREFIX}{name} failed: {type(e).__name__}: {_SCRUB.message(str(e))[:200]}")

        return handle

    for name, (method, _) in ROUTES.items():
        app.router.add_route(method, PREFIX + name, route(name))
    app.router.add_route("*", PREFIX.rstrip("/"), _unknown)
    app.router.add_route("*", PREFIX + "{tail:.*}", _unknown)


def _error(status: int, kind: str, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    body = {"type": "error", "error": {"type": kind, "message": f"streamreel admin: {message}"}}
    return web.json_response(body, status=status, headers=headers)


def _listing() -> str:
    return "; ".join(f"{method} {PREFIX}{name}: {what}" for name, (method, what) in ROUTES.items())


async def _unknown(request: web.Request) -> web.Response:
    name = request.match_info.get("tail", "")
    if request.method == "OPTIONS":
        return _error(403, "permission_error", "the admin API answers no cross-origin requests (a page you visit must not drive your test server); call it from your test code")
    if name in ROUTES:
        method = ROUTES[name][0]
        return _error(405, "invalid_request_error", f"{PREFIX}{name} takes {method}, not {request.method}", headers={"allow": method})
    return _error(404, "not_found_error", f"no route {request.method} {_SCRUB.target(request.path_qs)}; the admin API has: {_listing()}")


# ---------------------------------------------------------------- ground truth


def request_json(req: ReceivedRequest, index: int, epoch: float) -> dict[str, Any]:
    """A request as ``GET /__streamreel/requests`` lists it: credentials scrubbed everywhere, the body parsed when JSON."""
    scrub = _SCRUB.also(_SCRUB.found(req.headers, req.target, req.body))
    path, _, query = scrub.target(req.target).partition("?")
    body: Any = None
    text: str | None = None
    if req.json is not None:
        body = scrub.request_body(req.body)
    elif req.body:
        kept = scrub.request_body(req.body)
        text = kept if isinstance(kept, str) else None
    return {
        "index": index,
        "method": scrub.text(req.method),
        "path": path,
        "query": query,
        "headers": scrub.header_map(req.headers),
        "body": body,
        "body_text": text,
        "body_bytes": len(req.body),
        "arrived_ms": round((req.at - epoch) * 1000.0, 3),
    }


def responses_json(requests: Sequence[ReceivedRequest], responses: Sequence[SentResponse], epoch: float) -> list[dict[str, Any]]:
    """Ground truth per response as ``GET /__streamreel/responses`` lists it (see :class:`~streamreel.verdicts.Exchange`)."""
    return [e.as_dict() for e in exchanges(requests, responses, epoch=epoch)]


async def _requests(request: web.Request, server: Served) -> web.Response:
    await server.catch_up()
    received, answered = server.requests, server.responses
    n = min(len(received), len(answered))  # kept in pairs; a request arriving between the two reads is left for next time
    pairs = zip(received[len(received) - n :], answered[len(answered) - n :])
    return web.json_response([request_json(q, res.request_index, server.epoch) for q, res in pairs])


async def _responses(request: web.Request, server: Served) -> web.Response:
    timeout = _number(request, "timeout", SETTLE_S, high=MAX_WAIT_S)
    wanted = _number(request, "requests", 0, high=1e9, whole=True)
    if timeout > 0:
        try:
            await server.asettle(timeout, requests=int(wanted))
        except TimeoutError as e:
            raise AdminError(504, "timeout_error", f"{e}; ask with ?timeout=0 to see them as they are now") from None
    else:
        await server.catch_up()
    return web.json_response(responses_json(server.requests, server.responses, server.epoch))


async def _verdicts(request: web.Request, server: Served) -> web.Response:
    silence = _number(request, "silence_s", None, low_exclusive=True)
    limit = _number(request, "max_streams", None, low=1, whole=True)
    grace = _number(request, "grace_s", 0.5, high=MAX_WAIT_S)
    verdicts = await ajudge(server, silence_s=silence, max_streams=None if limit is None else int(limit), grace_s=grace)
    return web.json_response(verdicts.as_dict())


async def _reset(request: web.Request, server: Served) -> web.Response:
    server.clear()
    await server.catch_up()
    return web.json_response({"reset": True})


def _number(request: web.Request, key: str, default: Any, *, low: float = 0, high: float = math.inf, low_exclusive: bool = False, whole: bool = False) -> Any:
    values = request.query.getall(key, [])
    if not values:
        return default
    if len(values) > 1:
        raise AdminError(400, "invalid_request_error", f"?{key}= is given {len(values)} times; give it once")
    try:
        value = float(values[0])
    except ValueError:
        value = math.nan
    kind = "a whole number" if whole else "a number"
    bad = not math.isfinite(value) or value < low or value > high or (low_exclusive and value <= low) or (whole and value != int(value))
    if bad:
        bounds = f"> {low:g}" if low_exclusive else f">= {low:g}"
        if high != math.inf:
            bounds += f" and <= {high:g}"
        raise AdminError(400, "invalid_request_error", f"?{key}= must be {kind} {bounds}, got {_SCRUB.message(values[0])[:60]!r}")
    return value


# ---------------------------------------------------------------- load


async def _json_body(request: web.Request) -> dict[str, Any]:
    media = request.content_type.lower()
    if media != "application/json":
        raise AdminError(415, "invalid_request_error", f"send the body as JSON with Content-Type: application/json (got {media or 'none'!r})")
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise AdminError(400, "invalid_request_error", f"the body is not valid JSON ({type(e).__name__}: {_SCRUB.message(str(e))[:120]})") from None
    if not isinstance(body, dict):
        raise AdminError(400, "invalid_request_error", f"the body must be a JSON object with the keys {', '.join(LOAD_KEYS)}, got a JSON {type(body).__name__}")
    return body


async def _load(request: web.Request, server: Served) -> web.Response:
    body = await _json_body(request)
    unknown = sorted(set(body) - set(LOAD_KEYS))
    if unknown:
        keys = ", ".join(repr(_SCRUB.message(k)[:40]) for k in unknown[:5])
        raise AdminError(400, "invalid_request_error", f"unknown key(s) {keys}; load takes {', '.join(LOAD_KEYS)}")
    if "cassette" in body and "cassette_yaml" in body:
        raise AdminError(400, "invalid_request_error", "give cassette (a name) or cassette_yaml (the YAML text), not both")
    faults = _faults(body.get("faults", []))
    speed = body.get("speed")
    if speed is not None and (isinstance(speed, bool) or not isinstance(speed, (int, float)) or not math.isfinite(speed) or speed < 0):
        raise AdminError(400, "invalid_request_error", f"speed must be a number >= 0 (0 = no waiting), got {_SCRUB.message(repr(speed))[:60]}")
    loop = asyncio.get_running_loop()
    directory = server.cassette_dir
    target: Any
    shown: str | None
    if "cassette_yaml" in body:
        text = body["cassette_yaml"]
        if not isinstance(text, str):
            raise AdminError(400, "invalid_request_error", f"cassette_yaml must be the cassette's YAML text (a string), got a JSON {_kind(text)}")
        if directory is not None:
            raise AdminError(400, "invalid_request_error", "this server serves a directory of cassettes: load one by name with {\"cassette\": NAME}")
        try:
            target = await loop.run_in_executor(None, lambda: _cassette.loads(text, path="cassette_yaml"))
        except CassetteError as e:
            raise AdminError(400, "invalid_request_error", _SCRUB.message(str(e))) from None
        shown = "cassette_yaml"
    elif "cassette" in body:
        name = body["cassette"]
        if not isinstance(name, str):
            raise AdminError(400, "invalid_request_error", f"cassette must be a name (a string), got a JSON {_kind(name)}")
        target, shown = await _named(name, directory, loop)
    else:
        target = server.default_name if directory is not None else server.cassette
        shown = None
    try:
        server.load(target, faults=faults, speed=None if speed is None else float(speed))
    except CassetteError as e:
        raise AdminError(400, "invalid_request_error", _SCRUB.message(str(e))) from None
    except (StreamreelError, ValueError) as e:
        raise AdminError(409, "invalid_request_error", f"cannot load: {_SCRUB.message(str(e))}") from None
    await server.catch_up()
    return web.json_response(
        {
            "loaded": shown if shown is not None else (server.default_name if directory is not None else _current(server)),
            "interactions": None if directory is not None else len(server.cassette.interactions),
            "faults": [_SCRUB.message(f) for f in faults],
            "speed": speed,
        }
    )


def _kind(value: Any) -> str:
    return {dict: "object", list: "array", bool: "boolean", int: "number", float: "number", type(None): "null"}.get(type(value), type(value).__name__)


def _current(server: Served) -> str | None:
    path = server.cassette.path
    return os.path.basename(path) if path else None


def _faults(given: Any) -> list[str]:
    from .fault_injection import parse

    if isinstance(given, str):
        given = [given]
    if not isinstance(given, list) or not all(isinstance(f, str) for f in given):
        raise AdminError(400, "invalid_request_error", f"faults must be a list of fault specs (strings such as \"stall:after=3\"), got a JSON {_kind(given)}")
    try:
        return [str(f) for f in parse(given)]
    except (StreamreelError, ValueError, TypeError) as e:
        raise AdminError(400, "invalid_request_error", _SCRUB.message(str(e))) from None


async def _named(name: str, directory: Path | None, loop: asyncio.AbstractEventLoop) -> tuple[Any, str]:
    """What a cassette name loads: a name in the served directory, else a bundled cassette's name."""
    if directory is not None:
        try:
            path = _in_directory(directory, name)
        except CassetteNameError as e:
            raise AdminError(400, "invalid_request_error", f"{e.reason}; a name is a relative path inside the served directory") from None
        if path is None:
            raise AdminError(404, "not_found_error", f"no cassette {_SCRUB.message(name)[:200]!r} in the served directory; it holds: {_names(_names_in(directory))}")
        return name, path.relative_to(directory).as_posix()
    bundled_dir = _cassette.bundled("text").parent
    try:
        path = _in_directory(bundled_dir, name)
    except CassetteNameError as e:
        raise AdminError(400, "invalid_request_error", f"{e.reason}; a name is a bundled cassette's name") from None
    if path is None:
        raise AdminError(
            404,
            "not_found_error",
            f"no bundled cassette {_SCRUB.message(name)[:200]!r} (bundled: {', '.join(_cassette.bundled_names())}); "
            "this server serves one cassette, so a name can only be a bundled one: serve a directory to load its cassettes by name, or send cassette_yaml",
        )
    try:
        cas = await loop.run_in_executor(None, _cassette.load, path)
    except CassetteError as e:
        raise AdminError(400, "invalid_request_error", str(e)) from None
    return cas, path.stem


def _in_directory(directory: Path, name: str) -> Path | None:
    """The cassette file ``name`` names in ``directory`` (suffix optional), None if there is none; refuses names that leave it."""
    try:
        return Library(directory, lambda path: path).path(name)
    except FileNotFoundError:
        return None


def _names_in(directory: Path) -> list[str]:
    return Library(directory, lambda path: path).names()


def _names(names: Iterable[str], limit: int = 50) -> str:
    shown = list(names)
    more = f", ... ({len(shown) - limit} more)" if len(shown) > limit else ""
    return (", ".join(shown[:limit]) + more) if shown else "none"
