"""Bedrock's event stream: streamreel's frame codec against botocore's parser (what the SDK reads with), same bytes, same run.

    python benchmarks/bench_bedrock.py [--events 20000] [--repeat 5]

Prints frames/s for decoding (streamreel's FrameDecoder, which the recorder runs, against
botocore's EventStreamBuffer) in several chunkings, and for encoding (framing a stream
once, as a replay does) against SSE encoding of the same events, each as a ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

from botocore.eventstream import EventStreamBuffer

from streamreel.providers.anthropic import TextBlock, message_events
from streamreel.providers.bedrock import FrameDecoder, encode_frame, padding
from streamreel.sse import encode
from dataclasses import replace


def stream_events(n: int) -> list:
    deltas = tuple(f" word{i % 97}" for i in range(n))
    return [replace(e, comment=padding(e.data or "")) for e in message_events([TextBlock(deltas)], ping=False)]


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def ours(chunks: list[bytes]) -> int:
    dec = FrameDecoder()
    return sum(len(dec.feed(c)) for c in chunks) + len(dec.flush())


def botocore(chunks: list[bytes]) -> int:
    buf = EventStreamBuffer()
    n = 0
    for c in chunks:
        buf.add_data(c)
        n += sum(1 for _ in buf)
    return n


def best_rate(fn: Callable[[], int], repeat: int) -> float:
    rates = []
    for _ in range(repeat):
        start = time.perf_counter()
        n = fn()
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    events = stream_events(args.events)
    data = b"".join(encode_frame(e) for e in events)
    print(f"{len(events)} frames, {len(data):,} bytes; median of {args.repeat} runs")
    print(f"{'decoding, chunking':<24}{'streamreel frames/s':>21}{'botocore frames/s':>19}{'ratio':>8}")
    for label, size in [("whole stream", len(data)), ("64 KiB reads", 65536), ("1 KiB reads", 1024), ("7-byte pieces", 7)]:
        chunks = chunked(data, size)
        a, b = best_rate(lambda: ours(chunks), args.repeat), best_rate(lambda: botocore(chunks), args.repeat)
        print(f"{label:<24}{a:>21,.0f}{b:>19,.0f}{a / b:>8.2f}x")
    frames = best_rate(lambda: sum(1 for e in events if encode_frame(e)), args.repeat)
    sse = best_rate(lambda: sum(1 for e in events if encode(e)), args.repeat)
    print(f"{'encoding':<24}{frames:>21,.0f}{'SSE ' + format(sse, ',.0f'):>19}{frames / sse:>8.2f}x")


if __name__ == "__main__":
    main()
