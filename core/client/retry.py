"""When the client sends a request again: 429 and 503 answers and connection failures, with exponential
backoff that honours `Retry-After`, a bounded number of times and a bounded total wait.

    policy = RetryPolicy(max_retries=3, max_total_wait=30.0)
    delay = policy.delay(attempt, retry_after=5.0, waited=0.0)    # None: give up

Only requests that are safe to repeat are retried (`safe_to_retry`): idempotent methods, and any request
carrying an `Idempotency-Key` (the server answers a repeat with the first result).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["IDEMPOTENT_METHODS", "NO_RETRY", "RETRY_STATUSES", "RetryPolicy", "safe_to_retry"]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    """`max_retries` repeats at most; waits `base_delay * 2**attempt` (with jitter) or what `Retry-After`
    asks; gives up when one wait would pass `max_delay` or all waits together `max_total_wait` seconds."""

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 10.0
    max_total_wait: float = 30.0

    def delay(self, attempt: int, retry_after: float | None, waited: float) -> float | None:
        """Seconds to wait before repeat number `attempt + 1`, or None to give up."""
        if attempt >= self.max_retries:
            return None
        if retry_after is not None:
            wait = retry_after
        else:
            wait = min(self.base_delay * 2**attempt, self.max_delay) * (0.5 + random.random() / 2)
        if wait > self.max_delay or waited + wait > self.max_total_wait:
            return None
        return wait


NO_RETRY = RetryPolicy(max_retries=0)


def safe_to_retry(method: str, headers: object, idempotent: bool | None = None) -> bool:
    """Whether repeating the request cannot do a thing twice. `idempotent` overrides the method's rule
    (a POST that computes without storing, like predict)."""
    if idempotent is not None:
        return idempotent
    if method.upper() in IDEMPOTENT_METHODS:
        return True
    get = getattr(headers, "get", None)
    return bool(get and get("Idempotency-Key"))
