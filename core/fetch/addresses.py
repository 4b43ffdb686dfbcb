"""Which IP addresses a user-given URL may reach: public ones only, unless the allow-list opens them.

`non_public_reason(address)` says why an address is not public ("a loopback address", ...) or returns
None. An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) is judged, and connected to, as the IPv4 address it
carries (`unwrap`); 6to4 and Teredo addresses are judged by the IPv4 address they embed too.

    non_public_reason(ipaddress.ip_address("169.254.169.254"))  -> "a link-local address"
"""

from __future__ import annotations

import ipaddress

from core.fetch.allowlist import IPAddress

__all__ = ["non_public_reason", "unwrap"]

_CHECKS = (
    ("an unspecified address", "is_unspecified"),
    ("a loopback address", "is_loopback"),
    ("a link-local address", "is_link_local"),
    ("a multicast address", "is_multicast"),
    ("a private address", "is_private"),
    ("a reserved address", "is_reserved"),
    ("a site-local address", "is_site_local"),
)


def unwrap(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv4-mapped IPv6 address carries; any other address unchanged."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def non_public_reason(address: IPAddress) -> str | None:
    """Why `address` is not a public unicast address, or None when it is."""
    address = unwrap(address)
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "a scoped (zone-local) address"
        embedded = [address.sixtofour] + list(address.teredo or ())
        for inner in embedded:
            reason = non_public_reason(inner) if inner is not None else None
            if reason:
                return f"{reason} (embedded {inner})"
    for reason, attribute in _CHECKS:
        if getattr(address, attribute, False):
            return reason
    if not address.is_global:
        return "an address that is not globally routable"
    return None
