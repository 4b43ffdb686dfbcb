"""Dataset uploads in every format, dedupe by content hash, size bound, bad files and deletion."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

CLASSES = ["cat", "dog", "fox"]


def _npz_bytes(n: int = 12, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    np.savez(buf, x=rng.normal(size=(n, 4)).astype(np.float32), y=np.arange(n) % 3, classes=np.array(CLASSES))
    return buf.getvalue()


def _csv_bytes(label: str = "label") -> bytes:
    rows = [f"a,b,{label}"] + [f"{i * 0.5},{i % 4},{CLASSES[i % 3]}" for i in range(12)]
    return ("\n".join(rows) + "\n").encode()


def _parquet_bytes() -> bytes:
    import pandas as pd

    frame = pd.DataFrame(
        {"f1": np.arange(9, dtype=float), "f2": np.ones(9), "label": [CLASSES[i % 3] for i in range(9)]}
    )
    buf = io.BytesIO()
    frame.to_parquet(buf)
    return buf.getvalue()


def _png(color: tuple[int, int, int]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (10, 10), color).save(buf, format="PNG")
    return buf.getvalue()


def _zip_bytes(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _image_zip() -> bytes:
    colors = {"red": (200, 10, 10), "green": (10, 200, 10)}
    return _zip_bytes({f"{c}/{i}.png": _png(rgb) for c, rgb in colors.items() for i in range(3)})


def upload(svc, filename: str, data: bytes, key: str | None = None, **form: str):
    return svc.client.post(
        "/v1/datasets",
        files={"file": (filename, data, "application/octet-stream")},
        data=form,
        headers={"Authorization": f"Bearer {key or svc.key_a}"},
    )


def _stored_files(svc) -> list[str]:
    return svc.storage.list("datasets/")


def _leftover_tmp(svc) -> list:
    tmp = svc.settings.home / "tmp"
    return list(tmp.iterdir()) if tmp.exists() else []


@pytest.mark.parametrize(
    ("filename", "make", "classes", "shape", "count"),
    [
        ("d.npz", _npz_bytes, CLASSES, [4], 12),
        ("d.csv", _csv_bytes, CLASSES, [2], 12),
        ("d.parquet", _parquet_bytes, CLASSES, [2], 9),
        ("d.zip", _image_zip, ["green", "red"], [3, 28, 28], 6),
    ],
)
def test_upload_each_format(embedded, filename, make, classes, shape, count):
    r = upload(embedded, filename, make(), name="my data")
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["name"] == "my data"
    assert ds["format"] == filename.rsplit(".", 1)[1]
    assert ds["classes"] == classes
    assert ds["feature_shape"] == shape
    assert ds["num_samples"] == count
    assert sum(ds["class_counts"]) == count
    assert len(ds["sha256"]) == 64 and ds["size_bytes"] == len(make())
    assert _stored_files(embedded) == [f"datasets/{embedded.tenant_a}/{ds['id']}.npz"]
    assert _leftover_tmp(embedded) == []

    # the stored dataset opens again as the worker will see it
    from core.dataset_store import open_dataset

    with embedded.sessionmaker() as s:
        loaded = open_dataset(s, embedded.storage, embedded.tenant_a, ds["id"])
    assert loaded.classes == classes and list(loaded.feature_shape) == shape and loaded.num_samples == count

    got = embedded.client.get(f"/v1/datasets/{ds['id']}", headers=embedded.auth_a)
    assert got.status_code == 200 and got.json() == ds


def test_same_bytes_return_the_existing_dataset(service):
    data = _npz_bytes()
    first = upload(service, "a.npz", data)
    assert first.status_code == 201
    again = upload(service, "renamed.npz", data)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    # another tenant uploading the same bytes gets a dataset of its own
    other = upload(service, "a.npz", data, key=service.key_b)
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    listed = service.client.get("/v1/datasets", headers=service.auth_a).json()["items"]
    assert [d["id"] for d in listed] == [first.json()["id"]]


def test_label_column_form_field(embedded):
    r = upload(embedded, "d.csv", _csv_bytes(label="species"), label_column="species")
    assert r.status_code == 201, r.text
    assert r.json()["classes"] == CLASSES


def test_upload_over_the_bound_is_413_and_leaves_nothing(make_service):
    svc = make_service("sqlite", max_upload_bytes=2048)
    big = _npz_bytes(n=200)
    assert len(big) > 2048
    r = upload(svc, "big.npz", big)
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "payload_too_large"
    assert _stored_files(svc) == [] and _leftover_tmp(svc) == []

    # streamed without a Content-Length: refused while reading
    boundary = "simtrainboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.npz"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()

    def body():
        yield head
        for _ in range(200):
            yield b"\0" * 1024
        yield f"\r\n--{boundary}--\r\n".encode()

    r = svc.client.post(
        "/v1/datasets",
        content=body(),
        headers={**svc.auth_a, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 413, r.text
    assert _stored_files(svc) == [] and _leftover_tmp(svc) == []
    with svc.sessionmaker() as s:
        from sqlalchemy import func, select

        from core.db.models import Dataset

        assert s.execute(select(func.count()).select_from(Dataset)).scalar_one() == 0


def _bad_npz_one_class() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x=np.ones((6, 2), dtype=np.float32), y=np.zeros(6, dtype=np.int64))
    return buf.getvalue()


@pytest.mark.parametrize(
    ("filename", "data", "field", "words"),
    [
        ("d.csv", b"a,b,c\n1,2,3\n4,5,6\n", "file.label", "label"),
        ("d.csv", b"a,label\nx,cat\ny,dog\nz,cat\nw,dog\n", "file", "numeric"),
        ("d.csv", b"a,label\n1,\xff\xfe\n2,dog\n", "file", "UTF-8"),
        ("d.npz", _bad_npz_one_class(), "classes", "2 classes"),
        ("d.zip", _zip_bytes({"../evil/1.png": b"x", "cls/2.png": b"y"}), "file", "unsafe"),
        ("d.txt", b"hello", "file", "unsupported"),
        ("d.npz", b"not a zip at all", "file", "zip"),
    ],
    ids=[
        "missing-label-column",
        "non-numeric",
        "non-utf8",
        "one-class",
        "zip-slip",
        "unknown-ext",
        "corrupt",
    ],
)
def test_bad_files_are_422_naming_the_field(embedded, filename, data, field, words):
    r = upload(embedded, filename, data)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_dataset"
    assert err["details"][0]["field"] == field
    assert words.lower() in err["message"].lower()
    assert _stored_files(embedded) == [] and _leftover_tmp(embedded) == []
    assert embedded.client.get("/v1/datasets", headers=embedded.auth_a).json()["items"] == []


def test_missing_file_field_is_422(embedded):
    r = embedded.client.post("/v1/datasets", data={"name": "x"}, headers=embedded.auth_a)
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"] == "file"


def test_builtin_list_and_delete(embedded):
    r = embedded.client.get("/v1/datasets/builtin", headers=embedded.auth_a)
    assert r.status_code == 200
    refs = {d["ref"]: d for d in r.json()["items"]}
    assert refs["builtin:digits"]["classes"] == [str(i) for i in range(10)]
    assert refs["builtin:digits"]["feature_shape"] == [64]

    ds = upload(embedded, "d.npz", _npz_bytes()).json()
    job = embedded.create_job(
        {"dataset": ds["id"], "loss": {"kind": "cross_entropy"}, "training": {"epochs": 1}}
    )
    r = embedded.client.delete(f"/v1/datasets/{ds['id']}", headers=embedded.auth_a)
    assert r.status_code == 409 and job["id"] in str(r.json()["error"]["details"])
    assert embedded.client.post(f"/v1/jobs/{job['id']}/cancel", headers=embedded.auth_a).status_code == 202
    r = embedded.client.delete(f"/v1/datasets/{ds['id']}", headers=embedded.auth_a)
    assert r.status_code == 204
    assert _stored_files(embedded) == []
    assert embedded.client.get(f"/v1/datasets/{ds['id']}", headers=embedded.auth_a).status_code == 404
    assert embedded.client.delete(f"/v1/datasets/{ds['id']}", headers=embedded.auth_a).status_code == 404


def test_stored_bytes_quota(make_service):
    svc = make_service("sqlite", max_stored_bytes_per_tenant=1500)
    first = upload(svc, "a.npz", _npz_bytes(seed=1))
    assert first.status_code == 201 and first.json()["stored_bytes"] <= 1500
    second = upload(svc, "b.npz", _npz_bytes(seed=2))
    assert second.status_code == 429, second.text
    assert second.json()["error"]["code"] == "storage_quota_exceeded"
    assert int(second.headers["retry-after"]) > 0
    assert len(_stored_files(svc)) == 1 and _leftover_tmp(svc) == []
    assert upload(svc, "b.npz", _npz_bytes(seed=2), key=svc.key_b).status_code == 201
