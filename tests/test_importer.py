"""Importing captures made elsewhere: raw SSE, JSON chunks per line, vcrpy cassettes.

The end-to-end tests replay an imported cassette through the real SDK and compare the
final message with one built straight from the original file by a separate, plain parser.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import anthropic
import httpx2
import openai
import pytest
import yaml
from click.testing import CliRunner

from streamreel import Replayer
from streamreel.cassette import dumps, load, loads
from streamreel.cli import main
from streamreel.errors import CassetteError
from streamreel.importer import Timing, detect_format, import_chunks, import_file, import_sse, import_vcr
from streamreel.metrics import delta_text

DATA = Path(__file__).parent / "data"

ANTHROPIC_VCR = [
    "llm-anthropic/test_stream_events_text.yaml",  # single-quoted scalar, blank lines doubled
    "llm-anthropic/test_stream_events_thinking.yaml",  # !!binary gzip body
    "llm-anthropic/test_web_search.yaml",  # double-quoted scalar with escapes, server tools, citations
    "pydantic-ai/test_anthropic_model_thinking_part_stream.yaml",  # block scalar, parsed_body, ?beta=true
]


# ---------------------------------------------------------------- raw SSE captures

BASIC = DATA / "anthropic-sdk-python" / "basic_response.txt"


def test_final_event_without_blank_line_is_kept() -> None:
    raw = BASIC.read_bytes()
    assert not raw.endswith(b"\n")
    events = import_file(BASIC).interactions[0].response.events
    assert events is not None
    assert events[-1].event == "message_stop"
    assert events[-1].wire.endswith(b"\n\n")


def test_complete_capture_imports_as_complete_with_synthetic_timing() -> None:
    res = import_file(BASIC, timing=Timing(gap_ms=10, headers_ms=5)).interactions[0].response
    assert res.end.reason == "complete"
    assert res.headers_at == 5
    assert [e.t for e in res.events or ()] == [15 + 10 * i for i in range(9)]


def test_jitter_is_seeded() -> None:
    a = import_file(BASIC, timing=Timing(gap_ms=20, jitter_ms=10, seed=1)).interactions[0].response.events
    b = import_file(BASIC, timing=Timing(gap_ms=20, jitter_ms=10, seed=1)).interactions[0].response.events
    c = import_file(BASIC, timing=Timing(gap_ms=20, jitter_ms=10, seed=2)).interactions[0].response.events
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


def test_crlf_capture_imports_the_same_events_ending_their_lines_in_crlf() -> None:
    raw = BASIC.read_bytes()
    crlf = import_sse(raw.replace(b"\n", b"\r\n")).interactions[0].response.events or ()
    lf = import_sse(raw).interactions[0].response.events or ()
    assert [(e.t, e.event, e.data) for e in crlf] == [(e.t, e.event, e.data) for e in lf]
    assert {e.line_ending for e in crlf} == {"\r\n"}
    assert b"".join(e.wire for e in crlf) == raw.replace(b"\n", b"\r\n") + b"\r\n\r\n"  # the missing final blank line restored


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


# ---------------------------------------------------------------- an independent oracle


def original_bodies(name: str) -> list[tuple[dict, dict, str]]:
    """(request, response, SSE body text) of each streamed interaction, read with plain PyYAML."""
    raw = yaml.safe_load((DATA / name).read_text(encoding="utf-8"))
    out = []
    for item in raw["interactions"]:
        body = item["response"].get("body", {}).get("string")
        if isinstance(body, bytes):
            body = gzip.decompress(body)
            body = body.decode("utf-8")
        if body and ("data:" in body[:200] or "event:" in body[:200]):
            out.append((item["request"], item["response"], body))
    return out


def sse_payloads(body: str) -> list[dict]:
    out = []
    for block in re.split(r"\r?\n\r?\n", body):
        data = [line[5:].lstrip(" ") for line in re.split(r"\r?\n", block) if line.startswith("data:")]
        if data and data[0] != "[DONE]":
            out.append(json.loads("\n".join(data)))
    return out


def anthropic_final(body: str) -> dict:
    message: dict = {}
    blocks: dict[int, dict] = {}
    partial: dict[int, str] = {}
    for p in sse_payloads(body):
        if p["type"] == "message_start":
            message = p["message"]
        elif p["type"] == "content_block_start":
            blocks[p["index"]] = dict(p["content_block"])
        elif p["type"] == "content_block_delta":
            d, block = p["delta"], blocks[p["index"]]
            if d["type"] == "text_delta":
                block["text"] += d["text"]
            elif d["type"] == "thinking_delta":
                block["thinking"] += d["thinking"]
            elif d["type"] == "input_json_delta":
                partial[p["index"]] = partial.get(p["index"], "") + d["partial_json"]
        elif p["type"] == "message_delta":
            message["stop_reason"] = p["delta"]["stop_reason"]
            message["output_tokens"] = p["usage"]["output_tokens"]
    for i, text in partial.items():
        blocks[i]["input"] = json.loads(text) if text else {}
    content = []
    for i in sorted(blocks):
        b = blocks[i]
        content.append({k: b[k] for k in ("type", "text", "thinking", "input", "name") if k in b})
    return {"id": message["id"], "stop_reason": message["stop_reason"], "output_tokens": message["output_tokens"], "content": content}


def sdk_summary(message: anthropic.types.Message) -> dict:
    content = []
    for b in message.content:
        d = b.model_dump()
        content.append({k: d[k] for k in ("type", "text", "thinking", "input", "name") if k in d})
    return {"id": message.id, "stop_reason": message.stop_reason, "output_tokens": message.usage.output_tokens, "content": content}


# ---------------------------------------------------------------- vcrpy


@pytest.mark.parametrize("name", ANTHROPIC_VCR)
def test_vcr_anthropic_cassette_replays_through_the_sdk_to_the_same_final_message(name):
    cas = import_file(DATA / name)
    (request, _, body), = original_bodies(name)
    sent = dict(request.get("parsed_body") or json.loads(request["body"]))
    sent.pop("stream")
    required = {k: sent.pop(k) for k in ("model", "max_tokens", "messages")}
    with Replayer(cas, speed=0) as r:
        client = anthropic.Anthropic(base_url=r.url, api_key="sk-test", max_retries=0)
        with client.messages.stream(**required, extra_body=sent) as stream:
            message = stream.get_final_message()
        replies = r.settle()
    assert sdk_summary(message) == anthropic_final(body)
    assert replies[0].status == 200 and replies[0].ending == "end"


def test_vcr_openai_agent_loop_replays_both_turns_through_the_sdk():
    name = "pydantic-ai/test_run_stream_sync_streams_real_model.yaml"
    cas = import_file(DATA / name)
    (req1, _, body1), (_, _, body2) = original_bodies(name)
    first = req1["parsed_body"]
    with Replayer(cas, speed=0) as r:
        client = openai.OpenAI(base_url=r.url + "/v1", api_key="sk-test", max_retries=0)
        calls: dict[int, dict] = {}
        for chunk in client.chat.completions.create(**first):
            for choice in chunk.choices:
                for call in choice.delta.tool_calls or ():
                    slot = calls.setdefault(call.index, {"id": call.id, "name": call.function.name, "arguments": ""})
                    slot["arguments"] += call.function.arguments or ""
        call = calls[0]
        second = dict(first)
        second["messages"] = [
            *first["messages"],
            {"content": None, "role": "assistant", "tool_calls": [{"function": {"arguments": call["arguments"], "name": call["name"]}, "id": call["id"], "type": "function"}]},
            {"content": "London", "role": "tool", "tool_call_id": call["id"]},
        ]
        text, usage = "", None
        for chunk in client.chat.completions.create(**second):
            usage = chunk.usage or usage
            for choice in chunk.choices:
                text += choice.delta.content or ""
    expected = "".join(c["delta"].get("content") or "" for p in sse_payloads(body2) for c in p["choices"])
    assert json.loads(call["arguments"]) == {"country": "UK"}
    assert text == expected and "London" in text
    assert usage is not None and usage.completion_tokens == sse_payloads(body2)[-1]["usage"]["completion_tokens"]
    assert [q.path for q in r.requests] == ["/v1/chat/completions"] * 2


def test_vcr_request_is_kept_for_matching_and_a_different_one_is_refused():
    name = "pydantic-ai/test_anthropic_model_thinking_part_stream.yaml"
    cas = import_file(DATA / name)
    req = cas.interactions[0].request
    assert (req.method, req.path) == ("POST", "/v1/messages?beta=true")
    assert req.body["thinking"] == {"budget_tokens": 1024, "type": "enabled"}
    with Replayer(cas, speed=0) as r:
        client = anthropic.Anthropic(base_url=r.url, api_key="sk-test", max_retries=0)
        with pytest.raises(anthropic.NotFoundError, match="closest recorded"):
            client.messages.create(model="claude-sonnet-4-0", max_tokens=4096, messages=[{"role": "user", "content": "another question"}])


def test_vcr_secrets_are_scrubbed_and_transport_headers_dropped():
    cas = import_file(DATA / "pydantic-ai/test_openai_responses_model_file_search_tool_stream.yaml")
    text = dumps(cas)
    assert "__cf_bm" not in text and "_cfuvid" not in text and "test-org" not in text
    for item in cas.interactions:
        for headers in (item.request.headers, item.response.headers):
            for key in ("cookie", "set-cookie", "authorization", "openai-organization"):
                assert headers.get(key) in (None, "<scrubbed>")
            assert "content-length" not in headers and "transfer-encoding" not in headers
    assert cas.interactions[1].request.headers["cookie"] == "<scrubbed>"


def test_vcr_authorization_and_query_keys_never_reach_the_cassette(tmp_path):
    source = tmp_path / "vcr.yaml"
    source.write_text(
        """interactions:
- request:
    body: '{"a": 1}'
    headers:
      Authorization: [Bearer sk-ant-api03-SECRET]
      X-Api-Key: [sk-ant-SECRET2]
    method: POST
    uri: https://generativelanguage.googleapis.com/v1/models/x:streamGenerateContent?alt=sse&key=AIzaSECRET3
  response:
    body: {string: "data: {\\"x\\": 1}\\r\\n\\r\\n"}
    headers:
      Content-Type: [text/event-stream]
      Set-Cookie: [session=SECRET4]
    status: {code: 200, message: OK}
version: 1
"""
    )
    result = CliRunner().invoke(main, ["import", str(source), "-o", str(tmp_path / "out.yaml")])
    assert result.exit_code == 0, result.output
    written = (tmp_path / "out.yaml").read_text()
    assert "SECRET" not in written
    item = load(tmp_path / "out.yaml").interactions[0]
    assert item.request.path == "/v1/models/x:streamGenerateContent?alt=sse&key=<scrubbed>"
    assert item.request.headers["authorization"] == "<scrubbed>" and item.request.headers["x-api-key"] == "<scrubbed>"
    assert item.response.events[0].data == '{"x": 1}'
    with Replayer(load(tmp_path / "out.yaml"), speed=0) as reel:  # the scrubbed key matches any key
        assert httpx2.post(f"{reel.url}/v1/models/x:streamGenerateContent?alt=sse&key=OTHER", content=b'{"a": 1}').status_code == 200
        assert httpx2.post(f"{reel.url}/v1/models/x:streamGenerateContent?alt=json&key=OTHER", content=b'{"a": 1}').status_code == 404


@pytest.mark.parametrize(
    "name, style",
    [
        ("llm-anthropic/test_stream_events_text.yaml", "single-quoted"),
        ("llm-anthropic/test_stream_events_thinking.yaml", "gzip"),
        ("llm-anthropic/test_web_search.yaml", "double-quoted"),
        ("pydantic-ai/test_google_model_stream.yaml", "double-quoted CRLF"),
        ("pydantic-ai/test_anthropic_model_thinking_part_stream.yaml", "block scalar"),
    ],
)
def test_every_vcr_body_style_keeps_every_event_verbatim(name, style):
    cas = import_file(DATA / name)
    streams = [i for i in cas.interactions if i.response.is_stream]
    originals = original_bodies(name)
    assert len(streams) == len(originals)
    for item, (_, _, body) in zip(streams, originals):
        datas = [e.data for e in item.response.events if e.data not in (None, "[DONE]")]
        assert [json.loads(d) for d in datas] == sse_payloads(body)
        assert item.response.end.reason == "complete"
        times = [e.t for e in item.response.events]
        assert times == sorted(times) and len(set(times)) == len(times)


def test_non_streamed_interactions_stay_plain_bodies():
    cas = import_file(DATA / "pydantic-ai/test_openai_responses_model_file_search_tool_stream.yaml")
    kinds = [(i.request.method, i.request.route, i.response.is_stream) for i in cas.interactions]
    assert kinds[0] == ("POST", "/v1/files", False)
    assert kinds[3] == ("POST", "/v1/responses", True)
    assert kinds[4][0] == "DELETE"
    assert cas.interactions[0].request.body is None  # multipart upload: matches any body
    assert cas.interactions[1].response.body["object"] == "vector_store"


def test_vcr_yaml_with_a_python_tag_is_refused_without_running_it(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text(
        "interactions:\n- request: {method: GET, uri: 'http://x/'}\n  response: !!python/object/apply:os.system ['touch "
        + str(tmp_path / "pwned")
        + "']\nversion: 1\n"
    )
    with pytest.raises(CassetteError, match="evil.yaml:3: refusing a YAML tag"):
        import_file(evil)
    assert not (tmp_path / "pwned").exists()


def test_broken_vcr_cassettes_name_the_interaction(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("interactions:\n- request: {method: GET, uri: 'http://x/'}\n  response: {status: {code: 99}}\n")
    with pytest.raises(CassetteError, match=r"bad.yaml: interactions\[0\].response.status: expected an HTTP status code, got 99"):
        import_file(bad)
    gz = tmp_path / "gz.yaml"
    gz.write_text(
        "interactions:\n- request: {method: GET, uri: 'http://x/'}\n  response:\n    status: {code: 200}\n"
        "    headers: {Content-Encoding: [gzip]}\n    body: {string: !!binary aGVsbG8=}\n"
    )
    with pytest.raises(CassetteError, match=r"interactions\[0\].response.body: body says Content-Encoding gzip but does not decompress"):
        import_file(gz)
    with pytest.raises(CassetteError, match="method apply to raw captures"):
        import_file(DATA / "llm-anthropic/test_stream_events_text.yaml", method="GET")


# ---------------------------------------------------------------- JSON chunks per line and raw OpenAI


def test_chunks_get_their_framing_back_and_replay_through_the_anthropic_sdk():
    name = DATA / "vercel-ai/anthropic-text.chunks.txt"
    cas = import_file(name)
    events = cas.interactions[0].response.events
    lines = name.read_text().splitlines()
    assert [e.data for e in events] == lines
    assert [e.event for e in events] == [json.loads(line)["type"] for line in lines]
    with Replayer(cas, speed=0) as r:
        client = anthropic.Anthropic(base_url=r.url, api_key="sk-test", max_retries=0)
        with client.messages.stream(model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]) as stream:
            message = stream.get_final_message()
    assert message.content[0].text == "".join(delta_text(e) for e in events)
    assert message.stop_reason == "end_turn"


def test_back_to_back_responses_become_separate_interactions():
    cas = import_file(DATA / "vercel-ai/anthropic-tool-search-regex.1.chunks.txt")
    assert len(cas.interactions) == 2
    for item in cas.interactions:
        names = [e.event for e in item.response.events]
        assert names[0] == "message_start" and names[-1] == "message_stop" and names.count("message_start") == 1
        assert item.response.end.reason == "complete"


def test_openai_chat_chunks_end_with_done_and_replay_through_the_openai_sdk():
    name = DATA / "vercel-ai/openai-text.chunks.txt"
    cas = import_file(name)
    events = cas.interactions[0].response.events
    assert events[-1].data == "[DONE]" and all(e.event is None for e in events)
    assert cas.interactions[0].request.path == "/v1/chat/completions"
    expected = "".join(c["delta"].get("content") or "" for line in name.read_text().splitlines() for c in json.loads(line)["choices"])
    with Replayer(cas, speed=0) as r:
        client = openai.OpenAI(base_url=r.url + "/v1", api_key="sk-test", max_retries=0)
        stream = client.chat.completions.create(model="gpt-4.1-nano", messages=[{"role": "user", "content": "hi"}], stream=True)
        text = "".join(choice.delta.content or "" for chunk in stream for choice in chunk.choices)
    assert text == expected and len(text) > 500


def test_raw_openai_capture_replays_through_the_openai_sdk():
    name = DATA / "openai-python/e2aad469b71d1d4894ff833ea147020a9d875eb7ce644a0ff355581690a4cbfd.bin"
    cas = import_file(name)
    expected = "".join(c["delta"].get("content") or "" for p in sse_payloads(name.read_text()) for c in p["choices"])
    with Replayer(cas, speed=0) as r:
        client = openai.OpenAI(base_url=r.url + "/v1", api_key="sk-test", max_retries=0)
        stream = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True)
        chunks = list(stream)
    assert "".join(ch.delta.content or "" for c in chunks for ch in c.choices) == expected
    assert [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason] == ["stop"]


def test_a_chunk_file_with_a_bad_line_names_the_line(tmp_path):
    bad = tmp_path / "x.chunks.txt"
    bad.write_text('{"type":"message_start","message":{}}\n{"type":"ping"\n')
    with pytest.raises(CassetteError, match=r"x.chunks.txt:2: line 2 is not JSON"):
        import_file(bad)


def test_a_cut_chunk_stream_imports_as_a_disconnect():
    lines = (DATA / "vercel-ai/anthropic-text.chunks.txt").read_bytes().splitlines()[:-3]
    cas = import_chunks(b"\n".join(lines))
    assert cas.interactions[0].response.end.reason == "upstream_disconnect"


def test_format_detection():
    assert detect_format((DATA / "llm-anthropic/test_stream_events_text.yaml").read_bytes()) == "vcrpy"
    assert detect_format((DATA / "vercel-ai/anthropic-text.chunks.txt").read_bytes()) == "chunks"
    assert detect_format((DATA / "anthropic-sdk-python/stream-b-fallback.sse").read_bytes()) == "sse"
    assert detect_format(b'data: {"a": 1}\n\n') == "sse"
    assert detect_format(b"streamreel: 1\ninteractions: []\n") == "streamreel"


def test_cli_import_of_a_vcr_cassette_writes_a_loadable_cassette(tmp_path):
    out = tmp_path / "c.yaml"
    result = CliRunner().invoke(main, ["import", str(DATA / "pydantic-ai/test_run_stream_sync_streams_real_model.yaml"), "-o", str(out), "--gap-ms", "5"])
    assert result.exit_code == 0, result.output
    assert "2 interaction(s)" in result.output
    cas = loads(out.read_text())
    assert [i.request.body["model"] for i in cas.interactions] == ["gpt-4o-mini", "gpt-4o-mini"]
    gaps = {b.t - a.t for a, b in zip(cas.interactions[0].response.events, cas.interactions[0].response.events[1:])}
    assert gaps == {5}
    again = CliRunner().invoke(main, ["import", str(out), "-o", str(tmp_path / "d.yaml")])
    assert again.exit_code == 1 and "already a streamreel cassette" in again.output


def test_import_vcr_reads_text_too():
    text = (DATA / "llm-anthropic/test_stream_events_text.yaml").read_text()
    assert import_vcr(text).interactions[0].response.events[0].event == "message_start"


def test_cli_import_of_a_directory_migrates_every_vcr_cassette_keeping_paths(tmp_path):
    src = tmp_path / "cassettes"
    for name in ("llm-anthropic/test_stream_events_text.yaml", "pydantic-ai/test_run_stream_sync_streams_real_model.yaml"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes((DATA / name).read_bytes())
    (src / "notes.yaml").write_text("just: notes\n")
    out = tmp_path / "reels"
    result = CliRunner().invoke(main, ["import", str(src), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "imported 2 of 3" in result.stdout and "notes.yaml: not a vcrpy cassette" in result.stderr
    assert len(load(out / "pydantic-ai/test_run_stream_sync_streams_real_model.yaml").interactions) == 2
    assert load(out / "llm-anthropic/test_stream_events_text.yaml").interactions[0].response.is_stream
    same = CliRunner().invoke(main, ["import", str(src), "-o", str(src)])
    assert same.exit_code == 1 and "would overwrite" in same.output
    assert (src / "notes.yaml").read_text() == "just: notes\n"


def test_vcr_openai_responses_stream_replays_through_the_sdk():
    name = "pydantic-ai/test_openai_responses_model_file_search_tool_stream.yaml"
    cas = import_file(DATA / name)
    (request, _, body), = original_bodies(name)
    sent = dict(request["parsed_body"])
    sent.pop("stream")
    with Replayer(cas, speed=0) as r:
        client = openai.OpenAI(base_url=r.url + "/v1", api_key="sk-test", max_retries=0)
        with client.responses.stream(**sent) as stream:
            final = stream.get_final_response()
    expected = "".join(p["delta"] for p in sse_payloads(body) if p["type"] == "response.output_text.delta")
    assert final.output_text == expected and final.status == "completed"


# ---------------------------------------------------------------- what users bring from production (tests/data/artifacts)

ARTIFACTS = DATA / "artifacts"
ASK = {"model": "claude-test", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


def _final(cas, index: int = 0, request=None):
    """The message the anthropic SDK assembles from interaction ``index`` alone, replayed (asked with ``request``)."""
    with Replayer(type(cas)(interactions=(cas.interactions[index],)), speed=0) as r:
        client = anthropic.Anthropic(base_url=r.url, api_key="sk-test", max_retries=0)
        with client.messages.stream(**(request or ASK)) as stream:
            return stream.get_final_message()


def _original_text(path: Path) -> str:
    return "".join(delta_text(e) for e in import_file(path).interactions[0].response.events or ())


def _stamps(path: Path, pattern: str, fmt: str) -> list[float]:
    from datetime import datetime

    out = []
    for line in path.read_text().splitlines():
        m = re.match(pattern, line)
        if m and "data:" in line:
            out.append(datetime.strptime(m.group(1), fmt).timestamp() * 1000.0)
    return out


def test_a_timestamped_log_keeps_the_real_gaps_and_skips_what_is_not_sse():
    from streamreel.importer import import_capture

    path = ARTIFACTS / "basic-iso.log"
    assert detect_format(path.read_bytes()) == "log"
    imported = import_capture(path)
    events = imported.cassette.interactions[0].response.events
    stamps = _stamps(path, r"^(\S+)Z DEBUG", "%Y-%m-%dT%H:%M:%S.%f")
    assert len(events) == len(stamps) == 9
    for e, stamp in zip(events, stamps):
        assert abs((e.t - events[0].t) - (stamp - stamps[0])) < 1.0
    assert [e.data for e in events] == [e.data for e in import_file(BASIC).interactions[0].response.events]
    assert imported.notes == ("event times taken from the log's timestamps; 1 line(s) that were not SSE skipped",)
    assert _final(imported.cassette).content[0].text == "Hello there!"


def test_a_data_only_log_gets_its_event_names_back_and_a_cut_stays_a_cut_with_a_note():
    from streamreel.importer import import_capture

    path = ARTIFACTS / "refusal-bracket.log"
    imported = import_capture(path)
    (item,) = imported.cassette.interactions
    events = item.response.events
    stamps = _stamps(path, r"^\[([^\]]+)\]", "%Y-%m-%d %H:%M:%S,%f")
    assert [round(e.t - events[0].t, 3) for e in events] == [round(s - stamps[0], 3) for s in stamps]
    assert [e.event for e in events] == [json.loads(e.data)["type"] for e in events]
    assert item.response.end.reason == "upstream_disconnect"
    assert any("restored each `event:` line from its JSON `type`" in n for n in imported.notes)
    cut_note = [n for n in imported.notes if "replays as a cut" in n]
    assert len(cut_note) == 1 and "--end complete" in cut_note[0] and "--end timeout" in cut_note[0]
    assert import_capture(path, end="complete").cassette.interactions[0].response.end.reason == "complete"
    assert not [n for n in import_capture(path, end="timeout").notes if "replays as a cut" in n]


def test_a_data_only_capture_replays_through_the_sdk_as_the_named_one_does():
    from streamreel.importer import import_capture

    imported = import_capture(ARTIFACTS / "data-only.sse")
    assert [e.event for e in imported.cassette.interactions[0].response.events] == [e.event for e in import_file(BASIC).interactions[0].response.events]
    assert _final(imported.cassette).content[0].text == "Hello there!"


def test_json_lines_that_kept_their_data_prefix_are_one_event_each():
    name = ARTIFACTS / "anthropic-text.data-lines.txt"
    cas = import_file(name)
    events = cas.interactions[0].response.events
    lines = (DATA / "vercel-ai/anthropic-text.chunks.txt").read_text().splitlines()
    assert [e.data for e in events] == lines
    assert _final(cas).content[0].text == _original_text(DATA / "vercel-ai/anthropic-text.chunks.txt")


def test_a_failed_attempt_and_its_retry_in_one_file_become_two_interactions_in_order():
    from streamreel.importer import import_capture

    imported = import_capture(ARTIFACTS / "retry.sse")
    failed, retry = imported.cassette.interactions
    assert [e.event for e in failed.response.events][-1] == "error" and len(failed.response.events) == 5
    assert [e.event for e in retry.response.events] == [e.event for e in import_file(BASIC).interactions[0].response.events]
    assert imported.notes == ("2 responses back to back, imported as 2 interactions in order",)
    with Replayer(imported.cassette, speed=0) as r:
        client = anthropic.Anthropic(base_url=r.url, api_key="sk-test", max_retries=0)
        with pytest.raises(anthropic.APIStatusError) as first:
            list(client.messages.create(**ASK, stream=True))
        text = "".join(e.delta.text for e in client.messages.create(**ASK, stream=True) if e.type == "content_block_delta")
    assert first.value.status_code == 200 and text == "Hello there!"


def test_a_har_file_keeps_each_event_stream_with_its_request_and_skips_the_rest(tmp_path):
    from streamreel.importer import import_capture

    path = ARTIFACTS / "devtools.har"
    assert detect_format(path.read_bytes()) == "har"
    imported = import_capture(path)
    tool, basic = imported.cassette.interactions
    assert imported.notes[0].startswith("2 event-stream entries of 4 imported; 2 skipped (entry 0 (GET https://chat.example.com/favicon.ico): image/x-icon")
    assert "spread evenly over its receive time" in imported.notes[1]
    assert (tool.request.method, tool.request.path, basic.request.path) == ("POST", "/v1/messages", "/v1/messages?beta=true")
    assert tool.request.body["tools"][0]["name"] == "make_file"
    assert tool.request.headers["x-api-key"] == tool.request.headers["authorization"] == "<scrubbed>"
    assert "user-agent" not in tool.request.headers and ":authority" not in tool.request.headers
    assert "content-encoding" not in tool.response.headers
    events = tool.response.events
    assert (tool.response.headers_at, events[0].t, events[-1].t) == (815.4, 815.4, round(815.4 + 1430.2, 3))
    gaps = {round(b.t - a.t, 3) for a, b in zip(events, events[1:])}
    assert max(gaps) - min(gaps) < 0.01
    assert [e.data for e in events] == [e.data for e in import_file(DATA / "anthropic-sdk-python/incomplete_partial_json_response.txt").interactions[0].response.events]
    out = tmp_path / "har.yaml"
    result = CliRunner().invoke(main, ["import", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    saved = out.read_text()
    assert "dummy-api-key" not in saved and "dummy-token" not in saved and saved.startswith("# imported from devtools.har by `streamreel import` (HAR: events spread evenly")
    recorded = {k: v for k, v in basic.request.body.items() if k != "stream"}
    assert _final(load(out), 1, recorded).content[0].text == "Hello there!"


def test_a_har_without_event_streams_is_an_error_naming_what_it_holds(tmp_path):
    doc = json.loads((ARTIFACTS / "devtools.har").read_text())
    doc["log"]["entries"] = [e for e in doc["log"]["entries"] if "event-stream" not in e["response"]["content"]["mimeType"]]
    path = tmp_path / "none.har"
    path.write_text(json.dumps(doc))
    with pytest.raises(CassetteError) as info:
        import_file(path)
    assert str(path) in str(info.value) and "no event-stream entries" in str(info.value) and "image/x-icon" in str(info.value)


def test_merge_joins_cassettes_in_order_scrubbed_and_checked(tmp_path):
    from streamreel.cassette import save
    from streamreel.importer import import_capture

    failed, retry = import_capture(ARTIFACTS / "retry.sse").cassette.interactions
    leaky = failed.__class__(request=failed.request.__class__(method="POST", path="/v1/messages?key=" + "AIza" + "S" * 35, headers={"x-api-key": "sk-ant-" + "z" * 40}), response=failed.response)
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    save(type(import_file(BASIC))(interactions=(leaky,)), a)
    save(type(import_file(BASIC))(interactions=(retry,), faults=("drop:event=ping",)), b)
    out = tmp_path / "out.yaml"
    result = CliRunner().invoke(main, ["merge", str(a), str(b), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"wrote {out}: 2 interaction(s) from 2 cassette(s), 14 events"
    merged = load(out)
    assert [len(i.response.events) for i in merged.interactions] == [5, 9]
    assert merged.faults == ("drop:event=ping",)
    assert "sk-ant-" not in out.read_text() and "AIzaS" not in out.read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text("streamreel: 1\ninteractions: [{request: {}, response: {status: nope}}]\n")
    result = CliRunner().invoke(main, ["merge", str(a), str(bad), "-o", str(tmp_path / "x.yaml")])
    assert result.exit_code == 1 and str(bad) in result.output and len(result.output.strip().splitlines()) == 1
    unfit = tmp_path / "unfit.yaml"
    save(type(import_file(BASIC))(interactions=(failed,), faults=("disconnect:after=7",)), unfit)
    result = CliRunner().invoke(main, ["merge", str(unfit), "-o", str(tmp_path / "y.yaml")])
    assert result.exit_code == 1 and "disconnect:after=7" in result.output and "cannot apply" in result.output


@pytest.mark.parametrize("stop_at", [b"Filing taxes", b'"index":1,"delta":{"type":"input_json_delta","partial_json":"{\\"file', b"\"name\":\"make_file\""])
def test_a_capture_that_stops_inside_an_event_replays_the_same_bytes_then_cuts(stop_at, tmp_path):
    from streamreel.importer import import_capture

    raw = (DATA / "anthropic-sdk-python/incomplete_partial_json_response.txt").read_bytes()
    cut = raw[: raw.index(stop_at)]
    path = tmp_path / "cut.sse"
    path.write_bytes(cut)
    imported = import_capture(path)
    (spec,) = imported.cassette.faults
    assert spec.startswith("disconnect:inside=") and spec.endswith(",how=close")
    assert [n for n in imported.notes if "bytes into event" in n and spec in n]
    assert not [n for n in imported.notes if "replays as a cut" in n]
    with Replayer(imported.cassette, speed=0) as r:
        client = anthropic.Anthropic(base_url=r.url, api_key="sk-test", max_retries=0)
        with pytest.raises(httpx2.RemoteProtocolError):  # what production saw: a cut, not broken JSON
            list(client.messages.create(**ASK, stream=True))
        (sent,) = r.settle()
    assert sent.data == cut and sent.ending == "close" and sent.faults[0].fired


# ---------------------------------------------------------------- secrets in what users import


from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from _secrets_helpers import CUTS, SAFE_TEXT, SPLIT_KINDS, SPLIT_PROVIDERS, TOKENS, leaks, split_echo, split_stream  # noqa: E402
from streamreel.sse import encode_all  # noqa: E402

_RECOGNIZABLE = tuple(k for k in SPLIT_KINDS if k not in ("x-api-key", "api-key", "x-goog-api-key", "query key", "body secret", "form secret"))
"""Secrets a bare stream gives away by their shape (the others are known only from the request that carried them)."""


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    kind=st.sampled_from(_RECOGNIZABLE),
    provider=st.sampled_from(SPLIT_PROVIDERS),
    token=TOKENS,
    before=SAFE_TEXT,
    after=SAFE_TEXT,
    cuts=CUTS,
    ascii_only=st.booleans(),
)
def test_a_secret_a_capture_streamed_back_in_pieces_never_reaches_the_imported_cassette(
    tmp_path_factory: pytest.TempPathFactory, kind: str, provider: str, token: str, before: str, after: str, cuts: list[float], ascii_only: bool
) -> None:
    """A raw capture a user saved holds a secret of each kind echoed across events at random split
    points: the imported cassette reads the same with the secret blanked, every other event byte for byte."""
    drawn = split_echo(kind, provider, token, before, after, cuts, ascii_only=ascii_only)
    assume(drawn is not None)
    assert drawn is not None
    source = tmp_path_factory.mktemp("import") / "capture.txt"
    source.write_bytes(encode_all(drawn.events))
    cassette = import_file(source, format="sse")
    [only] = cassette.interactions
    drawn.assert_kept_out_of(dumps(cassette), provider, only.response.events or ())


def test_a_har_file_keeps_no_credential_of_its_requests(tmp_path: Path) -> None:
    """A HAR file saved from devtools holds the request's key in a header, the query and the body,
    and the stream echoes it back in pieces (a key with no vendor prefix, known only because the
    request carried it): none of them reaches the cassette, and the stream still replays."""
    key = "team-" + "q7Rw2" * 5
    body = encode_all(split_stream("anthropic text", ["Hello, your key is ", key[:9], key[9:], " there"], json.dumps)).decode()
    har = {
        "log": {
            "version": "1.2",
            "entries": [
                {
                    "startedDateTime": "2026-11-30T14:02:11.123Z",
                    "time": 120,
                    "request": {
                        "method": "POST",
                        "url": f"https://api.anthropic.com/v1/messages?key={key}",
                        "headers": [{"name": "x-api-key", "value": key}, {"name": "content-type", "value": "application/json"}],
                        "postData": {"mimeType": "application/json", "text": json.dumps({"model": "m", "api_key": key, "stream": True})},
                    },
                    "response": {"status": 200, "headers": [{"name": "content-type", "value": "text/event-stream"}], "content": {"mimeType": "text/event-stream", "text": body}},
                    "timings": {"send": 1, "wait": 20, "receive": 99},
                }
            ],
        }
    }
    source = tmp_path / "devtools.har"
    source.write_text(json.dumps(har))
    cassette = import_file(source)
    written = dumps(cassette)
    assert key not in written and key[:9] not in written and key[9:] not in written and leaks([written]) == []
    [only] = cassette.interactions
    assert [e.event for e in only.response.events or ()][-1] == "message_stop"
    with Replayer(cassette, speed=0, match_on=("method", "path"), ignore_query=("key",)) as reel:
        client = anthropic.Anthropic(base_url=reel.url, api_key="test", max_retries=0)
        with client.messages.stream(model="m", max_tokens=8, messages=[{"role": "user", "content": "hi"}]) as stream:
            text = stream.get_final_text()
    assert text == "Hello, your key is <scrubbed> there"
