"""The pytest plugin's verdicts: ``reel.verdicts()``, ``reel.assert_resilient()``, ``--reel-report``,
and what an unloaded ``reel`` answers. Driven through pytester, like tests/test_fixtures.py."""

from __future__ import annotations

import textwrap

import pytest
from test_fixtures import _http_stack_imported, _inner_ini, hello_cassette, put_cassette, run, write_test  # noqa: F401  (fixtures)

pytest_plugins = ("pytester",)

FLAKY_CLIENT = """
import httpx2

def hammer(url, times=4):
    statuses = []
    with httpx2.Client(timeout=10) as client:
        for _ in range(times):
            resp = client.post(url + "/v1/messages", json={"model": "m", "max_tokens": 5, "messages": []})
            statuses.append(resp.status_code)
            if resp.status_code == 200:
                break
    return statuses
"""


def test_an_unloaded_reel_answers_a_404_saying_no_cassette_is_loaded(pytester: pytest.Pytester) -> None:
    write_test(
        pytester,
        "test_unloaded",
        """
        def test_it(reel):
            with pytest.raises(anthropic.NotFoundError) as caught:
                ask(reel.url)
            message = caught.value.body["error"]["message"]
            assert "no cassette loaded: use @pytest.mark.reel or reel.load" in message
            assert "no recorded interaction matches POST /v1/messages" in message
            assert reel.responses[0].status == 404
        """,
    )
    run(pytester).assert_outcomes(passed=1)


def test_assert_resilient_fails_the_test_with_every_failed_check_and_its_evidence(pytester: pytest.Pytester) -> None:
    put_cassette(pytester, "test_resilience", "c.yaml", hello_cassette("fine"))
    write_test(
        pytester,
        "test_resilience",
        FLAKY_CLIENT
        + textwrap.dedent(
            """
        @pytest.mark.reel("c.yaml", faults=["http:status=429,times=3,retry_after=200ms"])
        def test_hammering(reel):
            assert hammer(reel.url) == [429, 429, 429, 200]
            reel.assert_resilient()

        @pytest.mark.reel("c.yaml", faults=["http:status=429,times=1,retry_after=50ms"])
        def test_sdk(reel):
            with anthropic.Anthropic(base_url=reel.url, api_key="sk-test", max_retries=2) as client:
                with client.messages.stream(model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}]) as s:
                    assert s.get_final_text() == "fine"
            verdicts = reel.assert_resilient(silence_s=5, max_streams=1)
            assert verdicts.ok and verdicts.requests == 2
        """
        ),
    )
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: the client failed 2 resilience check(s) over 4 request(s):",
            "*ignored_retry_after: FAILED, expected after an error response with retry-after*",
            "*- requests 0, 1 at * ms: HTTP 429 said retry-after 200 ms; request 1 came * ms later",
            "*retry_storm: FAILED*",
        ]
    )


REPORTED = """
@pytest.mark.reel("c.yaml", faults=["http:status=529,times=3"])
def test_storm(reel):
    assert hammer(reel.url) == [529, 529, 529, 200]

@pytest.mark.reel("c.yaml", faults=["stall:after=2"])
def test_silence(reel):
    with pytest.raises(httpx2.ReadTimeout):
        with anthropic.Anthropic(base_url=reel.url, api_key="sk-test", max_retries=0, timeout=0.5) as client:
            with client.messages.stream(model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}]) as s:
                s.get_final_text()
    reel.verdicts(silence_s=0.2)

@pytest.mark.reel("c.yaml")
def test_fine(reel):
    assert ask(reel.url) == "fine"
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["in-process", "xdist"])
def test_reel_report_prints_the_failed_verdicts_of_each_test(pytester: pytest.Pytester, workers: list[str]) -> None:
    put_cassette(pytester, "test_report", "c.yaml", hello_cassette("fine"))
    write_test(pytester, "test_report", FLAKY_CLIENT + REPORTED)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--reel-report", *workers)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*= streamreel verdicts =*",
            "test_report.py::test_storm",
            "  retry_storm: FAILED, expected three or more attempts in a row wait longer each time*",
            "    - requests 0, 1, 2, 3 at * ms: 4 attempts on POST /v1/messages after failures, waits *: not growing",
        ]
    )
    result.stdout.fnmatch_lines(["test_report.py::test_silence", "  waited_on_silence: FAILED*", "    - request 0 at * ms: silent for * ms until the client left; the bound is 200 ms"])
    assert "test_report.py::test_fine" not in result.stdout.str()


def test_without_reel_report_nothing_is_judged_or_printed(pytester: pytest.Pytester) -> None:
    put_cassette(pytester, "test_report", "c.yaml", hello_cassette("fine"))
    write_test(pytester, "test_report", FLAKY_CLIENT + REPORTED)
    result = run(pytester)
    result.assert_outcomes(passed=3)
    assert "streamreel verdicts" not in result.stdout.str()


def test_reel_report_says_so_when_every_client_passed(pytester: pytest.Pytester) -> None:
    put_cassette(pytester, "test_report", "c.yaml", hello_cassette("fine"))
    write_test(pytester, "test_report", '@pytest.mark.reel("c.yaml")\ndef test_fine(reel):\n    assert ask(reel.url) == "fine"\n')
    result = run(pytester, "--reel-report")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*= streamreel verdicts =*", "every client passed every check"])
