"""Liveness, readiness (names what is down, fast) and Prometheus metrics."""

from __future__ import annotations

import time


def test_healthz_and_readyz(service):
    r = service.client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    r = service.client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_readyz_names_the_database_when_it_is_down(make_service):
    svc = make_service("sqlite")
    from fastapi.testclient import TestClient

    from api.main import create_app

    down = svc.settings.model_copy(update={"database_url": "postgresql://postgres@127.0.0.1:1/nothing"})
    with TestClient(create_app(down)) as client:
        start = time.monotonic()
        r = client.get("/readyz")
        elapsed = time.monotonic() - start
        assert r.status_code == 503
        body = r.json()
        assert body["checks"]["database"].startswith("down")
        assert body["checks"]["broker"] == "ok"
        assert "database" in body["error"]["message"]
        assert r.headers["Retry-After"]
        assert elapsed < 5
        # a request that needs the database is a fast 503 too (never a hang or a 500)
        start = time.monotonic()
        r = client.get("/v1/jobs", headers=svc.auth_a)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "database_unavailable"
        assert time.monotonic() - start < 5


def test_readyz_names_the_broker_when_it_is_down(make_service):
    svc = make_service("sqlite")
    from fastapi.testclient import TestClient

    from api.main import create_app

    down = svc.settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(down)) as client:
        r = client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["checks"]["database"] == "ok"
        assert r.json()["checks"]["broker"].startswith("down")


def test_metrics_counts_requests_and_jobs(embedded):
    embedded.create_job()
    embedded.client.get("/healthz")
    r = embedded.client.get("/metrics")
    assert r.status_code == 200
    text = r.text
    assert 'simtrain_http_requests_total{method="POST",route="/v1/jobs",status="201"} 1.0' in text
    assert "simtrain_http_request_duration_seconds_bucket" in text
    assert 'simtrain_jobs{status="queued"} 1.0' in text
    assert 'simtrain_jobs{status="running"} 0.0' in text


def test_openapi_and_unknown_route(embedded):
    r = embedded.client.get("/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    for p in ("/v1/jobs", "/v1/jobs/{job_id}/events/stream", "/v1/datasets", "/v1/jobs/{job_id}/predict"):
        assert p in paths
    r = embedded.client.get("/v1/nothing-here")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
