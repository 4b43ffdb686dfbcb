"""Fault tests: killed and stopped workers, duplicate deliveries, cancel, poison jobs, lost messages.

Each test runs real `celery worker` processes against PostgreSQL and Redis (a private redis-server for the
restart test), creates jobs through the real API and watches the database.
"""

from __future__ import annotations

import math
import threading
import time

import pytest
from worker_testlib import FAST_FAULTS, SLOW_MODEL, job_body

from core.routing import redis_lists

pytestmark = [pytest.mark.services, pytest.mark.slow]


def _backlog(client, queue: str) -> int:
    """Messages waiting in a Redis queue: its lists of every priority step (core.routing)."""
    return sum(int(client.llen(key)) for key in redis_lists(queue))


def _assert_metrics_equal(a, b, path="final_metrics"):
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _assert_metrics_equal(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_metrics_equal(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and not isinstance(b, bool):
        assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9), (path, a, b)
    else:
        assert a == b, (path, a, b)


def _resumed_from(stack, job_id: str) -> list:
    return [(e.data or {}).get("resumed_from_epoch") for e in stack.events(job_id, "info")]


def test_sigkill_mid_training_resumes_from_checkpoint(stack_factory):
    stack = stack_factory("postgres", **FAST_FAULTS)
    w1 = stack.start_worker("w1")
    body = job_body(model=SLOW_MODEL, batch_size=16, epochs=6, seed=5)
    job_id = stack.submit(body)

    stack.wait_epoch(job_id, 2)
    w1.kill()  # SIGKILL of the whole process group, in the middle of epoch 3 (or so)
    job = stack.job_row(job_id)
    assert job["status"] == "running", (job, stack.logs())
    killed_at = job["epoch"]
    assert 2 <= killed_at < 6
    assert stack.checkpoints(job_id)

    w2 = stack.start_worker("w2")  # its reconciler re-sends the job once the lease has expired
    job = stack.wait_status(job_id, "succeeded", "failed", "cancelled", timeout=120)
    assert job["status"] == "succeeded", (job, stack.logs())
    assert job["attempts"] == 2
    assert [e.data["attempt"] for e in stack.running_events(job_id)] == [1, 2]
    resumed = _resumed_from(stack, job_id)
    assert resumed[0] is None and resumed[1] in (killed_at - 1, killed_at), resumed
    assert stack.epoch_rows(job_id) == [1, 2, 3, 4, 5, 6]

    # the same job without interruption, same seed: identical final metrics
    ref_id = stack.submit(body)
    ref = stack.wait_status(ref_id, "succeeded", "failed", timeout=120)
    assert ref["status"] == "succeeded"
    assert ref["attempts"] == 1
    _assert_metrics_equal(stack.get(job_id)["final_metrics"], stack.get(ref_id)["final_metrics"])
    assert w2.alive()


def test_corrupt_latest_checkpoint_resumes_from_the_previous_one(stack_factory):
    from core.storage import make_storage

    stack = stack_factory("postgres", **FAST_FAULTS)
    w1 = stack.start_worker("w1")
    body = job_body(model=SLOW_MODEL, batch_size=16, epochs=6, seed=7)
    job_id = stack.submit(body)
    stack.wait_for(job_id, lambda j: len(stack.checkpoints(job_id)) >= 2, "two checkpoints", timeout=120)
    w1.kill()
    keys = stack.checkpoints(job_id)
    assert len(keys) == 2, keys  # the newest two are kept
    older, newest = sorted(keys)
    storage = make_storage(stack.settings.storage_url)
    blob = storage.get_bytes(newest)
    storage.put_bytes(newest, blob[: len(blob) // 3])  # a torn write of the newest checkpoint

    stack.start_worker("w2")
    job = stack.wait_status(job_id, "succeeded", "failed", "cancelled", timeout=120)
    assert job["status"] == "succeeded" and job["attempts"] == 2, (job, stack.logs())
    epoch_of = lambda key: int(key.rsplit("-", 1)[1].split(".")[0])
    assert _resumed_from(stack, job_id)[1] == epoch_of(older), (keys, _resumed_from(stack, job_id))
    assert stack.epoch_rows(job_id) == [1, 2, 3, 4, 5, 6]

    ref_id = stack.submit(body)
    assert stack.wait_status(ref_id, "succeeded", "failed", timeout=120)["status"] == "succeeded"
    _assert_metrics_equal(stack.get(job_id)["final_metrics"], stack.get(ref_id)["final_metrics"])


def test_sigterm_checkpoints_releases_and_another_worker_resumes(stack_factory):
    # default lease (60 s) and reconciler (every 30 s, requeue after 120 s): the second worker gets the job
    # from the task the first one re-sent, not from the reconciler
    stack = stack_factory("postgres")
    w1 = stack.start_worker("w1")
    job_id = stack.submit(job_body(model=SLOW_MODEL, batch_size=16, epochs=6, seed=6))

    stack.wait_epoch(job_id, 1)
    w1.terminate()  # Celery warm shutdown
    rc = w1.wait(60)
    assert rc == 0, w1.log()[-3000:]
    job = stack.job_row(job_id)
    assert job["status"] == "queued", (job, w1.log()[-3000:])
    assert job["lease_owner"] is None
    stopped_at = job["epoch"]
    assert 1 <= stopped_at < 6
    assert f"jobs/{job_id}/checkpoints/ckpt-{stopped_at:06d}.pt" in stack.checkpoints(job_id)
    released = [
        e for e in stack.events(job_id, "state") if e.message.startswith("queued: worker shutting down")
    ]
    assert len(released) == 1 and f"epoch {stopped_at}" in released[0].message

    stack.start_worker("w2")
    job = stack.wait_status(job_id, "succeeded", "failed", "cancelled", timeout=60)
    assert job["status"] == "succeeded", (job, stack.logs())
    assert job["attempts"] == 1  # a graceful release gives its attempt back (only a lost lease counts)
    assert _resumed_from(stack, job_id) == [None, stopped_at]
    assert stack.epoch_rows(job_id) == [1, 2, 3, 4, 5, 6]


def test_duplicate_delivery_trains_once(stack_factory):
    from core.queue import send_train
    from worker.runner import RunOutcome, run_job

    stack = stack_factory("postgres")
    worker = stack.start_worker()
    job_id = stack.submit(job_body(model={"kind": "mlp", "hidden": [256]}, batch_size=16, epochs=4, seed=8))
    send_train(job_id)  # the same task twice more
    send_train(job_id)
    outcomes: list[RunOutcome] = []
    threads = [threading.Thread(target=lambda: outcomes.append(run_job(job_id))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)

    job = stack.wait_status(job_id, "succeeded", "failed", "cancelled", timeout=90)
    assert job["status"] == "succeeded", (job, stack.logs())
    deadline = time.monotonic() + 30  # the worker handles all three messages
    while (
        worker.count("Task simtrain.train_job[") < 6 and time.monotonic() < deadline
    ):  # received + succeeded
        time.sleep(0.1)
    import redis

    r = redis.Redis.from_url(stack.settings.broker_url)
    backlog = _backlog(r, stack.settings.queue)
    assert worker.count("] succeeded in") == 3, (backlog, r.keys(), worker.log()[-3000:])

    assert job["attempts"] == 1
    assert len(stack.running_events(job_id)) == 1
    assert stack.epoch_rows(job_id) == [1, 2, 3, 4]
    assert [e.data["epoch"] for e in stack.events(job_id, "epoch")] == [1, 2, 3, 4]
    assert sum(o != RunOutcome.not_claimed for o in outcomes) <= 1
    trained_here = any(o == RunOutcome.succeeded for o in outcomes)
    assert worker.count("claimed by") == (0 if trained_here else 1)
    assert worker.count("not claimed") == (3 if trained_here else 2)


def test_cancel_running_job_stops_within_an_epoch(stack_factory):
    from core.db import JobStatus
    from core.db import jobs as jobdb
    from core.queue import send_train
    from worker.runner import RunOutcome, run_job

    # a slow heartbeat: the cancel is noticed at the epoch boundary, not by the heartbeat
    stack = stack_factory("postgres", lease_seconds=60, heartbeat_seconds=30)
    worker = stack.start_worker()
    job_id = stack.submit(job_body(model=SLOW_MODEL, batch_size=16, epochs=30, seed=9))

    stack.wait_epoch(job_id, 1)
    at_cancel = stack.job_row(job_id)["epoch"]
    r = stack.cancel(job_id)
    assert r.status_code == 202, r.text
    assert r.json()["cancel_requested"] is True
    job = stack.wait_status(job_id, "cancelled", "succeeded", "failed", timeout=30)
    assert job["status"] == "cancelled", (job, stack.logs())
    assert job["epoch"] <= at_cancel + 1
    assert job["lease_owner"] is None and job["finished_at"] is not None
    assert stack.checkpoints(job_id), "the checkpoint is kept"

    # terminal stays terminal
    assert stack.cancel(job_id).status_code == 409
    send_train(job_id)
    assert run_job(job_id) == RunOutcome.not_claimed
    with stack.session() as s:
        assert jobdb.claim(s, job_id, "intruder", 60) == jobdb.ClaimOutcome.terminal
        assert jobdb.finish(s, job_id, "intruder", JobStatus.succeeded) is False
        assert jobdb.release(s, job_id, "intruder", "test") is False
        assert jobdb.request_cancel(s, job_id) == "cancelled"
    deadline = time.monotonic() + 30
    while worker.count("not claimed (terminal)") < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert worker.count("not claimed (terminal)") == 1
    job = stack.job_row(job_id)
    assert job["status"] == "cancelled" and job["attempts"] == 1
    assert len(stack.running_events(job_id)) == 1


def test_failing_jobs_fail_once_and_the_worker_keeps_serving(stack_factory):
    stack = stack_factory("postgres", **FAST_FAULTS)
    worker = stack.start_worker()
    # poison: a loss that goes NaN (SGD with a learning rate of 10)
    bad = stack.submit(
        job_body(
            model={"kind": "mlp", "hidden": [64]}, epochs=5, optimizer="sgd", learning_rate=10.0, momentum=0.9
        )
    )
    # over its time limit: stopped after the epoch that crosses max_runtime_s, artifacts still written
    slow = stack.submit(job_body(model=SLOW_MODEL, batch_size=16, epochs=50, max_runtime_s=1))
    good = stack.submit(job_body(epochs=2, seed=2))
    # an unreadable dataset: uploaded fine, then its stored file is damaged (half of it is lost)
    unreadable = _submit_on_damaged_dataset(stack)

    stack.wait_status(bad, "failed", "succeeded", "cancelled", timeout=60)
    job = stack.get(bad)
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "non_finite_loss"
    assert "non-finite" in job["error"]["message"]

    stack.wait_status(slow, "failed", "succeeded", "cancelled", timeout=60)
    job = stack.get(slow)
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "max_runtime_exceeded"
    assert 1 <= job["progress"]["epoch"] < 50
    assert job["final_metrics"]["accuracy"] > 0
    assert {"model.safetensors", "model.json", "metrics.json"} <= {a["name"] for a in stack.artifacts(slow)}

    assert stack.wait_status(good, "succeeded", "failed", timeout=60)["status"] == "succeeded"

    job = stack.wait_status(unreadable, "failed", "succeeded", "cancelled", timeout=60)
    assert job["status"] == "failed" and job["error_code"] == "invalid_dataset", job
    assert "cannot read dataset" in job["error_message"]

    time.sleep(3 * FAST_FAULTS["reconcile_seconds"])  # several reconciler passes: nothing is retried
    for job_id in (bad, slow, unreadable):
        job = stack.job_row(job_id)
        assert job["status"] == "failed" and job["attempts"] == 1
        assert len(stack.running_events(job_id)) == 1
    assert worker.alive() and worker.count("claimed by") == 4


def _submit_on_damaged_dataset(stack) -> str:
    import io

    import numpy as np

    from core.storage import make_storage

    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(buf, x=rng.normal(size=(40, 4)).astype(np.float32), y=np.arange(40) % 2)
    r = stack.client.post("/v1/datasets", files={"file": ("two.npz", buf.getvalue())}, headers=stack.headers)
    assert r.status_code == 201, r.text
    dataset = r.json()["id"]
    with stack.session() as s:
        from core.db import Dataset

        key = s.get(Dataset, dataset).storage_key
    storage = make_storage(stack.settings.storage_url)
    blob = storage.get_bytes(key)
    storage.put_bytes(key, blob[: len(blob) // 2])
    return stack.submit({"dataset": dataset, "training": {"epochs": 2}})


def test_lost_lease_stops_the_run_without_touching_the_job(stack_factory):
    from sqlalchemy import update

    from core.db import Job
    from worker.runner import RunOutcome, run_job

    stack = stack_factory("postgres")
    job_id = stack.insert_job(job_body(model=SLOW_MODEL, batch_size=16, epochs=30, seed=4))
    outcome: list[RunOutcome] = []
    runner = threading.Thread(target=lambda: outcome.append(run_job(job_id)))
    runner.start()
    stack.wait_epoch(job_id, 1, timeout=60)
    with stack.session() as s:  # another worker took the job over (as after an expired lease)
        s.execute(update(Job).where(Job.id == job_id).values(lease_owner="another-worker"))
        s.commit()
    runner.join(60)
    assert outcome == [RunOutcome.lease_lost]
    job = stack.job_row(job_id)
    assert job["status"] == "running" and job["lease_owner"] == "another-worker"
    assert job["epoch"] < 30 and job["finished_at"] is None and job["error_code"] is None


def test_reconciler_sends_a_job_the_broker_never_saw(stack_factory):
    stack = stack_factory("postgres", reconcile_seconds=1, requeue_after_seconds=2)
    job_id = stack.insert_job(job_body(epochs=2, seed=3))
    assert stack.job_row(job_id)["dispatched_at"] is None
    worker = stack.start_worker()
    job = stack.wait_status(job_id, "succeeded", "failed", timeout=60)
    assert job["status"] == "succeeded", stack.logs()
    assert job["attempts"] == 1 and job["dispatched_at"] is not None
    assert f"re-sent queued job {job_id}" in worker.log()


def test_reconcile_once_sends_each_lost_job_once(stack_factory):
    import redis

    from core.db import jobs as jobdb
    from worker.reconcile import reconcile_once

    stack = stack_factory("postgres", requeue_after_seconds=60)
    settings = stack.settings
    queue = redis.Redis.from_url(settings.broker_url)
    job_id = stack.insert_job(job_body(epochs=2))
    with stack.session() as s:
        assert reconcile_once(s, settings)["queued"] == [job_id]
        assert reconcile_once(s, settings)["queued"] == []  # dispatched just now: not again
    assert _backlog(queue, settings.queue) == 1

    with stack.session() as s:  # a worker claims it and dies: its lease expires
        assert jobdb.claim(s, job_id, "dead-worker", lease_seconds=0.2) == jobdb.ClaimOutcome.claimed
    with stack.session() as s:
        assert reconcile_once(s, settings)["expired"] == []  # lease still live
    time.sleep(0.4)
    with stack.session() as s:
        assert reconcile_once(s, settings)["expired"] == [job_id]
        assert reconcile_once(s, settings)["expired"] == []  # once per expiry
    assert _backlog(queue, settings.queue) == 2


def test_redis_restart_while_a_job_is_queued(stack_factory, private_redis):
    import redis

    stack = stack_factory(
        "postgres", broker_url=private_redis.url, reconcile_seconds=1, requeue_after_seconds=5
    )
    worker = stack.start_worker()
    busy = stack.submit(job_body(model=SLOW_MODEL, batch_size=16, epochs=10, seed=3))  # keeps the worker busy
    stack.wait_epoch(busy, 1)
    queued = stack.submit(job_body(epochs=2, seed=4))  # waits in Redis: prefetch 1, the solo worker is busy
    assert _backlog(redis.Redis.from_url(private_redis.url), stack.settings.queue) == 1

    private_redis.stop()  # no persistence: the queued message is lost
    time.sleep(1.0)
    private_redis.start()  # same port, empty
    assert _backlog(redis.Redis.from_url(private_redis.url), stack.settings.queue) == 0
    assert stack.job_row(queued)["status"] == "queued"

    for job_id in (busy, queued):
        job = stack.wait_status(job_id, "succeeded", "failed", "cancelled", timeout=120)
        assert job["status"] == "succeeded", (job, stack.logs())
        assert job["attempts"] == 1
        assert len(stack.running_events(job_id)) == 1
    assert worker.alive()
    assert f"re-sent queued job {queued}" in worker.log()


def test_heartbeat_survives_an_unreachable_database_and_gives_up_the_lease():
    from core.db import make_engine, make_sessionmaker
    from worker.heartbeat import Heartbeat

    engine = make_engine("postgresql://postgres@127.0.0.1:1/nowhere")  # nothing listens on port 1
    hb = Heartbeat(make_sessionmaker(engine), "job", "owner", lease_seconds=1.5, interval=0.2)
    hb.start()
    time.sleep(0.7)
    assert hb.is_alive() and hb.failures >= 1
    assert hb.lease_valid()  # not yet: the lease has not run out
    time.sleep(1.5)
    assert hb.lease_lost.is_set() and not hb.lease_valid()
    hb.stop()
    engine.dispose()


def test_heartbeat_sees_a_lease_taken_by_another_worker(stack_factory):
    from core.db import jobs as jobdb
    from worker.heartbeat import Heartbeat

    stack = stack_factory("postgres")
    job_id = stack.insert_job(job_body(epochs=2))
    with stack.session() as s:
        assert jobdb.claim(s, job_id, "a", lease_seconds=0.2) == jobdb.ClaimOutcome.claimed
    hb = Heartbeat(stack.Session, job_id, "a", lease_seconds=0.2, interval=10)
    time.sleep(0.3)
    with stack.session() as s:
        assert jobdb.claim(s, job_id, "b", lease_seconds=60) == jobdb.ClaimOutcome.claimed
    assert hb.beat_once() is True
    assert hb.lease_lost.is_set()
    with stack.session() as s:
        jobdb.request_cancel(s, job_id)
    hb_b = Heartbeat(stack.Session, job_id, "b", lease_seconds=60, interval=10)
    assert hb_b.beat_once() and hb_b.cancel_requested.is_set() and not hb_b.lease_lost.is_set()
