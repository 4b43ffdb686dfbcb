"""Which URLs a webhook may POST to: the one allow-list of user-given URLs (`core.fetch.UrlPolicy`), plus
the rule that webhooks use https.

    target = check_webhook_url(UrlPolicy.from_settings(settings), "https://hooks.example.com/simtrain")
    target.addresses    # every address the host resolved to, each checked: what the delivery connects to

https to a host whose every address is public (or opened by `SIMTRAIN_FETCH_ALLOW`) passes; http only to
a host or addresses the operator's `SIMTRAIN_FETCH_ALLOW` names (`127.0.0.1/32` for a receiver on the
same machine, `10.0.0.0/8` for an internal one), never to the public internet. Checked when the webhook
is created (a 422 naming `url`) and again before every attempt (the name may resolve elsewhere by then).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from core.errors import SpecError
from core.fetch import ParsedUrl, UrlPolicy

__all__ = ["check_webhook_url"]

_HTTPS_ONLY = "must be an https URL (http only to a host or address that SIMTRAIN_FETCH_ALLOW opens)"


def check_webhook_url(policy: UrlPolicy, url: str, field: str = "url") -> ParsedUrl:
    """The checked URL, or SpecError(field, reason)."""
    try:
        scheme = urlsplit(url).scheme.lower() if isinstance(url, str) else ""
    except ValueError:
        scheme = ""
    if scheme not in ("https", "http"):
        raise SpecError(field, _HTTPS_ONLY)
    target = policy.check_url(url, field)
    if target.scheme == "http" and not _opened(policy, target):
        raise SpecError(field, _HTTPS_ONLY)
    return target


def _opened(policy: UrlPolicy, target: ParsedUrl) -> bool:
    """Whether the operator's allow-list names the host, or every address it resolved to."""
    if policy.allow.opens_host(target.host):
        return True
    addresses = [ipaddress.ip_address(a) for a in target.addresses]
    return bool(addresses) and all(policy.allow.opens_address(a) for a in addresses)
