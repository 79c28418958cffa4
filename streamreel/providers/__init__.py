"""Provider dialects: what each streaming API looks like on the wire, one module per dialect.

A :class:`Dialect` holds everything the rest of streamreel asks about one API: how to
recognise its requests and streams (:meth:`~Dialect.claims`), how its events go on the
wire (SSE, or Bedrock's binary frames: :meth:`~Dialect.framed`, :meth:`~Dialect.decoder`),
its real HTTP error bodies and headers, the form a failure takes in the middle of a
stream, which events carry generated tokens (TTFT), where it reports usage and why it
stopped, and how to synthesise a protocol-valid stream. The base class describes any
SSE stream; each module subclasses it for its API and registers one instance.

Adding a dialect is one new module (a :class:`Dialect` subclass passed to
:func:`register`) plus its tests; nothing else in streamreel names dialects.
"""

from __future__ import annotations

import importlib
import threading
import json
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Mapping, Protocol, Sequence

from ..sse import Decoder, Event, decode

if TYPE_CHECKING:
    from ..cassette import Interaction

__all__ = [
    "Dialect",
    "Synth",
    "StreamDecoder",
    "REGISTRY",
    "register",
    "get",
    "names",
    "dialect_of",
    "detect_provider",
    "provider_of_events",
    "is_complete",
    "error_body",
    "error_headers",
    "retry_headers",
    "request_id",
    "stream_decoder",
    "decode_body",
]

_MODULES = ("anthropic", "openai", "openai_responses", "gemini", "vertex", "bedrock")
"""The dialect modules, imported on first use (each registers itself)."""


class StreamDecoder(Protocol):
    """What the recorder feeds a stream's bytes to: whole events come out, stamped with ``t``."""

    def feed(self, chunk: bytes, t: float = 0.0) -> list[Event]: ...

    def flush(self, t: float = 0.0) -> list[Event]: ...


@dataclass(frozen=True)
class Synth:
    """A reply to synthesise, already cut into deltas (``synth`` times them afterwards).

    ``tool`` is a tool call as (name, argument JSON pieces); ``output_tokens`` the usage to report.
    """

    text: tuple[str, ...] = ()
    thinking: tuple[str, ...] = ()
    tool: tuple[str, tuple[str, ...]] | None = None
    output_tokens: int | None = None
    model: str | None = None


class Dialect:
    """Any SSE stream. Subclasses override what their API does differently."""

    name: ClassVar[str] = "sse"
    label: ClassVar[str] = "any SSE endpoint"
    content_type: ClassVar[str] = "text/event-stream; charset=utf-8"
    delta_tokens: ClassVar[tuple[int, int]] = (1, 1)
    """Tokens per delta when synthesising: how many the API batches into one event."""
    has_thinking: ClassVar[bool] = False
    streams_tool_input: ClassVar[bool] = True
    """Whether a tool call's input streams in pieces (False: it arrives whole, in one event)."""

    # ------------------------------------------------------------ recognising

    def claims(self, route: str, headers: Mapping[str, str]) -> bool:
        """Whether a request to ``route`` (path without query) answered with ``headers`` speaks this dialect."""
        return False

    def claims_events(self, events: Sequence[Event]) -> bool:
        """Whether the first events of a stream whose request is unknown look like this dialect."""
        return False

    def path(self, model: str | None = None) -> str | None:
        """The request path of a streamed call (for imports and synthesised cassettes)."""
        return None

    def is_complete(self, events: Sequence[Event]) -> bool:
        """Whether a stream reached the dialect's final event (or an error, after which a server ends on purpose)."""
        return True

    # ------------------------------------------------------------ the wire

    def framed(self, events: tuple[Event, ...]) -> tuple[Event, ...]:
        """``events`` as objects whose ``wire`` is this dialect's encoding (SSE: as they are)."""
        return events

    def unframed(self, events: Sequence[Event]) -> Sequence[Event]:
        """Events imported from bare JSON payloads (framing stripped), given the framing the API sends."""
        return events

    def decoder(self) -> StreamDecoder:
        """A fresh incremental decoder for a response body of this dialect."""
        return Decoder()

    def decode_body(self, data: bytes) -> list[Event]:
        """Every whole event in a body of this dialect."""
        return decode(data)

    def keepalive(self, t: float) -> Event:
        """A keep-alive the ``pings`` fault interleaves: an SSE comment unless the API sends its own."""
        return Event(t=t, comment="ping")

    def truncated(self, event: Event, keep: float) -> Event:
        """``event`` damaged as the ``truncate`` fault does it: its data cut to the first ``keep`` of it.

        A ``keep`` above 0 leaves at least one character, so that truncating an event twice still
        sends broken data and never the empty ``data:`` line that ``keep=0`` asks for (which the
        SDKs skip: a drop, not broken JSON)."""
        data = event.data or ""
        size = int(len(data) * keep)
        return replace(event, data=data[: max(size, 1) if keep > 0 and data else size])

    # ------------------------------------------------------------ errors

    def error_body(self, status: int, *, message: str | None = None, error_type: str | None = None, request_id: str | None = None) -> Any:
        """The JSON body the API answers ``status`` with (``error_type`` in Anthropic's vocabulary, as the fault grammar
        speaks it; ``request_id`` where the API repeats its request id in the body)."""
        from .anthropic import error_body as make

        return make(status, message=message, error_type=error_type, request_id=request_id)

    def error_bytes(self, status: int, body: Any) -> bytes:
        """An error body as the API writes it on the wire (compact JSON here)."""
        return json.dumps(body, separators=(",", ":")).encode()

    def error_headers(self, status: int, *, retry_after_s: float | None = None, request_id: str | None = None, should_retry: bool | None = None) -> dict[str, str]:
        from .anthropic import error_headers as make

        return make(status, retry_after_s=retry_after_s, request_id=request_id, should_retry=should_retry)

    def request_id(self, *parts: object) -> str:
        from .anthropic import request_id as make

        return make(*parts)

    def stream_error(self, before: Sequence[Event], t: float, error_type: str, message: str | None = None) -> tuple[Event, ...]:
        """What the API sends when a stream fails after ``before``: here Anthropic's ``event: error``."""
        from .anthropic import error_event

        return (error_event(t, error_type, message),)

    # ------------------------------------------------------------ what a client measures

    def delta_text(self, payload: Any) -> str:
        """The generated text (or tool input) one event's JSON payload carries; TTFT is the first non-empty one."""
        for dialect in _specific():
            text = dialect.delta_text(payload)
            if text:
                return text
        return ""

    def usage_tokens(self, payload: Any) -> int | None:
        """The output tokens this payload reports as the stream's usage, if it reports them."""
        for dialect in _specific():
            found = dialect.usage_tokens(payload)
            if found is not None:
                return found
        return None

    def stop_reason(self, payload: Any, name: str | None = None) -> str | None:
        """Why the stream stopped, if this payload (of an event called ``name``) says (``error: TYPE`` for an error)."""
        for dialect in _specific():
            found = dialect.stop_reason(payload, name)
            if found is not None:
                return found
        return None

    # ------------------------------------------------------------ synthesis

    def synth(self, reply: Synth) -> tuple[Event, ...]:
        """The untimed events of one protocol-valid stream carrying ``reply``."""
        raise ValueError(f"streamreel cannot synthesise {self.label} streams; choose one of: {', '.join(synthesisable())}")

    def response_headers(self) -> dict[str, str]:
        """The response headers a synthesised stream is served with."""
        return {"content-type": self.content_type, "cache-control": "no-cache"}

    def __repr__(self) -> str:
        return f"<dialect {self.name}>"


REGISTRY: dict[str, Dialect] = {}
_GENERIC = Dialect()
_loaded = False
_loading = threading.RLock()


def register(dialect: Dialect) -> Dialect:
    """Add a dialect under its ``name`` (a second one under the same name is an error)."""
    existing = REGISTRY.get(dialect.name)
    if existing is not None and type(existing) is not type(dialect):
        raise ValueError(f"dialect name {dialect.name!r} is taken by {type(existing).__name__}")
    REGISTRY[dialect.name] = dialect
    order = {f"{__name__}.{m}": i for i, m in enumerate(_MODULES)}
    ranked = sorted(REGISTRY.items(), key=lambda kv: order.get(type(kv[1]).__module__, len(order)))
    REGISTRY.clear()
    REGISTRY.update(ranked)
    return dialect


def _load() -> None:
    """Import every dialect module (each registers itself), once; a thread that asks meanwhile
    waits for the whole registry rather than reading it half filled."""
    global _loaded
    if _loaded:
        return
    with _loading:
        if not _loaded:
            for module in _MODULES:
                importlib.import_module(f"{__name__}.{module}")
            _loaded = True


def _specific() -> Iterable[Dialect]:
    _load()
    return REGISTRY.values()


def get(name: str | Dialect) -> Dialect:
    """The dialect called ``name`` (``sse`` for any other SSE stream); an unknown name lists the known ones."""
    if isinstance(name, Dialect):
        return name
    _load()
    if name == _GENERIC.name:
        return _GENERIC
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown provider {name!r}; known: {', '.join(names())}") from None


def names() -> list[str]:
    """Every dialect's name, ``sse`` last."""
    _load()
    return [*REGISTRY, _GENERIC.name]


def synthesisable() -> list[str]:
    """The dialects ``synth`` can write."""
    _load()
    return [d.name for d in REGISTRY.values() if type(d).synth is not Dialect.synth]


def dialect_of(interaction: Interaction) -> Dialect:
    """The dialect an interaction speaks: from its request path and response headers, else from its events."""
    _load()
    route = (interaction.request.route or "").rstrip("/")
    headers = interaction.response.headers
    for dialect in REGISTRY.values():
        if dialect.claims(route, headers):
            return dialect
    return get(provider_of_events((interaction.response.events or ())[:5]))


def detect_provider(interaction: Interaction) -> str:
    """The name of :func:`dialect_of`."""
    return dialect_of(interaction).name


def provider_of_events(events: Sequence[Event]) -> str:
    """The dialect the first events of a stream look like (``sse`` when none claims them)."""
    _load()
    head = [ev for ev in events if not ev.is_comment][:5]
    for dialect in REGISTRY.values():
        if dialect.claims_events(head):
            return dialect.name
    return _GENERIC.name


def is_complete(events: Sequence[Event], provider: str | Dialect) -> bool:
    """Whether a stream reached its provider's final event (or an error event, after which a server
    ends the stream on purpose); a stream of any other provider counts as complete."""
    return get(provider).is_complete(events)


def error_body(provider: str | Dialect, status: int, message: str | None = None, error_type: str | None = None) -> Any:
    """The JSON error body the provider's API sends for ``status``."""
    return get(provider).error_body(status, message=message, error_type=error_type)


def error_headers(provider: str | Dialect, status: int, *, retry_after_s: float | None = None, request_id: str | None = None, should_retry: bool | None = None) -> dict[str, str]:
    """The headers the provider's API sends with an error (its request id, retry hints)."""
    return get(provider).error_headers(status, retry_after_s=retry_after_s, request_id=request_id, should_retry=should_retry)


def request_id(provider: str | Dialect, *parts: object) -> str:
    """A deterministic request id in the provider's shape, derived from ``parts``."""
    return get(provider).request_id(*parts)


def stream_decoder(content_type: str) -> StreamDecoder | None:
    """The decoder for a streamed response body of ``content_type``; None for a plain body."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "text/event-stream":
        return Decoder()
    _load()
    for dialect in REGISTRY.values():
        if dialect.content_type.split(";", 1)[0] == media:
            return dialect.decoder()
    return None


def decode_body(headers: Mapping[str, str], data: bytes) -> list[Event]:
    """Every whole event of a body sent with ``headers`` (SSE unless its content type names a binary framing)."""
    media = next((v for k, v in headers.items() if k.lower() == "content-type"), "").split(";", 1)[0].strip().lower()
    if media and media != "text/event-stream":
        _load()
        for dialect in REGISTRY.values():
            if dialect.content_type.split(";", 1)[0] == media:
                return dialect.decode_body(data)
    return decode(data)


def retry_headers(status: int, *, retry_after_s: float | None = None, should_retry: bool | None = None) -> dict[str, str]:
    """The headers both APIs send with an error: ``x-should-retry`` drives the SDKs' retry decision;
    ``retry-after`` is whole seconds (rounded up, as RFC 9110 allows no fraction) and
    ``retry-after-ms``, which the SDKs read first, carries the exact value."""
    if should_retry is None:
        should_retry = status in (408, 409, 429) or status >= 500
    headers = {"content-type": "application/json", "x-should-retry": "true" if should_retry else "false"}
    if retry_after_s is not None:
        headers["retry-after"] = str(math.ceil(retry_after_s))
        headers["retry-after-ms"] = f"{retry_after_s * 1000:g}"
    return headers


def compact(payload: Any) -> str:
    """JSON as the OpenAI and Anthropic APIs write it: no spaces, non-ASCII kept."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
