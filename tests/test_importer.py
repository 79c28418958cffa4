from __future__ import annotations

from pathlib import Path

import anthropic
import httpx2
import pytest

from streamreel import Replayer
from streamreel.errors import CassetteError
from streamreel.importer import import_file, import_sse

DATA = Path(__file__).parent / "data"
BASIC = DATA / "anthropic-sdk-python" / "basic_response.txt"


def test_final_event_without_blank_line_is_kept() -> None:
    raw = BASIC.read_bytes()
    assert not raw.endswith(b"\n")
    events = import_file(BASIC).interactions[0].response.events
    assert events is not None
    assert events[-1].event == "message_stop"
    assert events[-1].wire.endswith(b"\n\n")


def test_complete_capture_imports_as_complete_with_synthetic_timing() -> None:
    res = import_file(BASIC, gap_ms=10, headers_ms=5).interactions[0].response
    assert res.end.reason == "complete"
    assert res.headers_at == 5
    assert [e.t for e in res.events or ()] == [15 + 10 * i for i in range(9)]


def test_jitter_is_seeded() -> None:
    a = import_file(BASIC, gap_ms=20, jitter_ms=10, seed=1).interactions[0].response.events
    b = import_file(BASIC, gap_ms=20, jitter_ms=10, seed=1).interactions[0].response.events
    c = import_file(BASIC, gap_ms=20, jitter_ms=10, seed=2).interactions[0].response.events
    assert a == b != c


def test_capture_cut_before_message_stop_imports_as_upstream_disconnect_and_replays_cut() -> None:
    raw = BASIC.read_bytes()
    cut = raw[: raw.index(b"event: content_block_stop")]
    cas = import_sse(cut)
    assert cas.interactions[0].response.end.reason == "upstream_disconnect"
    assert import_sse(cut, end="complete").interactions[0].response.end.reason == "complete"
    with Replayer(cas, speed=0) as reel:
        client = anthropic.Anthropic(base_url=reel.url, api_key="k", max_retries=0)
        text = ""
        with pytest.raises(httpx2.RemoteProtocolError):
            for ev in client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}], stream=True):
                if ev.type == "content_block_delta" and ev.delta.type == "text_delta":
                    text += ev.delta.text
    assert text == "Hello there!"


def test_openai_capture_needs_done_to_be_complete() -> None:
    raw = next((DATA / "openai-python").glob("*.bin")).read_bytes()
    full = import_sse(raw)
    assert full.interactions[0].request.path == "/v1/chat/completions"
    assert full.interactions[0].response.end.reason == "complete"
    cut = import_sse(raw[: raw.index(b"data: [DONE]")])
    assert cut.interactions[0].response.end.reason == "upstream_disconnect"


def test_crlf_capture_imports_the_same_events() -> None:
    raw = BASIC.read_bytes()
    assert import_sse(raw.replace(b"\n", b"\r\n")) == import_sse(raw)


def test_generic_sse_relay_matches_any_request_unless_told() -> None:
    relay = b"data: Hello\n\ndata:  world\n\n: keep-alive\n\ndata: !\n\n"
    cas = import_sse(relay)
    req = cas.interactions[0].request
    assert (req.method, req.path) == (None, None)
    assert cas.interactions[0].response.end.reason == "complete"
    scoped = import_sse(relay, path="/stream?q=1")
    assert (scoped.interactions[0].request.method, scoped.interactions[0].request.path) == ("GET", "/stream?q=1")
    with Replayer(scoped, speed=0) as reel:
        body = httpx2.get(f"{reel.url}/stream?q=1").text
        assert httpx2.get(f"{reel.url}/stream?q=2").status_code == 404
    assert body == "data: Hello\n\ndata:  world\n\n: keep-alive\n\ndata: !\n\n"


def test_file_without_events_is_an_error_naming_it(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("nothing here\n")
    with pytest.raises(CassetteError, match="empty.txt: no server-sent events"):
        import_file(empty)
