"""Comparisons of `SimtrainClient`: one job spec trained with several losses over several seeds, against
the cross-entropy baseline.

    comp = client.create_comparison({"dataset": "builtin:digits", "similarity": {...},
                                     "variants": [{"name": "simloss", "loss": {"kind": "simloss"}}],
                                     "seeds": 3})
    for comp in client.watch_comparison(comp["id"], interval=2):   # a snapshot per poll, until it ends
        ...
    comp = client.wait_comparison(comp["id"], timeout=3600)        # TimeoutError when still running
    html = client.comparison_report(comp["id"])                    # the self-contained HTML report
    client.delete_comparison(comp["id"])                           # once ended: with its child jobs

    # a sweep: every variant at every grid point (one or two axes), then the metric against the parameter
    comp = client.create_comparison(body, sweep=[sweep_axis("r", "similarity.reduction_factor", [0, 0.5])])
    rows = client.comparison_sweep(comp["id"])["tables"]["accuracy"]    # once ended: mean, interval, verdict

`create_comparison` always sends an Idempotency-Key (a new one unless given).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from core.client.base import BaseClient, new_idempotency_key, seg
from core.client.types import Comparison, ComparisonPage, ComparisonSummary
from core.status import COMPARISON_TERMINAL

__all__ = ["ComparisonsMixin", "sweep_axis"]


def sweep_axis(name: str, path: str, values: Sequence[Any]) -> dict[str, Any]:
    """One axis of a comparison's `sweep`: a short name, a dotted job path and the values it takes."""
    return {"name": name, "path": path, "values": list(values)}


class ComparisonsMixin(BaseClient):
    def create_comparison(
        self,
        body: dict[str, Any],
        *,
        sweep: Sequence[dict[str, Any]] | None = None,
        idempotency_key: str | None = None,
    ) -> Comparison:
        """Submit a comparison; `sweep` (one or two `sweep_axis`) replaces the body's own."""
        headers = {"Idempotency-Key": idempotency_key or new_idempotency_key()}
        if sweep is not None:
            body = {**body, "sweep": list(sweep)}
        return self._json("POST", "/v1/comparisons", json=body, headers=headers)

    def get_comparison(self, comparison_id: str) -> Comparison:
        """Progress, the children and, once every child has ended, the report."""
        return self._json("GET", f"/v1/comparisons/{seg(comparison_id)}")

    def list_comparisons(
        self, *, status: str | None = None, limit: int = 20, cursor: str | None = None
    ) -> ComparisonPage:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = str(status)
        if cursor:
            params["cursor"] = cursor
        return self._json("GET", "/v1/comparisons", params=params)

    def iter_comparisons(
        self, *, status: str | None = None, page_size: int = 100
    ) -> Iterator[ComparisonSummary]:
        return self._pages("/v1/comparisons", {"status": str(status)} if status else {}, page_size)

    def cancel_comparison(self, comparison_id: str) -> Comparison:
        """Cancel every child that has not ended (202); an ended comparison is a ConflictError."""
        return self._json("POST", f"/v1/comparisons/{seg(comparison_id)}/cancel")

    def delete_comparison(self, comparison_id: str) -> None:
        """Delete an ended comparison with its child jobs and their stored files (204). One that has not
        ended, or whose child a warm-starting job still needs, is a ConflictError naming why."""
        self._json("DELETE", f"/v1/comparisons/{seg(comparison_id)}")

    def watch_comparison(
        self, comparison_id: str, *, interval: float = 2.0, timeout: float | None = None
    ) -> Iterator[Comparison]:
        """The comparison now and after every `interval` seconds, until it has ended or `timeout` seconds
        passed (the last one yielded is then still running)."""
        return self._watch(lambda: self.get_comparison(comparison_id), COMPARISON_TERMINAL, interval, timeout)

    def wait_comparison(
        self, comparison_id: str, *, timeout: float | None = None, poll: float = 2.0
    ) -> Comparison:
        """Poll until the comparison has ended; TimeoutError after `timeout` seconds."""
        get = lambda: self.get_comparison(comparison_id)
        return self._wait(get, COMPARISON_TERMINAL, poll, timeout, f"comparison {comparison_id}")

    def comparison_sweep(self, comparison_id: str) -> dict[str, Any] | None:
        """The report's `sweep` block (axes, and per headline metric a row per variant and grid point:
        mean, interval, difference, verdict); None until every child has ended, or without a sweep."""
        report = self.get_comparison(comparison_id).get("report") or {}
        return report.get("sweep")

    def comparison_report(self, comparison_id: str) -> str:
        """The report as a self-contained HTML page; 409 (ConflictError) until every child has ended."""
        return self._send("GET", f"/v1/comparisons/{seg(comparison_id)}/report").text
