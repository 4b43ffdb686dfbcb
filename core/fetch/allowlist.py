"""The operator's allow-list for user-given URLs (`SIMTRAIN_FETCH_ALLOW`), parsed and validated.

Entries are comma-separated; each is one of:

- a scheme simtrain can fetch beyond the default https, http and s3: `file` (also `http`, `https`, `s3`);
- a CIDR (`10.0.0.0/8`, `127.0.0.1/32`, `fd00::/8`) or a single address (`127.0.0.1`): opens those
  addresses, which are otherwise refused when they are loopback, private, link-local, multicast, reserved
  or unspecified;
- a host (`minio.internal`) or a suffix (`*.corp.example.com`: its subdomains, not the name itself): opens
  every address that host resolves to.

Public addresses are open without an entry. A bad entry raises ValueError naming it.

    allow = AllowList.parse("file, 127.0.0.1/32, *.corp.example.com".split(","))
    allow.opens_address(ipaddress.ip_address("127.0.0.1"))  -> True
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_SCHEMES",
    "FETCH_SCHEMES",
    "AllowList",
    "IPAddress",
    "IPNetwork",
    "is_host_name",
    "normalize_entries",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

FETCH_SCHEMES = ("https", "http", "s3", "file")
DEFAULT_SCHEMES = frozenset({"https", "http", "s3"})
_HOST_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")


def is_host_name(host: str) -> bool:
    """A syntactically valid DNS name (lowercase ASCII labels, 253 characters at most)."""
    return 0 < len(host) <= 253 and all(_HOST_LABEL.match(label) for label in host.split("."))


@dataclass(frozen=True)
class AllowList:
    """What the operator opened beyond the default (https, http and s3 to public addresses)."""

    schemes: frozenset[str] = DEFAULT_SCHEMES
    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = field(default=())  # ".corp.example.com"

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        schemes, networks, hosts, suffixes = set(DEFAULT_SCHEMES), [], set(), []
        for entry in normalize_entries(entries):
            if entry in FETCH_SCHEMES:
                schemes.add(entry)
            elif "/" in entry or _is_ip(entry):
                networks.append(ipaddress.ip_network(entry, strict=True))
            elif entry.startswith("*."):
                suffixes.append(entry[1:])
            else:
                hosts.add(entry)
        return cls(frozenset(schemes), tuple(networks), frozenset(hosts), tuple(suffixes))

    def opens_address(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.networks)

    def opens_host(self, host: str) -> bool:
        return host in self.hosts or any(host.endswith(suffix) for suffix in self.suffixes)


def normalize_entries(entries: Iterable[str]) -> tuple[str, ...]:
    """The entries stripped, lowercased and validated (empty ones dropped); ValueError names a bad one."""
    out = []
    for raw in entries:
        entry = str(raw).strip().lower()
        if entry:
            _validate_entry(entry)
            out.append(entry)
    return tuple(out)


def _validate_entry(entry: str) -> None:
    if entry in FETCH_SCHEMES:
        return
    if "://" in entry:
        raise ValueError(f"fetch allow-list entry {entry!r}: give a scheme name or a host, not a URL")
    if "/" in entry:
        try:
            ipaddress.ip_network(entry, strict=True)
        except ValueError as exc:
            raise ValueError(f"fetch allow-list entry {entry!r} is not a valid CIDR: {exc}") from None
        return
    if _is_ip(entry):
        return
    name = entry[2:] if entry.startswith("*.") else entry
    if not is_host_name(name):
        raise ValueError(
            f"fetch allow-list entry {entry!r} is neither a scheme ({', '.join(FETCH_SCHEMES)}), "
            "a CIDR, an address, a host nor a '*.suffix'"
        )


def _is_ip(entry: str) -> bool:
    try:
        ipaddress.ip_address(entry)
    except ValueError:
        return False
    return True
