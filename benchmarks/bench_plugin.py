"""How fast a hypothesis property runs through the real SDK and the session replay server.

    python benchmarks/bench_plugin.py [--examples 500] [--rounds 3] [--check]

Runs the same property three ways, in this process, interleaved round by round:

- ``generate``: hypothesis draws ``anthropic_streams()`` and the test does nothing (the floor);
- ``in-process``: each stream's bytes come from ``streamreel.pipeline.timed_chunks`` (no
  socket) through the SSE decoder into the example markdown renderer;
- ``sdk``: the session-style server (one ``Replayer``, ``load`` per example) answers the
  real anthropic SDK, whose events feed the same renderer (``examples/markdown_stream.py``).

Reports examples per second for each (median over rounds) and the per-example overhead of
the socket + SDK path over the in-process one. ``--check`` exits 1 when the SDK path runs
under 200 examples per second.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import anthropic
from hypothesis import HealthCheck, given, settings

from streamreel import Replayer
from streamreel.pipeline import timed_chunks
from streamreel.sse import Decoder
from streamreel.strategies import StreamCassette, anthropic_streams

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import figure  # noqa: E402
from markdown_stream import StreamingRenderer, render, stream_reply  # noqa: E402

REQUEST: dict[str, Any] = {"model": "claude-haiku-4-5", "max_tokens": 1024, "messages": [{"role": "user", "content": "hi"}]}


def in_process(stream: StreamCassette) -> None:
    renderer = StreamingRenderer()
    decoder = Decoder()
    for chunk in timed_chunks(stream, speed=0):
        for event in decoder.feed(chunk.data):
            if event.event == "content_block_delta":
                delta = event.json()["delta"]
                if delta["type"] == "text_delta":
                    renderer.feed(delta["text"])
    assert renderer.finish() == render(stream.text)


def run(body: Callable[[StreamCassette], None], examples: int) -> float:
    """Examples per second of a hypothesis property with ``body``, generation and all."""
    count = 0

    @settings(max_examples=examples, database=None, deadline=None, suppress_health_check=list(HealthCheck), phases=("generate",))
    @given(anthropic_streams())
    def prop(stream: StreamCassette) -> None:
        nonlocal count
        count += 1
        body(stream)

    start = time.perf_counter()
    prop()
    return count / (time.perf_counter() - start)


def main(examples: int, rounds: int, check: bool) -> int:
    with Replayer(None, speed=0) as server, anthropic.Anthropic(base_url=server.url, api_key="sk-bench", max_retries=0) as client:

        def sdk(stream: StreamCassette) -> None:
            server.load(stream, speed=0)
            reply = stream_reply(client, **REQUEST)
            assert reply.shown == render(stream.text) and not reply.partials

        ways: dict[str, Callable[[StreamCassette], None]] = {"generate": lambda s: None, "in-process": in_process, "sdk": sdk}
        run(sdk, 20)  # warm up: connection pool, imports, caches
        rates: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(rounds):
            for name, body in ways.items():
                rates[name].append(run(body, examples))

    med = {name: statistics.median(r) for name, r in rates.items()}
    print(f"{examples} examples x {rounds} rounds, hypothesis generate phase, anthropic {anthropic.__version__}")
    for name, rate in med.items():
        spread = ", ".join(f"{r:.0f}" for r in rates[name])
        print(f"  {name:<11} {rate:8.0f} examples/s   ({1000 / rate:.2f} ms each; rounds: {spread})")
    overhead = 1000 / med["sdk"] - 1000 / med["in-process"]
    print(f"  per-example overhead of socket + SDK over in-process: {overhead:.2f} ms ({med['in-process'] / med['sdk']:.1f}x)")
    figure("hypothesis examples through the real SDK and a session server", med["sdk"], med["in-process"], "examples/s", baseline="in process", target=">= 200 examples/s", ok=med["sdk"] >= 200)
    if check and med["sdk"] < 200:
        print("FAIL: the SDK path runs under 200 examples/s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=500, help="examples per property run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each way, interleaved")
    parser.add_argument("--check", action="store_true", help="exit 1 under 200 examples/s through the SDK")
    args = parser.parse_args()
    sys.exit(main(args.examples, args.rounds, args.check))
