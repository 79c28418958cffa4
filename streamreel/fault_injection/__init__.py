"""Faults for the replay pipeline: one module per fault, one spec grammar, one registry."""

from __future__ import annotations

from .base import REGISTRY, ByteFault, Context, EventFault, Fault, FaultOutcome, RequestFault, parse, parse_one, register, spec_field, to_spec
from .disconnect import Disconnect
from .drop import Drop
from .error import Error
from .fragment import Fragment
from .http import Http
from .latency import Latency
from .pings import Pings
from .speed import Speed, check_speed
from .stall import Stall
from .throttle import Throttle
from .truncate import Truncate

__all__ = [
    "REGISTRY",
    "ByteFault",
    "Context",
    "EventFault",
    "Fault",
    "FaultOutcome",
    "RequestFault",
    "Disconnect",
    "Drop",
    "Error",
    "Fragment",
    "Http",
    "Latency",
    "Pings",
    "Speed",
    "Stall",
    "Throttle",
    "Truncate",
    "parse",
    "parse_one",
    "register",
    "spec_field",
    "to_spec",
    "check_speed",
]
