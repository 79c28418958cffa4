"""Where a server listens: loopback by default, and a warning when other machines can connect.

A replayer serves whatever its cassettes hold (recorded prompts, replies, headers) to anyone
who connects; a recorder also forwards their requests upstream. Bound to 127.0.0.1 or ::1
only this machine reaches it. The check looks at the addresses really bound, so a host name
is judged by what it resolved to, not by its spelling.
"""

from __future__ import annotations

import ipaddress
import warnings
from typing import Any, Iterable

from .errors import NonLoopbackWarning

__all__ = ["is_loopback", "exposed", "exposure_message", "warn_if_exposed", "NonLoopbackWarning"]


def is_loopback(address: str) -> bool:
    """Whether ``address`` (an IP, with an optional ``%scope``, or ``localhost``) only reaches this machine."""
    if address.lower() in ("localhost", "localhost."):
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def exposed(addresses: Iterable[Any]) -> list[str]:
    """The bound addresses (socket names as ``runner.addresses`` lists them) that are not loopback."""
    hosts = (a[0] if isinstance(a, tuple) else str(a) for a in addresses)
    return [h for h in hosts if not is_loopback(h)]


def exposure_message(what: str, url: str, hosts: Iterable[str], *, forwards_to: str | None = None) -> str:
    """What the warning says: who can connect, what they get, and how to keep it local."""
    also = f", and forward their requests to {forwards_to}" if forwards_to else ""
    return (
        f"{what} at {url} listens on {', '.join(sorted(set(hosts)))}, which is not loopback: it will accept "
        f"connections from other machines and serve them the cassettes' contents (recorded prompts, replies "
        f"and headers){also}. Bind 127.0.0.1 (the default) unless that is what you want."
    )


def warn_if_exposed(server: Any, addresses: Iterable[Any]) -> None:
    """Warn (:class:`NonLoopbackWarning`) when ``server`` is bound to an address other machines can reach."""
    hosts = exposed(addresses)
    if not hosts:
        return
    upstream = getattr(server, "upstream", None)
    message = exposure_message(type(server).__name__, server.url, hosts, forwards_to=str(upstream) if upstream is not None else None)
    warnings.warn(message, NonLoopbackWarning, stacklevel=3)
