"""Fetching URLs that users give (dataset references now, webhooks later) through one allow-list, with a
size and a time bound on every download.

    from core.fetch import UrlPolicy, fetch_to_file
    policy = UrlPolicy.from_settings(get_settings())
    policy.check_url(spec.uri, "uri")        # at request time: SpecError('uri', ...) when refused
    result = fetch_to_file(spec.uri, dest, policy=policy, max_bytes=settings.fetch_max_bytes,
                           timeout_s=settings.fetch_timeout_s, sha256=spec.sha256)

`policy.py` says what passes (schemes, hosts, every resolved address), `allowlist.py` what
`SIMTRAIN_FETCH_ALLOW` may hold, `download.py` how a download is bounded.
"""

from core.fetch.allowlist import AllowList
from core.fetch.download import FetchResult, fetch_to_file, fetch_to_file_async
from core.fetch.policy import ParsedUrl, UrlPolicy

__all__ = ["AllowList", "FetchResult", "ParsedUrl", "UrlPolicy", "fetch_to_file", "fetch_to_file_async"]
