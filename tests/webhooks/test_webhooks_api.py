"""`/v1/webhooks`: the secret shown once, tenant isolation, validation that names the field, and the one
URL allow-list (private addresses refused unless `SIMTRAIN_FETCH_ALLOW` opens them, https by default)."""

from __future__ import annotations

import base64

import pytest
from standardwebhooks.webhooks import Webhook as ReferenceVerifier
from webhook_testlib import create_hook, emit_event, fields

PUBLIC_HTTPS = "https://93.184.215.14/hook"  # a public address literal: no name lookup, no connection


def test_create_shows_the_secret_once(hooks_service):
    svc = hooks_service
    hook = create_hook(svc.client, svc.auth_a, "http://127.0.0.1:8080/hook", ["job.*", "dataset.ready"])
    assert hook["events"] == ["job.*", "dataset.ready"]
    secret = hook["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[len("whsec_") :])) >= 24
    ReferenceVerifier(secret)  # the reference library accepts its form
    got = svc.client.get(f"/v1/webhooks/{hook['id']}", headers=svc.auth_a)
    assert got.status_code == 200 and "secret" not in got.json()
    assert got.json()["url"] == "http://127.0.0.1:8080/hook"
    listed = svc.client.get("/v1/webhooks", headers=svc.auth_a).json()["items"]
    assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]
    other = create_hook(svc.client, svc.auth_a, "http://127.0.0.1:8080/other")
    assert other["secret"] != secret


def test_another_tenants_webhook_is_404(hooks_service):
    svc = hooks_service
    hook = create_hook(svc.client, svc.auth_a, "http://127.0.0.1:8080/hook")
    for method, path in [
        ("get", f"/v1/webhooks/{hook['id']}"),
        ("get", f"/v1/webhooks/{hook['id']}/deliveries"),
        ("delete", f"/v1/webhooks/{hook['id']}"),
    ]:
        r = svc.client.request(method.upper(), path, headers=svc.auth_b)
        assert r.status_code == 404, (method, path, r.text)
    assert svc.client.get("/v1/webhooks", headers=svc.auth_b).json()["items"] == []
    assert svc.client.get(f"/v1/webhooks/{hook['id']}", headers=svc.auth_a).status_code == 200
    # tenant B's events never reach tenant A's webhook
    assert emit_event(svc.sessionmaker, svc.tenant_b, "job.succeeded") == []
    assert len(emit_event(svc.sessionmaker, svc.tenant_a, "job.succeeded")) == 1


def test_delete_removes_the_webhook_and_its_deliveries(hooks_service):
    svc = hooks_service
    hook = create_hook(svc.client, svc.auth_a, "http://127.0.0.1:8080/hook")
    emit_event(svc.sessionmaker, svc.tenant_a, "job.failed")
    deliveries = svc.client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=svc.auth_a).json()
    assert [d["status"] for d in deliveries["items"]] == ["pending"]
    assert svc.client.delete(f"/v1/webhooks/{hook['id']}", headers=svc.auth_a).status_code == 204
    assert svc.client.get(f"/v1/webhooks/{hook['id']}", headers=svc.auth_a).status_code == 404
    assert emit_event(svc.sessionmaker, svc.tenant_a, "job.failed") == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"events": ["job.*"]}, "url"),
        ({"url": "", "events": ["job.*"]}, "url"),
        ({"url": "https://h.example/" + "a" * 2000, "events": ["job.*"]}, "url"),
        ({"url": "ftp://127.0.0.1/hook", "events": ["job.*"]}, "url"),
        ({"url": "file:///etc/passwd", "events": ["job.*"]}, "url"),
        ({"url": "s3://bucket/key", "events": ["job.*"]}, "url"),
        ({"url": "not a url", "events": ["job.*"]}, "url"),
        ({"url": "http://127.0.0.1:22/hook", "events": ["job.*"]}, "url"),
        ({"url": PUBLIC_HTTPS}, "events"),
        ({"url": PUBLIC_HTTPS, "events": []}, "events"),
        ({"url": PUBLIC_HTTPS, "events": ["job.started"]}, "events"),
        ({"url": PUBLIC_HTTPS, "events": ["foo.*"]}, "events"),
        ({"url": PUBLIC_HTTPS, "events": ["job"]}, "events"),
        ({"url": PUBLIC_HTTPS, "events": ["x" * 65]}, "events.0"),
        ({"url": PUBLIC_HTTPS, "events": "job.*"}, "events"),
        ({"url": PUBLIC_HTTPS, "events": ["job.*"], "description": "d" * 201}, "description"),
        ({"url": PUBLIC_HTTPS, "events": ["job.*"], "secret": "whsec_mine"}, "secret"),
    ],
)
def test_bad_input_is_422_naming_the_field(hooks_service, body, field):
    r = hooks_service.client.post("/v1/webhooks", json=body, headers=hooks_service.auth_a)
    assert field in fields(r), r.text


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "https://127.0.0.1:8443/hook",
        "https://localhost:8443/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]:8443/hook",
        "https://[::ffff:127.0.0.1]:8443/hook",
        "https://0.0.0.0/hook",
        "https://2130706433/hook",
    ],
)
def test_private_addresses_are_refused_without_the_allow_list(embedded, url):
    r = embedded.client.post("/v1/webhooks", json={"url": url, "events": ["*"]}, headers=embedded.auth_a)
    assert fields(r) == ["url"], r.text


def test_https_by_default_http_only_where_the_allow_list_opens(make_service):
    svc = make_service("sqlite", fetch_allow="10.0.0.0/8")
    r = svc.client.post(
        "/v1/webhooks", json={"url": "http://93.184.215.14/hook", "events": ["*"]}, headers=svc.auth_a
    )
    assert fields(r) == ["url"] and "https" in r.json()["error"]["message"]
    assert create_hook(svc.client, svc.auth_a, PUBLIC_HTTPS)["url"] == PUBLIC_HTTPS
    assert create_hook(svc.client, svc.auth_a, "http://10.2.3.4:8080/hook")["url"].startswith("http://10.")
    r = svc.client.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:8080/", "events": ["*"]}, headers=svc.auth_a
    )
    assert fields(r) == ["url"]  # 10.0.0.0/8 does not open loopback


def test_webhooks_per_tenant_are_bounded(make_service):
    svc = make_service("sqlite", max_webhooks_per_tenant=2)
    for _ in range(2):
        create_hook(svc.client, svc.auth_a, PUBLIC_HTTPS)
    r = svc.client.post("/v1/webhooks", json={"url": PUBLIC_HTTPS, "events": ["*"]}, headers=svc.auth_a)
    assert r.status_code == 409, r.text
    assert create_hook(svc.client, svc.auth_b, PUBLIC_HTTPS)  # another tenant's count
