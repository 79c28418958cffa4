"""Cassette names, and a directory of cassettes served by name.

A cassette *name* is a string: a ``@pytest.mark.reel("...")`` marker's, ``reel.load("...")``'s,
or a request's ``x-streamreel-cassette`` header (``?streamreel_cassette=`` for an
``EventSource``, which cannot set headers). One rule, :func:`confine`, says where a name may
point: a relative path inside its directory (subdirectories allowed). Refused, with
:class:`~streamreel.errors.CassetteNameError`: an empty name, an absolute path or drive,
``..`` leading out, a symlink leading out, NUL or other control characters, backslashes and
``%`` (URL-encoding is never decoded, so ``%2e%2e`` cannot turn into ``..`` later).

A path *object* (``pathlib.Path``) is code, not a name: the pytest plugin takes it as given,
which is how a test points at a file elsewhere on purpose.

:class:`Library` maps names to cassettes for a server that serves a directory: each one loaded
on first use and kept, with its own ordered-playback state. A server on an event loop loads
with :meth:`Library.preload` (or :meth:`Library.aselect_named`) first, which loads a cassette on
a worker thread (a large one takes seconds) so the streams already in flight are not held up,
and loads it once however many requests ask for it meanwhile.
"""

from __future__ import annotations

import asyncio
import difflib
import gc
import os
import re
from pathlib import Path
from typing import Callable, Generic, Mapping, TypeVar
from urllib.parse import parse_qsl

from .cassette import _collector_paused
from .errors import CassetteError, CassetteNameError, StreamreelError

__all__ = ["CASSETTE_HEADER", "CASSETTE_PARAM", "SUFFIXES", "confine", "Library", "Refusal"]

CASSETTE_HEADER = "x-streamreel-cassette"
"""Request header naming the cassette (in a served directory) that answers this request."""

CASSETTE_PARAM = "streamreel_cassette"
"""Query parameter doing the same for clients that cannot set headers; ignored when matching."""

SUFFIXES = (".yaml", ".yml")
"""Cassette file suffixes; a request may leave them out."""

MAX_NAME = 1024

_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

S = TypeVar("S")


def _refusal(name: str) -> str | None:
    """Why ``name`` is refused before it touches the filesystem, or None."""
    if not name:
        return "is empty"
    if "\x00" in name:
        return "contains a NUL byte"
    if _CONTROL.search(name):
        return "contains a control character"
    if "\\" in name:
        return "contains a backslash (separate directories with /)"
    if "%" in name:
        return "contains % (names are not URL-decoded; give the name itself)"
    try:
        raw = os.fsencode(name)
    except UnicodeError:
        return "cannot be encoded as a file name"
    if len(name) > MAX_NAME or any(len(part) > 255 for part in raw.split(b"/")):
        return f"is too long (at most {MAX_NAME} characters, 255 bytes between slashes)"
    if name.startswith("/") or os.path.isabs(name):
        return "is an absolute path"
    if _DRIVE.match(name):
        return "starts with a drive letter"
    return None


def confine(directory: str | os.PathLike[str], name: str) -> Path:
    """The file cassette name ``name`` points to inside ``directory``; raises
    :class:`~streamreel.errors.CassetteNameError` if it would point anywhere else.

    Symlinks are followed before the check, so a link inside the directory that leads out is
    refused, while one between subdirectories is fine. The result is spelled from
    ``directory`` as given. ``directory`` need not exist yet (a cassette about to be recorded).
    """
    if not isinstance(name, str):
        raise TypeError(f"a cassette name is a str, got {type(name).__name__}; path objects are taken as given, not confined")
    why = _refusal(name)
    if why is not None:
        raise CassetteNameError(name, os.fspath(directory), why)
    base = os.path.realpath(directory)
    real = os.path.realpath(os.path.join(base, name))
    if real == base:
        raise CassetteNameError(name, os.fspath(directory), "names the directory itself, not a cassette in it")
    if os.path.commonpath([base, real]) != base:
        lexical = os.path.normpath(os.path.join(base, name))
        if os.path.commonpath([base, lexical]) == base:
            why = "goes through a symlink that leads outside the directory"
        else:
            why = "leads outside the directory (..)"
        raise CassetteNameError(name, os.fspath(directory), why)
    return Path(directory) / os.path.relpath(real, base)


class Refusal(StreamreelError):
    """A request a :class:`Library` cannot serve, with the HTTP status and Anthropic error type to answer."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        self.status = status
        self.kind = kind
        super().__init__(message)


class Library(Generic[S]):
    """The cassettes under ``directory``, served by name; ``load`` turns a file into what serves it.

    Each cassette is loaded on first use and kept (with its own ordered-playback state) until
    :meth:`clear`.
    """

    def __init__(self, directory: str | os.PathLike[str], load: Callable[[Path], S]) -> None:
        path = Path(directory)
        if not path.is_dir():
            raise CassetteError("not a directory (cassette_dir serves a directory of cassettes; pass a file as the cassette)", path=str(path))
        self.directory = path
        self._load = load
        self._cache: dict[Path, tuple[str, S]] = {}
        self._loading: dict[Path, asyncio.Future[tuple[str, S]]] = {}
        self.default: str | None = None
        """The cassette for requests that name none (a name in the directory), if one was chosen."""

    def names(self) -> list[str]:
        """Every cassette a request may name, as relative paths with their suffix."""
        out = []
        for path in sorted(self.directory.rglob("*")):
            if path.suffix in SUFFIXES and path.is_file():
                name = path.relative_to(self.directory).as_posix()
                try:
                    confine(self.directory, name)
                except CassetteNameError:
                    continue
                out.append(name)
        return out

    def path(self, name: str) -> Path:
        """The cassette file ``name`` names (its suffix optional); raises CassetteNameError or FileNotFoundError."""
        path = confine(self.directory, name)
        if path.is_file():
            return path
        if not name.endswith(SUFFIXES):
            for suffix in SUFFIXES:
                candidate = confine(self.directory, name + suffix)
                if candidate.is_file():
                    return candidate
        raise FileNotFoundError(name)

    def get(self, name: str) -> S:
        """What serves cassette ``name``, loaded on first use."""
        return self.get_named(name)[1]

    def get_named(self, name: str) -> tuple[str, S]:
        """:meth:`get`, with the cassette's path relative to the directory (one for every way of naming it)."""
        path = self.path(name)
        key = Path(os.path.realpath(path))
        entry = self._cache.get(key)
        if entry is None:
            entry = self._cache[key] = (path.relative_to(self.directory).as_posix(), self._load(path))
        return entry

    def clear(self) -> None:
        """Forget every loaded cassette: the next request reloads it and plays it from the top."""
        self._cache = {}
        self._loading = {}

    def select(self, headers: Mapping[str, str], query: str) -> S:
        """What serves a request, by its header or query parameter; raises :class:`Refusal` saying why not."""
        return self.select_named(headers, query)[1]

    def select_named(self, headers: Mapping[str, str], query: str) -> tuple[str, S]:
        """:meth:`select`, with the cassette's path relative to the directory (``errors/overloaded.yaml``)."""
        name, source = self._requested(headers, query)
        try:
            return self.get_named(name)
        except Exception as e:
            raise self._refusal(name, source, e) from None

    async def aselect_named(self, headers: Mapping[str, str], query: str) -> tuple[str, S]:
        """:meth:`select_named` for a server's event loop: a cassette not loaded yet is loaded on a worker
        thread, once, however many requests wait for it."""
        name, source = self._requested(headers, query)
        try:
            path = self.path(name)
            key = Path(os.path.realpath(path))
            entry = self._cache.get(key)
            if entry is not None:
                return entry
            loading = self._loading.get(key)
            if loading is None:
                loop = asyncio.get_running_loop()
                loading = self._loading[key] = loop.run_in_executor(None, lambda: (path.relative_to(self.directory).as_posix(), _loaded(self._load, path)))
                cache, pending = self._cache, self._loading
                loading.add_done_callback(lambda done: _settle(cache, pending, key, done))
            return await asyncio.shield(loading)
        except Exception as e:
            raise self._refusal(name, source, e) from None

    async def preload(self, headers: Mapping[str, str], query: str) -> None:
        """Load the cassette a request names, if it is not loaded yet, on a worker thread (see
        :meth:`aselect_named`), so that :meth:`select_named` then finds it without touching the disk.
        A request that names none or a bad one is left for :meth:`select_named` to refuse."""
        try:
            await self.aselect_named(headers, query)
        except Exception:
            return

    def _requested(self, headers: Mapping[str, str], query: str) -> tuple[str, str]:
        """The cassette a request names and where it named it; raises :class:`Refusal` when it names none."""
        name = headers.get(CASSETTE_HEADER)
        source = f"{CASSETTE_HEADER} header"
        if name is None:
            given = [v for k, v in parse_qsl(query, keep_blank_values=True) if k == CASSETTE_PARAM]
            if len(given) > 1:
                raise Refusal(400, "invalid_request_error", f"streamreel: ?{CASSETTE_PARAM}= is given {len(given)} times; give it once")
            name = given[0] if given else None
            source = f"?{CASSETTE_PARAM}= parameter"
        if name is None and self.default is not None:
            name, source = self.default, "default cassette"
        if name is None:
            names = self.names()
            if len(names) == 1:
                return names[0], "directory"
            if not names:
                raise Refusal(400, "invalid_request_error", f"streamreel: the served directory holds no cassettes ({'/'.join(SUFFIXES)} files)")
            raise Refusal(
                400,
                "invalid_request_error",
                f"streamreel: this server serves a directory of cassettes; name one with the {CASSETTE_HEADER} header "
                f"(or ?{CASSETTE_PARAM}= where headers cannot be set). Available: {_listing(names)}",
            )
        return name, source

    def _refusal(self, name: str, source: str, error: Exception) -> Exception:
        """What to answer when cassette ``name`` cannot be served (unexpected errors pass through)."""
        if isinstance(error, Refusal):
            return error
        if isinstance(error, CassetteNameError):
            return Refusal(400, "invalid_request_error", f"streamreel: bad {source}: {error.reason}; a name is a relative path inside the served directory")
        if isinstance(error, FileNotFoundError):
            names = self.names()
            close = difflib.get_close_matches(name, names, n=3, cutoff=0.5) or difflib.get_close_matches(name, [n.rsplit(".", 1)[0] for n in names], n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            return Refusal(404, "not_found_error", f"streamreel: no cassette {name!r} in the served directory.{hint} Available: {_listing(names)}")
        if isinstance(error, (StreamreelError, ValueError)):
            return Refusal(400, "invalid_request_error", f"streamreel: cassette {name!r} cannot be served: {error}")
        if isinstance(error, OSError):
            return Refusal(400, "invalid_request_error", f"streamreel: cassette {name!r} cannot be read: {error.strerror or error}")
        return error


def _loaded(load: Callable[[Path], S], path: Path) -> S:
    """``load(path)`` on a worker thread without stalling the event loop: with the cycle collector
    paused (a large cassette and its encoded events are hundreds of thousands of objects, and a
    full collection over them, run on whichever thread allocates, holds the interpreter lock for
    as long as the loading itself), then moved out of its reach (:func:`gc.freeze`: they live as
    long as the server; reference counting still frees them when dropped)."""
    with _collector_paused():
        loaded = load(path)
        gc.freeze()
    return loaded


def _settle(cache: dict[Path, tuple[str, S]], pending: dict[Path, asyncio.Future[tuple[str, S]]], key: Path, done: asyncio.Future[tuple[str, S]]) -> None:
    """A load finished: keep what it made (unless the library was cleared meanwhile) and let the next request load again if it failed."""
    if pending.get(key) is done:
        del pending[key]
        if not done.cancelled() and done.exception() is None:
            cache[key] = done.result()


def _listing(names: list[str], limit: int = 50) -> str:
    shown = ", ".join(names[:limit])
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return (shown + more) if names else "none"
