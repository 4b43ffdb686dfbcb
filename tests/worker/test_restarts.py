"""Graceful hand-backs cost no attempt: a job survives any number of worker restarts.

A Redis worker stopped with SIGTERM (Celery's warm shutdown) three times, and `python -m cli dev` (the
embedded default) stopped with Ctrl-C (SIGINT to its process group) three times: the job resumes from its
checkpoint each time and finally succeeds with `attempts` == 1 (a release gives its attempt back), and a
worker in warm shutdown never claims the job it has just handed back (one `running` state per run).
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from functools import partial

import httpx
import pytest
from worker_testlib import REPO, SLOW_MODEL, free_port, job_body

pytestmark = [pytest.mark.services, pytest.mark.slow]

RESTARTS = 3
EPOCHS = 3 * RESTARTS + 2  # a run trains at least one epoch and stops within the next: room for 3 stops
KEY_LINE = re.compile(r"^API key: (st_\S+)\s*$")


def _resumed_from(stack, job_id: str) -> list:
    return [(e.data or {}).get("resumed_from_epoch") for e in stack.events(job_id, "info")]


@pytest.mark.timeout(420)
def test_redis_worker_restarted_three_times_resumes_and_succeeds(stack_factory):
    stack = stack_factory("postgres", lease_seconds=30, heartbeat_seconds=1)
    job_id = stack.submit(job_body(model=SLOW_MODEL, batch_size=16, epochs=EPOCHS, seed=3))
    stopped_at = []
    for n in range(RESTARTS):
        before = stack.job_row(job_id)["epoch"]
        worker = stack.start_worker(f"w{n + 1}")
        stack.wait_for(
            job_id,
            lambda j, before=before: j["status"] == "running" and j["epoch"] > before,
            "training again",
            timeout=120,
        )
        worker.terminate()  # warm shutdown: checkpoint, release, re-send; takes no new job
        assert worker.wait(60) is not None, stack.logs()
        job = stack.job_row(job_id)
        assert job["status"] == "queued", (job, stack.logs())
        assert job["attempts"] == 0, job  # the release gave the attempt back
        assert worker.count("claimed by") == 1, worker.log()  # not claimed again during shutdown
        stopped_at.append(job["epoch"])
    stack.start_worker("last")
    job = stack.wait_status(job_id, "succeeded", "failed", "cancelled", timeout=180)
    assert job["status"] == "succeeded", (job, stack.logs())
    assert job["attempts"] == 1 and job["error_code"] is None
    assert len(stack.running_events(job_id)) == RESTARTS + 1
    resumed = _resumed_from(stack, job_id)
    assert resumed[0] is None and all(r for r in resumed[1:]), resumed
    assert resumed[1:] == stopped_at, (resumed, stopped_at)
    assert stack.epoch_rows(job_id) == list(range(1, EPOCHS + 1))


class Dev:
    """`python -m cli dev` in its own process group; Ctrl-C is SIGINT to that group, as a terminal sends it."""

    def __init__(self, home, port: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIMTRAIN_")}
        env.pop("DATABASE_URL", None)
        env.pop("BROKER_URL", None)
        env.update({"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "SIMTRAIN_DEVICE": "cpu"})
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "dev", "--port", str(port), "--home", str(home)],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            start_new_session=True,
        )  # fmt: skip
        self.output: list[str] = []
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)

    def key(self, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, "simtrain dev exited:\n" + self.tail()
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail("no `API key:` line:\n" + self.tail())
            if match := KEY_LINE.match(line):
                return match.group(1)

    def ctrl_c(self) -> int:
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(90)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def tail(self) -> str:
        return "".join(self.output[-80:])


def _wait_job(client: httpx.Client, job_id: str, done, what: str, dev: Dev, timeout: float = 150) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if done(job):
            return job
        assert time.monotonic() < deadline, f"job not {what}: {job}\n{dev.tail()}"
        time.sleep(0.3)


def _training_past(epoch: int, job: dict) -> bool:
    return job["status"] == "running" and job["progress"]["epoch"] > epoch


def _dev_client(home, port: int) -> tuple[Dev, httpx.Client]:
    dev = Dev(home, port)
    key = dev.key()
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    return dev, client


@pytest.mark.timeout(600)
def test_simtrain_dev_ctrl_c_three_times_resumes_and_succeeds(tmp_path):
    home, port = tmp_path / "home", free_port()
    body = job_body(model=SLOW_MODEL, batch_size=16, epochs=EPOCHS, seed=4)
    job_id = None
    for n in range(RESTARTS + 1):
        dev, client = _dev_client(home, port)
        try:
            if job_id is None:
                r = client.post("/v1/jobs", json=body)
                assert r.status_code == 201, r.text
                job_id = r.json()["id"]
            if n == RESTARTS:
                job = _wait_job(
                    client, job_id, lambda j: j["status"] not in ("queued", "running"), "ended", dev
                )
                events = client.get(f"/v1/jobs/{job_id}/events", params={"limit": 500}).json()["items"]
                break
            before = client.get(f"/v1/jobs/{job_id}").json()["progress"]["epoch"]
            job = _wait_job(client, job_id, partial(_training_past, before), "training again", dev)
            assert job["attempts"] == 1, job  # the earlier hand-backs cost nothing
            client.close()
            assert dev.ctrl_c() == 0, dev.tail()
        finally:
            client.close()
            dev.kill()
    states = [(e["message"], e.get("data")) for e in events if e["kind"] in ("state", "info", "warning")]
    assert job["status"] == "succeeded", (job["error"], job["attempts"], states)
    assert job["attempts"] == 1 and job["error"] is None, job
    assert job["progress"]["epoch"] == EPOCHS
    running = [e for e in events if e["kind"] == "state" and (e.get("data") or {}).get("status") == "running"]
    assert len(running) == RESTARTS + 1, events
    resumed = [(e.get("data") or {}).get("resumed_from_epoch") for e in events if e["kind"] == "info"]
    assert resumed[0] is None and all(resumed[1:]), resumed
