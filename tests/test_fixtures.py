"""The pytest plugin, driven through pytester: fixtures, marker, options, xdist, asyncio, hypothesis, recording."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Iterator

import httpx2
import pytest

from streamreel import Cassette, Event, Replayer, save
from streamreel.cassette import load
from streamreel.providers.anthropic import TextBlock, message_events

pytest_plugins = ("pytester",)


@pytest.fixture(autouse=True)
def _inner_ini(pytester: pytest.Pytester) -> None:
    """The inner runs' settings: pytest-asyncio's loop scope, so they run without warnings."""
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")


def hello_cassette(*texts: str) -> Cassette:
    """One streamed reply per text, in order (ordered playback hands them out one by one)."""
    interactions = []
    for text in texts or ("hello",):
        interactions.extend(Cassette.from_events(message_events([TextBlock((text,))])).interactions)
    return Cassette(interactions=tuple(interactions))


CLIENT = """
import anthropic
import pytest

def ask(url):
    with anthropic.Anthropic(base_url=url, api_key="sk-test", max_retries=0) as client:
        with client.messages.stream(model="claude-haiku-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}]) as s:
            return s.get_final_text()
"""


def write_test(pytester: pytest.Pytester, name: str, body: str) -> Path:
    return pytester.makepyfile(**{name: CLIENT + textwrap.dedent(body)})


@pytest.fixture(scope="module", autouse=True)
def _http_stack_imported() -> None:
    """Do once, before any inner run, what the inner runs do: SDK requests (sync and async)
    and a hypothesis run. pytester's in-process runs drop every module first imported during
    the run; had httpcore2 or h11 first loaded in there, httpx2's exception mapping would keep
    pointing at the dropped classes and every later test in this worker would see raw
    ``httpcore2`` errors."""
    import asyncio

    import anthropic
    from hypothesis import find

    import streamreel.recorder  # noqa: F401  (loaded by the recording runs)
    from streamreel.strategies import anthropic_streams

    with Replayer(hello_cassette(), speed=0) as server:
        with anthropic.Anthropic(base_url=server.url, api_key="sk-test", max_retries=0) as client:
            with client.messages.stream(model="claude-haiku-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}]) as s:
                s.get_final_text()

        async def ask_async() -> None:
            async with anthropic.AsyncAnthropic(base_url=server.url, api_key="sk-test", max_retries=0) as aclient:
                async with aclient.messages.stream(model="claude-haiku-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}]) as s:
                    await s.get_final_text()

        asyncio.run(ask_async())
    find(anthropic_streams(), lambda stream: len(stream.text_deltas) > 1)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def put_cassette(pytester: pytest.Pytester, module: str, name: str, cassette: Cassette) -> Path:
    path = pytester.path / "cassettes" / module / name
    save(cassette, path)
    return path


def test_marker_serves_the_cassette_next_to_the_test_module(pytester: pytest.Pytester) -> None:
    put_cassette(pytester, "test_marked", "greeting.yaml", hello_cassette("hi there"))
    write_test(
        pytester,
        "test_marked",
        """
        @pytest.mark.reel("greeting.yaml")
        def test_it(reel):
            assert ask(reel.url) == "hi there"
            assert [str(r) for r in reel.requests] == ["POST /v1/messages"]
            [sent] = reel.responses
            assert sent.ending == "end" and sent.events[-1].event == "message_stop"
        """,
    )
    run(pytester).assert_outcomes(passed=1)


def test_marker_without_a_name_uses_the_test_name_as_pytest_recording_does(pytester: pytest.Pytester) -> None:
    put_cassette(pytester, "test_default_name", "test_it.yaml", hello_cassette("by name"))
    put_cassette(pytester, "test_default_name", "TestGroup.test_in_class.yaml", hello_cassette("by class"))
    write_test(
        pytester,
        "test_default_name",
        """
        @pytest.mark.reel
        def test_it(reel):
            assert ask(reel.url) == "by name"

        @pytest.mark.reel
        class TestGroup:
            def test_in_class(self, reel):
                assert ask(reel.url) == "by class"
        """,
    )
    run(pytester).assert_outcomes(passed=2)


def test_each_test_starts_clean_on_the_same_server(pytester: pytest.Pytester) -> None:
    put_cassette(pytester, "test_clean", "two.yaml", hello_cassette("first", "second"))
    write_test(
        pytester,
        "test_clean",
        """
        urls = []

        @pytest.mark.reel("two.yaml")
        @pytest.mark.parametrize("run", range(3))
        def test_ordered_playback_restarts(reel, run):
            urls.append(reel.url)
            assert reel.requests == [] and reel.responses == []
            assert [ask(reel.url), ask(reel.url), ask(reel.url)] == ["first", "second", "second"]
            assert len(set(urls)) == 1, "one server for the whole session"
        """,
    )
    run(pytester).assert_outcomes(passed=3)


def test_a_stream_an_earlier_test_left_open_does_not_hold_up_the_next(pytester: pytest.Pytester) -> None:
    put_cassette(pytester, "test_leftover", "c.yaml", hello_cassette("hi"))
    write_test(
        pytester,
        "test_leftover",
        """
        import time

        leaked = []

        @pytest.mark.reel("c.yaml", faults=["stall:after=2"])
        def test_leaves_a_stalled_stream_open(reel):
            client = anthropic.Anthropic(base_url=reel.url, api_key="sk-test", max_retries=0)
            stream = client.messages.create(model="claude-haiku-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}], stream=True)
            next(iter(stream))
            leaked.append((client, stream))  # never closed: the server keeps the response open

        @pytest.mark.reel("c.yaml")
        def test_next_settles_at_once(reel):
            started = time.monotonic()
            assert ask(reel.url) == "hi"
            assert [r.ending for r in reel.responses] == ["end"]
            assert time.monotonic() - started < 2
        """,
    )
    run(pytester).assert_outcomes(passed=2)


def test_marker_keywords_are_those_of_load(pytester: pytest.Pytester) -> None:
    put_cassette(pytester, "test_kwargs", "c.yaml", hello_cassette())
    write_test(
        pytester,
        "test_kwargs",
        """
        from streamreel.fault_injection import parse_one

        SPEC = str(parse_one("speed:0"))

        @pytest.mark.reel("c.yaml", faults=["speed:0"], speed=0)
        def test_marker(reel):
            ask(reel.url)
            assert reel.responses[0].fault_specs == (SPEC,)

        def test_load(reel):
            reel.load("c.yaml", faults=["speed:0"], speed=0)
            ask(reel.url)
            assert reel.responses[0].fault_specs == (SPEC,)
        """,
    )
    run(pytester).assert_outcomes(passed=2)


def test_load_takes_a_cassette_object_or_a_path_object_as_given(pytester: pytest.Pytester, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.yaml"
    save(hello_cassette("from afar"), elsewhere)
    save(hello_cassette("next door"), pytester.path / "cassettes" / "shared.yaml")
    (pytester.path / "cassettes" / "test_objects").mkdir()
    write_test(
        pytester,
        "test_objects",
        f"""
        from pathlib import Path
        from streamreel import Cassette
        from streamreel.providers.anthropic import TextBlock, message_events

        def test_object(reel):
            reel.load(Cassette.from_events(message_events([TextBlock(("made", " here"))])))
            assert ask(reel.url) == "made here"

        @pytest.mark.reel(Path({str(elsewhere)!r}))
        def test_absolute(reel):
            assert ask(reel.url) == "from afar"

        @pytest.mark.reel(Path("../shared.yaml"))
        def test_relative_path_object_leaves_on_purpose(reel):
            assert ask(reel.url) == "next door"
        """,
    )
    run(pytester).assert_outcomes(passed=3)


def test_marker_names_may_use_subdirectories(pytester: pytest.Pytester) -> None:
    put_cassette(pytester, "test_subdir", "errors/overloaded.yaml", hello_cassette("from a subdirectory"))
    write_test(
        pytester,
        "test_subdir",
        """
        @pytest.mark.reel("errors/overloaded.yaml")
        def test_it(reel):
            assert ask(reel.url) == "from a subdirectory"
        """,
    )
    run(pytester).assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ('"../shared.yaml"', "leads outside the directory (..)"),
        ('"sub/../../../shared.yaml"', "leads outside the directory (..)"),
        ("str(Path.cwd() / 'cassettes' / 'shared.yaml')", "is an absolute path"),
        ('"link.yaml"', "goes through a symlink that leads outside the directory"),
    ],
)
def test_marker_names_that_leave_the_cassette_directory_are_refused(pytester: pytest.Pytester, name: str, why: str) -> None:
    save(hello_cassette("must not be served"), pytester.path / "cassettes" / "shared.yaml")
    (pytester.path / "cassettes" / "test_escape").mkdir()
    (pytester.path / "cassettes" / "test_escape" / "link.yaml").symlink_to(pytester.path / "cassettes" / "shared.yaml")
    write_test(
        pytester,
        "test_escape",
        f"""
        from pathlib import Path

        @pytest.mark.reel({name})
        def test_it(reel):
            pass
        """,
    )
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*@pytest.mark.reel: cassette name *{why}; a cassette name is a relative path inside *cassettes/test_escape. To use a file elsewhere on purpose, pass a pathlib.Path*"])


def test_load_refuses_a_name_that_leaves_the_directory_before_touching_the_server(pytester: pytest.Pytester) -> None:
    save(hello_cassette("must not be served"), pytester.path / "cassettes" / "shared.yaml")
    write_test(
        pytester,
        "test_load_escape",
        """
        from streamreel import CassetteNameError

        def test_it(reel):
            with pytest.raises(CassetteNameError, match="leads outside"):
                reel.load("../shared.yaml")
            assert reel.cassette.interactions == ()
        """,
    )
    run(pytester).assert_outcomes(passed=1)


def test_a_missing_cassette_fails_naming_the_file_and_how_to_record_it(pytester: pytest.Pytester) -> None:
    write_test(
        pytester,
        "test_missing",
        """
        @pytest.mark.reel("nope.yaml")
        def test_it(reel):
            pass
        """,
    )
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*cassettes/test_missing/nope.yaml: no such cassette*--reel-upstream URL*"])


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ('"a.yaml", fault=["speed:0"]', "*unknown keyword(s) fault; it takes: cassette, faults, speed*"),
        ('"a.yaml", "b.yaml"', "*takes one cassette, got 2*"),
        ('"a.yaml", faults=["nosuchfault"]', "*unknown fault 'nosuchfault'; known faults:*"),
    ],
)
def test_bad_marker_arguments_fail_with_what_is_wrong(pytester: pytest.Pytester, marker: str, message: str) -> None:
    put_cassette(pytester, "test_bad_marker", "a.yaml", hello_cassette())
    write_test(
        pytester,
        "test_bad_marker",
        f"""
        @pytest.mark.reel({marker})
        def test_it(reel):
            pass
        """,
    )
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([message])


def test_without_a_marker_nothing_is_served_until_load(pytester: pytest.Pytester) -> None:
    write_test(
        pytester,
        "test_unloaded",
        """
        def test_it(reel):
            with pytest.raises(Exception, match="no recorded interaction matches POST /v1/messages"):
                ask(reel.url)
            assert reel.responses[0].status == 404
        """,
    )
    run(pytester).assert_outcomes(passed=1)


def test_reel_cassette_dir_can_be_overridden(pytester: pytest.Pytester) -> None:
    save(hello_cassette("shared"), pytester.path / "shared" / "s.yaml")
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def reel_cassette_dir(request):
            return request.config.rootpath / "shared"
        """
    )
    write_test(
        pytester,
        "test_override",
        """
        @pytest.mark.reel("s.yaml")
        def test_it(reel):
            assert ask(reel.url) == "shared"
        """,
    )
    run(pytester).assert_outcomes(passed=1)


SLOW = Cassette.from_events(message_events([TextBlock(("slow",))]))


def test_reel_speed_defaults_to_no_waiting_and_the_option_sets_it(pytester: pytest.Pytester) -> None:
    from dataclasses import replace

    events = tuple(replace(e, t=400.0) for e in SLOW.interactions[0].response.events or ())
    put_cassette(pytester, "test_speed", "slow.yaml", Cassette.from_events(events))
    write_test(
        pytester,
        "test_speed",
        """
        @pytest.mark.reel("slow.yaml")
        def test_it(reel, pytestconfig):
            expected = pytestconfig.getoption("reel_speed")
            assert reel.speed == (0.0 if expected is None else expected)
            ask(reel.url)
            took = reel.responses[0].duration_ms
            if reel.speed == 0:
                assert took < 400, took
            else:
                assert took >= 400 / reel.speed, took
        """,
    )
    run(pytester).assert_outcomes(passed=1)
    run(pytester, "--reel-speed=1").assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reel-mode=all"], "*--reel-mode=all records, so it needs --reel-upstream URL*"),
        (["--reel-mode=new_episodes"], "*--reel-mode=new_episodes records, so it needs --reel-upstream URL*"),
        (["--reel-speed=-1"], "*--reel-speed must be 0 (no waiting) or between 0.001 and 1000, got -1.0*"),
        (["--reel-upstream=ftp://x"], "*--reel-upstream must be an http(s) URL, got 'ftp://x'*"),
        (["--reel-mode=none", "--reel-upstream=http://127.0.0.1:9"], "*--reel-upstream is for recording*"),
        (["--reel-mode=sometimes"], "*argument --reel-mode: invalid choice: 'sometimes'*"),
    ],
)
def test_bad_options_stop_the_run_with_a_usage_error(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    write_test(pytester, "test_any", "def test_it():\n    pass\n")
    result = run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_runs_under_xdist_with_one_server_per_worker(pytester: pytest.Pytester) -> None:
    put_cassette(pytester, "test_workers", "c.yaml", hello_cassette("parallel"))
    log = pytester.path / "servers.txt"
    write_test(
        pytester,
        "test_workers",
        f"""
        import os

        @pytest.mark.reel("c.yaml")
        @pytest.mark.parametrize("n", range(8))
        def test_it(reel, n):
            assert ask(reel.url) == "parallel"
            assert len(reel.requests) == 1
            with open({str(log)!r}, "a") as f:
                f.write(os.environ["PYTEST_XDIST_WORKER"] + " " + reel.url + "\\n")
        """,
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2").assert_outcomes(passed=8)
    servers: dict[str, set[str]] = {}
    for line in log.read_text().splitlines():
        worker, url = line.split()
        servers.setdefault(worker, set()).add(url)
    assert sorted(servers) == ["gw0", "gw1"]
    assert all(len(urls) == 1 for urls in servers.values()), servers
    assert servers["gw0"] != servers["gw1"]


def test_works_in_async_tests(pytester: pytest.Pytester) -> None:
    put_cassette(pytester, "test_async", "c.yaml", hello_cassette("async hello"))
    pytester.makepyfile(
        test_async="""
        import anthropic
        import pytest

        @pytest.mark.reel("c.yaml")
        async def test_it(reel):
            async with anthropic.AsyncAnthropic(base_url=reel.url, api_key="sk-test", max_retries=0) as client:
                async with client.messages.stream(model="claude-haiku-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}]) as s:
                    assert await s.get_final_text() == "async hello"
            [sent] = await reel.asettle()
            assert sent.ending == "end"
        """
    )
    run(pytester).assert_outcomes(passed=1)


def test_reel_session_works_inside_given_and_reel_needs_the_documented_setting(pytester: pytest.Pytester) -> None:
    write_test(
        pytester,
        "test_given",
        """
        from hypothesis import HealthCheck, given, settings
        from streamreel.strategies import anthropic_streams

        @settings(max_examples=20, deadline=None)
        @given(stream=anthropic_streams())
        def test_session_form(reel_session, stream):
            reel_session.load(stream)
            assert ask(reel_session.url) == stream.text
            assert len(reel_session.requests) == 1

        @settings(max_examples=5, deadline=None)
        @given(stream=anthropic_streams())
        def test_function_form_trips_the_health_check(reel, stream):
            pass

        @settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(stream=anthropic_streams())
        def test_function_form_with_the_setting(reel, stream):
            reel.load(stream)
            assert ask(reel.url) == stream.text
        """,
    )
    result = run(pytester)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_function_form_trips_the_health_check*uses a function-scoped fixture 'reel'*"])


@pytest.fixture
def upstream() -> Iterator[Replayer]:
    """A stand-in for the real API: a replayer serving one reply to every request."""
    with Replayer(hello_cassette("from upstream"), speed=0) as server:
        yield server


def test_upstream_records_a_missing_cassette_that_later_runs_replay(pytester: pytest.Pytester, upstream: Replayer) -> None:
    write_test(
        pytester,
        "test_recording",
        """
        @pytest.mark.reel("live.yaml")
        def test_it(reel):
            assert ask(reel.url) == "from upstream"
        """,
    )
    run(pytester, f"--reel-upstream={upstream.url}").assert_outcomes(passed=1)
    assert len(upstream.requests) == 1
    path = pytester.path / "cassettes" / "test_recording" / "live.yaml"
    recorded = load(path)
    assert len(recorded.interactions) == 1
    assert "sk-test" not in path.read_text(), "the API key never reaches the cassette"

    run(pytester).assert_outcomes(passed=1)
    run(pytester, f"--reel-upstream={upstream.url}").assert_outcomes(passed=1)
    assert len(upstream.requests) == 1, "replays (and once-mode runs with the file present) never reach the upstream"


def test_mode_all_records_afresh(pytester: pytest.Pytester, upstream: Replayer) -> None:
    put_cassette(pytester, "test_rerecord", "live.yaml", hello_cassette("stale"))
    write_test(
        pytester,
        "test_rerecord",
        """
        @pytest.mark.reel("live.yaml")
        def test_it(reel):
            assert reel.recording
            assert ask(reel.url) == "from upstream"
        """,
    )
    run(pytester, "--reel-mode=all", f"--reel-upstream={upstream.url}").assert_outcomes(passed=1)
    texts = [e.data for e in load(pytester.path / "cassettes" / "test_rerecord" / "live.yaml").interactions[0].response.events or () if e.data]
    assert any("from upstream" in t for t in texts) and not any("stale" in t for t in texts)


def test_reel_load_passes_matching_options_through(reel: Any) -> None:
    cas = Cassette.from_events([Event(t=0, event="message_stop", data="{}")], body={"model": "m", "metadata": {"ts": 1}})
    reel.load(cas, ignore_body_keys=["metadata"])
    assert httpx2.post(f"{reel.url}/v1/messages", json={"model": "m", "metadata": {"ts": 2}}).status_code == 200
    assert reel.responses[0].status == 200


CLIENT_FIXTURES = [
    "anthropic_client", "async_anthropic_client", "openai_client", "async_openai_client",
    "inprocess_anthropic_client", "inprocess_async_anthropic_client", "inprocess_openai_client", "inprocess_async_openai_client",
]  # fmt: skip


@pytest.mark.parametrize("name", CLIENT_FIXTURES)
async def test_every_client_fixture_reads_what_the_reel_serves_with_no_retries(name: str, reel: Any, request: pytest.FixtureRequest) -> None:
    from streamreel.providers.openai import chat_events

    client = request.getfixturevalue(name)
    assert client.max_retries == 0
    assert request.getfixturevalue(name) is client, "one client per session"
    if "anthropic" in name:
        reel.load(Cassette.from_events(message_events([TextBlock(("Hello", " there"))])), faults=["http:status=529"])
        request_args: dict[str, Any] = {"model": "claude-haiku-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
        make = lambda: client.messages.create(**request_args, stream=True)  # noqa: E731
        overloaded = __import__("anthropic").InternalServerError
    else:
        reel.load(Cassette.from_events(chat_events(["Hello", " there"]), path="/v1/chat/completions"), faults=["http:status=529"])
        make = lambda: client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True)  # noqa: E731
        overloaded = __import__("openai").InternalServerError
    with pytest.raises(overloaded):  # not retried: the 529 reaches the test
        result = make()
        if hasattr(result, "__await__"):
            await result
    reel.load(reel.cassette)
    result = make()
    if hasattr(result, "__await__"):
        result = await result
    events = [event async for event in result] if hasattr(result, "__aiter__") else list(result)
    if "anthropic" in name:
        text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    else:
        text = "".join(e.choices[0].delta.content or "" for e in events if e.choices)
    assert text == "Hello there"
    assert len(reel.requests) == 1 and (await reel.asettle())[0].ending == "end"
