"""Tuning studies of `SimtrainClient`: an Optuna study over a job spec, its trials ordinary jobs.

    study = client.create_tuning({
        "dataset": "builtin:digits", "loss": {"kind": "cross_entropy"}, "training": {"epochs": 3},
        "search_space": {"training.learning_rate": {"type": "float", "low": 1e-4, "high": 0.1, "log": True}},
        "objective": {"metric": "accuracy", "direction": "maximize"}, "trials": 12, "parallel": 2})
    for study in client.watch_tuning(study["id"], interval=2):    # a snapshot per poll, until it ends
        ...
    study = client.wait_tuning(study["id"], timeout=3600)         # TimeoutError when still running
    study["best_trial"]                                           # {number, params, value, job_id}
    html = client.tuning_report(study["id"])                      # Optuna's plots, one offline page
    client.delete_tuning(study["id"])                             # once ended: with its trial jobs

`create_tuning` always sends an Idempotency-Key (a new one unless given). Results are dicts with the
fields of the API's `TuningPublic` / `TuningSummary` (`TuningStudy` / `TuningStudySummary` here).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from core.client.base import BaseClient, new_idempotency_key, seg
from core.tuning.status import TUNING_TERMINAL

__all__ = ["TuningMixin", "TuningStudy", "TuningStudySummary"]

TuningStudy = dict[str, Any]  # status, progress, best_trial, trials, spec, report_url, ...
TuningStudySummary = dict[str, Any]  # the same without trials and spec


class TuningMixin(BaseClient):
    def create_tuning(self, body: dict[str, Any], *, idempotency_key: str | None = None) -> TuningStudy:
        """Start a study; a 429 (RateLimitedError) says how many `parallel` trials fit now."""
        headers = {"Idempotency-Key": idempotency_key or new_idempotency_key()}
        return self._json("POST", "/v1/tuning", json=body, headers=headers)

    def get_tuning(self, study_id: str) -> TuningStudy:
        """Status, progress, the best trial and every trial with its job."""
        return self._json("GET", f"/v1/tuning/{seg(study_id)}")

    def list_tuning(
        self, *, status: str | None = None, limit: int = 20, cursor: str | None = None
    ) -> dict[str, Any]:
        """One page: {"items": [TuningStudySummary, ...], "next_cursor"}."""
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = str(status)
        if cursor:
            params["cursor"] = cursor
        return self._json("GET", "/v1/tuning", params=params)

    def iter_tuning(self, *, status: str | None = None, page_size: int = 100) -> Iterator[TuningStudySummary]:
        return self._pages("/v1/tuning", {"status": str(status)} if status else {}, page_size)

    def cancel_tuning(self, study_id: str) -> TuningStudy:
        """No new trials, the running ones cancelled (202); an ended study is a ConflictError."""
        return self._json("POST", f"/v1/tuning/{seg(study_id)}/cancel")

    def delete_tuning(self, study_id: str) -> None:
        """Delete an ended study with its trial jobs, their stored files and its Optuna study (204). One
        that has not ended, or whose trial a warm-starting job still needs, is a ConflictError."""
        self._json("DELETE", f"/v1/tuning/{seg(study_id)}")

    def watch_tuning(
        self, study_id: str, *, interval: float = 2.0, timeout: float | None = None
    ) -> Iterator[TuningStudy]:
        """The study now and after every `interval` seconds, until it has ended or `timeout` seconds
        passed (the last one yielded is then still running)."""
        return self._watch(lambda: self.get_tuning(study_id), TUNING_TERMINAL, interval, timeout)

    def wait_tuning(self, study_id: str, *, timeout: float | None = None, poll: float = 2.0) -> TuningStudy:
        """Poll until the study has ended; TimeoutError after `timeout` seconds."""
        get = lambda: self.get_tuning(study_id)
        return self._wait(get, TUNING_TERMINAL, poll, timeout, f"tuning study {study_id}")

    def tuning_report(self, study_id: str) -> str:
        """The report page (Optuna's optimisation history and parameter importances), self-contained."""
        return self._send("GET", f"/v1/tuning/{seg(study_id)}/report").text
