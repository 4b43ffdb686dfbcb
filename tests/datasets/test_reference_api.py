"""Dataset references at the API and in the database, without a worker: what `POST /v1/datasets` with a JSON
body accepts and refuses, the same reference twice, tenants, jobs naming a URI, deleting while importing,
and the claim / re-send / wait rules the worker relies on (`core.dataset_import`, `core.dataset_import_claims`,
`worker.reconcile.reconcile_imports`). The app runs on the embedded default; URLs point at a local HTTP
server on 127.0.0.1 (never contacted here: the worker does the fetching)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from reftestlib import SMALL_JOB, register

ALLOW = {"fetch_allow": "127.0.0.1/32"}


@pytest.fixture
def svc(make_service):
    return make_service("sqlite", **ALLOW)


def _field(r) -> str:
    return r.json()["error"]["details"][0]["field"]


def _row(svc, dataset_id: str):
    from core.db.models import Dataset

    with svc.sessionmaker() as s:
        return s.get(Dataset, dataset_id)


# ------------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "uri",
    ["ftp://files.example.com/data.npz", "file:///etc/passwd", "gopher://x/y.npz", "http://", "not a url",
     "https://user:pw@example.com/data.npz", "http://10.0.0.8/data.npz", "http://169.254.169.254/latest.npz",
     "http://[::1]/data.npz", "s3://Bad_Bucket/data.npz"],
)  # fmt: skip
def test_refused_uris_are_422_naming_uri_and_store_nothing(svc, uri):
    r = register(svc.client, svc.auth_a, uri)
    assert r.status_code == 422, r.text
    assert _field(r) == "uri"
    assert svc.client.get("/v1/datasets", headers=svc.auth_a).json()["items"] == []


def test_loopback_is_refused_unless_the_allow_list_opens_it(make_service, http_files):
    url = http_files.serve("/table.npz", b"x")
    closed = make_service("sqlite")
    r = register(closed.client, closed.auth_a, url)
    assert r.status_code == 422 and _field(r) == "uri"
    assert "loopback" in r.json()["error"]["message"]
    job = closed.client.post("/v1/jobs", json={"dataset": url, **SMALL_JOB}, headers=closed.auth_a)
    assert job.status_code == 422 and _field(job) == "dataset", job.text
    opened = make_service("sqlite", **ALLOW)
    assert register(opened.client, opened.auth_a, url).status_code == 202


@pytest.mark.parametrize(
    ("body", "field"),
    [({"sha256": "abc"}, "sha256"), ({"format": "npy"}, "format"), ({"image_size": 600}, "image_size"),
     ({"image_size": "9x9x9"}, "image_size"), ({"resize": "crop"}, "resize"), ({"name": ""}, "name"),
     ({"label_column": "x" * 101}, "label_column"), ({"extra": 1}, "extra"), ({"uri": "x" * 2001}, "uri"),
     ({"uri": 5}, "uri")],
)  # fmt: skip
def test_bad_fields_are_422_naming_them(svc, http_files, body, field):
    r = svc.client.post("/v1/datasets", json={"uri": http_files.base + "/t.npz", **body}, headers=svc.auth_a)
    assert r.status_code == 422, r.text
    assert _field(r) == field


def test_a_uri_without_a_known_extension_needs_a_format(svc, http_files):
    r = register(svc.client, svc.auth_a, http_files.base + "/download?id=7")
    assert r.status_code == 422 and _field(r) == "format"
    r = register(svc.client, svc.auth_a, http_files.base + "/download?id=7", format="zip")
    assert r.status_code == 202 and r.json()["format"] == "zip"


def test_json_without_uri_names_file_and_uri_and_bad_json_is_422(svc):
    r = svc.client.post("/v1/datasets", json={"name": "x"}, headers=svc.auth_a)
    assert r.status_code == 422
    assert [d["field"] for d in r.json()["error"]["details"]] == ["file", "uri"]
    r = svc.client.post(
        "/v1/datasets", content=b"{not json", headers={**svc.auth_a, "Content-Type": "application/json"}
    )
    assert r.status_code == 422, r.text


# ---------------------------------------------------------------------------------------- registering


def test_a_reference_is_stored_importing_and_the_same_one_again_is_the_same_row(svc, http_files):
    url = http_files.serve("/data/table.npz", b"unused")
    r = register(svc.client, svc.auth_a, url, name="tables", label_column="label")
    assert r.status_code == 202, r.text
    body = r.json()
    assert (body["status"], body["source_uri"], body["error"], body["name"]) == (
        "importing",
        url,
        None,
        "tables",
    )
    assert body["format"] == "npz" and body["num_samples"] == 0
    assert svc.queued_messages() == 1  # the import task, sent after the commit
    again = register(svc.client, svc.auth_a, url, name="tables", label_column="label")
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    other = [register(svc.client, svc.auth_a, url, sha256="ab" * 32), register(svc.client, svc.auth_a, url,
             image_size=16), register(svc.client, svc.auth_a, url + "?v=2", format="npz")]  # fmt: skip
    assert [o.status_code for o in other] == [202, 202, 202]
    assert len({o.json()["id"] for o in other} | {body["id"]}) == 4
    got = svc.client.get(f"/v1/datasets/{body['id']}", headers=svc.auth_a).json()
    assert (got["status"], got["source_uri"], got["error"]) == ("importing", url, None)
    assert svc.client.delete(f"/v1/datasets/{body['id']}", headers=svc.auth_a).status_code == 409


def test_a_failed_reference_is_imported_again_when_given_again(svc, http_files):
    from sqlalchemy import update

    from core.db.models import Dataset

    url = http_files.serve("/t.npz", b"unused")
    first = register(svc.client, svc.auth_a, url).json()
    error = {"code": "fetch_failed", "message": "unreachable", "field": "uri"}
    with svc.sessionmaker() as s:
        s.execute(update(Dataset).where(Dataset.id == first["id"]).values(status="failed", error=error))
        s.commit()
    failed = svc.client.get(f"/v1/datasets/{first['id']}", headers=svc.auth_a).json()
    assert failed["status"] == "failed" and failed["error"] == error
    job = svc.client.post("/v1/jobs", json={"dataset": first["id"], **SMALL_JOB}, headers=svc.auth_a)
    assert job.status_code == 422 and _field(job) == "dataset" and "unreachable" in job.text
    again = register(svc.client, svc.auth_a, url)
    assert again.status_code == 202 and again.json()["id"] == first["id"]
    assert (again.json()["status"], again.json()["error"]) == ("importing", None)
    assert svc.client.delete(f"/v1/datasets/{first['id']}", headers=svc.auth_a).status_code == 409


def test_tenants_never_see_each_others_references(svc, http_files):
    url = http_files.serve("/shared.npz", b"unused")
    mine = register(svc.client, svc.auth_a, url).json()
    theirs = register(svc.client, svc.auth_b, url)
    assert theirs.status_code == 202 and theirs.json()["id"] != mine["id"]
    assert svc.client.get(f"/v1/datasets/{mine['id']}", headers=svc.auth_b).status_code == 404
    assert svc.client.delete(f"/v1/datasets/{mine['id']}", headers=svc.auth_b).status_code == 404
    listed = svc.client.get("/v1/datasets", headers=svc.auth_b).json()["items"]
    assert [d["id"] for d in listed] == [theirs.json()["id"]]
    job = svc.client.post("/v1/jobs", json={"dataset": mine["id"], **SMALL_JOB}, headers=svc.auth_b)
    assert job.status_code == 404, job.text


def test_a_job_naming_a_uri_registers_it_and_refers_to_its_id(svc, http_files):
    url = http_files.serve("/jobdata.npz", b"unused")
    job = svc.client.post("/v1/jobs", json={"dataset": url, **SMALL_JOB}, headers=svc.auth_a)
    assert job.status_code == 201, job.text
    dataset_id = job.json()["dataset"]
    ds = svc.client.get(f"/v1/datasets/{dataset_id}", headers=svc.auth_a).json()
    assert (ds["status"], ds["source_uri"]) == ("importing", url)
    assert job.json()["spec"]["classes"] is None  # all of the dataset's, once it is known
    second = svc.client.post("/v1/jobs", json={"dataset": url, **SMALL_JOB}, headers=svc.auth_a).json()
    assert second["dataset"] == dataset_id  # the same reference: the same dataset
    assert register(svc.client, svc.auth_a, url).json()["id"] == dataset_id
    bad = svc.client.post("/v1/jobs", json={"dataset": "ftp://x.example.com/d.npz"}, headers=svc.auth_a)
    assert bad.status_code == 422 and _field(bad) == "dataset"
    long_epochs = {"dataset": url, "training": {"epochs": 10**6}}
    assert _field(svc.client.post("/v1/jobs", json=long_epochs, headers=svc.auth_a)) == "training.epochs"


def test_openapi_documents_the_multipart_and_the_json_body(svc):
    document = svc.client.get("/openapi.json").json()
    content = document["paths"]["/v1/datasets"]["post"]["requestBody"]["content"]
    assert set(content) == {"multipart/form-data", "application/json"}
    assert content["application/json"]["schema"]["required"] == ["uri"]
    assert "202" in document["paths"]["/v1/datasets"]["post"]["responses"]


# ---------------------------------------------------------------------------- claims, re-sends, waiting


def test_one_claim_at_a_time_and_only_an_expired_one_is_sent_again(svc, http_files):
    from core.dataset_import_claims import claim, stale_imports
    from core.db.types import now
    from worker.reconcile import reconcile_imports

    dataset_id = register(svc.client, svc.auth_a, http_files.serve("/c.npz", b"unused")).json()["id"]
    sent: list[str] = []
    t = now()
    settings = svc.settings.model_copy(update={"requeue_after_seconds": 60.0})
    with svc.sessionmaker() as s:
        assert stale_imports(s, requeue_after_seconds=60, now=t) == []  # just sent
        later = t + timedelta(seconds=61)
        assert reconcile_imports(s, settings, send=sent.append, now=later)["sent"] == [dataset_id]
        assert reconcile_imports(s, settings, send=sent.append, now=later)["sent"] == []  # once
        owner = claim(s, dataset_id, lease_seconds=30, now=later)
        assert owner is not None
        assert claim(s, dataset_id, lease_seconds=30, now=later) is None  # a second delivery: no
        live = later + timedelta(seconds=29)
        assert reconcile_imports(s, settings, send=sent.append, now=live)["sent"] == []
        expired = later + timedelta(seconds=31)
        assert reconcile_imports(s, settings, send=sent.append, now=expired)["sent"] == [dataset_id]
        assert claim(s, dataset_id, lease_seconds=30, now=expired) not in (None, owner)
    assert sent == [dataset_id, dataset_id]


def test_a_queued_job_waits_for_an_importing_dataset_for_a_bounded_time(svc, http_files):
    from sqlalchemy import update

    from core.dataset_import import import_wait
    from core.dataset_store import open_dataset
    from core.db.models import Dataset, Job
    from core.errors import DatasetError

    url = http_files.serve("/w.npz", b"unused")
    job = svc.client.post("/v1/jobs", json={"dataset": url, **SMALL_JOB}, headers=svc.auth_a).json()
    settings = svc.settings.model_copy(update={"import_wait_s": 30.0})
    with svc.sessionmaker() as s:
        created = s.get(Job, job["id"]).created_at
        assert 0 < import_wait(s, settings, job["id"], now=created + timedelta(seconds=1)) <= 5
        assert import_wait(s, settings, job["id"], now=created + timedelta(seconds=31)) is None
        with pytest.raises(DatasetError, match="still importing") as err:
            open_dataset(s, svc.storage, svc.tenant_a, job["dataset"])
        assert err.value.field == "dataset"
        error = {"code": "fetch_failed", "message": "HTTP 404", "field": "uri"}
        s.execute(update(Dataset).where(Dataset.id == job["dataset"]).values(status="failed", error=error))
        s.commit()
        assert import_wait(s, settings, job["id"], now=created + timedelta(seconds=1)) is None
        with pytest.raises(DatasetError, match="failed: HTTP 404") as err:
            open_dataset(s, svc.storage, svc.tenant_a, job["dataset"])
        assert err.value.field == "dataset"
