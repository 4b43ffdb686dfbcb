"""Pruning of a running trial job, for the worker's per-epoch hook (`worker.hooks.JobHooks`): each epoch's
validation objective is reported to the job's Optuna trial (`Trial.report(value, epoch)`, through the RDB
storage) and the study's pruner is asked (`Trial.should_prune()`).

    pruning = TrialPruning(session, job_id)         # cheap: nothing is read before the first epoch
    if pruning.should_prune(epoch, record):         # False for a job that is not a tuning trial
        hooks.stop_error = pruning.stop_error       # the job ends cancelled, error code "pruned"

Best effort, like the hook's other writes: any failure (the database, Optuna, a trial that is no longer
running) is logged and the run goes on. The trial's user attribute `pruned_at_epoch` records the decision
in Optuna too; the driver tells the trial PRUNED once the job has ended.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db.models import Job, TuningStudy
from core.settings import get_settings
from core.tuning.objective import epoch_value
from core.tuning.trials import PRUNED, PRUNED_AT

__all__ = ["TrialPruning"]

log = logging.getLogger("simtrain.tuning")


class TrialPruning:
    """The pruning of one job's trial (see the module docstring)."""

    def __init__(self, session: Session, job_id: str) -> None:
        self.session = session
        self.job_id = job_id
        self.stop_error: dict[str, str] = {}
        self._loaded = False
        self._trial: Any = None
        self._metric = ""
        self._pruner = ""

    def _load(self) -> None:
        """The job's trial, when the job is a tuning trial whose study prunes."""
        self._loaded = True
        spec = self.session.execute(select(Job.spec).where(Job.id == self.job_id)).scalar()
        link = ((spec or {}).get("metadata") or {}).get("tuning")
        row = self.session.get(TuningStudy, link["study"]) if isinstance(link, dict) else None
        self.session.commit()
        if row is None or row.spec.get("pruner") == "none":
            return
        from core.tuning.storage import live_trial, load_study, optuna_storage

        storage = optuna_storage(get_settings().database_url)
        study = load_study(storage, row.id, row.spec)
        self._trial = live_trial(study, storage, int(link["trial"]))
        self._metric = row.spec["objective"]["metric"]
        self._pruner = row.spec["pruner"]

    def _check(self, epoch: int, record: dict[str, Any]) -> bool:
        if not self._loaded:
            self._load()
        value = epoch_value(record, self._metric) if self._trial is not None else None
        if value is None:
            return False
        self._trial.report(value, epoch)
        if not self._trial.should_prune():
            return False
        self._trial.set_user_attr(PRUNED_AT, epoch)
        self.stop_error = {
            "error_code": PRUNED,
            "error_message": f"pruned at epoch {epoch} by the tuning study's {self._pruner} pruner "
            f"({self._metric} = {value:.4g})",
        }
        return True

    def should_prune(self, epoch: int, record: dict[str, Any]) -> bool:
        """Report `epoch`'s objective; True when the pruner says to stop (never raises)."""
        try:
            return self._check(epoch, record)
        except Exception as exc:  # noqa: BLE001 - pruning is best effort: the run goes on
            log.warning("job %s: pruning check of epoch %d failed: %s", self.job_id, epoch, exc)
            with contextlib.suppress(Exception):
                self.session.rollback()  # the hook's session: leave it usable
            if self._trial is None:
                self._loaded = False  # look the trial up again next epoch
            return False
