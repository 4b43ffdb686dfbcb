"""The events a webhook can subscribe to, and the patterns that name several at once.

    EVENT_TYPES                                   # every event simtrain sends
    validate_patterns(["job.*", "dataset.ready"]) -> ["job.*", "dataset.ready"]   # ValueError if unknown
    matches(["job.*"], "job.failed")              -> True

A pattern is an event name, `<prefix>.*` (every event of that prefix: `job.*`, `comparison.*`) or `*`
(every event). A pattern that names no known event (`job.started`, `foo.*`) is refused, so a typo cannot
subscribe to nothing in silence.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["EVENT_TYPES", "matches", "validate_patterns"]

EVENT_TYPES: tuple[str, ...] = (
    "job.succeeded",
    "job.failed",
    "job.cancelled",
    "comparison.succeeded",
    "comparison.partial",
    "comparison.failed",
    "comparison.cancelled",
    "tuning.succeeded",
    "tuning.failed",
    "tuning.cancelled",
    "dataset.ready",
    "dataset.failed",
)


def _matches_one(pattern: str, event_type: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def matches(patterns: Iterable[str], event_type: str) -> bool:
    """Whether any of `patterns` names `event_type`."""
    return any(_matches_one(p, event_type) for p in patterns)


def validate_patterns(patterns: Iterable[str]) -> list[str]:
    """The patterns, stripped and without repeats; ValueError naming the first that names no event."""
    out: list[str] = []
    for raw in patterns:
        pattern = raw.strip()
        if not any(_matches_one(pattern, e) for e in EVENT_TYPES):
            prefixes = sorted({e.split(".")[0] + ".*" for e in EVENT_TYPES})
            raise ValueError(
                f"unknown event {pattern!r}: use one of {', '.join(EVENT_TYPES)}, "
                f"a pattern ({', '.join(prefixes)}) or '*'"
            )
        if pattern not in out:
            out.append(pattern)
    return out
