"""`/v1/weights`: safetensors uploads (validated from the header), never a pickle; tenant scope; quota;
delete refused while a job uses them; `model.init` ids checked when a job is submitted."""

from __future__ import annotations

import hashlib
import json
import struct
import uuid

import pytest
import torch
from storage_testlib import pickles_that_must_not_load, safetensors_bytes, upload_weights

from core.weights_store import MAX_HEADER_BYTES

JOB = {"dataset": "builtin:digits", "model": {"kind": "mlp", "hidden": [16]}, "training": {"epochs": 1}}


def _field(r) -> str:
    return r.json()["error"]["details"][0]["field"]


def test_upload_get_list_delete(service):
    c, a = service.client, service.auth_a
    data = safetensors_bytes()
    r = upload_weights(c, a, data, "mlp.safetensors", classes=json.dumps(["x", "y", "z"]))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "mlp.safetensors"
    assert body["sha256"] == hashlib.sha256(data).hexdigest() and body["size_bytes"] == len(data)
    assert body["num_tensors"] == 3 and body["num_parameters"] == 12 + 4 + 1
    assert body["dtypes"] == ["F32", "I64"] and body["classes"] == ["x", "y", "z"]
    key = f"weights/{service.tenant_a}/{body['id']}.safetensors"
    assert service.storage.get_bytes(key) == data

    second = upload_weights(c, a, safetensors_bytes(), name="no classes").json()
    assert second["name"] == "no classes" and second["classes"] is None
    assert c.get(f"/v1/weights/{body['id']}", headers=a).json() == body
    page = c.get("/v1/weights", params={"limit": 1}, headers=a).json()
    assert [w["id"] for w in page["items"]] == [second["id"]] and page["next_cursor"]
    rest = c.get("/v1/weights", params={"cursor": page["next_cursor"]}, headers=a).json()
    assert [w["id"] for w in rest["items"]] == [body["id"]] and rest["next_cursor"] is None

    assert c.delete(f"/v1/weights/{body['id']}", headers=a).status_code == 204
    assert c.get(f"/v1/weights/{body['id']}", headers=a).status_code == 404
    assert not service.storage.exists(key)
    assert [w["id"] for w in c.get("/v1/weights", headers=a).json()["items"]] == [second["id"]]


def test_another_tenants_weights_are_indistinguishable_from_missing_ones(service):
    c, a, b = service.client, service.auth_a, service.auth_b
    theirs = upload_weights(c, a, safetensors_bytes()).json()["id"]
    missing = str(uuid.uuid4())
    for method in ("GET", "DELETE"):
        r = c.request(method, f"/v1/weights/{theirs}", headers=b)
        m = c.request(method, f"/v1/weights/{missing}", headers=b)
        assert r.status_code == m.status_code == 404, r.text
        assert r.json()["error"]["message"].replace(theirs, "ID") == m.json()["error"]["message"].replace(
            missing, "ID"
        )
        assert r.json()["error"]["details"] == m.json()["error"]["details"]
    assert c.get("/v1/weights", headers=b).json()["items"] == []
    # nor can B's job warm-start from A's weights: the same 422 as for weights nobody has
    r = c.post("/v1/jobs", json={**JOB, "model": {**JOB["model"], "init": {"weights": theirs}}}, headers=b)
    m = c.post("/v1/jobs", json={**JOB, "model": {**JOB["model"], "init": {"weights": missing}}}, headers=b)
    assert r.status_code == m.status_code == 422, r.text
    assert _field(r) == _field(m) == "model.init.weights"
    assert r.json()["error"]["message"].replace(theirs, "ID") == m.json()["error"]["message"].replace(
        missing, "ID"
    )
    assert c.get(f"/v1/weights/{theirs}", headers=a).status_code == 200


def test_pickles_and_torch_files_are_refused_without_unpickling(embedded, tmp_path):
    marker = tmp_path / "unpickled"
    for filename, data in pickles_that_must_not_load(marker).items():
        for name in (filename, "disguised.safetensors"):
            r = upload_weights(embedded.client, embedded.auth_a, data, name)
            assert r.status_code == 422, (name, r.text)
            assert r.json()["error"]["code"] == "invalid_weights"
            assert _field(r) == "file"
            assert "never unpickled" in r.json()["error"]["message"]
            assert "safetensors" in r.json()["error"]["message"]
    assert not marker.exists(), "a refused file was unpickled"
    assert embedded.client.get("/v1/weights", headers=embedded.auth_a).json()["items"] == []
    assert embedded.storage.list("weights/") == []


@pytest.mark.parametrize(
    ("case", "data", "says"),
    [
        ("empty", b"", "empty"),
        ("short", b"\x01\x02", "shorter"),
        ("json", b'{"weight": [1, 2, 3]}', "header of"),
        ("huge header", struct.pack("<Q", MAX_HEADER_BYTES + 1) + b"{" + b" " * 64, "header of"),
        ("past the end", struct.pack("<Q", 400) + b'{"a": 1}', "past the end"),
        ("not json", struct.pack("<Q", 8) + b"[1, 2, 3]", "not the JSON"),
        ("truncated", safetensors_bytes()[:-3], "not a valid safetensors file"),
        ("trailing bytes", safetensors_bytes() + b"junk", "not a valid safetensors file"),
        ("no tensors", safetensors_bytes({}), "no tensors"),
        ("fp8", safetensors_bytes({"w": torch.zeros(2, dtype=torch.float8_e4m3fn)}), "dtype F8_E4M3"),
    ],
)
def test_files_that_are_not_usable_safetensors_are_422_naming_file(embedded, case, data, says):
    r = upload_weights(embedded.client, embedded.auth_a, data)
    assert r.status_code == 422, (case, r.text)
    assert _field(r) == "file", r.text
    assert says in r.json()["error"]["message"], r.text
    assert embedded.storage.list("weights/") == []


@pytest.mark.parametrize(
    ("classes", "says"),
    [
        ("[not json", "JSON list"),
        ('{"a": 1}', "JSON list"),
        ("[1, 2]", "strings"),
        ('["only"]', "2 to"),
        ('["a", "a"]', "duplicates"),
        (json.dumps(["a", ""]), "1 to 100 characters"),
    ],
)
def test_bad_classes_are_422_naming_classes(embedded, classes, says):
    r = upload_weights(embedded.client, embedded.auth_a, safetensors_bytes(), classes=classes)
    assert r.status_code == 422, r.text
    assert _field(r) == "classes" and says in r.json()["error"]["message"], r.text


def test_size_bound_and_stored_bytes_quota(make_service):
    svc = make_service("sqlite", max_weights_bytes=2048, max_stored_bytes_per_tenant=3000)
    big = safetensors_bytes({"w": torch.zeros(1024)})  # 4 KiB of data
    r = upload_weights(svc.client, svc.auth_a, big)
    assert r.status_code == 413, r.text
    assert r.json()["error"]["details"]["limit"] == 2048, r.text

    small = safetensors_bytes({"w": torch.zeros(300)})  # about 1.3 KiB
    first = upload_weights(svc.client, svc.auth_a, small)
    assert first.status_code == 201, first.text
    upload_weights(svc.client, svc.auth_a, small).raise_for_status()  # 2 x 1.3 KiB <= 3000
    third = upload_weights(svc.client, svc.auth_a, small)
    assert third.status_code == 429, third.text
    assert third.json()["error"]["code"] == "storage_quota_exceeded" and third.headers["Retry-After"]
    assert upload_weights(svc.client, svc.auth_b, small).status_code == 201  # another tenant's quota
    # deleting frees room
    svc.client.delete(f"/v1/weights/{first.json()['id']}", headers=svc.auth_a).raise_for_status()
    assert upload_weights(svc.client, svc.auth_a, small).status_code == 201


def test_datasets_count_in_the_weights_quota(make_service):
    import io

    import numpy as np

    svc = make_service("sqlite", max_stored_bytes_per_tenant=4000)
    buf = io.BytesIO()
    np.savez(buf, x=np.zeros((100, 4), dtype=np.float32), y=np.arange(100) % 2)  # about 2 KiB stored
    svc.client.post("/v1/datasets", files={"file": ("d.npz", buf.getvalue())}, headers=svc.auth_a)
    stored = svc.client.get("/v1/datasets", headers=svc.auth_a).json()["items"][0]["stored_bytes"]
    data = safetensors_bytes({"w": torch.zeros((4000 - stored) // 4 + 1)})
    assert len(data) + stored > 4000
    assert upload_weights(svc.client, svc.auth_a, data).status_code == 429


def test_weights_count_in_the_datasets_quota(make_service):
    import io

    import numpy as np

    svc = make_service("sqlite", max_stored_bytes_per_tenant=4000)
    weights = safetensors_bytes({"w": torch.zeros(700)})  # about 2.8 KiB
    assert upload_weights(svc.client, svc.auth_a, weights).status_code == 201
    buf = io.BytesIO()
    np.savez(buf, x=np.zeros((100, 4), dtype=np.float32), y=np.arange(100) % 2)  # about 2 KiB stored
    r = svc.client.post("/v1/datasets", files={"file": ("d.npz", buf.getvalue())}, headers=svc.auth_a)
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "storage_quota_exceeded"
    other = svc.client.post("/v1/datasets", files={"file": ("d.npz", buf.getvalue())}, headers=svc.auth_b)
    assert other.status_code == 201, other.text  # the weights are tenant a's


def test_delete_is_refused_while_a_job_warm_starts_from_them(embedded):
    c, a = embedded.client, embedded.auth_a
    weights = upload_weights(c, a, safetensors_bytes()).json()["id"]
    job = c.post("/v1/jobs", json={**JOB, "model": {**JOB["model"], "init": {"weights": weights}}}, headers=a)
    assert job.status_code == 201, job.text
    assert job.json()["spec"]["model"]["init"] == {"weights": weights}
    r = c.delete(f"/v1/weights/{weights}", headers=a)
    assert r.status_code == 409, r.text
    assert r.json()["error"]["details"]["jobs"] == [job.json()["id"]]
    c.post(f"/v1/jobs/{job.json()['id']}/cancel", headers=a).raise_for_status()
    assert c.delete(f"/v1/weights/{weights}", headers=a).status_code == 204


def test_a_job_warm_starting_from_an_unusable_job_is_422(service, trained_artifacts, finish_with_artifacts):
    c, a, b = service.client, service.auth_a, service.auth_b

    def submit(init: dict, auth=a):
        return c.post("/v1/jobs", json={**JOB, "model": {**JOB["model"], "init": init}}, headers=auth)

    queued = service.create_job(JOB)["id"]
    for init, says in (
        ({"from_job": str(uuid.uuid4())}, "no job"),
        ({"from_job": queued}, "is queued"),
    ):
        r = submit(init)
        assert r.status_code == 422, r.text
        assert _field(r) == "model.init.from_job" and says in r.json()["error"]["message"], r.text
    finish_with_artifacts(service, queued, trained_artifacts)
    ok = submit({"from_job": queued})
    assert ok.status_code == 201, ok.text
    theirs = submit({"from_job": queued}, auth=b)  # another tenant's succeeded job: as if missing
    assert theirs.status_code == 422 and _field(theirs) == "model.init.from_job"
    assert "no job" in theirs.json()["error"]["message"]
    r = submit({"from_job": queued, "weights": queued})
    assert r.status_code == 422 and _field(r).startswith("model.init"), r.text


def test_a_form_without_the_file_or_with_a_bad_name_is_422_naming_the_field(embedded):
    c, a = embedded.client, embedded.auth_a
    r = c.post("/v1/weights", files={"other": ("w.safetensors", safetensors_bytes())}, headers=a)
    assert r.status_code == 422 and _field(r) == "file", r.text
    r = c.post("/v1/weights", json={"file": "x"}, headers=a)
    assert r.status_code == 422 and _field(r) == "file", r.text
    r = upload_weights(c, a, safetensors_bytes(), name="n" * 201)
    assert r.status_code == 422 and _field(r) == "name", r.text
    assert embedded.storage.list("weights/") == []
