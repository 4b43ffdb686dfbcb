"""`GET /v1/jobs/{id}`, the route clients poll: one round trip to PostgreSQL per read (counted on the wire
with libpq's protocol trace), the key checked in the same statement (revocation applies at once, other
tenants' jobs are 404), a connection that died under the pool is replaced without a failed read, and
the objects built at startup are out of the garbage collector's full collections (they stalled requests).
"""

from __future__ import annotations

import gc
import time
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy import event

from core.auth import revoke_api_key
from core.db import jobs as jobstate
from core.db.session import PING_IDLE_S


@contextmanager
def wire_trace(engine, path):
    """Trace the PostgreSQL protocol of every connection checked out meanwhile, from checkout (before the
    ping of an idle connection) to checkin (after the reset on return), into `path`; yields a function that
    counts the round trips so far (one ReadyForQuery message ends each)."""
    out = open(path, "w")  # noqa: SIM115 - closed below

    def on_checkout(dbapi_conn, _record, _proxy):
        dbapi_conn.pgconn.trace(out.fileno())
        dbapi_conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)

    def on_checkin(dbapi_conn, _record):
        if dbapi_conn is not None and not dbapi_conn.closed:
            dbapi_conn.pgconn.untrace()  # flushes

    event.listen(engine, "checkout", on_checkout, insert=True)
    event.listen(engine, "checkin", on_checkin, insert=True)
    try:
        yield lambda: path.read_text().count("ReadyForQuery")
    finally:
        event.remove(engine, "checkout", on_checkout)
        event.remove(engine, "checkin", on_checkin)
        out.close()


@pytest.mark.services
def test_a_status_read_is_one_round_trip(make_service, tmp_path):
    svc = make_service("postgres")
    c = svc.client
    queued = svc.create_job()["id"]
    running = svc.create_job()["id"]
    with svc.sessionmaker() as s:  # a running job: its read also computes the ETA (in the same statement)
        assert jobstate.claim(s, running, "w1", 600) == jobstate.ClaimOutcome.claimed
        assert jobstate.record_epoch(s, running, "w1", 1, {"val": {"loss": 0.5}})
    assert c.get(f"/v1/jobs/{running}", headers=svc.auth_a).status_code == 200  # warm: pool, caches

    reads = [
        (f"/v1/jobs/{queued}", svc.auth_a, 200),
        (f"/v1/jobs/{running}", svc.auth_a, 200),
        (f"/v1/jobs/{queued}", svc.auth_b, 404),  # another tenant's job
        ("/v1/jobs/no-such-job", svc.auth_a, 404),
        (f"/v1/jobs/{queued}", {"Authorization": "Bearer st_unknown"}, 401),
    ]
    with wire_trace(svc.app.state.engine, tmp_path / "wire.trace") as round_trips:
        for path, auth, status in reads * 4:
            r = c.get(path, headers=auth)
            assert r.status_code == status, r.text
        trips = round_trips()
    # one each (the pool pings a connection only after PING_IDLE_S idle: allow one such ping)
    assert len(reads) * 4 <= trips <= len(reads) * 4 + 1, trips
    assert c.get(f"/v1/jobs/{running}", headers=svc.auth_a).json()["progress"]["epoch"] == 1


def test_a_revoked_key_is_refused_at_once(service):
    c = service.client
    job = service.create_job()["id"]
    assert c.get(f"/v1/jobs/{job}", headers=service.auth_a).status_code == 200
    with service.sessionmaker() as s:
        assert revoke_api_key(s, service.key_a)
    r = c.get(f"/v1/jobs/{job}", headers=service.auth_a)
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert r.json()["error"] == {
        "code": "unauthorized",
        "message": "invalid or revoked API key",
        "details": None,
    }
    assert c.get("/v1/jobs/no-such-job", headers=service.auth_a).status_code == 401  # 401 before 404
    assert c.get(f"/v1/jobs/{job}", headers=service.auth_b).status_code == 404
    for auth in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer nonsense"}):
        assert c.get(f"/v1/jobs/{job}", headers=auth).status_code == 401, auth


def _terminate_other_backends(svc) -> int:
    """Kill the server side of the app's connections to its database (a database restart, as its pool sees
    it), from a connection of our own."""
    url = svc.app.state.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()[0]
    return int(killed)


@pytest.mark.services
def test_dead_connections_are_replaced_without_failed_requests(make_service):
    svc = make_service("postgres")
    c = svc.client
    job = svc.create_job()["id"]
    assert c.get(f"/v1/jobs/{job}", headers=svc.auth_a).status_code == 200
    assert _terminate_other_backends(svc) >= 1
    # used a moment ago, so not pinged: the read fails on the dead connection and is tried once more
    r = c.get(f"/v1/jobs/{job}", headers=svc.auth_a)
    assert r.status_code == 200, r.text

    assert c.get("/v1/jobs", headers=svc.auth_a).status_code == 200
    assert _terminate_other_backends(svc) >= 1
    time.sleep(PING_IDLE_S + 0.2)
    # idle for longer than PING_IDLE_S: pinged on checkout and replaced before any route uses it
    assert c.get("/v1/jobs", headers=svc.auth_a).status_code == 200
    assert c.post(f"/v1/jobs/{job}/cancel", headers=svc.auth_a).status_code == 202


def test_startup_objects_are_frozen_out_of_full_collections(embedded):
    # the app has started (the TestClient ran its lifespan): once per process, what was alive then is frozen
    assert embedded.client.get("/healthz").status_code == 200
    assert gc.get_freeze_count() > 10_000
