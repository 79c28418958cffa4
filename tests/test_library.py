"""Cassette names stay inside their directory; a directory server picks the cassette per request."""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path
from typing import Any, Iterator

import anthropic
import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamreel import Cassette, CassetteNameError, Replayer, save
from streamreel.errors import StreamreelError
from streamreel.library import (
    CASSETTE_HEADER,
    CASSETTE_PARAM,
    Library,
    Refusal,
    confine,
)
from streamreel.providers.anthropic import TextBlock, message_events

PROMPT: Any = [{"role": "user", "content": "hi"}]


def reply(text: str, **kwargs: Any) -> Cassette:
    return Cassette.from_events(message_events([TextBlock((text,))]), **kwargs)


def replies(*texts: str) -> Cassette:
    return Cassette(interactions=tuple(i for t in texts for i in reply(t).interactions))


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``lib/`` (the cassette directory) next to ``outside/``, with links that lead in and out:

    lib/a.yaml, lib/sub/b.yaml, lib/inner -> sub (stays inside), lib/out -> ../outside,
    lib/sneaky.yaml -> ../outside/secret.yaml, and outside/secret.yaml, a valid cassette.
    """
    root = tmp_path_factory.mktemp("tree")
    lib, outside = root / "lib", root / "outside"
    save(reply("alpha"), lib / "a.yaml")
    save(reply("beta"), lib / "sub" / "b.yaml")
    save(reply("SECRET"), outside / "secret.yaml")
    (lib / "inner").symlink_to("sub", target_is_directory=True)
    (lib / "out").symlink_to(Path("..") / "outside", target_is_directory=True)
    (lib / "sneaky.yaml").symlink_to(Path("..") / "outside" / "secret.yaml")
    return lib


def inside(directory: Path, path: Path) -> bool:
    base, real = os.path.realpath(directory), os.path.realpath(path)
    return real != base and os.path.commonpath([base, real]) == base


# ---------------------------------------------------------------- confine


@pytest.mark.parametrize(
    ("name", "want"),
    [("a.yaml", "a.yaml"), ("sub/b.yaml", "sub/b.yaml"), ("./a.yaml", "a.yaml"), ("sub/../a.yaml", "a.yaml"), ("inner/b.yaml", "sub/b.yaml"), ("new/c.yaml", "new/c.yaml")],
)
def test_names_inside_the_directory_resolve_there_subdirectories_and_inner_links_included(tree: Path, name: str, want: str) -> None:
    assert confine(tree, name) == tree / want


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../outside/secret.yaml", "leads outside the directory (..)"),
        ("sub/../../outside/secret.yaml", "leads outside the directory (..)"),
        ("..", "leads outside the directory (..)"),
        ("/etc/passwd", "is an absolute path"),
        ("//etc/passwd", "is an absolute path"),
        ("C:/secret.yaml", "starts with a drive letter"),
        ("out/secret.yaml", "goes through a symlink that leads outside the directory"),
        ("sneaky.yaml", "goes through a symlink that leads outside the directory"),
        ("a\x00.yaml", "contains a NUL byte"),
        ("a\n.yaml", "contains a control character"),
        ("..\\outside\\secret.yaml", "contains a backslash"),
        ("%2e%2e/outside/secret.yaml", "contains %"),
        ("", "is empty"),
        (".", "names the directory itself"),
        ("x" * 300 + ".yaml", "is too long"),
    ],
)
def test_names_that_leave_the_directory_are_refused_saying_why_and_how_to_pass_a_path(tree: Path, name: str, why: str) -> None:
    with pytest.raises(CassetteNameError) as caught:
        confine(tree, name)
    message = str(caught.value)
    assert why in message
    assert repr(name) in message and str(tree) in message
    assert "pass a pathlib.Path" in message


def test_a_directory_that_does_not_exist_yet_still_confines(tmp_path: Path) -> None:
    """The plugin resolves a cassette it is about to record before its directory exists."""
    missing = tmp_path / "cassettes" / "test_mod"
    assert confine(missing, "c.yaml") == missing / "c.yaml"
    with pytest.raises(CassetteNameError):
        confine(missing, "../../escape.yaml")


SEGMENTS = st.sampled_from(["..", ".", "", "a.yaml", "sub", "b.yaml", "inner", "out", "sneaky.yaml", "secret.yaml", "outside", "%2e%2e", "..\\..", "~", "C:", "\x00", "..."])
NAMES = st.one_of(
    st.builds(lambda lead, parts: lead + "/".join(parts), st.sampled_from(["", "/", "./", "../"]), st.lists(SEGMENTS | st.text(max_size=6), max_size=6)),
    st.text(max_size=40),
)


@settings(max_examples=300, deadline=None)
@given(NAMES)
def test_every_name_resolves_inside_the_directory_or_is_refused(tree: Path, name: str) -> None:
    try:
        path = confine(tree, name)
    except CassetteNameError as e:
        assert e.name == name
        return
    assert inside(tree, path), f"{name!r} -> {path} ({os.path.realpath(path)})"
    assert path.is_relative_to(tree)


@settings(max_examples=200, deadline=None)
@given(NAMES)
def test_a_library_loads_only_files_inside_its_directory(tree: Path, name: str) -> None:
    loaded: list[Path] = []
    library = Library(tree, lambda p: loaded.append(p) or p)
    try:
        library.select({CASSETTE_HEADER: name}, "")
    except Refusal as e:
        assert e.status in (400, 404), e
    assert all(inside(tree, p) for p in loaded)


# ---------------------------------------------------------------- Library


def test_library_lists_each_cassette_it_may_serve_once_and_not_links_that_leave(tree: Path) -> None:
    assert Library(tree, lambda p: p).names() == ["a.yaml", "sub/b.yaml"]


def test_library_loads_each_cassette_once_under_any_spelling_until_cleared(tree: Path) -> None:
    loaded: list[Path] = []
    library: Library[object] = Library(tree, lambda p: loaded.append(p) or object())
    first = library.get("a.yaml")
    assert library.get("a") is first and library.get("./a.yaml") is first
    assert library.get("inner/b") is library.get("sub/b.yaml")
    assert len(loaded) == 2
    library.clear()
    assert library.get("a") is not first


def test_library_needs_a_directory(tree: Path) -> None:
    with pytest.raises(StreamreelError, match="not a directory"):
        Library(tree / "a.yaml", lambda p: p)


# ---------------------------------------------------------------- the server


@pytest.fixture(scope="module")
def shelf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of scenarios, plus a cassette outside it that must never be served."""
    root = tmp_path_factory.mktemp("shelf")
    lib = root / "scenarios"
    save(replies("hello one", "hello two"), lib / "greeting.yaml")
    save(reply("a cut reply"), lib / "faults" / "cut.yml")
    save(Cassette.from_events(message_events([TextBlock(("from a page",))]), method="GET", path="/stream?topic=t"), lib / "page.yaml")
    save(reply("SECRET"), root / "secret.yaml")
    (lib / "link.yaml").symlink_to(root / "secret.yaml")
    return lib


@pytest.fixture(scope="module")
def shelf_server(shelf: Path) -> Iterator[Replayer]:
    with Replayer(cassette_dir=shelf, speed=0) as server:
        yield server


@pytest.fixture
def served(shelf_server: Replayer) -> Replayer:
    shelf_server.clear()
    return shelf_server


def ask(url: str, cassette: str | None = None) -> str:
    headers = {CASSETTE_HEADER: cassette} if cassette is not None else {}
    with anthropic.Anthropic(base_url=url, api_key="sk-ant-test-not-a-key", max_retries=0, default_headers=headers) as client:
        with client.messages.stream(model="claude-haiku-4-5", max_tokens=16, messages=PROMPT) as s:
            return s.get_final_text()


def test_the_header_picks_the_cassette_each_with_its_own_ordered_playback(served: Replayer) -> None:
    assert ask(served.url, "greeting.yaml") == "hello one"
    assert ask(served.url, "faults/cut") == "a cut reply"
    assert ask(served.url, "greeting") == "hello two"  # its own playback, not disturbed by the other
    answered = [(r.cassette, r.interaction) for r in served.settle()]
    assert answered == [("greeting.yaml", 0), ("faults/cut.yml", 0), ("greeting.yaml", 1)]  # one name however it was asked for
    served.clear()
    assert ask(served.url, "greeting") == "hello one"
    assert [r.status for r in served.responses] == [200]


def test_without_the_header_a_directory_server_lists_what_it_holds(served: Replayer) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        ask(served.url)
    error = caught.value.body["error"]  # type: ignore[index]
    assert error["type"] == "invalid_request_error"
    assert CASSETTE_HEADER in error["message"]
    assert "greeting.yaml, page.yaml" in error["message"] and "faults/cut.yml" in error["message"]
    assert "link.yaml" not in error["message"]


def test_an_unknown_name_is_a_404_naming_close_ones(served: Replayer) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        ask(served.url, "greetings")
    error = caught.value.body["error"]  # type: ignore[index]
    assert error["type"] == "not_found_error"
    assert "no cassette 'greetings'" in error["message"] and "Did you mean greeting.yaml?" in error["message"]


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../secret.yaml", "leads outside"),
        ("../secret", "leads outside"),
        ("faults/../../secret.yaml", "leads outside"),
        (str(Path(__file__).resolve()), "is an absolute path"),
        ("link.yaml", "symlink"),
        ("%2e%2e/secret.yaml", "contains %"),
        ("..%2fsecret.yaml", "contains %"),
        ("..\\secret.yaml", "backslash"),
    ],
)
def test_a_name_that_leaves_the_directory_is_a_400_saying_why(served: Replayer, name: str, why: str) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        ask(served.url, name)
    error = caught.value.body["error"]  # type: ignore[index]
    assert error["type"] == "invalid_request_error"
    assert f"bad {CASSETTE_HEADER} header" in error["message"] and why in error["message"]
    assert "SECRET" not in served.responses[-1].data.decode()


@pytest.mark.parametrize(
    ("name", "status"),
    [(b"../secret\x0b.yaml", 400), (b"greeting\x7f", 400), (b"..\xc0\xaf/secret.yaml", 404), (b"gr\xc3\xa9eting", 404), (b"\xff\xfe", 404)],
)
def test_raw_header_bytes_never_reach_a_file_outside(served: Replayer, name: bytes, status: int) -> None:
    """Bytes an HTTP client library would refuse to send, sent raw: refused by the server's parser or by the
    name rule; an overlong UTF-8 slash (c0 af) is no slash, so that name stays inside and is merely unknown."""
    port = int(served.url.rsplit(":", 1)[1])
    request = b"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\n" + CASSETTE_HEADER.encode() + b": " + name + b"\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.split(b"\r\n", 1)[0].split(b" ")[1] == str(status).encode(), answer[:300]
    assert b"SECRET" not in answer


def test_an_event_source_names_its_cassette_in_the_query_which_matching_ignores(served: Replayer) -> None:
    url = f"{served.url}/stream?topic=t&{CASSETTE_PARAM}=page"
    with httpx2.stream("GET", url, headers={"accept": "text/event-stream"}, timeout=5) as r:
        body = b"".join(r.iter_bytes())
    assert r.status_code == 200
    assert b"from a page" in body
    traversal = httpx2.get(f"{served.url}/stream?{CASSETTE_PARAM}=%2e%2e/secret", headers={"accept": "text/event-stream"}, timeout=5)
    assert traversal.status_code == 400 and f"?{CASSETTE_PARAM}= parameter" in traversal.json()["error"]["message"]
    assert "SECRET" not in traversal.text


def test_a_browser_preflight_allows_the_cassette_header(served: Replayer) -> None:
    r = httpx2.options(
        f"{served.url}/v1/messages",
        headers={"origin": "http://localhost:5173", "access-control-request-method": "POST", "access-control-request-headers": f"content-type,{CASSETTE_HEADER}"},
        timeout=5,
    )
    assert r.status_code == 204
    assert CASSETTE_HEADER in r.headers["access-control-allow-headers"].split(",")


def test_a_directory_with_one_cassette_needs_no_header(tmp_path: Path) -> None:
    save(reply("only one"), tmp_path / "solo.yaml")
    with Replayer(cassette_dir=tmp_path, speed=0) as server:
        assert ask(server.url) == "only one"


def test_a_broken_cassette_in_the_directory_is_a_400_naming_file_and_line(tmp_path: Path) -> None:
    """Not a 500: the SDKs would retry it, and the message would arrive late and three times."""
    save(reply("fine"), tmp_path / "good.yaml")
    (tmp_path / "bad.yaml").write_text("streamreel: 1\ninteractions:\n- response:\n    events:\n    - {t: soon, data: x}\n")
    with Replayer(cassette_dir=tmp_path, speed=0) as server:
        with pytest.raises(anthropic.BadRequestError) as caught:
            ask(server.url, "bad")
        assert "bad.yaml:5: interactions[0].response.events[0].t" in json.dumps(caught.value.body)
        assert ask(server.url, "good") == "fine"


def test_directory_servers_take_faults_for_every_cassette_and_refuse_load(shelf: Path) -> None:
    with Replayer(cassette_dir=shelf, speed=0, faults=["http:status=529"]) as server:
        with pytest.raises(anthropic.InternalServerError) as caught:
            ask(server.url, "greeting")
        assert caught.value.status_code == 529
        with pytest.raises(StreamreelError, match="serves a directory"):
            server.load(reply("x"))


def test_a_cassette_and_a_cassette_dir_together_are_refused(shelf: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        Replayer(reply("x"), cassette_dir=shelf)


DOC = Path(__file__).resolve().parent.parent / "docs" / "serving.md"
DOC_EXAMPLES = [b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S) if "my_app" not in b]


@pytest.mark.parametrize("code", DOC_EXAMPLES, ids=[f"example-{i}" for i in range(len(DOC_EXAMPLES))])
def test_the_serving_doc_examples_run(code: str) -> None:
    namespace: dict[str, object] = {"__name__": "docs_example"}
    exec(compile(code, str(DOC), "exec"), namespace)
    tests = [value for name, value in namespace.items() if name.startswith("test_") and callable(value)]
    assert tests
    for test in tests:
        test()


# ---------------------------------------------------------------- loading never stalls the streams in flight

import asyncio
import sys


def test_loading_a_large_cassette_does_not_hold_up_the_streams_in_flight(tmp_path: Path) -> None:
    """The first requests for a large cassette arrive while another cassette streams an event
    every 10 ms: the stream stalls far less than when the same file is loaded on the event loop
    (measured first, as the baseline), and the large cassette is loaded once for all of them.

    The cassette is recorded for another path, so the requests get a 404 once it is loaded: what
    is measured is the loading. The loading thread shares the interpreter lock with the loop, so
    a busy machine can pause it while it holds the lock; each try loads a fresh copy, and the
    best of three is compared (``benchmarks/bench_library.py`` runs the same measure)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from bench_library import measure, write_files

    write_files(tmp_path, 100_000, 3)
    got = asyncio.run(measure(tmp_path, 3, until_half=True))
    print(f"worst gap of a paced stream while a 100,000-event cassette loads: on the loop {got.on_loop * 1000:.0f} ms, on a worker thread {', '.join(f'{t * 1000:.0f}' for t in got.off_loop)} ms")
    assert got.answered[:5] == [("small.yaml", 200), ("small.yaml", 200), ("big0.yaml", 404), ("big0.yaml", 404), ("big0.yaml", 404)]
    assert len(got.answered) == 1 + 4 * len(got.off_loop)
    assert got.cached == 1 + len(got.off_loop) and got.loading == 0  # each big file loaded once for its three requests
    assert min(got.off_loop) < got.on_loop / 2, (got.off_loop, got.on_loop)
