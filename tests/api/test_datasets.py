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


def _stored_datasets(svc) -> set[str]:
    """The stored datasets (each a folder of x.npy, y.npy and meta.json)."""
    return {key.rsplit("/", 1)[0] for key in _stored_files(svc)}


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
    prefix = f"datasets/{embedded.tenant_a}/{ds['id']}/"
    assert _stored_files(embedded) == [prefix + name for name in ("meta.json", "x.npy", "y.npy")]
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
    svc = make_service("sqlite", max_stored_bytes_per_tenant=1000)  # one stored dataset (~700 bytes) fits
    first = upload(svc, "a.npz", _npz_bytes(seed=1))
    assert first.status_code == 201 and first.json()["stored_bytes"] <= 1000
    second = upload(svc, "b.npz", _npz_bytes(seed=2))
    assert second.status_code == 429, second.text
    assert second.json()["error"]["code"] == "storage_quota_exceeded"
    assert int(second.headers["retry-after"]) > 0
    assert len(_stored_datasets(svc)) == 1 and _leftover_tmp(svc) == []
    assert upload(svc, "b.npz", _npz_bytes(seed=2), key=svc.key_b).status_code == 201


# ------------------------------------------------------------------------------ datasets of real size


def _bands_png(width: int = 48, height: int = 16, shift: int = 0) -> bytes:
    """Red | green | blue vertical bands (shifted by `shift` gray levels, so images differ)."""
    from PIL import Image

    pixels = np.zeros((height, width, 3), np.uint8)
    third = width // 3
    pixels[:, :third], pixels[:, third : 2 * third], pixels[:, 2 * third :] = (
        (250, 0, 0),
        (0, 250, 0),
        (0, 0, 250),
    )
    pixels = np.clip(pixels.astype(int) + shift, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _bands_zip() -> bytes:
    return _zip_bytes(
        {f"{c}/{i}.png": _bands_png(shift=3 * i + (20 if c == "b" else 0)) for c in "ab" for i in range(3)}
    )


def _open(svc, dataset_id: str, **kw):
    from core.dataset_store import open_dataset

    with svc.sessionmaker() as s:
        return open_dataset(s, svc.storage, svc.tenant_a, dataset_id, **kw)


@pytest.mark.parametrize(
    ("resize", "left", "centre"),
    [
        ("stretch", (250, 0, 0), (0, 250, 0)),
        ("shorter_side", (0, 250, 0), (0, 250, 0)),
        ("pad", (250, 0, 0), (0, 250, 0)),
    ],
)
def test_zip_stored_as_uint8_at_the_chosen_size(embedded, resize, left, centre):
    r = upload(embedded, "bands.zip", _bands_zip(), image_size="16", resize=resize)
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["dtype"] == "uint8" and ds["feature_shape"] == [3, 16, 16] and ds["status"] == "ready"
    assert ds["preprocessing"] == {"kind": "image", "size": [16, 16], "resize": resize, "channels": 3}
    assert ds["stored_bytes"] >= 6 * 3 * 16 * 16  # uint8, not float32 (4x)
    assert ds["stored_bytes"] < 2 * 6 * 3 * 16 * 16

    loaded = _open(embedded, ds["id"])  # what the worker gets
    assert isinstance(loaded.x, np.memmap) and loaded.x.dtype == np.uint8
    assert loaded.preprocessing == ds["preprocessing"]
    assert tuple(loaded.x[0, :, 8, 0]) == left and tuple(loaded.x[0, :, 8, 8]) == centre
    if resize == "pad":
        assert tuple(loaded.x[0, :, 0, 8]) == (0, 0, 0)


def test_same_file_with_other_options_is_another_dataset(embedded):
    first = upload(embedded, "bands.zip", _bands_zip(), image_size="16")
    again = upload(
        embedded, "bands.zip", _bands_zip(), image_size="16", resize="stretch"
    )  # the default, named
    other = upload(embedded, "bands.zip", _bands_zip(), image_size="8x12")
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert again.json()["id"] == first.json()["id"] != other.json()["id"]
    assert other.json()["feature_shape"] == [3, 8, 12]


def _hf_parquet(n: int = 6) -> bytes:
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    values = pa.array(
        [{"bytes": _png((200, 10, 10) if i % 2 else (10, 10, 200)), "path": f"{i}.png"} for i in range(n)],
        type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
    )
    features = {"image": {"_type": "Image"}, "label": {"names": ["blue", "red"], "_type": "ClassLabel"}}
    table = pa.table({"image": values, "label": pa.array([i % 2 for i in range(n)], pa.int64())})
    table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def test_parquet_in_the_hugging_face_layout(embedded):
    r = upload(embedded, "train-00000-of-00001.parquet", _hf_parquet(), image_size="8")
    assert r.status_code == 201, r.text
    ds = r.json()
    assert (
        ds["classes"] == ["blue", "red"] and ds["class_counts"] == [3, 3] and ds["feature_shape"] == [3, 8, 8]
    )
    loaded = _open(embedded, ds["id"])
    assert tuple(loaded.x[1, :, 4, 4]) == (200, 10, 10) and loaded.y.tolist() == [0, 1, 0, 1, 0, 1]


def _npy(arr: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def _upload_npy(svc, x: bytes, labels: tuple[str, bytes] | None, **form: str):
    files = {"file": ("x.npy", x, "application/octet-stream")}
    if labels is not None:
        files["labels"] = (labels[0], labels[1], "application/octet-stream")
    return svc.client.post("/v1/datasets", files=files, data=form, headers=svc.auth_a)


def test_npy_and_npz_of_uint8_images(embedded):
    x = np.random.default_rng(0).integers(0, 256, size=(6, 12, 10, 3), dtype=np.uint8)  # (N, H, W, C)
    r = _upload_npy(embedded, _npy(x), ("y.txt", b"cat\ndog\n" * 3))
    assert r.status_code == 201, r.text
    assert r.json()["feature_shape"] == [3, 12, 10] and r.json()["classes"] == ["cat", "dog"]
    assert np.array_equal(_open(embedded, r.json()["id"]).x, x.transpose(0, 3, 1, 2))

    buf = io.BytesIO()
    np.savez(buf, x=x[..., 0], y=np.arange(6) % 3, classes=np.array(CLASSES))  # (N, H, W): one channel
    r = upload(embedded, "d.npz", buf.getvalue(), image_size="8")
    assert r.status_code == 201, r.text
    assert r.json()["feature_shape"] == [1, 8, 8] and r.json()["dtype"] == "uint8"
    assert r.json()["classes"] == CLASSES


def test_pickled_npy_is_refused_naming_the_field(embedded):
    pickled = np.empty(6, dtype=object)
    pickled[:] = [{"evil": i} for i in range(6)]
    x = np.zeros((6, 1, 8, 8), np.uint8)
    for data, labels, field in [
        (_npy(pickled, allow_pickle=True), ("y.npy", _npy(np.arange(6) % 2)), "file"),
        (_npy(x), ("y.npy", _npy(pickled, allow_pickle=True)), "labels"),
        (_npy(x), None, "labels"),
    ]:
        r = _upload_npy(embedded, data, labels)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["details"][0]["field"] == field
        assert field != "file" or "pickle" in r.json()["error"]["message"]
    assert _stored_files(embedded) == [] and _leftover_tmp(embedded) == []


@pytest.mark.parametrize(
    ("form", "field"),
    [({"image_size": "4"}, "image_size"), ({"image_size": "big"}, "image_size"),
     ({"image_size": "600"}, "image_size"), ({"resize": "crop"}, "resize"), ({"name": ""}, "name"),
     ({"label_column": "x" * 101}, "label_column")],
)  # fmt: skip
def test_bad_form_fields_are_422_naming_them(embedded, form, field):
    r = upload(embedded, "bands.zip", _bands_zip(), **form)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["field"] == field
    assert _stored_files(embedded) == [] and _leftover_tmp(embedded) == []


def test_not_multipart_is_422_naming_file(embedded):
    r = embedded.client.post("/v1/datasets", json={"file": "x"}, headers=embedded.auth_a)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "file"


def test_image_quota_is_429_before_the_arrays_are_written(make_service):
    svc = make_service("sqlite", max_stored_bytes_per_tenant=6 * 3 * 16 * 16 - 1)
    r = upload(svc, "bands.zip", _bands_zip(), image_size="16")
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "storage_quota_exceeded" and int(r.headers["retry-after"]) > 0
    assert _stored_files(svc) == [] and _leftover_tmp(svc) == []
    assert upload(svc, "bands.zip", _bands_zip(), image_size="8").status_code == 201  # 6 x 3 x 8 x 8 fits


def _wait_for(predicate, timeout: float = 15.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_interrupted_upload_leaves_nothing_behind(embedded):
    """A client that hangs up mid-body over a real socket: the streamed scratch file, and nothing else,
    existed while it sent; afterwards no scratch file, no stored object and no row remain."""
    import socket
    from urllib.parse import urlsplit

    from sqlalchemy import func, select

    from core.db.models import Dataset
    from tests.live_server import live_server

    boundary = "interrupted"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.npy"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode()  # fmt: skip
    declared = len(head) + (64 << 20)
    with live_server(embedded.app) as base_url:
        url = urlsplit(base_url)
        sock = socket.create_connection((url.hostname, url.port))
        request = (
            f"POST /v1/datasets HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {embedded.key_a}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {declared}\r\n\r\n"
        )
        sock.sendall(request.encode() + head)
        for _ in range(8):
            sock.sendall(b"\0" * (1 << 20))
        tmp = embedded.settings.home / "tmp"
        receiving = lambda: [p for p in tmp.glob("upload-file-*") if p.stat().st_size >= 2 << 20]
        assert _wait_for(lambda: bool(receiving())), "the body was not streaming to a scratch file"
        sock.close()
        assert _wait_for(lambda: not any(tmp.iterdir())), list(tmp.iterdir())
    assert _stored_files(embedded) == []
    with embedded.sessionmaker() as s:
        assert s.execute(select(func.count()).select_from(Dataset)).scalar_one() == 0


def test_upload_processing_has_its_own_deadline(make_service, monkeypatch):
    """The request deadline (here 0.3 s) answers other slow routes 503; an upload whose conversion takes
    longer runs under SIMTRAIN_UPLOAD_TIMEOUT_S instead and answers 201."""
    import time

    import api.routes.datasets as route

    svc = make_service("sqlite", request_timeout_s=0.3, upload_timeout_s=30)
    real = route.store_received

    def slow(*args, **kwargs):
        time.sleep(1.0)
        return real(*args, **kwargs)

    monkeypatch.setattr(route, "store_received", slow)
    r = upload(svc, "bands.zip", _bands_zip(), image_size="8")
    assert r.status_code == 201, r.text
    short = make_service("sqlite", request_timeout_s=0.3, upload_timeout_s=0.5)
    r = upload(short, "bands.zip", _bands_zip(), image_size="8")
    assert r.status_code == 503 and r.json()["error"]["code"] == "request_timeout"


def test_remote_storage_opens_through_the_local_cache(make_service, tmp_path, monkeypatch):
    import uuid

    from core.data.local_cache import LocalCache

    svc = make_service("sqlite", storage_url=f"memory://simtrain-{uuid.uuid4().hex}")
    r = upload(svc, "bands.zip", _bands_zip(), image_size="8")
    assert r.status_code == 201, r.text
    assert svc.storage.local_path(f"datasets/{svc.tenant_a}/{r.json()['id']}/x.npy") is None
    downloads = []
    real = svc.storage.download
    monkeypatch.setattr(svc.storage, "download", lambda key, path: (downloads.append(key), real(key, path)))
    cache = LocalCache(tmp_path / "cache", max_bytes=1 << 30)
    first, second = _open(svc, r.json()["id"], cache=cache), _open(svc, r.json()["id"], cache=cache)
    assert isinstance(first.x, np.memmap) and np.array_equal(first.x, second.x)
    assert len(downloads) == 3  # x.npy, y.npy, meta.json: once
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [f"{r.json()['id']}-{r.json()['sha256']}"]
    small = LocalCache(tmp_path / "small", max_bytes=10)
    from core.errors import DatasetError

    with pytest.raises(DatasetError, match="SIMTRAIN_DATASET_CACHE_BYTES"):
        _open(svc, r.json()["id"], cache=small)


def test_a_dataset_stored_as_npz_by_an_earlier_version_still_opens(embedded):
    from core.data import ArrayDataset, save_npz
    from core.db.models import Dataset
    from core.db.types import now

    ds = ArrayDataset(np.arange(24, dtype=np.float32).reshape(6, 4), np.arange(6) % 2, ["a", "b"])
    key = f"datasets/{embedded.tenant_a}/old-id.npz"
    old = embedded.settings.home / "old.npz"
    save_npz(ds, old)
    embedded.storage.put_file(key, old)
    with embedded.sessionmaker() as s:
        s.add(Dataset(id="old-id", tenant_id=embedded.tenant_a, name="old", format="npz", sha256="0" * 64,
                      size_bytes=1, num_samples=6, feature_shape=[4], classes=["a", "b"], class_counts=[3, 3],
                      storage_key=key, stored_bytes=old.stat().st_size, created_at=now()))  # fmt: skip
        s.commit()
    got = embedded.client.get("/v1/datasets/old-id", headers=embedded.auth_a).json()
    assert got["dtype"] == "float32" and got["status"] == "ready" and got["preprocessing"] is None
    loaded = _open(embedded, "old-id")
    assert np.array_equal(loaded.x, ds.x) and loaded.classes == ["a", "b"]
    assert embedded.client.delete("/v1/datasets/old-id", headers=embedded.auth_a).status_code == 204
    assert _stored_files(embedded) == []


# ------------------------------------------------------------------------------------- image predictions


def _train_on(svc, dataset_id: str, tmp_path) -> dict:
    from core.artifacts import write_artifacts
    from core.training import TrainingSpec, TrainPlan, train

    ds = _open(svc, dataset_id)
    model = {"kind": "cnn", "channels": [4], "hidden": [8]}
    result = train(
        TrainPlan(ds, None, {"kind": "cross_entropy"}, model, TrainingSpec(epochs=1, seed=0), "cpu")
    )
    assert result.model_json["preprocessing"] == ds.preprocessing  # what predict reads
    return {"paths": write_artifacts(result, tmp_path / "artifacts"), "result": result, "dataset": ds}


def test_predict_with_image_files_equals_predict_with_the_arrays(embedded, finish_with_artifacts, tmp_path):
    import base64

    pngs = [_bands_png(40, 20, shift=7 * i) for i in range(6)]
    entries = {f"{'ab'[i % 2]}/{i}.png": png for i, png in enumerate(pngs)}
    up = upload(embedded, "bands.zip", _zip_bytes(entries), image_size="12", resize="shorter_side").json()
    artifacts = _train_on(embedded, up["id"], tmp_path)
    job = embedded.create_job(
        {"dataset": up["id"], "loss": {"kind": "cross_entropy"}, "training": {"epochs": 1}}
    )
    finish_with_artifacts(embedded, job["id"], artifacts)
    url, auth = f"/v1/jobs/{job['id']}/predict", embedded.auth_a

    rows = embedded.client.post(url, json={"inputs": artifacts["dataset"].x[:4].tolist()}, headers=auth)
    files = [("files", (f"{i}.png", pngs[i], "image/png")) for i in range(4)]
    as_files = embedded.client.post(url, files=files, headers=auth)
    as_base64 = embedded.client.post(
        url, json={"images": [base64.b64encode(p).decode() for p in pngs[:4]]}, headers=auth
    )
    assert rows.status_code == as_files.status_code == as_base64.status_code == 200, (
        as_files.text,
        as_base64.text,
    )
    assert rows.json()["predictions"] == as_files.json()["predictions"] == as_base64.json()["predictions"]
    assert np.allclose(rows.json()["probabilities"], as_files.json()["probabilities"], atol=1e-6)
    assert np.allclose(rows.json()["probabilities"], as_base64.json()["probabilities"], atol=1e-6)

    for kwargs, field in [
        ({"files": [("files", ("x.png", b"not a png", "image/png"))]}, "files"),
        ({"json": {"images": ["@@@"]}}, "images.0"),
        ({"json": {"images": ["aGVsbG8="], "inputs": [[0]]}}, "body"),
        ({"files": [("other", ("x.png", pngs[0], "image/png"))]}, "files"),
    ]:
        r = embedded.client.post(url, headers=auth, **kwargs)
        assert r.status_code == 422, (kwargs, r.text)
        assert r.json()["error"]["details"][0]["field"] == field, r.text


def test_image_predictions_are_bounded(make_service, finish_with_artifacts, trained_artifacts, tmp_path):
    svc = make_service("sqlite", max_predict_images=2, max_image_pixels=30 * 30, max_predict_bytes=200_000)
    up = upload(svc, "bands.zip", _bands_zip(), image_size="8").json()
    job = svc.create_job({"dataset": up["id"], "loss": {"kind": "cross_entropy"}, "training": {"epochs": 1}})
    finish_with_artifacts(svc, job["id"], _train_on(svc, up["id"], tmp_path))
    url = f"/v1/jobs/{job['id']}/predict"
    three = [("files", (f"{i}.png", _bands_png(), "image/png")) for i in range(3)]
    r = svc.client.post(url, files=three, headers=svc.auth_a)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "files"
    big = [("files", ("big.png", _bands_png(60, 60), "image/png"))]
    r = svc.client.post(url, files=big, headers=svc.auth_a)
    assert r.status_code == 422 and "too large" in r.json()["error"]["message"]
    r = svc.client.post(url, files=[("files", ("x.png", b"\0" * 300_000, "image/png"))], headers=svc.auth_a)
    assert r.status_code == 413

    spec = {"dataset": "builtin:digits", "classes": ["0", "1", "2"], "model": {"kind": "linear"}}
    digits = svc.create_job({**spec, "loss": {"kind": "cross_entropy"}, "training": {"epochs": 1}})
    finish_with_artifacts(svc, digits["id"], trained_artifacts)
    r = svc.client.post(f"/v1/jobs/{digits['id']}/predict", files=three[:1], headers=svc.auth_a)
    assert r.status_code == 422 and "feature rows" in r.json()["error"]["message"]


def test_store_upload_from_a_file_object(embedded):
    """The store's entry for data that is not a request body (a file object): the same checks and form."""
    from core.dataset_store import UploadOptions, store_upload
    from core.errors import PayloadTooLarge

    with embedded.sessionmaker() as s:
        row, created = store_upload(
            s, embedded.storage, embedded.settings, embedded.tenant_a, io.BytesIO(_bands_zip()), "b.zip",
            UploadOptions(image_size=(8, 8), resize="pad"),
        )  # fmt: skip
        assert created and row.dtype == "uint8" and row.preprocessing["resize"] == "pad"
        again, created = store_upload(
            s, embedded.storage, embedded.settings, embedded.tenant_a, io.BytesIO(_bands_zip()), "c.zip",
            UploadOptions(image_size=(8, 8), resize="pad"),
        )  # fmt: skip
        assert not created and again.id == row.id
        small = embedded.settings.model_copy(update={"max_upload_bytes": 1024})
        with pytest.raises(PayloadTooLarge):
            store_upload(s, embedded.storage, small, embedded.tenant_a, io.BytesIO(_bands_zip()), "d.zip")
    assert _leftover_tmp(embedded) == [] and len(_stored_datasets(embedded)) == 1
