"""`SimtrainClient`: every resource of the simtrain REST API in one class, composed of one mixin per
resource (datasets, jobs, artifacts, checkpoints and predictions, comparisons, similarity preview,
tuning) over `BaseClient`.

    with SimtrainClient("http://127.0.0.1:8000", api_key, timeout=30) as client:
        client.health(); client.ready()
"""

from __future__ import annotations

from typing import Self

from core.client.artifacts import ArtifactsMixin
from core.client.checkpoints import CheckpointsMixin
from core.client.comparisons import ComparisonsMixin
from core.client.datasets import DatasetsMixin
from core.client.jobs import JobsMixin
from core.client.predict import PredictMixin
from core.client.retry import NO_RETRY
from core.client.similarity import SimilarityMixin
from core.client.tuning import TuningMixin
from core.client.types import Health

__all__ = ["SimtrainClient"]


class SimtrainClient(
    DatasetsMixin,
    JobsMixin,
    ArtifactsMixin,
    CheckpointsMixin,
    PredictMixin,
    ComparisonsMixin,
    SimilarityMixin,
    TuningMixin,
):
    """A typed client of the simtrain API (see `core.client`). Not thread-safe across `close()`."""

    def __enter__(self) -> Self:
        return self

    def health(self) -> Health:
        """The process answers (no API key needed)."""
        return self._json("GET", "/healthz")

    def ready(self) -> Health:
        """The database and the broker answer; an UnavailableError naming the one that is down otherwise
        (asked once: a readiness probe wants the answer of now, not after retries)."""
        return self._json("GET", "/readyz", retry=NO_RETRY)
