"""Load on the embedded default: SQLite for the jobs and the SQLAlchemy broker, no server but the API.

50 clients submit 200 jobs at once (distinct Idempotency-Keys) while 10 more read job statuses and
pages back to back: no request fails (no "database is locked" reaching a client as a 500), every job is
recorded and dispatched exactly once, replays return the same jobs, and every job ends (cancelled while
queued: no worker, training 200 jobs on two cores is not a test).
"""

from __future__ import annotations

import sqlite3
import threading
import time

import httpx
import pytest
from hostile_testlib import add_key
from sqlalchemy import func, select
from test_load import _body, _percentile, _run_concurrently

from core.db import make_engine, make_sessionmaker
from core.db.models import Job, JobEvent

JOBS = 200
READERS = 10


@pytest.mark.timeout(300)
def test_concurrent_submissions_and_reads_on_sqlite(api_server):
    server = api_server(max_active_jobs_per_tenant=JOBS + 10)
    key = add_key(server.database_url, "embedded-load")
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
        first = client.post("/v1/jobs", json=_body(-1)).json()["id"]  # something to read from the start

    def submit(client, i):
        start = time.perf_counter()
        r = client.post("/v1/jobs", json=_body(i), headers={"Idempotency-Key": f"embedded-{i}"})
        return r.status_code, (r.json().get("id") if r.status_code < 300 else r.text), time.perf_counter() - start

    # readers: the status of a job and the first page of the list, back to back, during the burst
    stop = threading.Event()
    reads: list[tuple[int, float]] = []

    def read():
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
            while not stop.is_set():
                for path in (f"/v1/jobs/{first}", "/v1/jobs?limit=20"):
                    start = time.perf_counter()
                    status = client.get(path).status_code
                    reads.append((status, time.perf_counter() - start))

    readers = [threading.Thread(target=read, daemon=True) for _ in range(READERS)]
    for t in readers:
        t.start()
    wall = time.perf_counter()
    results = _run_concurrently(server.url, key, list(range(JOBS)), submit)
    wall = time.perf_counter() - wall
    stop.set()
    for t in readers:
        t.join(60)

    bad = [(i, s, body) for i, (s, body, _) in enumerate(results) if s != 201]
    assert not bad, f"{len(bad)} submissions failed, e.g. {bad[:3]}\n{server.logs()}"
    ids = [body for _, body, _ in results]
    assert len(set(ids)) == JOBS
    failed_reads = [s for s, _ in reads if s != 200]
    assert reads and not failed_reads, (len(reads), failed_reads[:5], server.logs())
    latencies = [t for _, _, t in results]
    read_times = [t for _, t in reads]
    print(
        f"\nSQLite: {JOBS} submissions by 50 clients in {wall:.1f}s ({JOBS / wall:.0f}/s): p50 "
        f"{_percentile(latencies, 0.5) * 1000:.0f} ms, p99 {_percentile(latencies, 0.99) * 1000:.0f} ms; "
        f"{len(reads)} reads alongside: p50 {_percentile(read_times, 0.5) * 1000:.0f} ms, "
        f"p99 {_percentile(read_times, 0.99) * 1000:.0f} ms"
    )

    # the same keys and bodies again: the same jobs
    replays = _run_concurrently(server.url, key, list(range(50)), submit)
    assert [s for s, _, _ in replays] == [200] * 50, replays[:3]
    assert [body for _, body, _ in replays] == ids[:50]

    engine = make_engine(server.database_url)
    try:
        with make_sessionmaker(engine)() as s:
            assert s.execute(select(func.count()).select_from(Job)).scalar_one() == JOBS + 1
            undispatched = select(func.count()).select_from(Job).where(Job.dispatched_at.is_(None))
            assert s.execute(undispatched).scalar_one() == 0
        # one task message per job in the embedded broker's own database, none for the replays
        broker = sqlite3.connect(server.home / "broker.db")
        try:
            assert broker.execute("select count(*) from kombu_message").fetchone()[0] == JOBS + 1
        finally:
            broker.close()

        def cancel(client, job_id):
            r = client.post(f"/v1/jobs/{job_id}/cancel")
            return r.status_code, r.json().get("status")

        cancelled = _run_concurrently(server.url, key, [*ids, first], cancel)
        assert set(cancelled) == {(202, "cancelled")}, set(cancelled)
        with make_sessionmaker(engine)() as s:
            statuses = dict(s.execute(select(Job.status, func.count()).group_by(Job.status)).all())
            assert statuses == {"cancelled": JOBS + 1}, statuses
            per_job = s.execute(
                select(JobEvent.job_id, func.count()).where(JobEvent.kind == "state").group_by(JobEvent.job_id)
            ).all()
            assert len(per_job) == JOBS + 1 and {n for _, n in per_job} == {2}
    finally:
        engine.dispose()
