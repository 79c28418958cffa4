"""``streamreel demo``: bundled recordings replayed through the real anthropic SDK, as a user sees them."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console

from .cassette import bundled
from .replayer import Replayer

__all__ = ["run"]

_PROMPT: Any = [{"role": "user", "content": "demo"}]


def _warm_up(client: Any) -> None:
    """One unhurried request first, so the SDK's own first-call setup does not count as time to first token."""
    with client.messages.stream(model="claude-sonnet-4-6", max_tokens=1024, messages=_PROMPT, extra_headers={"x-streamreel-faults": "speed:0"}) as stream:
        stream.until_done()


def run(*, speed: float = 1.0, console: Console | None = None) -> int:
    """Run the demo; returns the exit status."""
    try:
        import anthropic
    except ImportError:  # pragma: no cover - anthropic is a dependency
        (console or Console()).print("[red]the demo needs the anthropic SDK: pip install anthropic[/]")
        return 1
    out = console or Console(highlight=False)
    out.print(f"[bold]streamreel demo[/] - bundled recordings replayed through the real anthropic SDK {anthropic.__version__}\n")
    with Replayer(bundled("text"), speed=speed) as reel:
        client = anthropic.Anthropic(base_url=reel.url, api_key="sk-demo-not-a-real-key", max_retries=0)
        _warm_up(client)
        reel.clear()
        out.print(f"[dim]replaying text.yaml on {reel.url}[/]")
        start = time.monotonic()
        first = None
        with client.messages.stream(model="claude-sonnet-4-6", max_tokens=1024, messages=_PROMPT) as stream:
            for text in stream.text_stream:
                if first is None:
                    first = time.monotonic() - start
                    out.print(f"[cyan]time to first token: {first * 1000:.0f} ms[/]")
                out.print(text, end="", soft_wrap=True)
            message = stream.get_final_message()
        sent = reel.settle()[-1]
        out.print(
            f"\n\n[green]stop reason: {message.stop_reason}[/]  {message.usage.output_tokens} output tokens in "
            f"{time.monotonic() - start:.2f} s; the server sent {len(sent.events)} events, {sent.bytes_sent} bytes, ending '{sent.ending}'\n"
        )

        reel.load(bundled("thinking"))
        out.print("[dim]replaying thinking.yaml (extended thinking with a signature)[/]")
        with client.messages.stream(model="claude-sonnet-4-6", max_tokens=1024, messages=_PROMPT) as stream:
            for event in stream:
                if event.type == "thinking":
                    out.print(f"[italic dim]{event.thinking}[/]", end="", soft_wrap=True)
                elif event.type == "text":
                    out.print(event.text, end="", soft_wrap=True)
                elif event.type == "content_block_stop":
                    out.print()
            message = stream.get_final_message()
        out.print(f"[green]stop reason: {message.stop_reason}[/]  blocks: {', '.join(b.type for b in message.content)}\n")

        reel.load(bundled("tool_use"))
        out.print("[dim]replaying tool_use.yaml (tool input streamed as input_json_delta)[/]")
        with client.messages.stream(model="claude-sonnet-4-6", max_tokens=1024, messages=_PROMPT) as stream:
            for event in stream:
                if event.type == "text":
                    out.print(event.text, end="", soft_wrap=True)
                elif event.type == "input_json":
                    out.print(f"\n[yellow]partial tool input: {event.snapshot}[/]", end="", soft_wrap=True)
            message = stream.get_final_message()
        tool = next(b for b in message.content if b.type == "tool_use")
        out.print(f"\n[green]stop reason: {message.stop_reason}[/]  tool call: {tool.name}({tool.input})")
    return 0
