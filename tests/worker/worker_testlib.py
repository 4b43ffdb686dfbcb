"""Helpers of the worker tests: worker subprocesses, the API/database stack, a private Redis server.

Imported by `tests/worker/conftest.py` and the test modules (`from worker_testlib import job_body`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

POOL = "solo"

# small, quick jobs on builtin:digits (1797 samples, 64 features)
SMALL_MODEL = {"kind": "mlp", "hidden": [32]}
# slower epochs (about 0.3-1 s each on 2 cores) for the tests that act in the middle of a run
SLOW_MODEL = {"kind": "mlp", "hidden": [768, 768]}


FAST_FAULTS = {
    "lease_seconds": 3,
    "heartbeat_seconds": 0.5,
    "reconcile_seconds": 1,
    "requeue_after_seconds": 3,
}


def job_body(
    *,
    loss: dict | None = None,
    similarity: dict | None = None,
    epochs: int = 3,
    seed: int = 1,
    model: dict | None = None,
    batch_size: int = 64,
    **training: Any,
) -> dict:
    body: dict[str, Any] = {
        "dataset": "builtin:digits",
        "loss": loss or {"kind": "cross_entropy"},
        "model": model or SMALL_MODEL,
        "training": {"epochs": epochs, "seed": seed, "batch_size": batch_size, **training},
    }
    if similarity is not None:
        body["similarity"] = similarity
    return body


class WorkerProc:
    """One `celery worker` subprocess (its own process group) logging to a file."""

    def __init__(self, name: str, env: dict[str, str], log_path: Path, queue: str) -> None:
        self.name = name
        self.env = env
        self.log_path = log_path
        self.queue = queue
        self.proc: subprocess.Popen | None = None

    def start(self) -> WorkerProc:
        cmd = [
            sys.executable, "-m", "celery", "-A", "worker.app:celery_app", "worker",
            "-Q", self.queue, "-c", "1", "--pool", POOL, "--loglevel", "INFO",
            "-n", f"{self.name}-{uuid.uuid4().hex[:6]}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_ready(self, timeout: float = 90.0) -> WorkerProc:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "simtrain worker ready" in self.log() and " ready." in self.log():
                return self
            if not self.alive():
                raise AssertionError(
                    f"worker {self.name} exited with {self.proc.returncode}:\n{self.log()[-4000:]}"
                )
            time.sleep(0.1)
        raise AssertionError(f"worker {self.name} not ready after {timeout}s:\n{self.log()[-4000:]}")

    def signal(self, sig: int) -> None:
        if self.alive():
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL the whole process group (no cleanup of any kind runs)."""
        self.signal(signal.SIGKILL)
        self.wait(10)

    def terminate(self) -> None:
        """SIGTERM: Celery's warm shutdown."""
        self.signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int | None:
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self.alive():
            self.terminate()
            if self.wait(30) is None:
                self.signal(signal.SIGKILL)
                self.wait(10)
        if hasattr(self, "_log"):
            self._log.close()

    def count(self, text: str) -> int:
        return self.log().count(text)


class Stack:
    """Settings (in this process's environment too), the API client, database access and workers."""

    def __init__(self, settings, env: dict[str, str], tmp: Path) -> None:
        from fastapi.testclient import TestClient

        from api.main import create_app
        from core.auth import create_api_key
        from core.db import make_engine, make_sessionmaker

        self.settings = settings
        self.env = env
        self.tmp = tmp
        self.workers: list[WorkerProc] = []
        self.engine = make_engine(settings.database_url)
        self.Session = make_sessionmaker(self.engine)
        self.app = create_app(settings)
        self.client = TestClient(self.app)
        self.client.__enter__()
        with self.Session() as s:
            key = create_api_key(s, f"tenant-{uuid.uuid4().hex[:8]}")
        self.headers = {"Authorization": f"Bearer {key}"}

    # -- workers -----------------------------------------------------------------------------------------
    def start_worker(self, name: str | None = None, ready: bool = True, **overrides: Any) -> WorkerProc:
        name = name or f"w{len(self.workers) + 1}"
        env = dict(self.env)
        for key, value in overrides.items():
            env[f"SIMTRAIN_{key.upper()}"] = str(value)
        worker = WorkerProc(name, env, self.tmp / f"{name}.log", self.settings.queue).start()
        self.workers.append(worker)
        return worker.wait_ready() if ready else worker

    # -- the API -----------------------------------------------------------------------------------------
    def submit(self, body: dict) -> str:
        r = self.client.post("/v1/jobs", json=body, headers=self.headers)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def get(self, job_id: str) -> dict:
        r = self.client.get(f"/v1/jobs/{job_id}", headers=self.headers)
        assert r.status_code == 200, r.text
        return r.json()

    def cancel(self, job_id: str):
        return self.client.post(f"/v1/jobs/{job_id}/cancel", headers=self.headers)

    def artifacts(self, job_id: str) -> list[dict]:
        r = self.client.get(f"/v1/jobs/{job_id}/artifacts", headers=self.headers)
        assert r.status_code == 200, r.text
        return r.json()["items"]

    def download(self, job_id: str, name: str) -> bytes:
        r = self.client.get(f"/v1/jobs/{job_id}/artifacts/{name}", headers=self.headers)
        assert r.status_code == 200, r.text
        return r.content

    # -- waiting -----------------------------------------------------------------------------------------
    def wait_for(
        self, job_id: str, predicate, what: str, timeout: float = 90.0, interval: float = 0.05
    ) -> dict:
        deadline = time.monotonic() + timeout
        job = self.job_row(job_id)
        while time.monotonic() < deadline:
            job = self.job_row(job_id)
            if predicate(job):
                return job
            time.sleep(interval)
        raise AssertionError(f"job {job_id}: not {what} after {timeout}s; last state {job}\n{self.logs()}")

    def wait_status(self, job_id: str, *statuses: str, timeout: float = 90.0) -> dict:
        return self.wait_for(job_id, lambda j: j["status"] in statuses, f"in {statuses}", timeout)

    def wait_epoch(self, job_id: str, epoch: int, timeout: float = 90.0) -> dict:
        return self.wait_for(
            job_id,
            lambda j: j["epoch"] >= epoch or j["status"] not in ("queued", "running"),
            f"at epoch {epoch}",
            timeout,
        )

    # -- the database ------------------------------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[Any]:
        s = self.Session()
        try:
            yield s
        finally:
            s.close()

    def job_row(self, job_id: str) -> dict:
        from core.db import Job

        with self.session() as s:
            job = s.get(Job, job_id)
            return {c.name: getattr(job, c.name) for c in Job.__table__.columns}

    def events(self, job_id: str, kind: str | None = None) -> list[Any]:
        from sqlalchemy import select

        from core.db import JobEvent

        with self.session() as s:
            q = select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
            if kind:
                q = q.where(JobEvent.kind == kind)
            return list(s.execute(q).scalars())

    def running_events(self, job_id: str) -> list[Any]:
        return [
            e
            for e in self.events(job_id, "state")
            if (e.data or {}).get("status") == "running" and "attempt" in (e.data or {})
        ]

    def epoch_rows(self, job_id: str) -> list[int]:
        from sqlalchemy import select

        from core.db import JobEpoch

        with self.session() as s:
            return [
                r[0]
                for r in s.execute(
                    select(JobEpoch.epoch).where(JobEpoch.job_id == job_id).order_by(JobEpoch.epoch)
                )
            ]

    def checkpoints(self, job_id: str) -> list[str]:
        from core.storage import make_storage

        return make_storage(self.settings.storage_url).list(f"jobs/{job_id}/checkpoints/")

    def insert_job(self, body: dict) -> str:
        """A queued job written straight to the database: the broker is never told."""
        from core.data import load_builtin
        from core.db import jobs as jobdb
        from core.jobspec import JobCreate, validate_job

        req = JobCreate.model_validate(body)
        with self.session() as s:
            from core.auth import resolve_api_key

            tenant = resolve_api_key(s, self.headers["Authorization"].split()[1])
            spec = validate_job(req, load_builtin("digits").classes, max_epochs=self.settings.max_epochs)
            job = jobdb.create_job(
                s,
                tenant_id=tenant,
                dataset_ref=req.dataset,
                spec=spec,
                epochs=req.training.epochs,
                max_attempts=3,
            )
            s.commit()
            return job.id

    def logs(self) -> str:
        return "\n".join(f"----- {w.name} log -----\n{w.log()[-6000:]}" for w in self.workers)

    def close(self) -> None:
        for w in self.workers:  # SIGTERM all at once, then wait (SIGKILL after 30 s)
            w.terminate()
        for w in self.workers:
            w.stop()
        with contextlib.suppress(Exception):
            self.client.__exit__(None, None, None)
        self.engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A private `redis-server` (no persistence) that a test may stop and restart on the same port."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        import redis

        log = open(self.tmp / f"redis-{self.port}.log", "ab")  # noqa: SIM115 - owned by the server process
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.tmp)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
                return self
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("private redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
