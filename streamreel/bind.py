"""Where a server listens: loopback by default, and a warning when other machines can connect.

A replayer serves whatever its cassettes hold (recorded prompts, replies, headers) to anyone
who connects; a recorder also forwards their requests upstream. Bound to 127.0.0.1 or ::1
only this machine reaches it. The check looks at the addresses really bound, so a host name
is judged by what it resolved to, not by its spelling.

:func:`listen` also refuses what cannot be meant: an empty host (aiohttp would bind every
interface, each on a different port, and the URL would read ``http://:PORT``), a port outside
0-65535. A host that resolves to several addresses (``localhost``: 127.0.0.1 and ::1) gets the
same port on each, so the one URL reaches the server whichever address a client tries.
"""

from __future__ import annotations

import ipaddress
import warnings
from typing import Any, Iterable

from aiohttp import web

from .errors import NonLoopbackWarning

__all__ = ["is_loopback", "exposed", "exposure_message", "warn_if_exposed", "check_address", "listen", "NonLoopbackWarning"]

_SAME_PORT_TRIES = 20


def check_address(host: Any, port: Any) -> None:
    """Refuse, before anything is bound, a host or port that cannot be what the caller meant."""
    if not isinstance(host, str) or not host.strip():
        raise ValueError(
            f"host must be an address or a host name, got {host!r}: an empty host would listen on every interface, "
            "each on its own port; give 127.0.0.1 (the default), ::1, or 0.0.0.0 for every IPv4 interface"
        )
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be a whole number from 0 to 65535 (0 picks a free one), got {port!r}")


async def listen(runner: web.BaseRunner, host: str, port: int, **site_options: Any) -> int:
    """Start a TCP site for ``runner`` on ``host``:``port``; returns the port. With port 0 and a host
    that resolves to several addresses, every address gets the same (free) port."""
    check_address(host, port)
    chosen = port
    for _ in range(_SAME_PORT_TRIES):
        site = web.TCPSite(runner, host, chosen, **site_options)
        try:
            await site.start()
        except OSError:
            if port or not chosen:
                raise
            chosen = 0  # the first address's free port was taken on another: start over
            continue
        ports = {address[1] for address in runner.addresses if isinstance(address, tuple)}
        if len(ports) <= 1:
            return ports.pop() if ports else chosen
        first = runner.addresses[0][1]
        await site.stop()
        chosen = first
    raise OSError(f"could not listen on one port for every address of {host!r}")


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
