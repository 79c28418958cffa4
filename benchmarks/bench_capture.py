"""What keeping production streams costs: the SDK's events/s through a Capture against its plain transport.

    python benchmarks/bench_capture.py [--events 20000] [--rounds 5] [--check]

Each figure has its baseline measured in the same run, the two interleaved round by round:

- throughput: ``streamreel serve`` in a process of its own sends ``--events`` small text deltas
  at speed 0 over loopback; each SDK (anthropic ``messages.create(stream=True)``, openai
  ``chat.completions.create(stream=True)``) reads them through its own default client and
  through ``Capture().http_client()``. Events/s, best of the rounds (on a shared machine
  other work only ever slows a round; medians are printed too); target capture / plain >= 0.95.
- added latency per event: in process (``ReplayTransport`` on its virtual clock, so nothing
  waits), the events 1 ms apart, so each one arrives in a read of its own as on a live
  stream: the SDK's time per event with and without the capture (best of the rounds). The
  difference is all the capture adds between an event's arrival and the app; target < 0.1 ms.
- the dump's timing: ``streamreel serve`` sends 200 events 2 ms apart; the app stamps each
  event as the SDK hands it over; the dump's gaps against the app's, median and worst; target
  worst <= 2 ms.
- a dump of the whole stream (decoding, scrubbing, the atomic write), which happens off the
  app's path, on the capture's writer thread.

``--check`` exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import anthropic
import httpx2
import openai

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import figure  # noqa: E402

from streamreel import Capture, Cassette, save
from streamreel.providers.anthropic import TextBlock, message_events
from streamreel.providers.openai import chat_events
from streamreel.transport import BASE_URL, ReplayTransport

KEY = "sk-" + "bench"
MESSAGE: dict[str, Any] = {"model": "claude-haiku-4-5", "max_tokens": 1024, "messages": [{"role": "user", "content": "hi"}]}
CHAT: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def streams(events: int, gap_ms: float = 0.0) -> Cassette:
    """One anthropic and one openai stream of ``events`` text deltas, ``gap_ms`` apart."""
    claude = message_events([TextBlock(("w ",) * events)])
    gpt = chat_events(["w "] * events)
    timed = [tuple(replace(e, t=i * gap_ms) for i, e in enumerate(evs)) for evs in (claude, gpt)]
    a = Cassette.from_events(timed[0])
    o = Cassette.from_events(timed[1], path="/v1/chat/completions")
    return Cassette(interactions=(a.interactions[0], o.interactions[0]))


def reader(sdk: str) -> Callable[[Any], int]:
    def read(client: Any) -> int:
        n = 0
        stream = client.messages.create(**MESSAGE, stream=True) if sdk == "anthropic" else client.chat.completions.create(**CHAT, stream=True)
        with stream:
            for _ in stream:
                n += 1
        return n

    return read


def client(sdk: str, base_url: str, http_client: Any) -> Any:
    if sdk == "anthropic":
        return anthropic.Anthropic(base_url=base_url, api_key=KEY, max_retries=0, http_client=http_client)
    return openai.OpenAI(base_url=base_url + "/v1", api_key=KEY, max_retries=0, http_client=http_client)


def throughput(url: str, rounds: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for sdk, module in (("anthropic", anthropic), ("openai", openai)):
        read = reader(sdk)
        capture = Capture()
        ways = {"plain": client(sdk, url, module.DefaultHttpxClient()), "capture": client(sdk, url, capture.http_client(module.DefaultHttpxClient()))}
        for c in ways.values():
            read(c)  # warm up: imports, the connection pool
        rates: dict[str, list[float]] = {way: [] for way in ways}
        for _ in range(rounds):
            for way, c in ways.items():
                start = time.perf_counter()
                n = read(c)
                rates[way].append(n / (time.perf_counter() - start))
        best = {way: max(r) for way, r in rates.items()}
        print(f"{sdk} {module.__version__}, {n} events a stream over loopback, {rounds} rounds:")
        for way, value in best.items():
            print(f"  {way:<8} {value:9.0f} events/s best, {statistics.median(rates[way]):9.0f} median   (rounds: {', '.join(f'{r:.0f}' for r in rates[way])})")
        out[sdk] = {**best, "held": capture.streams[-1].events}
    return out


def latency(events: int, rounds: int) -> dict[str, tuple[float, float]]:
    """Seconds per event through the SDK, each event its own read, with and without the capture."""
    cassette = streams(events, gap_ms=1.0)
    out: dict[str, tuple[float, float]] = {}
    for sdk, module in (("anthropic", anthropic), ("openai", openai)):
        read = reader(sdk)
        capture = Capture(max_bytes=64 * 2**20)
        ways = {
            "plain": client(sdk, BASE_URL, module.DefaultHttpxClient(transport=ReplayTransport(cassette, speed=1.0))),
            "capture": client(sdk, BASE_URL, capture.http_client(module.DefaultHttpxClient(transport=ReplayTransport(cassette, speed=1.0)))),
        }
        for c in ways.values():
            read(c)
        per_event: dict[str, list[float]] = {way: [] for way in ways}
        for _ in range(rounds):
            for way, c in ways.items():
                start = time.perf_counter()
                n = read(c)
                per_event[way].append((time.perf_counter() - start) / n)
        med = {way: min(v) for way, v in per_event.items()}
        chunks = len(capture._ring.held()[-1].chunks)
        added = med["capture"] - med["plain"]
        print(f"{sdk}, {n} events in {chunks} reads, in process, {rounds} rounds: plain {med['plain'] * 1e6:.1f} us/event, capture {med['capture'] * 1e6:.1f} us/event")
        print(f"  added per event: {added * 1e6:+.2f} us = {added * 1e3:+.4f} ms")
        out[sdk] = (med["plain"], med["capture"])
    return out


class Reads(httpx2.BaseTransport):
    """Hands back a body already cut into reads: no SDK, no server, so the capture's own cost shows."""

    def __init__(self, reads: list[bytes]) -> None:
        self.reads = reads

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, stream=_Reads(self.reads), request=request)


class _Reads(httpx2.SyncByteStream):
    def __init__(self, reads: list[bytes]) -> None:
        self.reads = reads

    def __iter__(self) -> Any:
        return iter(self.reads)


def own_cost(events: int, rounds: int) -> tuple[float, float]:
    """Seconds the capture adds to each read on its own: httpx2 reading ready-made reads (one event each), with and without it."""
    reads = [e.wire for e in streams(events).interactions[0].response.events or ()]
    capture = Capture(max_bytes=64 * 2**20)
    ways = {"plain": httpx2.Client(transport=Reads(reads)), "capture": httpx2.Client(transport=capture.transport(Reads(reads)))}
    per_read: dict[str, list[float]] = {way: [] for way in ways}
    for _ in range(rounds + 1):
        for way, c in ways.items():
            start = time.perf_counter()
            with c.stream("POST", "http://upstream.test/v1/messages") as response:
                for _ in response.iter_raw():
                    pass
            per_read[way].append((time.perf_counter() - start) / len(reads))
    best = {way: min(v[1:]) for way, v in per_read.items()}
    added = best["capture"] - best["plain"]
    print(f"httpx2 alone, {len(reads)} reads of one event each: plain {best['plain'] * 1e6:.2f} us/read, capture {best['capture'] * 1e6:.2f} us/read: the capture's own cost {added * 1e6:.2f} us a read")
    return best["plain"], best["capture"]


def dump_time(events: int) -> float:
    capture = Capture(max_bytes=64 * 2**20)
    with httpx2.Client(transport=capture.transport(ReplayTransport(streams(events))), base_url=BASE_URL) as c:
        with c.stream("POST", "/v1/messages", json={**MESSAGE, "stream": True}) as response:
            response.read()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        written = capture.dump(Path(tmp))
        took = time.perf_counter() - start
        assert written is not None
    print(f"dump of a {events}-event stream (decode, scrub, atomic write; on the writer thread, not the app's): {took * 1000:.0f} ms")
    return took


def serve(cassette: Cassette, tmp: str, *options: str) -> tuple[subprocess.Popen[str], str]:
    """``streamreel serve`` in a process of its own (its timing owes nothing to this one's GIL)."""
    path = Path(tmp) / f"served-{len(options)}.yaml"
    save(cassette, path)
    proc = subprocess.Popen([sys.executable, "-m", "streamreel", "serve", "-q", *options, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().split()[-1]


def gaps(url: str, rounds: int) -> tuple[float, float]:
    """How far the gaps a dump holds are from the gaps the app saw: each event stamped by the
    app as the SDK hands it over, against the dump's time for it (ms; median and worst)."""
    off: list[float] = []
    for _ in range(rounds):
        capture = Capture()
        c = client("anthropic", url, capture.http_client())
        seen: list[float] = []
        with c.messages.create(**MESSAGE, stream=True) as stream:
            for event in stream:
                seen.append(time.perf_counter() * 1000.0)
        dumped = [e.t for e in capture.cassette().interactions[0].response.events or () if e.event != "ping"]
        off += [abs((b - a) - (d - c_)) for a, b, c_, d in zip(seen, seen[1:], dumped, dumped[1:])]
    off.sort()
    print(f"{len(off)} gaps of ~2 ms, anthropic SDK over loopback: dump vs app, median {statistics.median(off):.3f} ms, p99 {off[int(len(off) * 0.99)]:.3f} ms, worst {off[-1]:.3f} ms")
    return statistics.median(off), off[-1]


def main(events: int, rounds: int, check: bool) -> int:
    missed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        fast, url = serve(streams(events), tmp, "--speed", "0")
        paced, paced_url = serve(Cassette(interactions=streams(200, gap_ms=2.0).interactions[:1]), tmp)
        try:
            rates = throughput(url, rounds)
            median_off, worst_off = gaps(paced_url, rounds)
        finally:
            for proc in (fast, paced):
                proc.terminate()
                proc.wait(timeout=10)
    ok = figure(f"dump's gaps vs the app's: worst (median {median_off:.3f} ms)", worst_off, 2.0, "ms", baseline="the gap", target="worst <= 2 ms", ok=worst_off <= 2.0, show="{:.3f}")
    missed += ["gaps"] * (not ok)
    for sdk, best in rates.items():
        print(f"  the ring kept all {best['held']:.0f} events of the {sdk} stream")
        ok = figure(f"{sdk} SDK events/s through a Capture", best["capture"], best["plain"], "events/s", baseline="its plain client", target=">= 0.95x plain", ok=best["capture"] >= 0.95 * best["plain"], show="{:,.0f}")
        missed += [f"{sdk} throughput"] * (not ok)
    n = min(events, 5000)
    for sdk, (plain, captured) in latency(n, rounds).items():
        added_ms = (captured - plain) * 1e3
        ok = figure(f"{sdk} SDK, ms an event, each its own read", captured * 1e3, plain * 1e3, "ms", baseline="plain", target="added < 0.1 ms", ok=added_ms < 0.1, show="{:.4f}")
        missed += [f"{sdk} latency"] * (not ok)
    plain, captured = own_cost(n, rounds)
    figure("httpx2 alone, us a read through a Capture", captured * 1e6, plain * 1e6, "us", baseline="plain", show="{:.2f}")
    dump_time(events)
    if check and missed:
        print(f"FAIL: missed {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="text deltas in each stream")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each way, interleaved")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    sys.exit(main(args.events, args.rounds, args.check))
