"""How a claimed job leaves `running`: `JobEnd`, one method per outcome, and `RunOutcome`.

    end = JobEnd(session, job_id, owner, settings, hooks, resend)
    end.checkpoints = checkpoints                 # once known: a job that fails drops them
    end.after_training(result, storage)           # one of the three below, by the run's stop reason
    end.finished(result, storage)                 # succeeded, or failed `max_runtime_exceeded` (artifacts)
    end.cancelled(result)                         # the user cancelled: cancelled, checkpoint kept
    end.handed_back()                             # the worker shuts down: queued again, task re-sent
    end.handed_back(pause=True)                   # a pause: `paused`, not re-sent (resume sends it)
    end.failed_invalid(exc)                       # a SimtrainError: failed with its code, not retried
    end.failed_internal(exc, "unexpected error")  # anything else: failed `internal_error`, traceback logged

Each final write is retried through a database outage (`JobEnd.retrying`). When it still cannot be
written, or the lease is no longer ours, the outcome is `lease_lost` and the job is left alone: another
worker owns it, or its lease expires and the reconciler re-sends it.
"""

from __future__ import annotations

import contextlib
import logging
import time
import traceback
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from core.db import JobStatus
from core.db import jobs as jobdb
from core.errors import SimtrainError
from core.jsonsafe import json_safe
from core.settings import Settings
from worker.artifact_upload import upload_artifacts
from worker.hooks import JobHooks

if TYPE_CHECKING:  # torch: imported by the worker on start (worker.app), not by importing this module
    from core.checkpoint import CheckpointStore

__all__ = ["JobEnd", "RunOutcome", "short_error"]

log = logging.getLogger("simtrain.worker.runner")


class RunOutcome(StrEnum):
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    released = "released"  # graceful worker shutdown: queued again, resumes from its checkpoint
    paused = "paused"  # a pause was requested: checkpointed, `paused` until resumed
    lease_lost = "lease_lost"
    not_claimed = "not_claimed"  # duplicate delivery, terminal, cancelled before start, exhausted, missing


def short_error(exc: BaseException, limit: int = 500) -> str:
    """The exception's type and first line, at most `limit` characters."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return (f"{type(exc).__name__}: {first}" if first else type(exc).__name__)[:limit]


class JobEnd:
    """The end states of one claimed job (see the module docstring)."""

    def __init__(
        self, session: Session, job_id: str, owner: str, settings: Settings, hooks: JobHooks, resend=None
    ) -> None:
        self.session = session
        self.job_id = job_id
        self.owner = owner
        self.settings = settings
        self.hooks = hooks
        self.resend = resend  # resend(job_id) after a hand-back; default core.queue.send_train
        self.checkpoints: CheckpointStore | None = None

    def after_training(self, result, storage) -> RunOutcome:
        """The end of a run that returned, by its stop reason; an error while ending it fails the job."""
        try:
            if getattr(result, "stop_reason", "completed") == "cancelled":
                if self.hooks.cancelled:
                    return self.cancelled(result)
                return self.handed_back(pause=self.hooks.paused)
            return self.finished(result, storage)
        except Exception as exc:  # noqa: BLE001
            return self.failed_internal(exc, "error after training")

    def finished(self, result, storage) -> RunOutcome:
        """Completed / early stopped: succeeded; max_runtime: failed. Artifacts commit with the state."""
        final = json_safe(result.final_metrics) if result.final_metrics is not None else None
        status, code, message = JobStatus.succeeded, None, None
        if getattr(result, "stop_reason", "completed") == "max_runtime":
            status, code = JobStatus.failed, "max_runtime_exceeded"
            message = f"stopped after {result.train_seconds:.0f}s at the training.max_runtime_s limit"
        names: list[str] = []

        def complete() -> bool:
            names[:] = upload_artifacts(self.session, storage, self.job_id, result)
            return jobdb.finish(
                self.session, self.job_id, self.owner, status, final_metrics=final, error_code=code,
                error_message=message, train_seconds=float(result.train_seconds), device=str(result.device),
            )  # fmt: skip

        if not self.retrying(f"finish({status.value})", complete):
            log.warning("job %s: finished training but the lease is no longer ours", self.job_id)
            return RunOutcome.lease_lost
        log.info("job %s: %s (artifacts: %s)", self.job_id, status.value, ", ".join(names))
        if status != JobStatus.succeeded:  # a succeeded job keeps what training.keep_checkpoints says
            self._drop_checkpoints()
        return RunOutcome.succeeded if status == JobStatus.succeeded else RunOutcome.failed

    def cancelled(self, result) -> RunOutcome:
        """The user cancelled: the job ends cancelled and keeps its checkpoint."""
        ok = self.retrying(
            "finish(cancelled)",
            lambda: jobdb.finish(
                self.session,
                self.job_id,
                self.owner,
                JobStatus.cancelled,
                train_seconds=result.train_seconds,
                device=result.device,
                **self.hooks.stop_error,  # {"error_code": "pruned", ...} when a tuning pruner stopped it
            ),
        )
        return RunOutcome.cancelled if ok else RunOutcome.lease_lost

    def handed_back(self, pause: bool = False) -> RunOutcome:
        """Graceful worker shutdown: give the job back (queued, task re-sent); a pause: `paused`, not sent
        (`resume` sends it). Either resumes from the checkpoint and costs no attempt."""
        last = self.hooks.last_checkpoint
        where = f"epoch {last}" if last else "the start"
        why, to = (
            ("pause requested", JobStatus.paused) if pause else ("worker shutting down", JobStatus.queued)
        )
        reason = f"{why}; resumes from {where}"
        if not self.retrying(
            "release", lambda: jobdb.release(self.session, self.job_id, self.owner, reason, to=to)
        ):
            return RunOutcome.lease_lost
        log.info("job %s: %s (resumes from %s)", self.job_id, "paused" if pause else "released", where)
        if pause:
            return RunOutcome.paused
        self._resend()
        return RunOutcome.released

    def failed_invalid(self, exc: SimtrainError) -> RunOutcome:
        """The job itself is at fault (NaN loss, unusable data, a bad spec): failed with the error's code."""
        _safe_rollback(self.session)
        if self.hooks.lease_lost:
            return RunOutcome.lease_lost
        log.warning("job %s: failed with %s: %s", self.job_id, exc.code, exc.message)
        return self._fail(exc.code, exc.message)

    def failed_internal(self, exc: Exception, when: str) -> RunOutcome:
        """Call from an `except` block: the traceback is logged, the job fails `internal_error` (or, for a
        SimtrainError raised while ending the run, with that error's code)."""
        _safe_rollback(self.session)
        log.error("job %s: %s\n%s", self.job_id, when, traceback.format_exc())
        if self.hooks.lease_lost:
            return RunOutcome.lease_lost
        if isinstance(exc, SimtrainError):
            return self._fail(exc.code, exc.message)
        return self._fail("internal_error", short_error(exc))

    def _fail(self, code: str, message: str) -> RunOutcome:
        try:
            ok = self.retrying(
                "finish(failed)",
                lambda: jobdb.finish(
                    self.session, self.job_id, self.owner, JobStatus.failed,
                    error_code=code, error_message=message[:2000],
                ),
            )  # fmt: skip
        except Exception:  # noqa: BLE001 - database gone: the lease expires, the reconciler re-sends
            log.error("job %s: could not record failure %s; the lease will expire", self.job_id, code)
            return RunOutcome.lease_lost
        if not ok:
            log.warning("job %s: could not record failure %s: the lease is no longer ours", self.job_id, code)
            return RunOutcome.lease_lost
        self._drop_checkpoints()
        return RunOutcome.failed

    def retrying(self, what: str, fn, *, tries: int = 5):
        """Run a final database write, retrying a database outage with backoff; re-raise the last error."""
        for attempt in range(tries):
            try:
                return fn()
            except SimtrainError:
                _safe_rollback(self.session)
                raise
            except Exception as exc:
                _safe_rollback(self.session)
                if attempt == tries - 1:
                    raise
                log.warning(
                    "job %s: %s failed (try %d): %s", self.job_id, what, attempt + 1, short_error(exc)
                )
                time.sleep(min(8.0, 0.5 * (2**attempt)))
        return None

    def _resend(self) -> None:
        from core.queue import send_train

        settings = self.settings
        try:
            (self.resend or (lambda jid: send_train(jid, settings)))(self.job_id)
            jobdb.mark_dispatched(self.session, self.job_id)
            self.session.commit()
        except Exception as exc:  # noqa: BLE001 - the reconciler sends it later
            _safe_rollback(self.session)
            log.warning(
                "job %s: could not re-send after release (%s); the reconciler will",
                self.job_id,
                short_error(exc),
            )

    def _drop_checkpoints(self) -> None:
        """A job that failed never resumes: free its checkpoint storage (best effort). A succeeded job
        keeps its checkpoints (listed, downloaded, warm-started from) as its retention policy left them."""
        if self.checkpoints is None:
            return
        try:
            self.checkpoints.clear()
        except Exception as exc:  # noqa: BLE001
            log.warning("job %s: could not delete its checkpoints: %s", self.job_id, short_error(exc))


def _safe_rollback(session: Session) -> None:
    with contextlib.suppress(Exception):
        session.rollback()
