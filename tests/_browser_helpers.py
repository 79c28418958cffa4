"""Helpers for the browser tests: a cut-after-N fault, an EventSource-like client, headless Chromium over CDP.

Chromium is Debian's (``apt-get install -y chromium``), driven through the DevTools
protocol on a websocket with aiohttp, so no browser download and no extra package.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import signal
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from streamreel.fault_injection import ByteFault, Context, register, spec_field
from streamreel.pipeline import Ending, Plan
from streamreel.sse import Decoder, Event

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "browser"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
)


@register
@dataclass(frozen=True)
class CutAfter(ByteFault):
    """Test stand-in for ``disconnect:after=N``: close (FIN, no chunked terminator) after N events, on every connection."""

    name = "test-cut-after"
    stage = 90

    after: int = spec_field("after", "int", default=1, positional=True)

    def apply(self, plan: Plan, ctx: Context) -> Plan:
        if len(plan.events) <= self.after:
            return plan
        return replace(plan, chunks=[c for c in plan.chunks if c.events_done <= self.after], ending=Ending("close"))


async def event_source(url: str, *, limit: int = 50, timeout: float = 10.0) -> tuple[list[list[Event]], list[dict[str, str]]]:
    """Read ``url`` as an EventSource does: GET, reconnect after a cut with ``Last-Event-ID``, stop on 204.

    Returns the events of each connection and the headers each request sent.
    """
    connections: list[list[Event]] = []
    sent: list[dict[str, str]] = []
    last_id: str | None = None
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        for _ in range(limit):
            headers = {"accept": "text/event-stream"}
            if last_id is not None:
                headers["last-event-id"] = last_id
            sent.append(headers)
            got: list[Event] = []
            connections.append(got)
            async with session.get(url, headers=headers) as resp:
                if resp.status == 204:
                    return connections, sent
                decoder = Decoder()
                try:
                    async for chunk in resp.content.iter_any():
                        got.extend(decoder.feed(chunk))
                except aiohttp.ClientPayloadError:
                    pass
            for ev in got:
                if ev.id is not None:
                    last_id = ev.id
            if got and got[-1].event == "message_stop":
                return connections, sent
    raise AssertionError(f"still reconnecting after {limit} connections")


async def static_site(root: Path) -> tuple[web.AppRunner, str]:
    """Serve ``root`` on 127.0.0.1 (the example page, as `python -m http.server` would)."""
    app = web.Application()
    app.router.add_static("/", root)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


def chromium_path() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if found is None:
        raise AssertionError("the browser tests need Debian's chromium: apt-get install -y chromium (see docs/browser.md)")
    return found


class Chromium:
    """One headless Chromium process and one page, driven over the DevTools protocol."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        self.proc: asyncio.subprocess.Process | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._events: dict[str, list[asyncio.Future[Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._drain: asyncio.Task[None] | None = None
        self.page_session: str | None = None

    async def __aenter__(self) -> Chromium:
        self.proc = await asyncio.create_subprocess_exec(
            chromium_path(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={self.profile}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        url = await asyncio.wait_for(self._devtools_url(), 30)
        self._drain = asyncio.create_task(self._discard_stderr())
        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(url, max_msg_size=0)
        self._reader = asyncio.create_task(self._read())
        target = await self.send("Target.createTarget", url="about:blank")
        attached = await self.send("Target.attachToTarget", targetId=target["targetId"], flatten=True)
        self.page_session = attached["sessionId"]
        await self.send("Page.enable", session=self.page_session)
        await self.send("Runtime.enable", session=self.page_session)
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if self._ws is not None and not self._ws.closed:
                await asyncio.wait_for(self.send("Browser.close"), 5)
        except (asyncio.TimeoutError, ConnectionError, RuntimeError, aiohttp.ClientError):
            pass
        for task in (self._reader, self._drain):
            if task is not None:
                task.cancel()
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
        if self.proc is not None and self.proc.returncode is None:
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except asyncio.TimeoutError:
                os.killpg(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()

    async def _devtools_url(self) -> str:
        assert self.proc is not None and self.proc.stderr is not None
        while True:
            line = await self.proc.stderr.readline()
            if not line:
                raise AssertionError(f"chromium exited before opening DevTools (exit code {await self.proc.wait()})")
            text = line.decode(errors="replace").strip()
            if text.startswith("DevTools listening on "):
                return text.split(" ", 3)[3]

    async def _discard_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while await self.proc.stderr.read(65536):
            pass

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self._pending:
                fut = self._pending.pop(data["id"])
                if not fut.done():
                    if "error" in data:
                        fut.set_exception(RuntimeError(f"CDP error: {data['error']}"))
                    else:
                        fut.set_result(data.get("result", {}))
            elif "method" in data:
                for fut in self._events.pop(data["method"], []):
                    if not fut.done():
                        fut.set_result(data.get("params", {}))
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("DevTools connection closed"))

    async def send(self, method: str, *, session: str | None = None, **params: Any) -> Any:
        assert self._ws is not None
        ident = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[ident] = fut
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        await self._ws.send_str(json.dumps(message))
        return await fut

    def expect(self, method: str) -> asyncio.Future[Any]:
        """A future for the next DevTools event named ``method`` (register before causing it)."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._events.setdefault(method, []).append(fut)
        return fut

    async def open(self, url: str) -> None:
        loaded = self.expect("Page.loadEventFired")
        await self.send("Page.navigate", session=self.page_session, url=url)
        await loaded

    async def evaluate(self, expression: str) -> Any:
        """Evaluate in the page, awaiting a promise, and return the value as JSON data."""
        result = await self.send("Runtime.evaluate", session=self.page_session, expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"page raised: {result['exceptionDetails']}")
        return result["result"].get("value")
