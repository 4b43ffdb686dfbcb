"""The lease-renewing thread of one running job.

`Heartbeat` renews the job's lease every `interval` seconds on its own database session
(`core.db.jobs.heartbeat`). It raises flags the training hooks read between epochs:

- `lease_lost`: the database says the lease is no longer ours (expired and taken by another worker, or
  the job ended), or the lease could not be renewed before it expired (database unreachable): the job may
  already be running elsewhere, so this worker must stop without touching it.
- `cancel_requested`: a user asked to cancel the job.

Database errors are retried with exponential backoff (0.5 s doubling up to `interval`); the thread never
dies on them. If renewal keeps failing, the lease simply expires and `lease_lost` is raised locally once
the last successful renewal is older than the lease.

    hb = Heartbeat(session_factory, job_id, owner, lease_seconds=60, interval=10)
    hb.start(); ...; hb.stop()
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy.orm import Session

from core.db import jobs as jobdb

__all__ = ["Heartbeat"]

log = logging.getLogger("simtrain.worker.heartbeat")


class Heartbeat(threading.Thread):
    def __init__(
        self,
        session_factory: Callable[[], Session],
        job_id: str,
        owner: str,
        *,
        lease_seconds: float,
        interval: float,
        renewed_at: float | None = None,
    ) -> None:
        super().__init__(name=f"heartbeat-{job_id[:8]}", daemon=True)
        self.session_factory = session_factory
        self.job_id = job_id
        self.owner = owner
        self.lease_seconds = float(lease_seconds)
        self.interval = float(interval)
        self.lease_lost = threading.Event()
        self.cancel_requested = threading.Event()
        self._stop_event = threading.Event()
        # monotonic time of the last successful claim/renewal; the lease is good until + lease_seconds
        self.renewed_at = renewed_at if renewed_at is not None else time.monotonic()
        self.failures = 0

    # -- flags -------------------------------------------------------------------------------------------
    def lease_valid(self) -> bool:
        """False once the lease is known lost or could not be renewed before it expired."""
        if self.lease_lost.is_set():
            return False
        # a margin of one heartbeat interval: stop before another worker can claim
        if time.monotonic() - self.renewed_at > self.lease_seconds:
            log.warning(
                "job %s: lease not renewed for %.1fs: treating it as lost", self.job_id, self.lease_seconds
            )
            self.lease_lost.set()
            return False
        return True

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)

    # -- the thread --------------------------------------------------------------------------------------
    def beat_once(self) -> bool:
        """One renewal; True when it reached the database (whatever the answer). Never raises."""
        session = self.session_factory()
        try:
            started = time.monotonic()
            res = jobdb.heartbeat(session, self.job_id, self.owner, self.lease_seconds)
        except Exception as exc:  # noqa: BLE001 - database outage: retry with backoff
            self.failures += 1
            log.warning("job %s: heartbeat failed (%d in a row): %s", self.job_id, self.failures, _short(exc))
            with contextlib.suppress(Exception):
                session.rollback()
            return False
        finally:
            session.close()
        self.failures = 0
        if not res.owned:
            log.warning("job %s: lease lost (owner %s)", self.job_id, self.owner)
            self.lease_lost.set()
        else:
            self.renewed_at = started
        if res.cancel_requested and not self.cancel_requested.is_set():
            log.info("job %s: cancel requested", self.job_id)
            self.cancel_requested.set()
        return True

    def run(self) -> None:
        delay = self.interval
        while not self._stop_event.wait(delay):
            if self.lease_lost.is_set():
                return
            if self.beat_once():
                delay = self.interval
            else:
                self.lease_valid()  # raises lease_lost once the lease has run out
                delay = min(self.interval, 0.5 * (2 ** min(self.failures - 1, 10)))


def _short(exc: BaseException, limit: int = 200) -> str:
    text = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    return text[:limit]
