"""What a new episode costs in mode ``new_episodes``: the cassette rewrite after one recorded request.

    python benchmarks/bench_episodes.py [--events 200000] [--episodes 3]

A recorder in ``new_episodes`` mode rewrites its cassette after every interaction it records.
It used to dump the whole cassette each time, so a new episode on a 200,000-event cassette
cost as much as dumping 200,000 events; now it dumps only the new interactions and copies the
rest of the file. This times the rewrite (from the end of the recorded stream until the file
is written) on a 10-event cassette and on a large one, and, as the baseline, one full dump of
the large cassette (what every rewrite used to cost). Ratios: large / small (1 means the size
of the old file does not matter) and large / full dump.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from streamreel import Replayer, load
from streamreel.cassette import Cassette, End, Interaction, Request, Response, dumps
from streamreel.recorder import Recorder
from streamreel.sse import Event


def cassette_text(events: int) -> str:
    """One stream of ``events`` text deltas, as YAML written directly (dumping it is what is measured)."""
    lines = ["streamreel: 1", "interactions:", "- request: {method: POST, path: /v1/old}", "  response:", "    status: 200", "    headers: {content-type: text/event-stream}", "    headers_at: 1", "    events:"]
    lines += [f"    - {{t: {i + 2}, event: content_block_delta, data: '{{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"w{i} \"}}}}'}}" for i in range(events)]
    return "\n".join(lines) + f"\n    end: {{t: {events + 2}, reason: complete}}\n"


def upstream() -> Cassette:
    events = tuple(Event(t=float(i), event="content_block_delta", data=json.dumps({"i": i})) for i in range(20))
    response = Response(status=200, headers={"content-type": "text/event-stream"}, headers_at=0.0, events=events, end=End(t=20.0, reason="complete"))
    return Cassette(interactions=(Interaction(request=Request(method="POST", path="/v1/messages"), response=response),))


async def rewrites(path: Path, url: str, episodes: int) -> list[float]:
    """Seconds from each recorded stream's end until the cassette holding it is written."""
    import httpx2

    spent = []
    async with Recorder(upstream=url, cassette=path, mode="new_episodes") as rec:
        async with httpx2.AsyncClient(timeout=60) as client:
            for i in range(episodes):
                await client.post(f"{rec.url}/v1/messages", json={"model": "m", "stream": True, "metadata": {"user_id": str(i)}})
                began = time.perf_counter()
                await rec.asettle(120)
                spent.append(time.perf_counter() - began)
    return spent


async def main(events: int, episodes: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        async with Replayer(upstream(), speed=0, match_on=("method", "path")) as up:
            figures = {}
            for name, n in (("small", 10), ("large", events)):
                path = work / f"{name}.yaml"
                path.write_text(cassette_text(n), encoding="utf-8")
                figures[name] = statistics.median(await rewrites(path, up.url, episodes))
                assert len(load(path).interactions) == 1 + episodes
        big = load(work / "large.yaml")
        began = time.perf_counter()
        dumps(big)
        full = time.perf_counter() - began
    print(f"new episode on a 10-event cassette:       {figures['small'] * 1000:8.1f} ms (median of {episodes})")
    print(f"new episode on a {events:,}-event cassette: {figures['large'] * 1000:8.1f} ms")
    print(f"baseline, one full dump of that cassette: {full * 1000:8.1f} ms (what every rewrite cost before)")
    print(f"ratio large / small: {figures['large'] / figures['small']:.2f}")
    print(f"ratio large / full dump: {figures['large'] / full:.3f}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events in the large cassette")
    parser.add_argument("--episodes", type=int, default=3, help="new episodes recorded on each cassette")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.events, args.episodes)))
