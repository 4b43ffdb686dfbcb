"""The one gate for URLs that users give: `UrlPolicy.check_url(url, field)` -> `ParsedUrl` or SpecError.

    policy = UrlPolicy.from_settings(get_settings())
    target = policy.check_url("https://data.example.com/train.parquet", "uri")
    target.addresses  -> ("93.184.215.14",)   # every address the host resolved to, each one checked

What passes:

- a scheme the allow-list opens: https, http and s3 always, `file` only when listed;
- http(s): no credentials in the URL; a host that is a DNS name or a literal address (a numeric host that
  is not a dotted quad, `2130706433` or `0x7f.1`, is refused); port 80, 443 or 1024-65535; EVERY address
  the host resolves to (bounded lookup) public, or opened by a CIDR / host entry of the allow-list;
- s3: `s3://bucket/key` with a valid bucket name and a key; with `SIMTRAIN_S3_ENDPOINT_URL` set, the
  endpoint's addresses pass the same address check (without it, the AWS endpoints botocore picks are used);
- file: `file:///absolute/path` (or `file://localhost/...`).

The checked addresses are what `core.fetch.download` connects to (the Host header and TLS name stay the
URL's host), so a name that resolves differently a second time (DNS rebinding) cannot move the connection.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

from core.errors import SpecError
from core.fetch.addresses import non_public_reason, unwrap
from core.fetch.allowlist import FETCH_SCHEMES, AllowList, is_host_name
from core.fetch.resolve import resolve_host

if TYPE_CHECKING:
    from core.settings import Settings

__all__ = ["ParsedUrl", "UrlPolicy"]

MAX_URL_LENGTH = 4096
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


@dataclass(frozen=True)
class ParsedUrl:
    """A URL that passed the policy. `host` is the bucket for s3; `path` the request target (path and
    query) for http(s), the key for s3, the local path for file; `addresses` the checked addresses
    (for s3 the endpoint's; empty when botocore picks the endpoint)."""

    url: str
    scheme: str
    host: str = ""
    port: int | None = None
    path: str = ""
    addresses: tuple[str, ...] = ()

    def host_header(self) -> str:
        default = _DEFAULT_PORTS.get(self.scheme)
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port in (None, default) else f"{host}:{self.port}"

    def pinned_url(self, address: str) -> str:
        """The URL that connects to `address` (one of `addresses`) instead of resolving the host again."""
        netloc = f"[{address}]" if ":" in address else address
        return f"{self.scheme}://{netloc}:{self.port}{self.path}"


@dataclass(frozen=True)
class UrlPolicy:
    """See the module docstring. `max_redirects` bounds the hops `fetch_to_file` follows."""

    allow: AllowList = field(default_factory=AllowList)
    max_redirects: int = 5
    s3_endpoint_url: str = ""
    resolve_timeout_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> UrlPolicy:
        return cls(
            allow=AllowList.parse(settings.fetch_allow),
            max_redirects=settings.fetch_max_redirects,
            s3_endpoint_url=settings.s3_endpoint_url,
            resolve_timeout_s=min(10.0, settings.fetch_timeout_s),
        )

    def check_url(self, url: str, field: str = "url") -> ParsedUrl:
        """The parsed URL if the policy lets it through, else SpecError(field, reason)."""
        parts = self._split(url, field)
        if parts.scheme == "file":
            return _check_file(parts, url, field)
        if parts.username is not None or parts.password is not None:
            raise SpecError(field, "credentials in the URL are refused")
        if parts.scheme == "s3":
            return self._check_s3(parts, url, field)
        host, port = _host_port(parts, field)
        addresses = self.check_host(host, port, field)
        target = urlunsplit(("", "", parts.path or "/", parts.query, ""))
        return ParsedUrl(url, parts.scheme, host, port, target, addresses)

    def check_host(self, host: str, port: int, field: str, what: str = "host") -> tuple[str, ...]:
        """Every address `host` stands for (itself when a literal, else resolved), each one public or
        opened by the allow-list; SpecError otherwise."""
        literal = _ip_or_none(host)
        texts = [host] if literal is not None else self._resolve(host, port, field, what)
        addresses: list[str] = []
        for text in texts:
            address = unwrap(ipaddress.ip_address(text))
            reason = non_public_reason(address)
            if reason and not (self.allow.opens_address(address) or self.allow.opens_host(host)):
                where = f"{host} is" if literal is not None else f"{what} {host!r} resolves to {address},"
                raise SpecError(field, f"{where} {reason}; refused")
            if str(address) not in addresses:
                addresses.append(str(address))
        return tuple(addresses)

    def _split(self, url: object, field: str) -> SplitResult:
        if not isinstance(url, str) or not url:
            raise SpecError(field, "must be a non-empty URL string")
        if len(url) > MAX_URL_LENGTH:
            raise SpecError(field, f"URL longer than {MAX_URL_LENGTH} characters")
        if _CONTROL.search(url):
            raise SpecError(field, "URL contains whitespace or control characters")
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            raise SpecError(field, f"not a valid URL: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in FETCH_SCHEMES:
            raise SpecError(field, f"scheme {scheme!r} cannot be fetched (use https, http or s3)")
        if scheme not in self.allow.schemes:
            raise SpecError(field, f"{scheme} URLs are not allowed")
        return parts._replace(scheme=scheme)

    def _check_s3(self, parts: SplitResult, url: str, field: str) -> ParsedUrl:
        bucket, key = parts.netloc, parts.path.removeprefix("/")
        if not _BUCKET.match(bucket) or ".." in bucket or _ip_or_none(bucket) is not None:
            raise SpecError(field, f"{bucket!r} is not a valid S3 bucket name")
        if not key or len(key.encode()) > 1024 or parts.query or parts.fragment:
            raise SpecError(field, "an s3 URL is s3://bucket/key with a key of 1-1024 bytes and no query")
        addresses: tuple[str, ...] = ()
        if self.s3_endpoint_url:
            endpoint = urlsplit(self.s3_endpoint_url)
            port = endpoint.port or _DEFAULT_PORTS.get(endpoint.scheme, 443)  # validated by the settings
            addresses = self.check_host(endpoint.hostname or "", port, field, "the S3 endpoint")
        return ParsedUrl(url, "s3", bucket, None, key, addresses)

    def _resolve(self, host: str, port: int, field: str, what: str) -> list[str]:
        try:
            found = resolve_host(host, port, timeout_s=self.resolve_timeout_s)
        except TimeoutError:
            raise SpecError(field, f"{what} {host!r}: name resolution timed out") from None
        except OSError as exc:
            raise SpecError(field, f"{what} {host!r} does not resolve ({exc.strerror or exc})") from None
        if not found:
            raise SpecError(field, f"{what} {host!r} resolves to no address")
        return found


def _host_port(parts: SplitResult, field: str) -> tuple[str, int]:
    """The lowercase host (a valid name or literal) and the port (default, or one that passes the bound)."""
    host = (parts.hostname or "").removesuffix(".")
    if not host:
        raise SpecError(field, "the URL has no host")
    if not host.isascii():
        raise SpecError(field, "the host is not ASCII; give its punycode form (xn--...)")
    if _ip_or_none(host) is None:
        if _NUMERIC_LABEL.match(host.rsplit(".", 1)[-1]):
            raise SpecError(field, f"numeric host {host!r} is not a dotted-quad IPv4 address")
        if not is_host_name(host):
            raise SpecError(field, f"{host!r} is not a valid host name")
    try:
        port = parts.port
    except ValueError:
        raise SpecError(field, "the port is not a number in 1-65535") from None
    port = _DEFAULT_PORTS[parts.scheme] if port is None else port
    if port < 1024 and port not in (80, 443):
        raise SpecError(field, f"port {port} is refused (80, 443 or 1024-65535)")
    return host, port


def _check_file(parts: SplitResult, url: str, field: str) -> ParsedUrl:
    if parts.netloc not in ("", "localhost") or parts.query:
        raise SpecError(field, "a file URL is file:///absolute/path, without host or query")
    path = unquote(parts.path)
    if not path.startswith("/") or "\x00" in path:
        raise SpecError(field, "a file URL needs an absolute path")
    return ParsedUrl(url, "file", "", None, path)


def _ip_or_none(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None
