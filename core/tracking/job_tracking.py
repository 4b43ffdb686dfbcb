"""`JobTracking`: one job's MLflow run, driven by the worker's hooks; a failure never fails the job.

    tracking = JobTracking(session, job_id, warn=hooks.on_warning)   # off (free) without a tracking URI
    tracking.start(info)              # on_start: the run is created, or a resumed job's run reopened
    tracking.log_epoch(epoch, record) # on_epoch: train.* / val.* / lr / seconds / samples_per_s, step=epoch
    tracking.end()                    # after the job's end was written: final metrics, artifacts, status

With `SIMTRAIN_MLFLOW_TRACKING_URI` set every job is tracked (`core.tracking.context` says where and
how). The run id is recorded in an `info` event (`data["mlflow"]`) so that a resumed job (another
attempt, maybe on another worker) reopens the same run; a run created just before a crash is found by
its `simtrain.job_id` tag instead. A released job (worker shutdown) or a lost lease leaves the run
RUNNING; a terminal job ends it FINISHED / FAILED / KILLED, and the last child of a comparison or study
to end ends the parent run too, after logging the group's summary (`core.tracking.context.group_metrics`).

Failures (server down, a rejected call, mlflow not installed) become one `warning` event per outage
through `warn` and the job goes on. After a failure the tracker waits `RETRY_AFTER_S` before calling
MLflow again (epochs meanwhile are kept, up to `MAX_PENDING` metric values, and sent with the next call
that succeeds); the end of the job tries once more whatever the wait.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import jobs as jobdb
from core.db.models import Job, JobArtifact
from core.settings import get_settings
from core.status import JOB_TERMINAL
from core.tracking.context import (
    EVENT_KEY,
    RunContext,
    group_metrics,
    group_status,
    mlflow_spec,
    run_context,
    stored_run,
)
from core.tracking.flatten import scalar_metrics, tag_value

__all__ = ["MAX_PENDING", "RETRY_AFTER_S", "JobTracking"]

log = logging.getLogger("simtrain.tracking")

RETRY_AFTER_S = 30.0
MAX_PENDING = 20_000
_EPOCH_KEYS = ("train", "val", "lr", "seconds", "samples_per_s")


def _short(exc: BaseException, limit: int = 300) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:limit]


class JobTracking:
    """The MLflow run of one job (see the module docstring)."""

    def __init__(self, session: Session, job_id: str, warn: Callable[[str], None], uri: str | None = None):
        self.s = session
        self.job_id = job_id
        self.warn = warn
        self.uri = get_settings().mlflow_tracking_uri if uri is None else uri
        self.tracker: Any = None  # core.tracking.mlflow_tracker.MlflowTracker, made on first use
        self.run_id: str | None = None
        self.parent_id: str | None = None
        self._pending: list[tuple[str, float, int]] = []
        self._retry_at = 0.0
        self._down = False

    # -- the hooks' calls ----------------------------------------------------------------------------
    def start(self, info: dict[str, Any] | None = None) -> None:
        if not self.uri:
            with contextlib.suppress(Exception):  # a database hiccup here must not stop the run
                self._warn_if_requested()
            return
        self._attempt("starting the run", self._open, force=True)

    def log_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        if not self.uri:
            return
        values = scalar_metrics({k: record[k] for k in _EPOCH_KEYS if k in record})
        self._pending.extend((key, value, int(epoch)) for key, value in values.items())
        del self._pending[:-MAX_PENDING]
        self._attempt("logging an epoch", self._flush)

    def end(self) -> None:
        """After the job's end state is written: a terminal job's run gets its final metrics, artifacts
        and status; otherwise (released, lease lost) only the epochs not sent yet."""
        if not self.uri:
            return
        with contextlib.suppress(Exception):
            self.s.rollback()  # the end state is committed; start a fresh read
        try:
            job = self._read(lambda: self.s.get(Job, self.job_id, populate_existing=True))
        except Exception as exc:  # noqa: BLE001 - the database is gone: the run stays open
            log.warning("job %s: MLflow tracking: could not read the job's end: %s", self.job_id, _short(exc))
            return
        if job is None or job.status not in JOB_TERMINAL:
            self._attempt("logging epochs", self._flush)
            return
        if self._attempt("final metrics", lambda: self._final(job), force=True):
            self._attempt("artifacts", lambda: self._artifacts(job), force=True)
            self._attempt("ending the run", lambda: self._terminate(job), force=True)

    # -- steps ---------------------------------------------------------------------------------------
    def _open(self) -> None:
        """Create or reopen the job's run (and its parent's), log the spec and tags, record the run id."""
        from core.tracking.mlflow_tracker import MlflowTracker

        job = self._read(lambda: self.s.get(Job, self.job_id, populate_existing=True))
        if job is None:
            return
        ctx = self._read(lambda: run_context(self.s, job))
        stored = self._read(lambda: stored_run(self.s, self.job_id))
        tracker = self.tracker = self.tracker or MlflowTracker(self.uri)
        exp_id = tracker.experiment_id(ctx.experiment)
        run_id = (stored or {}).get("run_id") or next(
            (r.info.run_id for r in tracker.find_runs(exp_id, {"simtrain.job_id": job.id})), None
        )
        tags = dict(ctx.tags)
        if ctx.parent is not None:
            p = ctx.parent
            self.parent_id = tracker.parent_run(exp_id, p.key, p.run_name, p.tags, p.params)
            tags["mlflow.parentRunId"] = self.parent_id
        self.run_id = tracker.open_run(exp_id, run_id, ctx.run_name, tags)
        tracker.log(self.run_id, params=ctx.params, tags=tags)
        if not stored:
            self._record(exp_id, ctx)
        log.info("job %s: tracked in MLflow run %s (%s)", self.job_id, self.run_id, ctx.experiment)

    def _flush(self) -> None:
        if self.run_id is None:
            self._open()
        if self.run_id is None or not self._pending:
            return
        pending, self._pending = self._pending, []
        try:
            self.tracker.log(self.run_id, metrics=pending)
        except Exception:
            self._pending = (pending + self._pending)[-MAX_PENDING:]
            raise

    def _final(self, job: Job) -> None:
        self._flush()
        if self.run_id is None:
            raise RuntimeError("the job's run could not be opened")
        final = scalar_metrics(job.final_metrics or {})
        tags = {"simtrain.status": str(job.status)}
        if job.error_code:
            tags["simtrain.error_code"] = job.error_code
            tags["simtrain.error_message"] = tag_value(job.error_message or "")
        metrics = [(key, value, int(job.epoch or 0)) for key, value in final.items()]
        self.tracker.log(self.run_id, metrics=metrics, tags=tags)

    def _artifacts(self, job: Job) -> None:
        """The job's stored artifacts (model files, plots, metrics.json, ...) as the run's artifacts."""
        from core.storage import make_storage

        rows = self._read(
            lambda: list(self.s.execute(select(JobArtifact).where(JobArtifact.job_id == job.id)).scalars())
        )
        if not rows:
            return
        storage = make_storage(get_settings().storage_url)
        with tempfile.TemporaryDirectory(prefix=f"simtrain-mlflow-{job.id[:8]}-") as tmp:
            paths = []
            for row in sorted(rows, key=lambda r: r.name):
                local = storage.local_path(row.storage_key)
                if local is None or local.name != row.name:
                    local = Path(tmp) / row.name
                    storage.download(row.storage_key, local)
                paths.append(local)
            self.tracker.log_files(self.run_id, paths)

    def _terminate(self, job: Job) -> None:
        self.tracker.finish(self.run_id, job.status)
        ended = self._read(lambda: group_status(self.s, job)) if self.parent_id else None
        if ended is not None:
            summary = self._read(lambda: group_metrics(self.s, job))
            step = int(job.epoch or 0)
            self.tracker.log(self.parent_id, metrics=[(k, v, step) for k, v in summary.items()])
            self.tracker.finish(self.parent_id, ended)

    # -- helpers -------------------------------------------------------------------------------------
    def _attempt(self, what: str, fn: Callable[[], Any], *, force: bool = False) -> bool:
        """Run one tracking step; a failure is one warning per outage and a pause, never an exception."""
        if not force and time.monotonic() < self._retry_at:
            return False
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - tracking never fails a job
            self._retry_at = time.monotonic() + RETRY_AFTER_S
            log.warning("job %s: MLflow tracking: %s failed: %s", self.job_id, what, _short(exc, 2000))
            if not self._down:
                self._down = True
                self.warn(f"experiment tracking (MLflow): {what} failed; training goes on: {_short(exc)}")
            return False
        self._down = False
        return True

    def _read(self, fn: Callable[[], Any]) -> Any:
        """A database read that ends its transaction (the hooks' session is shared with the run)."""
        try:
            out = fn()
        except Exception:
            with contextlib.suppress(Exception):
                self.s.rollback()
            raise
        self.s.commit()
        return out

    def _record(self, exp_id: str, ctx: RunContext) -> None:
        """The run id as an `info` event: a resumed job reopens this run (`stored_run`)."""
        url = self.tracker.run_url(exp_id, self.run_id)
        data = {EVENT_KEY: {"run_id": self.run_id, "experiment_id": exp_id, "experiment": ctx.experiment,
                            "parent_run_id": self.parent_id, "url": url}}  # fmt: skip
        try:
            jobdb.add_event(self.s, self.job_id, "info", f"tracked in MLflow: {url or self.run_id}", data)
            self.s.commit()
        except Exception as exc:  # noqa: BLE001 - a resume then finds the run by its tag
            with contextlib.suppress(Exception):
                self.s.rollback()
            log.warning("job %s: could not record the MLflow run id: %s", self.job_id, _short(exc))

    def _warn_if_requested(self) -> None:
        spec = self._read(lambda: self.s.execute(select(Job.spec).where(Job.id == self.job_id)).scalar())
        if mlflow_spec(spec or {}) is not None:
            self.warn("tracking.mlflow is set but this server has no MLflow tracking server "
                      "(SIMTRAIN_MLFLOW_TRACKING_URI); the job is not tracked")  # fmt: skip
