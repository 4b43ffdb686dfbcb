"""`JobHooks`: the training hooks of a worker's job, and the worker-wide shutdown flag they read.

    hooks = JobHooks(session, job_id, owner, heartbeat)
    result = train(plan, hooks, checkpoints)
    hooks.lease_lost, hooks.cancelled, hooks.paused, hooks.shutting_down   # why the run stopped, in order

The hooks write the start event, every epoch, the kept checkpoints' size after each save
(`Job.checkpoint_bytes`, counted in the tenant's stored-bytes quota) and warnings to the database while
the lease is ours (best effort: a database hiccup must not kill a healthy run), notice a cancel or a
pause at each epoch boundary and stop the run when the lease is lost, the job is cancelled or paused, or
the worker shuts down (`request_shutdown`, called from the SIGTERM handling in `worker.app`). A tuning trial's epochs also feed its study's pruner
(`core.tuning.pruning`); a pruned run stops like a cancelled one and ends with `stop_error` ("pruned").
With an MLflow tracking server the start and every epoch also go to the job's run (`core.tracking`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import Job
from core.db import jobs as jobdb
from core.jsonsafe import json_safe
from core.tracking.job_tracking import JobTracking
from core.tuning.pruning import TrialPruning
from worker.heartbeat import Heartbeat

if TYPE_CHECKING:
    from core.checkpoint import CheckpointStore

__all__ = ["JobHooks", "request_shutdown", "shutdown_requested"]

log = logging.getLogger("simtrain.worker.runner")

# Set by the worker's SIGTERM handling (worker.app): every running job checkpoints and is released.
shutdown_requested = threading.Event()


def request_shutdown() -> None:
    """Ask running jobs to stop at the end of their current epoch and go back to the queue."""
    shutdown_requested.set()


class JobHooks:
    """`core.training.TrainHooks` writing to the database while the lease is ours."""

    def __init__(self, session: Session, job_id: str, owner: str, heartbeat: Heartbeat) -> None:
        self.s = session
        self.job_id = job_id
        self.owner = owner
        self.hb = heartbeat
        self.last_checkpoint: int | None = None
        self.last_epoch = 0
        self.pruning = TrialPruning(session, job_id)  # a tuning trial's pruner (core.tuning.pruning)
        self.tracking = JobTracking(session, job_id, warn=self.on_warning)  # MLflow run (core.tracking)
        self.stop_error: dict[str, str] = {}  # the error a cancelled end records ("pruned")
        self.paused = False  # a pause was requested (seen at an epoch boundary): checkpoint, then `paused`
        self.checkpoints: CheckpointStore | None = None  # the job's store (set by the runner before training)
        self._checkpoint_sizes: dict[int, int] = {}  # kept epoch -> its payload's size, read once each

    # why the run stopped, in priority order
    @property
    def lease_lost(self) -> bool:
        return not self.hb.lease_valid()

    @property
    def cancelled(self) -> bool:
        return self.hb.cancel_requested.is_set()

    @property
    def shutting_down(self) -> bool:
        return shutdown_requested.is_set()

    def _db(self, what: str, fn) -> Any:
        """Progress writes are best effort: a database hiccup must not kill a healthy run."""
        for attempt in range(3):
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001
                with contextlib.suppress(Exception):
                    self.s.rollback()
                log.warning("job %s: %s failed (try %d): %s", self.job_id, what, attempt + 1, exc)
                time.sleep(0.5 * (2**attempt))
        return None

    def on_start(self, info: dict[str, Any]) -> None:
        resumed = info.get("resumed_from_epoch")
        msg = f"training on {info.get('device', '?')}"
        if resumed:
            msg += f", resumed from epoch {resumed}"
        log.info("job %s: %s", self.job_id, msg)

        def write():
            jobdb.add_event(self.s, self.job_id, "info", msg, json_safe(info))
            self.s.commit()

        self._db("start event", write)
        self.tracking.start(info)  # best effort: a tracking failure is a warning event

    def on_epoch(self, epoch: int, epochs: int, record: dict[str, Any]) -> None:
        self.last_epoch = epoch
        ok = self._db(
            "record_epoch",
            lambda: jobdb.record_epoch(self.s, self.job_id, self.owner, epoch, json_safe(record)),
        )
        if ok is False:
            log.warning("job %s: epoch %d not recorded: the lease is no longer ours", self.job_id, epoch)
            self.hb.lease_lost.set()
            return
        # notice a cancel or a pause at the epoch boundary instead of waiting for the next heartbeat
        flags = self._db(
            "cancel check",
            lambda: self.s.execute(
                select(Job.cancel_requested, Job.pause_requested).where(Job.id == self.job_id)
            ).first(),
        )
        cancel, pause = tuple(flags) if flags else (False, False)
        self.paused = self.paused or bool(pause)
        self._db("commit", self.s.commit)
        self.tracking.log_epoch(epoch, record)
        if cancel:
            self.hb.cancel_requested.set()
        if self.pruning.should_prune(epoch, record):  # the run stops as if cancelled, error code "pruned"
            self.stop_error = self.pruning.stop_error
            self.hb.cancel_requested.set()

    def on_checkpoint(self, epoch: int) -> None:
        self.last_checkpoint = epoch
        log.info("job %s: checkpoint of epoch %d written", self.job_id, epoch)
        if self.checkpoints is None:
            return
        self._checkpoint_sizes.pop(epoch, None)  # just written: its size is new

        def write() -> bool:
            nbytes = self._kept_checkpoint_bytes()
            return jobdb.record_checkpoint_bytes(self.s, self.job_id, self.owner, nbytes)

        if self._db("checkpoint bytes", write) is False:
            log.warning("job %s: checkpoint bytes not recorded: the lease is no longer ours", self.job_id)

    def _kept_checkpoint_bytes(self) -> int:
        """The kept checkpoints' sizes (after the save and its collection): one listing, plus the metadata
        of each epoch not seen before (the one just saved, or those a resumed run found)."""
        store = self.checkpoints
        kept = store.epochs()
        for e in kept:
            if e not in self._checkpoint_sizes:
                size = (store.meta(e) or {}).get("size_bytes")
                self._checkpoint_sizes[e] = int(size) if size is not None else _stored_size(store, e)
        self._checkpoint_sizes = {e: self._checkpoint_sizes[e] for e in kept}
        return sum(self._checkpoint_sizes.values())

    def should_stop(self) -> bool:
        return self.lease_lost or self.cancelled or self.paused or self.shutting_down

    def on_warning(self, message: str) -> None:
        log.warning("job %s: %s", self.job_id, message)

        def write():
            jobdb.add_event(self.s, self.job_id, "warning", message[:2000])
            self.s.commit()

        self._db("warning event", write)


def _stored_size(store: CheckpointStore, epoch: int) -> int:
    """A checkpoint payload's size from storage (one written without metadata); 0 once it is gone."""
    try:
        return int(store.storage.size(store.key(epoch)))
    except FileNotFoundError:
        return 0
