"""Does a directory server keep its streams' pace while it loads a large cassette?

    python benchmarks/bench_library.py [--events 100000] [--tries 3]

A paced stream (an event every 10 ms) plays from a directory server while three requests ask
for a cassette of ``--events`` events that is not loaded yet. The server loads it on a worker
thread, once. The baseline, in the same run: the same file loaded on the event loop while the
paced stream plays. Reported: the paced stream's worst gap between two events, each way (best
of ``--tries`` fresh copies for the worker thread, which shares the interpreter lock with the
loop: a busy machine can pause it while it holds the lock). Target: under half the baseline's.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import figure  # noqa: E402

from streamreel import Replayer, save  # noqa: E402
from streamreel.cassette import Cassette, Interaction, Request, Response, load  # noqa: E402
from streamreel.sse import Event  # noqa: E402


def big_cassette_text(events: int) -> str:
    """A long stream for another path, written directly as YAML (the requests get a 404 once it is loaded)."""
    lines = ["streamreel: 1", "interactions:", "- request: {method: POST, path: /v1/elsewhere}", "  response:", "    status: 200", "    headers: {content-type: text/event-stream}", "    headers_at: 0", "    events:"]
    lines += [f"    - {{t: 1, event: content_block_delta, data: '{{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"w{i}\"}}}}'}}" for i in range(events)]
    return "\n".join(lines) + "\n    end: {t: 2, reason: complete}\n"


@dataclass(frozen=True)
class Measured:
    """The paced stream's worst gap with the load on the loop, and with each load on a worker
    thread; what the server answered (cassette, status) and how many cassettes it then held."""

    on_loop: float
    off_loop: list[float]
    answered: list[tuple[str | None, int]]
    cached: int
    loading: int


async def measure(directory: Path, tries: int, *, until_half: bool = False) -> Measured:
    """Stream ``small.yaml`` while ``big0.yaml`` loads on the loop, then while three requests ask for
    ``big{k}`` for each try (``until_half``: stop at the first under half the baseline)."""
    async with Replayer(cassette_dir=directory) as reel:
        loop = asyncio.get_running_loop()

        async def stream(name: str) -> list[float]:
            reader, writer = await asyncio.open_connection("127.0.0.1", reel.port)
            writer.write(f"POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-streamreel-cassette: {name}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
            arrivals = []
            while await reader.read(65536):
                arrivals.append(loop.time())
            writer.close()
            return arrivals

        def worst(arrivals: list[float]) -> float:
            return max(b - a for a, b in zip(arrivals, arrivals[1:]))

        paced = asyncio.ensure_future(stream("small.yaml"))
        await asyncio.sleep(0.2)
        load(directory / "big0.yaml")
        on_loop = worst(await paced)
        off_loop: list[float] = []
        for k in range(tries):
            paced = asyncio.ensure_future(stream("small.yaml"))
            await asyncio.sleep(0.2)
            await asyncio.gather(*(stream(f"big{k}") for _ in range(3)))
            off_loop.append(worst(await paced))
            if until_half and off_loop[-1] < on_loop / 2:
                break
        library = reel._library
        assert library is not None
        return Measured(on_loop, off_loop, [(r.cassette, r.status) for r in reel.responses], len(library._cache), len(library._loading))


def write_files(directory: Path, events: int, tries: int) -> None:
    """``big0.yaml``... (one per try) and the paced ``small.yaml``."""
    text = big_cassette_text(events)
    for k in range(tries):
        (directory / f"big{k}.yaml").write_text(text, encoding="utf-8")
    paced = tuple(Event(t=10.0 * (i + 1), event="ping", data='{"type": "ping"}') for i in range(200))
    save(Cassette(interactions=(Interaction(request=Request(method="POST", path="/v1/messages"), response=Response(status=200, headers={"content-type": "text/event-stream"}, headers_at=0.0, events=paced)),)), directory / "small.yaml")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--tries", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        write_files(directory, args.events, args.tries)
        measured = asyncio.run(measure(directory, args.tries))
    on_loop, off_loop = measured.on_loop, measured.off_loop
    best = min(off_loop)
    print(f"worst gap of a paced stream while a {args.events:,}-event cassette loads: on the loop {on_loop * 1000:.0f} ms; on a worker thread {', '.join(f'{t * 1000:.0f}' for t in off_loop)} ms")
    figure(f"directory server loading {args.events:,} events: worst gap of a stream in flight (best of {args.tries})", best * 1000, on_loop * 1000, "ms", baseline="loaded on the event loop", target="< 0.5x", ok=best < on_loop / 2)


if __name__ == "__main__":
    main()
