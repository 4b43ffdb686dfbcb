"""PostgreSQL freezes under the API (SIGSTOP: connections stay open, nothing answers) and thaws.

Unlike a stopped server (tests/hostile/test_postgres_outage.py), a frozen one fails no statement: a
request on a pooled connection blocks in its worker thread until the server runs again. The request
deadline (`request_timeout_s`, api/deadline.py) answers such requests 503 in bounded time; once the
server thaws the API serves again, and a submission that timed out is found again by its
Idempotency-Key: exactly one job.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from hostile_testlib import timed_request
from sqlalchemy import func, select

from core.db.models import Job

JOB = {"dataset": "builtin:digits", "loss": {"kind": "cross_entropy"}, "training": {"epochs": 2}}
DEADLINE = 2.0


def _postgres_pids(data_dir: Path) -> list[int]:
    """The postmaster and every process it started (the backends holding our connections)."""
    postmaster = int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    pids = [postmaster]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == postmaster:
                pids.append(int(entry))
    return pids


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


@pytest.mark.services
@pytest.mark.timeout(240)
def test_frozen_postgres_gets_bounded_503s_then_serves_again(make_service, private_pg):
    svc = make_service("sqlite", database_url=private_pg.url, request_timeout_s=DEADLINE)
    c, auth = svc.client, svc.auth_a
    queued = svc.create_job(JOB)["id"]
    assert c.get(f"/v1/jobs/{queued}", headers=auth).status_code == 200  # the pool holds live connections

    frozen = _postgres_pids(private_pg.data)
    _signal(frozen, signal.SIGSTOP)
    try:
        for method, path, body, headers in [
            ("GET", f"/v1/jobs/{queued}", None, {}),
            ("GET", "/v1/jobs", None, {}),
            ("POST", "/v1/jobs", JOB, {"Idempotency-Key": "while-frozen"}),
        ]:
            r, took = timed_request(c, method, path, json=body, headers={**auth, **headers})
            assert r.status_code == 503, (method, path, r.status_code, r.text)
            assert r.json()["error"]["code"] in ("request_timeout", "database_unavailable"), r.text
            assert int(r.headers["Retry-After"]) > 0
            assert took < DEADLINE + 3.0, (method, path, took)
        r, took = timed_request(c, "GET", "/healthz")
        assert r.status_code == 200 and took < 1.0
        r, took = timed_request(c, "GET", "/readyz")
        assert r.status_code == 503 and took < DEADLINE + 3.0, (r.status_code, took, r.text)
    finally:
        _signal(frozen, signal.SIGCONT)

    deadline = time.monotonic() + 60
    while True:  # the requests stuck in their threads finish; new ones are served again
        r = c.get(f"/v1/jobs/{queued}", headers=auth)
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert r.status_code == 200, r.text

    # the submission that timed out may have been stored when the server thawed: a retry with the same
    # Idempotency-Key returns it, or creates it if it was not; either way there is exactly one
    r = c.post("/v1/jobs", json=JOB, headers={**auth, "Idempotency-Key": "while-frozen"})
    assert r.status_code in (200, 201), r.text
    with svc.sessionmaker() as s:
        count = select(func.count()).select_from(Job).where(Job.idempotency_key == "while-frozen")
        assert s.execute(count).scalar_one() == 1
        assert s.execute(select(func.count()).select_from(Job)).scalar_one() == 2
    assert c.get("/readyz").status_code == 200
