"""Faults for the replay pipeline: one module per fault, one spec grammar, one registry."""

from __future__ import annotations

from .base import REGISTRY, ByteFault, Context, EventFault, Fault, RequestFault, parse, parse_one, register, spec_field, to_spec
from .speed import Speed

__all__ = [
    "REGISTRY",
    "ByteFault",
    "Context",
    "EventFault",
    "Fault",
    "RequestFault",
    "Speed",
    "parse",
    "parse_one",
    "register",
    "spec_field",
    "to_spec",
]
