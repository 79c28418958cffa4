"""The browser path: EventSource GETs, ids, retry, Last-Event-ID resume; then a real headless Chromium."""

from __future__ import annotations

import json
from dataclasses import replace
from urllib.parse import quote

import aiohttp
import anthropic
import pytest

from streamreel import Replayer
from streamreel.browser import resume_after, with_ids
from streamreel.cassette import Cassette, End
from streamreel.metrics import delta_text
from streamreel.sse import Event
from streamreel.synth import synth_cassette

from _browser_helpers import EXAMPLE, Chromium, CutAfter, event_source, static_site

TEXT = (
    "# Crossing the street\n\n"
    "Look **left**, then *right*, then left again. Use `the crosswalk` when there is one.\n\n"
    "- wait for the signal\n- keep looking while you cross\n- never run\n\n"
    "```\nstop(); look(); listen();\n```\n\n"
    "That's all: [more](https://example.org/safety) on the safety page."
)


def cassette() -> Cassette:
    return synth_cassette(TEXT, ttft_ms=40, tps=2000, seed=7)


def stream_events() -> tuple[Event, ...]:
    return cassette().interactions[0].response.events or ()


# ---------------------------------------------------------------- the pieces


def test_with_ids_numbers_events_but_not_comments_and_adds_retry_once():
    events = (Event(t=1, comment="hi"), Event(t=2, event="a", data="1"), Event(t=3, event="b", data="2"))
    out = with_ids(events, retry_ms=250)
    assert [e.id for e in out] == [None, "1", "2"]
    assert [e.retry for e in out] == [None, 250, None]
    own = (Event(t=1, event="a", data="1", id="x7"), Event(t=2, event="b", data="2"))
    assert [e.id for e in with_ids(own)] == ["x7", None]


def test_resume_keeps_the_gaps_and_starts_after_the_headers():
    item = cassette().interactions[0]
    numbered = replace(item, response=replace(item.response, events=with_ids(item.response.events)))
    events = numbered.response.events
    resumed = resume_after(numbered, "5")
    assert resumed is not None
    rest = resumed.response.events
    assert [e.id for e in rest] == [e.id for e in events[6:]]
    assert rest[0].t - resumed.response.headers_at == pytest.approx(events[6].t - events[5].t, abs=1e-3)
    assert [b.t - a.t for a, b in zip(rest, rest[1:])] == pytest.approx([b.t - a.t for a, b in zip(events[6:], events[7:])], abs=2e-3)
    assert resume_after(numbered, events[-1].id) is None
    assert resume_after(numbered, "no-such-id") is numbered


# ---------------------------------------------------------------- the server


async def test_an_event_source_get_is_served_the_stream_recorded_as_post_with_cors():
    async with Replayer(cassette(), speed=0) as r, aiohttp.ClientSession() as s:
        async with s.get(r.url + "/v1/messages", headers={"accept": "text/event-stream", "origin": "http://page.test"}) as resp:
            assert resp.status == 200
            assert resp.headers["access-control-allow-origin"] == "*"
            assert resp.headers["content-type"].startswith("text/event-stream")
            body = await resp.read()
        async with s.get(r.url + "/v1/messages") as plain:
            assert plain.status == 404
        async with s.get(r.url + "/v1/other", headers={"accept": "text/event-stream"}) as other:
            assert other.status == 404 and "closest recorded" in (await other.text())
        async with s.options(r.url + "/v1/messages", headers={"access-control-request-headers": "content-type"}) as pre:
            assert pre.status == 204 and "POST" in pre.headers["access-control-allow-methods"]
    assert body == b"".join(e.wire for e in stream_events())


async def test_ids_and_retry_go_out_when_asked_and_sdks_still_read_the_stream():
    async with Replayer(cassette(), speed=0, ids=True) as r:
        async with aiohttp.ClientSession() as s, s.get(r.url + "/v1/messages", headers={"accept": "text/event-stream"}) as resp:
            from streamreel.sse import decode

            got = decode(await resp.read())
        assert [e.id for e in got] == [str(i) for i in range(len(got))]
        assert got[0].retry == 1000 and all(e.retry is None for e in got[1:])
        client = anthropic.AsyncAnthropic(base_url=r.url, api_key="test", max_retries=0)
        async with client.messages.stream(model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]) as stream:
            message = await stream.get_final_message()
        await client.close()
    assert message.content[0].text == TEXT


async def test_reconnects_after_cuts_resume_with_no_event_lost_or_doubled():
    async with Replayer(cassette(), speed=0, ids=True, retry_ms=10, faults=[CutAfter(after=7)]) as r:
        connections, sent = await event_source(r.url + "/v1/messages")
        replies = await r.asettle()
    received = [e for conn in connections for e in conn]
    full = stream_events()
    assert [e.id for e in received] == [str(i) for i in range(len(full))]
    assert [e.data for e in received] == [e.data for e in full]
    assert len(connections) > 3
    assert [h.get("last-event-id") for h in sent[1:]] == [conn[-1].id for conn in connections[:-1]]
    assert [x.ending for x in replies] == ["close"] * (len(replies) - 1) + ["end"]
    assert all(r.interaction == 0 for r in replies)


async def test_a_recorded_cut_reconnects_to_204_so_the_browser_stops():
    events = stream_events()[:12]
    cas = Cassette.from_events(events, end=End(t=events[-1].t, reason="upstream_disconnect"))
    async with Replayer(cas, speed=0, ids=True) as r:
        connections, sent = await event_source(r.url + "/v1/messages")
        replies = await r.asettle()
    assert [len(c) for c in connections] == [12, 0]
    assert sent[1]["last-event-id"] == "11"
    assert [(x.status, x.ending) for x in replies] == [(200, "close"), (204, "end")]


async def test_a_cassette_with_its_own_ids_resumes_without_asking_for_ids():
    own = tuple(replace(e, id=f"ev-{i}") for i, e in enumerate(stream_events()))
    async with Replayer(Cassette.from_events(own), speed=0, faults=[CutAfter(after=10)]) as r:
        connections, sent = await event_source(r.url + "/v1/messages")
    received = [e.id for conn in connections for e in conn]
    assert received == [e.id for e in own]
    assert sent[1]["last-event-id"] == "ev-9"


# ---------------------------------------------------------------- a real browser


def page_url(site: str, src: str, mode: str = "eventsource") -> str:
    return f"{site}/index.html?src={quote(src, safe='')}&mode={mode}"


@pytest.fixture
async def site():
    runner, url = await static_site(EXAMPLE)
    yield url
    await runner.cleanup()


async def test_chromium_event_source_renders_every_event_and_resumes_after_disconnects(site, tmp_path):
    full = stream_events()
    async with Replayer(cassette(), speed=0, ids=True, retry_ms=50, faults=[CutAfter(after=9)]) as r, Chromium(tmp_path / "profile") as browser:
        await browser.open(page_url(site, r.url + "/v1/messages"))
        result = await browser.evaluate("window.reel.done")
        html = await browser.evaluate("document.getElementById('output').innerHTML")
        requests = r.requests
    assert result["state"] == "done"
    assert [e["id"] for e in result["events"]] == [str(i) for i in range(len(full))]
    assert [e["type"] for e in result["events"]] == [e.event for e in full]
    assert result["text"] == TEXT == "".join(delta_text(e) for e in full)
    assert result["opens"] == len(requests) >= 3
    resumes = [q.headers.get("last-event-id") for q in requests]
    assert resumes[0] is None and resumes[1:] == [str(9 * k - 1) for k in range(1, len(requests))]
    assert all(q.method == "GET" and q.headers["accept"] == "text/event-stream" for q in requests)
    for fragment in ("<h1>Crossing the street</h1>", "<strong>left</strong>", "<em>right</em>", "<code>the crosswalk</code>", "<li>never run</li>", "<pre><code>stop(); look(); listen();</code></pre>", 'href="https://example.org/safety"'):
        assert fragment in html


async def test_chromium_stops_reconnecting_when_a_recorded_cut_has_nothing_left(site, tmp_path):
    events = stream_events()[:15]
    cas = Cassette.from_events(events, end=End(t=events[-1].t, reason="upstream_disconnect"))
    async with Replayer(cas, speed=0, ids=True, retry_ms=50) as r, Chromium(tmp_path / "profile") as browser:
        await browser.open(page_url(site, r.url + "/v1/messages"))
        result = await browser.evaluate("window.reel.done")
        replies = await r.asettle()
    assert result["state"] == "closed"
    assert [e["id"] for e in result["events"]] == [str(i) for i in range(15)]
    assert [x.status for x in replies] == [200, 204]


async def test_chromium_fetch_of_a_post_streams_the_recorded_reply(site, tmp_path):
    body = json.dumps({"model": "claude-haiku-4-5", "max_tokens": 1024, "stream": True, "messages": [{"role": "user", "content": "How do I cross?"}]})
    item = cassette().interactions[0]
    recorded = Cassette(interactions=(replace(item, request=replace(item.request, body=json.loads(body))),))
    async with Replayer(recorded, speed=0) as r, Chromium(tmp_path / "profile") as browser:
        await browser.open(page_url(site, r.url + "/v1/messages", "fetch") + "&body=" + quote(body, safe=""))
        result = await browser.evaluate("window.reel.done")
        requests = r.requests
    assert result["state"] == "done"
    assert result["text"] == TEXT
    assert [q.method for q in requests] == ["POST"]
    assert requests[-1].json == json.loads(body)


async def test_cli_serve_ids_and_retry_for_event_sources(tmp_path):
    import asyncio
    import signal
    import sys

    from streamreel.cassette import save
    from streamreel.sse import decode

    save(cassette(), tmp_path / "c.yaml")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streamreel", "serve", str(tmp_path / "c.yaml"), "--ids", "--retry-ms", "20", "--speed", "0",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        banner = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert banner.startswith("listening on http://127.0.0.1:")
        url = banner.split()[-1]
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/v1/messages", headers={"accept": "text/event-stream"}) as resp:
                got = decode(await resp.read())
            async with s.get(url + "/v1/messages", headers={"accept": "text/event-stream", "last-event-id": got[-1].id}) as done:
                assert done.status == 204
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    assert [e.id for e in got] == [str(i) for i in range(len(stream_events()))]
    assert got[0].retry == 20


# ---------------------------------------------------------------- the EventSource reconnect verdict, in Chromium

NATIVE_RESUME = """
new Promise((resolve) => {
  let opens = 0;
  const es = new EventSource(%(url)s);
  es.onopen = () => opens++;
  es.addEventListener("message_stop", () => { es.close(); resolve(opens); });
})
"""

STARTS_OVER = """
new Promise((resolve) => {
  let opens = 0;
  const connect = () => {
    const es = new EventSource(%(url)s);  // a fresh EventSource knows no last event id
    opens++;
    es.onerror = () => { es.close(); if (opens < 3) setTimeout(connect, 50); else resolve(opens); };
    es.addEventListener("message_stop", () => { es.close(); resolve(opens); });
  };
  connect();
})
"""


async def test_chromium_event_source_resuming_with_last_event_id_passes_the_reconnect_verdict(site, tmp_path):
    from streamreel.verdicts import ajudge

    async with Replayer(cassette(), speed=0, ids=True, retry_ms=50, faults=[CutAfter(after=9)]) as r, Chromium(tmp_path / "profile") as browser:
        await browser.open(site + "/index.html")  # a page on its own origin; without ?src= the app waits
        opens = await browser.evaluate(NATIVE_RESUME % {"url": json.dumps(r.url + "/v1/messages")})
        verdicts = await ajudge(r)
        resumed = [q.headers.get("last-event-id") for q in r.requests]
    assert opens >= 3 and resumed[0] is None and all(resumed[1:])
    assert verdicts.ok, verdicts.report()


async def test_chromium_app_that_opens_a_new_event_source_after_a_cut_fails_the_reconnect_verdict(site, tmp_path):
    from streamreel.verdicts import ajudge

    async with Replayer(cassette(), speed=0, ids=True, retry_ms=50, faults=[CutAfter(after=9)]) as r, Chromium(tmp_path / "profile") as browser:
        await browser.open(site + "/index.html")
        opens = await browser.evaluate(STARTS_OVER % {"url": json.dumps(r.url + "/v1/messages")})
        verdicts = await ajudge(r)
        asked = [q.headers.get("last-event-id") for q in r.requests]
    assert opens == 3 and asked == [None, None, None]
    assert [v.check for v in verdicts.failed] == ["reconnect_without_last_event_id"]
    evidence = verdicts["reconnect_without_last_event_id"].evidence
    assert [e.requests for e in evidence] == [(0, 1), (1, 2)]
    assert "was cut (close) at id '8', without Last-Event-ID" in evidence[0].detail
