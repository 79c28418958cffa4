"""Examples per second through the real SDK: in process, over the socket, and the SDK's own ceiling.

    python benchmarks/bench_inprocess.py [--examples 300] [--rounds 3] [--check]

Draws ``--examples`` streams once (``anthropic_messages()`` and ``openai_chat_streams()``,
fixed seed), then, for each SDK, serves the same streams three ways in this process,
interleaved round by round, as a property test does for each example (load the stream, read
it with the SDK's accumulating helper, ``get_final_message()`` / ``get_final_completion()``):

- ``ceiling``: the SDK on an httpx2 transport that hands back each stream's bytes, encoded
  ahead of time: the SDK's own cost, with no streamreel work at all;
- ``in-process``: ``Reel.load`` on a ``Replayer`` and the SDK on its ``ReplayTransport``
  (matching, the plan, the ground truth: everything but the socket);
- ``socket``: the same replayer serving on loopback, the SDK on its ``base_url``, as the
  ``anthropic_client`` / ``openai_client`` fixtures do.

Prints examples per second (median over rounds) and the ratios the targets are stated in:
in process at least 0.75 of the ceiling and at least 2x the socket path. A last line runs
whole hypothesis properties (drawing included) each way. ``--check`` exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any, Callable, Iterator

import anthropic
import httpx2
import openai
from hypothesis import HealthCheck, given, settings

from streamreel import Replayer
from streamreel.strategies import StreamCassette, anthropic_messages, openai_chat_streams
from streamreel.transport import BASE_URL, ReplayTransport

KEY = "sk-" + "bench"
MESSAGE: dict[str, Any] = {"model": "claude-haiku-4-5", "max_tokens": 1024, "messages": [{"role": "user", "content": "hi"}]}
CHAT: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
HEADERS = {"content-type": "text/event-stream; charset=utf-8"}


class Canned(httpx2.BaseTransport):
    """Hands back the next prepared body for every request: the SDK's ceiling."""

    def __init__(self) -> None:
        self.bodies: Iterator[bytes] = iter(())

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        request.read()
        return httpx2.Response(200, headers=HEADERS, stream=httpx2.ByteStream(next(self.bodies)), request=request)


def draw(strategy: Any, count: int) -> list[StreamCassette]:
    drawn: list[StreamCassette] = []

    @settings(max_examples=count, database=None, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), phases=("generate",))
    @given(strategy)
    def collect(stream: StreamCassette) -> None:
        drawn.append(stream)

    collect()
    return drawn


def rate(streams: list[StreamCassette], serve: Callable[[StreamCassette], None]) -> float:
    start = time.perf_counter()
    for stream in streams:
        serve(stream)
    return len(streams) / (time.perf_counter() - start)


def anthropic_final(client: anthropic.Anthropic) -> Any:
    with client.messages.stream(**MESSAGE) as s:
        return s.get_final_message()


def openai_final(client: openai.OpenAI) -> Any:
    try:
        with client.chat.completions.stream(**CHAT) as s:
            return s.get_final_completion()
    except (openai.LengthFinishReasonError, openai.ContentFilterFinishReasonError) as e:
        return e.completion


SDKS: dict[str, tuple[Any, Any, Callable[[Any], Any], str]] = {
    # name: (the SDK's module, its strategy, its accumulating read, its path prefix)
    "anthropic": (anthropic, anthropic_messages(), anthropic_final, ""),
    "openai": (openai, openai_chat_streams(max_choices=2), openai_final, "/v1"),
}


def measure(name: str, server: Replayer, examples: int, rounds: int) -> dict[str, float]:
    sdk, strategy, final, prefix = SDKS[name]
    streams = draw(strategy, examples)
    bodies = [b"".join(e.wire for e in s.events) for s in streams]
    canned = Canned()
    make = sdk.Anthropic if name == "anthropic" else sdk.OpenAI
    ceiling_client = make(base_url=BASE_URL + prefix, api_key=KEY, max_retries=0, http_client=sdk.DefaultHttpxClient(transport=canned))
    inprocess_client = make(base_url=BASE_URL + prefix, api_key=KEY, max_retries=0, http_client=sdk.DefaultHttpxClient(transport=ReplayTransport(server)))
    socket_client = make(base_url=server.url + prefix, api_key=KEY, max_retries=0)

    def ceiling_all(streams: list[StreamCassette]) -> float:
        canned.bodies = iter(bodies)
        return rate(streams, lambda s: final(ceiling_client))

    def served(client: Any) -> Callable[[list[StreamCassette]], float]:
        def run(streams: list[StreamCassette]) -> float:
            def one(stream: StreamCassette) -> None:
                server.load(stream)
                final(client)

            return rate(streams, one)

        return run

    ways = {"ceiling": ceiling_all, "in-process": served(inprocess_client), "socket": served(socket_client)}
    for way in ways.values():
        way(streams[:20])  # warm up: imports, caches, the connection pool
    rates: dict[str, list[float]] = {way: [] for way in ways}
    for _ in range(rounds):
        for way, run in ways.items():
            rates[way].append(run(streams))
    med = {way: statistics.median(r) for way, r in rates.items()}
    events = statistics.mean(len(s.events) for s in streams)
    print(f"{name} {sdk.__version__}: {examples} drawn streams ({events:.0f} events on average) x {rounds} rounds")
    for way, value in med.items():
        spread = ", ".join(f"{r:.0f}" for r in rates[way])
        print(f"  {way:<11} {value:8.0f} examples/s   ({1000 / value:.2f} ms each; rounds: {spread})")
    return med


def whole_property(server: Replayer, examples: int) -> dict[str, float]:
    """Examples per second of a whole property (drawing, loading, the SDK), each way."""
    clients = {
        "in-process": anthropic.Anthropic(base_url=BASE_URL, api_key=KEY, max_retries=0, http_client=anthropic.DefaultHttpxClient(transport=ReplayTransport(server))),
        "socket": anthropic.Anthropic(base_url=server.url, api_key=KEY, max_retries=0),
    }
    out = {}
    for way, client in clients.items():
        count = 0

        @settings(max_examples=examples, database=None, deadline=None, suppress_health_check=list(HealthCheck), phases=("generate",))
        @given(anthropic_messages())
        def prop(stream: StreamCassette) -> None:
            nonlocal count
            count += 1
            server.load(stream)
            assert anthropic_final(client).stop_reason == stream.stop_reason

        start = time.perf_counter()
        prop()
        out[way] = count / (time.perf_counter() - start)
    return out


def main(examples: int, rounds: int, check: bool) -> int:
    missed: list[str] = []
    with Replayer(None, speed=0.0) as server:
        for name in SDKS:
            med = measure(name, server, examples, rounds)
            of_ceiling = med["in-process"] / med["ceiling"]
            over_socket = med["in-process"] / med["socket"]
            ok_ceiling, ok_socket = of_ceiling >= 0.75, over_socket >= 2.0
            print(f"  in-process / ceiling: {of_ceiling:.2f} (target >= 0.75: {'ok' if ok_ceiling else 'MISS'})")
            print(f"  in-process / socket:  {over_socket:.1f}x (target >= 2x: {'ok' if ok_socket else 'MISS'})")
            missed += [f"{name} ceiling"] * (not ok_ceiling) + [f"{name} socket"] * (not ok_socket)
        whole = whole_property(server, examples)
        print(f"whole property (drawing included), anthropic: in-process {whole['in-process']:.0f} examples/s, socket {whole['socket']:.0f} examples/s ({whole['in-process'] / whole['socket']:.1f}x)")
    if check and missed:
        print(f"FAIL: missed {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=300, help="streams drawn per SDK")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each way, interleaved")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    sys.exit(main(args.examples, args.rounds, args.check))
