"""SSE decoder throughput: streamreel's Decoder against the anthropic SDK's decoder, same bytes, same run.

    python benchmarks/bench_sse.py [--events 20000] [--repeat 5]

Prints events/s for each decoder and chunking, and streamreel's speed as a ratio of the SDK's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

from anthropic._streaming import SSEDecoder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import figure  # noqa: E402

from streamreel.providers.anthropic import TextBlock, message_events  # noqa: E402
from streamreel.sse import Decoder, encode_all  # noqa: E402


def stream_bytes(n: int) -> bytes:
    deltas = tuple(f" word{i % 97}" for i in range(n))
    return encode_all(message_events([TextBlock(deltas)]))


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def ours(chunks: list[bytes]) -> int:
    dec = Decoder()
    n = 0
    for c in chunks:
        n += len(dec.feed(c))
    return n + len(dec.flush())


def sdk(chunks: list[bytes]) -> int:
    return sum(1 for _ in SSEDecoder().iter_bytes(iter(chunks)))


def best_rate(fn: Callable[[list[bytes]], int], chunks: list[bytes], repeat: int) -> float:
    rates = []
    for _ in range(repeat):
        start = time.perf_counter()
        n = fn(chunks)
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    data = stream_bytes(args.events)
    print(f"{args.events} text deltas, {len(data):,} bytes; median of {args.repeat} runs")
    print(f"{'chunking':<22}{'streamreel ev/s':>18}{'anthropic SDK ev/s':>22}{'ratio':>8}")
    for label, size in [("whole stream", len(data)), ("64 KiB reads", 65536), ("1 KiB reads", 1024), ("7-byte pieces", 7)]:
        chunks = chunked(data, size)
        a, b = best_rate(ours, chunks, args.repeat), best_rate(sdk, chunks, args.repeat)
        print(f"{label:<22}{a:>18,.0f}{b:>22,.0f}{a / b:>8.2f}x")
        figure(f"SSE decoder, {label}", a, b, "events/s", baseline="anthropic SDK decoder")


if __name__ == "__main__":
    main()
