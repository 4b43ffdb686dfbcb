"""Queues and priorities (`core.routing`) with real workers: device queues, Redis priorities, the
reconciler's re-send, and the embedded broker (no priorities: first in, first out).

Redis tests use a private `redis-server` (real Redis, a free port on 127.0.0.1) so no other test session
flushes its lists while a test looks at them; each stack has a queue name of its own. The broker-level
checks read kombu's lists: `<queue>[.cpu|.gpu]` plus `:<step>` for a message priority above 0.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import redis
import torch
from worker_testlib import job_body

from core.routing import priority_number

pytestmark = [pytest.mark.services, pytest.mark.slow]

QUICK = {"epochs": 2, "seed": 3}


def _body(priority: str = "normal", device: str = "auto") -> dict:
    return {**job_body(**QUICK), "priority": priority, "resources": {"device": device}}


def _key(queue: str, priority: str) -> str:
    return f"{queue}:{priority_number(priority)}"


def _lengths(url: str, *keys: str) -> list[int]:
    client = redis.Redis.from_url(url)
    try:
        return [int(client.llen(k)) for k in keys]
    finally:
        client.close()


def _wait_log(worker, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in worker.log():
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in the worker's log:\n{worker.log()[-4000:]}")


def test_a_cpu_worker_takes_cpu_and_auto_jobs_and_never_the_gpu_job(stack_factory, private_redis):
    stack = stack_factory("postgres", broker_url=private_redis.url)
    q, url = stack.settings.queue, private_redis.url
    gpu = stack.submit(_body(device="gpu"))
    cpu = stack.submit(_body(device="cpu"))
    auto = stack.submit(_body())
    keys = (_key(f"{q}.gpu", "normal"), _key(f"{q}.cpu", "normal"), _key(q, "normal"))
    assert _lengths(url, *keys) == [1, 1, 1]

    worker = stack.start_worker(worker_device="cpu")
    assert f"cpu worker, queues {q},{q}.cpu," in worker.log()
    for job_id in (cpu, auto):
        assert stack.wait_status(job_id, "succeeded", "failed")["status"] == "succeeded", stack.logs()
        assert stack.job_row(job_id)["device"] == "cpu"

    # the gpu job's task, sent to the training queue by mistake: the cpu worker sends it on, unclaimed
    from core.queue import TRAIN_TASK, broker_client

    broker_client(stack.settings).send_task(TRAIN_TASK, args=[gpu], queue=q)
    _wait_log(worker, f"job {gpu}: not for a cpu worker; sent on to {q}.gpu")
    time.sleep(1.0)  # a worker that wrongly took it would have claimed it by now
    job = stack.job_row(gpu)
    assert (job["status"], job["started_at"], job["attempts"], job["lease_owner"]) == (
        "queued",
        None,
        0,
        None,
    )
    assert _lengths(url, *keys) == [2, 0, 0]  # both messages wait in the gpu list, none consumed
    assert stack.get(gpu)["resources"] == {"device": "gpu"}


def test_a_gpu_worker_needs_cuda(stack_factory):
    stack = stack_factory("sqlite")  # the broker plays no part: the embedded default is enough
    q = stack.settings.queue
    worker = stack.start_worker(worker_device="gpu", ready=False)
    if torch.cuda.is_available():  # a machine with a GPU: the worker takes the gpu queue
        worker.wait_ready()
        assert f"gpu worker, queues {q},{q}.gpu," in worker.log()
        job_id = stack.submit(_body(device="gpu"))
        job = stack.wait_status(job_id, "succeeded", "failed")
        assert job["status"] == "succeeded" and job["device"].startswith("cuda"), stack.logs()
        return
    assert worker.wait(60) not in (None, 0), worker.log()[-4000:]
    assert "CUDA is not available" in worker.log()


def test_a_high_priority_job_starts_before_normal_and_low_ones_sent_before_it(stack_factory, private_redis):
    stack = stack_factory("postgres", broker_url=private_redis.url)
    q, url = stack.settings.queue, private_redis.url
    low = stack.submit(_body("low"))
    normal = stack.submit(_body("normal"))
    high = stack.submit(_body("high"))
    assert _lengths(url, _key(q, "high"), _key(q, "normal"), _key(q, "low")) == [1, 1, 1]
    assert stack.get(high)["priority"] == "high" and stack.get(low)["priority"] == "low"

    stack.start_worker(worker_device="cpu")  # one worker, one job at a time
    rows = {}
    for job_id in (low, normal, high):
        rows[job_id] = stack.wait_status(job_id, "succeeded", "failed")
        assert rows[job_id]["status"] == "succeeded", stack.logs()
    started = [rows[j]["started_at"] for j in (high, normal, low)]
    assert started == sorted(started) and len(set(started)) == 3, started
    assert rows[high]["finished_at"] <= rows[normal]["started_at"]  # one after the other


def test_the_reconciler_resends_to_the_same_queue_with_the_same_priority(stack_factory, private_redis):
    from core.db.types import now as utcnow
    from worker.reconcile import reconcile_once

    stack = stack_factory("postgres", broker_url=private_redis.url)
    q, url = stack.settings.queue, private_redis.url
    gpu_high = stack.submit(_body("high", "gpu"))
    cpu_low = stack.submit(_body("low", "cpu"))
    keys = (_key(f"{q}.gpu", "high"), _key(f"{q}.cpu", "low"), q, _key(q, "normal"))
    assert _lengths(url, *keys) == [1, 1, 0, 0]

    later = utcnow() + timedelta(seconds=stack.settings.requeue_after_seconds + 1)
    with stack.session() as session:
        report = reconcile_once(session, stack.settings, now=later)
    assert sorted(report["queued"]) == sorted([gpu_high, cpu_low]) and report["errors"] == 0
    assert _lengths(url, *keys) == [2, 2, 0, 0]


def test_the_embedded_broker_accepts_the_fields_and_serves_first_in_first_out(stack_factory):
    from sqlalchemy import update

    from core.db import Job

    stack = stack_factory("sqlite")
    for body, field in (
        ({**job_body(**QUICK), "priority": "urgent"}, "priority"),
        ({**job_body(**QUICK), "resources": {"device": "tpu"}}, "resources.device"),
        ({**job_body(**QUICK), "resources": {"gpus": 1}}, "resources.gpus"),
    ):
        r = stack.client.post("/v1/jobs", json=body, headers=stack.headers)
        assert r.status_code == 422, r.text
        assert [d["field"] for d in r.json()["error"]["details"]] == [field], r.text

    low = stack.submit(_body("low"))
    high = stack.submit(_body("high"))
    cpu = stack.submit(_body("high", "cpu"))
    public = stack.get(cpu)
    assert (public["priority"], public["resources"], public["pause_requested"]) == (
        "high",
        {"device": "cpu"},
        False,
    )
    with stack.session() as s:  # the flag the pause route sets, as the API shows it
        s.execute(update(Job).where(Job.id == low).values(pause_requested=True))
        s.commit()
        assert stack.get(low)["pause_requested"] is True
        s.execute(update(Job).where(Job.id == low).values(pause_requested=False))
        s.commit()

    stack.start_worker(worker_device="cpu")
    rows = {j: stack.wait_status(j, "succeeded", "failed") for j in (low, high, cpu)}
    assert all(r["status"] == "succeeded" for r in rows.values()), stack.logs()
    assert rows[low]["started_at"] < rows[high]["started_at"]  # no priorities here: the order they came in


def test_simtrain_worker_device_flag_sets_the_workers_kind(tmp_path):
    """`simtrain worker --device cpu` (the command docker-compose.yml runs): the worker it starts is a cpu
    worker on the training queue and its cpu queue; a kind that does not exist is refused."""
    import os
    import signal
    import subprocess
    import sys

    from worker_testlib import REPO

    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMTRAIN_") and not k.endswith("_URL")}
    env["SIMTRAIN_HOME"], env["SIMTRAIN_WORKER_DEVICE"] = str(tmp_path / "home"), "gpu"  # the flag wins
    env["PYTHONPATH"], env["OMP_NUM_THREADS"] = str(REPO), "1"
    bad = subprocess.run(
        [sys.executable, "-m", "cli", "worker", "--device", "tpu"],
        env=env,
        cwd=REPO,
        capture_output=True,
        check=False,
    )
    assert bad.returncode == 2 and b"tpu" in bad.stderr, bad.stderr[-2000:]

    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "worker", "--device", "cpu", "--grace", "20"],
            env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while "simtrain worker ready" not in log.read_text(errors="replace"):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[
                -4000:
            ]
            time.sleep(0.2)
        assert "cpu worker, queues simtrain,simtrain.cpu," in log.read_text(errors="replace")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
