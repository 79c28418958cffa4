"""streamreel: record real LLM Server-Sent-Event streams with their timing; replay them with faults."""

from __future__ import annotations

from .capture import Capture, CapturedStream
from .cassette import Cassette, End, Event, Interaction, Request, Response, load, save
from .errors import CassetteError, CassetteNameError, FaultSpecError, NoMatchError, NonLoopbackWarning, StreamreelError
from .fault_injection import parse as parse_faults
from .pipeline import Chunk, Ending, Plan, plan, timed_chunks
from .recorder import Recorder
from .replayer import Replayer, SentResponse
from .scrub import Scrubber

__all__ = [
    "Capture",
    "CapturedStream",
    "Cassette",
    "CassetteError",
    "CassetteNameError",
    "Chunk",
    "End",
    "Ending",
    "Event",
    "FaultSpecError",
    "Interaction",
    "NoMatchError",
    "NonLoopbackWarning",
    "Plan",
    "Recorder",
    "Replayer",
    "Request",
    "Response",
    "Scrubber",
    "SentResponse",
    "StreamreelError",
    "load",
    "parse_faults",
    "plan",
    "save",
    "timed_chunks",
]

__version__ = "0.1.0"
