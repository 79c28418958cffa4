"""The pytest plugin: one replay server per session (per xdist worker), fresh state per test.

Fixtures:

- ``reel``: the server for one test. It serves the cassette named by the test's
  ``@pytest.mark.reel(...)`` (or nothing until ``reel.load(...)``) and starts with no
  requests, no responses and ordered playback from the top.
- ``reel_session``: the same server without per-test state, for ``@given`` tests that
  load a cassette once per example (hypothesis refuses function-scoped fixtures there).
- ``reel_cassette_dir``: where marker cassettes live; ``cassettes/<test module>/`` next to
  the test file, as with pytest-recording. Override it in a conftest to move them.

SDK clients, session-scoped with ``max_retries=0`` so no test builds one per example:
``anthropic_client``, ``async_anthropic_client``, ``openai_client``, ``async_openai_client``
talk to the session's server over loopback; the ``inprocess_`` ones (same names after the
prefix) reach the same cassette through :meth:`Reel.transport`, with no socket.

Marker: ``@pytest.mark.reel("name.yaml", faults=[...], speed=...)``; its keyword arguments
are those of :meth:`Reel.load`.

Options: ``--reel-mode=none|once|new_episodes|all`` (default ``none``: replay only),
``--reel-upstream URL`` (record through :class:`streamreel.recorder.Recorder`; implies
``once`` unless a mode is given), ``--reel-speed`` (default 0: no waiting) and
``--reel-report`` (print, per test, the resilience verdicts its client failed; see
:mod:`streamreel.verdicts`).
"""

from __future__ import annotations

import os
import re
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence, Union

import pytest

from .cassette import Cassette
from .errors import CassetteError, FaultSpecError, StreamreelError
from .fault_injection.speed import check_speed
from .library import confine
from .recorder import MODES
from .replayer import Replayer
from .verdicts import GRACE_S, Verdicts, ajudge, assert_resilient, judge

if TYPE_CHECKING:
    from .matching import ReceivedRequest
    from .replayer import SentResponse
    from .transport import ReplayTransport

__all__ = [
    "Reel",
    "MODES",
    "reel",
    "reel_session",
    "reel_cassette_dir",
    "anthropic_client",
    "async_anthropic_client",
    "openai_client",
    "async_openai_client",
    "inprocess_anthropic_client",
    "inprocess_async_anthropic_client",
    "inprocess_openai_client",
    "inprocess_async_openai_client",
]


SETTLE_TIMEOUT_S = 5.0

CassetteArg = Union[Cassette, str, "os.PathLike[str]", None]


class Reel:
    """A handle on the replay server for a test: load what it serves, then look at what happened.

    ``url`` is the base URL for a client. ``requests`` is what arrived; ``responses`` is the
    ground truth of what each response sent and how it ended, once every response in flight
    has finished (from async code, ``await reel.asettle()`` first).
    """

    def __init__(
        self,
        server: Replayer,
        *,
        cassette_dir: Path | None = None,
        speed: float = 0.0,
        mode: str = "none",
        upstream: str | None = None,
    ) -> None:
        self._server = server
        self.cassette_dir = cassette_dir
        self.speed = speed
        self.mode = mode
        self.upstream = upstream
        self._recorder: Any = None
        self._bounds: dict[str, Any] = {}

    def __repr__(self) -> str:
        where = f" {self.cassette_dir}" if self.cassette_dir is not None else ""
        return f"<Reel {self.url}{where} mode={self.mode} speed={self.speed:g}>"

    # ------------------------------------------------------------ serving

    @property
    def _active(self) -> Replayer:
        """The recorder while this test records, else the session's replay server."""
        return self._recorder if self._recorder is not None else self._server

    @property
    def url(self) -> str:
        """Base URL to give a client (``Anthropic(base_url=reel.url)``)."""
        return self._active.url

    @property
    def recording(self) -> bool:
        """Whether requests the cassette does not answer go to ``--reel-upstream`` and are recorded."""
        return self._recorder is not None

    @property
    def cassette(self) -> Cassette:
        return self._active.cassette

    def load(
        self,
        cassette: CassetteArg = None,
        *,
        faults: Sequence[Any] | str = (),
        speed: float | None = None,
        match_on: Iterable[str] | None = None,
        ignore_query: Iterable[str] | None = None,
        ignore_body_keys: Iterable[str] | None = None,
    ) -> Reel:
        """Serve ``cassette`` from now on, under ``faults``, at ``speed`` (default: ``--reel-speed``),
        matching requests by ``match_on``/``ignore_query``/``ignore_body_keys`` (default: the
        replayer's: method, path, query less ``beta``, and JSON body).

        ``cassette`` is a :class:`Cassette`, a name, a path, or None for an empty cassette. A
        name (a string) is a relative path inside this test's cassette directory and may not
        leave it; a path object (``pathlib.Path``) is taken as given, a relative one from there.
        Requests, responses and ordered playback start afresh; the server keeps running. With ``--reel-upstream``, a path the
        record mode says to record is served by a recorder instead, which writes the file when
        the test ends or the next ``load`` comes. Returns the reel, for chaining.
        """
        self._stop_recording()
        speed = self.speed if speed is None else speed
        given = {"match_on": match_on, "ignore_query": ignore_query, "ignore_body_keys": ignore_body_keys}
        match = {k: v for k, v in given.items() if v is not None}
        if isinstance(cassette, (str, os.PathLike)):
            path = self.resolve(cassette)
            if self.mode in ("new_episodes", "all") or (self.mode == "once" and not path.exists()):
                self._start_recording(path, faults=faults, speed=speed, match=match)
                return self
            if not path.exists():
                raise CassetteError(self._missing(), path=str(path))
            cassette = path
        self._server.load(cassette, faults=faults, speed=speed, **match)
        return self

    def resolve(self, name: str | os.PathLike[str]) -> Path:
        """Where a cassette name points: a string is a name inside :attr:`cassette_dir` and may not
        leave it (see :func:`streamreel.library.confine`); a path object is taken as given, a
        relative one from :attr:`cassette_dir`."""
        if isinstance(name, str) and self.cassette_dir is not None:
            return confine(self.cassette_dir, name)
        path = Path(os.fspath(name))
        if path.is_absolute() or self.cassette_dir is None:
            return path
        return self.cassette_dir / path

    def clear(self) -> None:
        """Forget requests and responses and restart ordered playback."""
        self._active.clear()

    def transport(self, *, realtime: bool = False) -> ReplayTransport:
        """An in-process transport for an SDK's ``http_client=`` that serves what this reel
        serves (the same cassette, faults and ground truth) with no socket; see
        :class:`streamreel.transport.ReplayTransport`. One per session server, reused."""
        return _transport_for(self._server, realtime)

    # ------------------------------------------------------------ ground truth

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request that arrived since the last load or clear, in order."""
        return self._active.requests

    @property
    def responses(self) -> list[SentResponse]:
        """What each response really sent and how it ended, after waiting for those in flight."""
        return self._active.settle(SETTLE_TIMEOUT_S)

    def settle(self, timeout: float = SETTLE_TIMEOUT_S) -> list[SentResponse]:
        """Wait until no response is in flight (and a recording is written); returns :attr:`responses`."""
        return self._active.settle(timeout)

    async def asettle(self, timeout: float = SETTLE_TIMEOUT_S) -> list[SentResponse]:
        """:meth:`settle` for async tests: waits on the server's thread without blocking the test's loop."""
        return await self._active.asettle(timeout)

    # ------------------------------------------------------------ verdicts

    def verdicts(self, *, silence_s: float | None = None, max_streams: int | None = None, grace_s: float = GRACE_S) -> Verdicts:
        """The resilience verdicts on what the client did since the last load or clear (see
        :mod:`streamreel.verdicts`); ``--reel-report`` uses the bounds of the test's last call."""
        self._bounds = {"silence_s": silence_s, "max_streams": max_streams}
        return judge(self._active, silence_s=silence_s, max_streams=max_streams, grace_s=grace_s)

    async def averdicts(self, *, silence_s: float | None = None, max_streams: int | None = None, grace_s: float = GRACE_S) -> Verdicts:
        """:meth:`verdicts` for async tests: waits on the server's thread without blocking the test's loop."""
        self._bounds = {"silence_s": silence_s, "max_streams": max_streams}
        return await ajudge(self._active, silence_s=silence_s, max_streams=max_streams, grace_s=grace_s)

    def assert_resilient(self, *, silence_s: float | None = None, max_streams: int | None = None, ignore: Iterable[str] = ()) -> Verdicts:
        """Fail the test (``AssertionError``) listing every check the client failed, with its evidence."""
        verdicts = self.verdicts(silence_s=silence_s, max_streams=max_streams)
        assert_resilient(verdicts, ignore=ignore)
        return verdicts

    # ------------------------------------------------------------ recording

    def _missing(self) -> str:
        where = f"cassettes for this test live in {self.cassette_dir}; " if self.cassette_dir is not None else ""
        if self.mode == "once":
            return f"no such cassette; {where}pass --reel-upstream URL to record it"
        return f"no such cassette; {where}record it with --reel-upstream URL (and --reel-mode=once, the default then)"

    def _start_recording(self, path: Path, *, faults: Sequence[Any] | str, speed: float, match: dict[str, Any]) -> None:
        if self.upstream is None:
            raise CassetteError(self._missing(), path=str(path))
        from .recorder import Recorder

        recorder = Recorder(cassette=path, upstream=self.upstream, mode=self.mode, faults=faults, speed=speed, **match)
        recorder.__enter__()
        self._recorder = recorder

    def _stop_recording(self) -> None:
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            recorder.__exit__(None, None, None)

    def close(self) -> None:
        """The test is over: a recording in progress is finished and its cassette written."""
        self._stop_recording()


# ---------------------------------------------------------------- options


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("streamreel", "streamreel: replay and record LLM streams")
    group.addoption(
        "--reel-mode",
        choices=MODES,
        default=None,
        help="none: replay only (default); once: record missing cassettes; new_episodes: record requests no cassette matches; all: re-record everything.",
    )
    group.addoption("--reel-upstream", metavar="URL", default=None, help="Real API to record through (e.g. https://api.anthropic.com); implies --reel-mode=once.")
    group.addoption("--reel-speed", type=float, default=None, metavar="FACTOR", help="Replay speed: 0 = no waiting (default), 1 = as recorded, 2 = twice as fast.")
    group.addoption("--reel-report", action="store_true", default=False, help="Print, per test using `reel`, the resilience verdicts its client failed.")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "reel(cassette=None, *, faults=(), speed=None): serve CASSETTE (a name in cassettes/<test module>/, "
        "a path, or a Cassette; default: the test's name) through the `reel` fixture, under FAULTS, at SPEED",
    )
    _settings(config)
    if config.getoption("reel_report", False) and not config.pluginmanager.has_plugin("streamreel-report"):
        config.pluginmanager.register(_VerdictReport(), "streamreel-report")


def _settings(config: pytest.Config) -> tuple[str, str | None, float]:
    upstream = config.getoption("reel_upstream", None)
    mode = config.getoption("reel_mode", None) or ("once" if upstream else "none")
    speed = config.getoption("reel_speed", None)
    speed = 0.0 if speed is None else speed
    try:
        check_speed(speed, "--reel-speed")
    except FaultSpecError as e:
        raise pytest.UsageError(str(e)) from None
    if mode in ("new_episodes", "all") and not upstream:
        raise pytest.UsageError(f"--reel-mode={mode} records, so it needs --reel-upstream URL (the API to record through)")
    if mode == "none" and upstream:
        raise pytest.UsageError("--reel-upstream is for recording; it does nothing with --reel-mode=none")
    if upstream and not re.match(r"^https?://", upstream):
        raise pytest.UsageError(f"--reel-upstream must be an http(s) URL, got {upstream!r}")
    return mode, upstream, speed


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def _reel_server() -> Iterator[Replayer]:
    """One replay server on 127.0.0.1 for the whole session (one per xdist worker)."""
    with Replayer(None, speed=0.0) as server:
        yield server


@pytest.fixture(scope="session")
def reel_session(_reel_server: Replayer, pytestconfig: pytest.Config) -> Iterator[Reel]:
    """The session's replay server with no per-test reset, for ``@given`` tests: call
    ``reel_session.load(...)`` in every example. Relative paths resolve from the working directory."""
    mode, upstream, speed = _settings(pytestconfig)
    handle = Reel(_reel_server, speed=speed, mode=mode, upstream=upstream)
    yield handle
    handle.close()


@pytest.fixture
def reel_cassette_dir(request: pytest.FixtureRequest) -> Path:
    """``cassettes/<test module>/`` next to the test file; override to keep cassettes elsewhere."""
    module = Path(request.node.path)
    return module.parent / "cassettes" / module.stem


def _default_name(request: pytest.FixtureRequest) -> str:
    name = request.node.name if request.cls is None else f"{request.cls.__name__}.{request.node.name}"
    return re.sub(r'[<>?%*:|"\'/\\]', "-", name) + ".yaml"


@pytest.fixture
def reel(reel_session: Reel, reel_cassette_dir: Path, request: pytest.FixtureRequest) -> Iterator[Reel]:
    """The replay server for one test: serves the ``reel`` marker's cassette (or nothing
    until ``reel.load``), with no requests or responses yet and ordered playback from the top."""
    handle = Reel(
        reel_session._server,
        cassette_dir=Path(reel_cassette_dir),
        speed=reel_session.speed,
        mode=reel_session.mode,
        upstream=reel_session.upstream,
    )
    reel_session._server.cut_inflight()
    marker = request.node.get_closest_marker("reel")
    args, kwargs = ((None,), {}) if marker is None else _marker_arguments(marker, request)
    try:
        handle.load(*args, **kwargs)
    except StreamreelError as e:
        pytest.fail(f"@pytest.mark.reel: {e}", pytrace=False)
    yield handle
    if request.config.getoption("reel_report", False):
        _record_verdicts(handle, request)
    handle.close()


# ---------------------------------------------------------------- --reel-report

_VERDICTS_PROPERTY = "streamreel_verdicts"


def _record_verdicts(handle: Reel, request: pytest.FixtureRequest) -> None:
    """Judge the test's client; failed checks travel in the teardown report (so xdist carries them)."""
    verdicts = judge(handle._active, **handle._bounds)
    if verdicts.requests and verdicts.failed:
        request.node.user_properties.append((_VERDICTS_PROPERTY, verdicts.report()))


class _VerdictReport:
    """``--reel-report``: collects each test's failed verdicts and prints them after the run."""

    def __init__(self) -> None:
        self.failed: list[tuple[str, str]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown":
            self.failed += [(report.nodeid, str(value)) for name, value in report.user_properties if name == _VERDICTS_PROPERTY]

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        terminalreporter.section("streamreel verdicts")
        if not self.failed:
            terminalreporter.write_line("every client passed every check")
        for nodeid, report in self.failed:
            terminalreporter.write_line(nodeid, bold=True)
            for line in report.splitlines():
                terminalreporter.write_line(f"  {line}")


_LOAD_KEYWORDS = ("cassette", "faults", "speed", "match_on", "ignore_query", "ignore_body_keys")


def _marker_arguments(marker: pytest.Mark, request: pytest.FixtureRequest) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if len(marker.args) > 1:
        pytest.fail(f"@pytest.mark.reel takes one cassette, got {len(marker.args)}: {marker.args!r}", pytrace=False)
    unknown = sorted(set(marker.kwargs) - set(_LOAD_KEYWORDS))
    if unknown:
        pytest.fail(f"@pytest.mark.reel got unknown keyword(s) {', '.join(unknown)}; it takes: {', '.join(_LOAD_KEYWORDS)}", pytrace=False)
    kwargs = dict(marker.kwargs)
    if marker.args and "cassette" in kwargs:
        pytest.fail("@pytest.mark.reel got the cassette twice (positionally and as cassette=)", pytrace=False)
    cassette = marker.args[0] if marker.args else kwargs.pop("cassette", _default_name(request))
    return (cassette,), kwargs


# ---------------------------------------------------------------- SDK clients

_API_KEY = "sk-" + "streamreel-" + "test-key"
"""Any key works on the replay server; this one is plainly not a real one."""

_transports: weakref.WeakKeyDictionary[Replayer, dict[bool, ReplayTransport]] = weakref.WeakKeyDictionary()


def _transport_for(server: Replayer, realtime: bool) -> ReplayTransport:
    from .transport import ReplayTransport

    made = _transports.setdefault(server, {})
    if realtime not in made:
        made[realtime] = ReplayTransport(server, realtime=realtime)
    return made[realtime]


def _sdk(name: str, fixture: str) -> Any:
    try:
        return __import__(name)
    except ImportError:
        pytest.fail(f"the {fixture} fixture needs the {name} SDK: pip install {name}", pytrace=False)


def _client(sdk_name: str, fixture: str, reel_session: Reel, *, is_async: bool, inprocess: bool) -> Any:
    """An SDK client on the session's server with no retries: one per session, not per example."""
    sdk = _sdk(sdk_name, fixture)
    suffix = "/v1" if sdk_name == "openai" else ""
    make = sdk.AsyncAnthropic if sdk_name == "anthropic" and is_async else sdk.Anthropic if sdk_name == "anthropic" else sdk.AsyncOpenAI if is_async else sdk.OpenAI
    if inprocess:
        from .transport import BASE_URL

        http = (sdk.DefaultAsyncHttpxClient if is_async else sdk.DefaultHttpxClient)(transport=reel_session.transport())
        return make(base_url=BASE_URL + suffix, api_key=_API_KEY, max_retries=0, http_client=http)
    if is_async:
        import httpx2

        # No kept-alive connections: a connection belongs to the event loop that opened it, and
        # each async test runs on its own loop.
        http = sdk.DefaultAsyncHttpxClient(limits=httpx2.Limits(max_keepalive_connections=0))
        return make(base_url=reel_session.url + suffix, api_key=_API_KEY, max_retries=0, http_client=http)
    return make(base_url=reel_session.url + suffix, api_key=_API_KEY, max_retries=0)


def _client_fixture(sdk_name: str, *, is_async: bool, inprocess: bool, doc: str) -> Any:
    name = f"{'inprocess_' if inprocess else ''}{'async_' if is_async else ''}{sdk_name}_client"

    def fixture(reel_session: Reel) -> Iterator[Any]:
        client = _client(sdk_name, name, reel_session, is_async=is_async, inprocess=inprocess)
        yield client
        if not is_async:
            client.close()

    fixture.__doc__ = doc
    return pytest.fixture(scope="session", name=name)(fixture)


anthropic_client = _client_fixture(
    "anthropic",
    is_async=False,
    inprocess=False,
    doc="""``anthropic.Anthropic`` on the session's replay server, ``max_retries=0`` (a fault shows
    as it happens, not retried away). Session-scoped, so ``@given`` tests share it: load each
    example with ``reel_session.load(...)`` (or use ``reel`` in plain tests).""",
)
async_anthropic_client = _client_fixture(
    "anthropic",
    is_async=True,
    inprocess=False,
    doc="""``anthropic.AsyncAnthropic`` on the session's replay server, ``max_retries=0``; it keeps
    no connection between requests, so any test's event loop can use it.""",
)
openai_client = _client_fixture("openai", is_async=False, inprocess=False, doc="""``openai.OpenAI`` on the session's replay server (``/v1``), ``max_retries=0``.""")
async_openai_client = _client_fixture("openai", is_async=True, inprocess=False, doc="""``openai.AsyncOpenAI`` on the session's replay server (``/v1``), ``max_retries=0``.""")
inprocess_anthropic_client = _client_fixture(
    "anthropic",
    is_async=False,
    inprocess=True,
    doc="""``anthropic.Anthropic`` on :meth:`Reel.transport`: what the reel serves, with no socket
    (faults end the same way; a stall against the read timeout costs no wall time).""",
)
inprocess_async_anthropic_client = _client_fixture("anthropic", is_async=True, inprocess=True, doc="""``anthropic.AsyncAnthropic`` on :meth:`Reel.transport`.""")
inprocess_openai_client = _client_fixture("openai", is_async=False, inprocess=True, doc="""``openai.OpenAI`` on :meth:`Reel.transport`.""")
inprocess_async_openai_client = _client_fixture("openai", is_async=True, inprocess=True, doc="""``openai.AsyncOpenAI`` on :meth:`Reel.transport`.""")
