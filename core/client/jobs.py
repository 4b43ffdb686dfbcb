"""Jobs of `SimtrainClient`: create (idempotent), list, get, cancel, pause, resume, delete, wait, events,
the live SSE stream and the per-epoch metrics.

    job = client.create_job({"dataset": "builtin:digits", "loss": {"kind": "simloss"}})
    for event in client.stream_events(job["id"]):      # state / epoch / warning events, live
        ...
    job = client.wait(job["id"], timeout=600)          # polls; TimeoutError when it is still running

`create_job` always sends an Idempotency-Key (a new one unless given), so its retries cannot create a
second job.
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator, Iterator
from typing import Any

import httpx

from core.client.base import BaseClient, new_idempotency_key, seg
from core.client.errors import TransportError, transport_error
from core.client.sse import sse_messages
from core.client.types import Event, Job, JobMetrics, JobPage
from core.status import JOB_TERMINAL

__all__ = ["JobsMixin"]

STREAM_READ_TIMEOUT = 60.0  # the server sends a keepalive every 15 s
MAX_RECONNECTS = 5  # stream connections failing one after the other before the error is raised


def _is_terminal_state(event: Event) -> bool:
    return event.get("kind") == "state" and (event.get("data") or {}).get("status") in JOB_TERMINAL


class JobsMixin(BaseClient):
    def create_job(self, spec: dict[str, Any], *, idempotency_key: str | None = None) -> Job:
        headers = {"Idempotency-Key": idempotency_key or new_idempotency_key()}
        return self._json("POST", "/v1/jobs", json=spec, headers=headers)

    def get_job(self, job_id: str) -> Job:
        return self._json("GET", f"/v1/jobs/{seg(job_id)}")

    def list_jobs(self, *, status: str | None = None, limit: int = 20, cursor: str | None = None) -> JobPage:
        """One page, newest first: {"items", "next_cursor"}."""
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = str(status)
        if cursor:
            params["cursor"] = cursor
        return self._json("GET", "/v1/jobs", params=params)

    def iter_jobs(self, *, status: str | None = None, page_size: int = 100) -> Iterator[Job]:
        return self._pages("/v1/jobs", {"status": str(status)} if status else {}, page_size)

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job (202); an ended one is a ConflictError."""
        return self._json("POST", f"/v1/jobs/{seg(job_id)}/cancel")

    def pause(self, job_id: str) -> Job:
        """Pause a job: a queued one at once, a running one at its next epoch boundary (202, idempotent)."""
        return self._json("POST", f"/v1/jobs/{seg(job_id)}/pause")

    def resume(self, job_id: str) -> Job:
        """Queue a paused job again; it continues from its checkpoint (202, idempotent)."""
        return self._json("POST", f"/v1/jobs/{seg(job_id)}/resume")

    def delete_job(self, job_id: str) -> None:
        """Delete an ended job with its stored files (204). A job that has not ended, or that a comparison,
        a tuning study or a warm-starting job still needs, is a ConflictError naming why."""
        self._json("DELETE", f"/v1/jobs/{seg(job_id)}")

    def wait(self, job_id: str, *, timeout: float | None = None, poll: float = 1.0) -> Job:
        """Poll until the job is succeeded, failed or cancelled; TimeoutError after `timeout` seconds."""
        return self._wait(lambda: self.get_job(job_id), JOB_TERMINAL, poll, timeout, f"job {job_id}")

    def events(self, job_id: str, *, after: int = 0, limit: int = 500) -> list[Event]:
        params = {"after": after, "limit": limit}
        return self._json("GET", f"/v1/jobs/{seg(job_id)}/events", params=params)["items"]

    def metrics(self, job_id: str) -> JobMetrics:
        """The per-epoch history (`epochs`) and the final metrics (`final`)."""
        return self._json("GET", f"/v1/jobs/{seg(job_id)}/metrics")

    def stream_events(
        self, job_id: str, *, after: int = 0, max_seconds: float = 3600.0, reconnect: bool = True
    ) -> Iterator[Event]:
        """The job's events as they happen (Server-Sent Events), until its terminal state event.

        A stream that ends early or breaks is resumed after the last event seen when `reconnect` is
        true (up to MAX_RECONNECTS failed connections in a row, then the TransportError is raised)."""
        position = {"last": after}  # advanced by each event yielded, also when the connection breaks
        failures = 0
        while True:
            before = position["last"]
            try:
                done = yield from self._stream_once(job_id, position, max_seconds)
            except TransportError:
                failures = 1 if position["last"] > before else failures + 1
                if not reconnect or failures >= MAX_RECONNECTS:
                    raise
                time.sleep(1.0)
                continue
            failures = 0
            if done or not reconnect:
                return

    def _stream_once(
        self, job_id: str, position: dict[str, int], max_seconds: float
    ) -> Generator[Event, None, bool]:
        """One connection: yields its events (moving `position["last"]`); returns whether the job ended."""
        last = position["last"]
        response = self._send(
            "GET",
            f"/v1/jobs/{seg(job_id)}/events/stream",
            stream=True,
            params={"after": last, "max_seconds": max_seconds},
            headers={"Accept": "text/event-stream", "Last-Event-ID": str(last)},
            timeout=self._timeout(read=STREAM_READ_TIMEOUT),
        )
        done = False
        try:
            for kind, data in sse_messages(response.iter_lines()):
                if kind == "timeout":
                    continue
                event = json.loads(data)
                position["last"] = max(position["last"], int(event.get("id", 0)))
                yield event
                done = done or _is_terminal_state(event)
        except httpx.TransportError as exc:
            raise transport_error(exc) from exc
        finally:
            response.close()
        if not done:  # the server ends the stream at a terminal state, also one sent before `after`
            done = self.get_job(job_id)["status"] in JOB_TERMINAL
        return done
