"""Which budget a client address spends: the key that per-address limits count under.

An IPv4 address is one key. An IPv6 address counts by its /64: a subscriber is routinely given
a whole /64 and can pick any address in it, so counting single addresses would let one phone
mint a fresh budget per request. An IPv4 address wrapped in IPv6 (``::ffff:192.0.2.1``, how
a dual-stack socket reports IPv4 peers) is the IPv4 address.
"""

from __future__ import annotations

import ipaddress


def address_key(host: str | None) -> str:
    """The limiter key of a client whose address (from the ASGI scope) is ``host``."""
    if not host:
        return "unknown"  # no peer address (a Unix socket): all such clients share one budget
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]  # a name, as test clients report; bounded, it is a key
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
