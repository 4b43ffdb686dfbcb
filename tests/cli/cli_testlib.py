"""Helpers of the CLI tests: run `simtrain` in-process (typer's CliRunner) or as a subprocess, and play
the worker for a job the CLI submitted.

    result = simtrain(["status", job_id, "--json"], url=url, key=key)
    proc = simtrain_process(["--help"])
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from typer.testing import CliRunner

from cli.app import app

REPO = Path(__file__).resolve().parents[2]

__all__ = ["REPO", "play_worker", "simtrain", "simtrain_process"]


def simtrain(
    argv: list[str],
    *,
    url: str | None = None,
    key: str | None = None,
    columns: int = 100,
    env: dict | None = None,
    **kw,
):
    """`simtrain ARGV` in this process (client options added when given) on a `columns` wide output,
    without the SIMTRAIN_URL / SIMTRAIN_API_KEY of the environment; a click Result."""
    extra = [*(["--url", url] if url else []), *(["--api-key", key] if key else [])]
    env = {"COLUMNS": str(columns), "SIMTRAIN_API_KEY": None, "SIMTRAIN_URL": None, **(env or {})}
    return CliRunner().invoke(app, [*argv, *extra], env=env, **kw)


def simtrain_process(argv: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess:
    """The installed console script `simtrain ARGV` (the venv's), run as a process."""
    script = Path(sys.executable).parent / "simtrain"
    env = {**os.environ, "COLUMNS": "100", "PYTHONPATH": str(REPO)}
    env.pop("SIMTRAIN_API_KEY", None)
    return subprocess.run(
        [str(script), *argv], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO
    )


def play_worker(svc, epochs: int = 2, *, accuracy: float = 0.9) -> threading.Thread:
    """A thread that waits for the first queued job, then claims it, records `epochs` epochs and
    finishes it as succeeded (the way a worker would)."""
    from sqlalchemy import select

    from core.db import jobs as jobstate
    from core.db.models import Job, JobStatus

    def run() -> None:
        deadline = time.monotonic() + 30
        job_id = None
        while job_id is None and time.monotonic() < deadline:
            with svc.sessionmaker() as s:
                job_id = s.execute(select(Job.id).where(Job.status == "queued")).scalars().first()
            time.sleep(0.05)
        assert job_id is not None, "no job was submitted"
        with svc.sessionmaker() as s:
            assert jobstate.claim(s, job_id, "test-worker", 60) == jobstate.ClaimOutcome.claimed
            for epoch in range(1, epochs + 1):
                record = {"epoch": epoch, "val": {"loss": 1.0 / epoch, "accuracy": accuracy * epoch / epochs}}
                assert jobstate.record_epoch(s, job_id, "test-worker", epoch, record)
                time.sleep(0.2)
            assert jobstate.finish(
                s, job_id, "test-worker", JobStatus.succeeded, final_metrics={"accuracy": accuracy}
            )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread
