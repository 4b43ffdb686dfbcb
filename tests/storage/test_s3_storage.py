"""`SIMTRAIN_STORAGE_URL=s3://bucket/prefix` against a real S3-compatible server (moto, its own process):
the storage contract, the endpoint taken from `SIMTRAIN_S3_ENDPOINT_URL`, writes by others seen at once,
and the API storing uploads in the bucket."""

from __future__ import annotations

import io

import numpy as np
import pytest
from storage_testlib import safetensors_bytes, upload_weights

from core.storage import FsspecStorage, make_storage, s3_storage_options


def _bucket_and_prefix(url: str) -> tuple[str, str]:
    bucket, prefix = url[len("s3://") :].split("/", 1)
    return bucket, prefix


def test_storage_contract_on_s3(s3_storage_url, s3_server, simtrain_env, tmp_path):
    simtrain_env()  # settings re-read: the endpoint comes from SIMTRAIN_S3_ENDPOINT_URL
    storage = make_storage(s3_storage_url)
    assert isinstance(storage, FsspecStorage)
    assert storage.fs.client_kwargs == {"endpoint_url": s3_server}
    assert storage.list("") == []
    storage.put_bytes("jobs/1/model.json", b"{}")
    local = tmp_path / "big.bin"
    local.write_bytes(bytes(range(256)) * 8192)  # 2 MiB: more than one part of a streamed write
    storage.put_file("jobs/1/artifacts/big.bin", local)
    assert storage.list("jobs/") == ["jobs/1/artifacts/big.bin", "jobs/1/model.json"]
    assert storage.list("jobs/1/a") == ["jobs/1/artifacts/big.bin"]
    assert storage.size("jobs/1/artifacts/big.bin") == 2 * 1024 * 1024
    with storage.open("jobs/1/artifacts/big.bin") as f:
        assert f.read() == local.read_bytes()
    assert storage.exists("jobs/1/model.json") and not storage.exists("jobs/2/model.json")
    with pytest.raises(FileNotFoundError):
        storage.get_bytes("jobs/2/model.json")
    with pytest.raises(ValueError):
        storage.put_bytes("../escape", b"x")
    storage.put_bytes("jobs/1/model.json", b'{"v": 2}')  # replaced whole
    assert storage.get_bytes("jobs/1/model.json") == b'{"v": 2}'
    assert storage.delete_prefix("jobs/1/") == 2
    assert storage.list("") == []
    storage.delete("jobs/1/model.json")  # missing: not an error


def test_objects_written_by_another_process_are_seen_at_once(s3_storage_url, s3_server, simtrain_env):
    from tests.s3server import make_bucket

    simtrain_env()
    storage = make_storage(s3_storage_url)
    bucket, prefix = _bucket_and_prefix(s3_storage_url)
    assert storage.list("jobs/7/checkpoints/") == [] and not storage.exists("jobs/7/checkpoints/e1.pt")
    client = make_bucket(s3_server, bucket)  # another writer (a worker elsewhere)
    client.put_object(Bucket=bucket, Key=f"{prefix}/jobs/7/checkpoints/e1.pt", Body=b"1")
    assert storage.list("jobs/7/checkpoints/") == ["jobs/7/checkpoints/e1.pt"]
    assert storage.exists("jobs/7/checkpoints/e1.pt")
    client.delete_object(Bucket=bucket, Key=f"{prefix}/jobs/7/checkpoints/e1.pt")
    assert storage.list("jobs/7/") == [] and not storage.exists("jobs/7/checkpoints/e1.pt")


def test_storage_options_without_an_endpoint():
    assert s3_storage_options("") == {"use_listings_cache": False}
    assert s3_storage_options("http://minio:9000")["client_kwargs"] == {"endpoint_url": "http://minio:9000"}


def test_the_api_stores_uploads_in_the_bucket(make_service, s3_storage_url, s3_server):
    from tests.s3server import make_bucket

    svc = make_service("sqlite", storage_url=s3_storage_url)
    buf = io.BytesIO()
    np.savez(buf, x=np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32), y=np.arange(30) % 3)
    ds = svc.client.post("/v1/datasets", files={"file": ("d.npz", buf.getvalue())}, headers=svc.auth_a)
    assert ds.status_code == 201, ds.text
    weights = upload_weights(svc.client, svc.auth_a, safetensors_bytes())
    assert weights.status_code == 201, weights.text

    bucket, prefix = _bucket_and_prefix(s3_storage_url)
    listed = make_bucket(s3_server, bucket).list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/")
    keys = {o["Key"][len(prefix) + 1 :] for o in listed.get("Contents", [])}
    assert f"weights/{svc.tenant_a}/{weights.json()['id']}.safetensors" in keys
    assert any(k.startswith(f"datasets/{svc.tenant_a}/") for k in keys), keys
    assert svc.client.delete(f"/v1/weights/{weights.json()['id']}", headers=svc.auth_a).status_code == 204
    assert not svc.storage.exists(f"weights/{svc.tenant_a}/{weights.json()['id']}.safetensors")
