"""The dataset and predict commands against the real API on a real HTTP server (typer's CliRunner):
`datasets upload` with every form option, `datasets add URI [--wait]` (a local HTTP file server; the test
plays the worker's import with `core.dataset_import.import_dataset`), `datasets show`, and `predict` with
image files compared with the job's own evaluation of the same training images."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
import zipfile

import numpy as np
import pytest
from cli_testlib import simtrain

from tests.datasets.refservers import FileServer
from tests.live_server import live_server
from tests.specs import SIMLOSS_JOB

IMAGE_SIDE = 12


@pytest.fixture
def refs(make_service):
    """(base URL, service, file server): the app (loopback URIs allowed) behind a real HTTP server."""
    svc = make_service("sqlite", fetch_allow="127.0.0.1/32")
    files = FileServer()
    with live_server(svc.app) as url:
        yield url, svc, files
    files.close()


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _images(per_class: int = 8, side: int = IMAGE_SIDE) -> dict[str, np.ndarray]:
    """{"a/0.png": (side, side, 3) uint8, ...}: class a bright on the left, class b on the right, noisy."""
    rng = np.random.default_rng(0)
    out = {}
    for k, name in enumerate("ab"):
        for i in range(per_class):
            pixels = rng.integers(0, 60, (side, side, 3)).astype(np.uint8)
            half = slice(0, side // 2) if k == 0 else slice(side // 2, side)
            pixels[:, half] += 150
            out[f"{name}/{i}.png"] = pixels
    return out


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x=np.arange(48, dtype=np.float32).reshape(12, 4), y=np.arange(12) % 3)
    return buf.getvalue()


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _one_red_line(result) -> str:
    assert result.exit_code == 1, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("simtrain: "), line
    return line


# ------------------------------------------------------------------------------------------------ upload


def test_upload_takes_the_image_size_resize_and_labels_of_the_form(live, tmp_path):
    url, svc = live
    colour = {"a": (200, 30, 30), "b": (30, 30, 200)}
    wide = {
        f"{c}/{i}.png": _png(np.full((20, 40, 3), colour[c], np.uint8) + 10 * i)
        for c in "ab"
        for i in range(2)
    }
    path = tmp_path / "wide.zip"
    path.write_bytes(_zip(wide))

    padded = _json(simtrain(["datasets", "upload", str(path), "--name", "wide", "--image-size", "16x24",
                             "--resize", "pad", "--json"], url=url, key=svc.key_a))  # fmt: skip
    assert padded["preprocessing"] == {"kind": "image", "size": [16, 24], "resize": "pad", "channels": 3}
    assert padded["feature_shape"] == [3, 16, 24] and padded["dtype"] == "uint8"
    assert padded["name"] == "wide" and padded["classes"] == ["a", "b"]
    cut = simtrain(["datasets", "upload", str(path), "--image-size", "8", "--resize", "shorter_side"],
                   url=url, key=svc.key_a)  # fmt: skip
    assert cut.exit_code == 0, cut.output
    assert "4 samples, 2 classes (zip); stored as 3x8x8 uint8" in cut.stderr
    cut_id = cut.stdout.strip()
    assert cut_id != padded["id"]  # other options: another dataset
    shown = _json(simtrain(["datasets", "show", cut_id, "--json"], url=url, key=svc.key_a))
    assert shown["preprocessing"]["resize"] == "shorter_side" and shown["preprocessing"]["size"] == [8, 8]

    x, labels = tmp_path / "x.npy", tmp_path / "y.txt"
    np.save(x, np.arange(6 * 64, dtype=np.uint8).reshape(6, 1, 8, 8))
    labels.write_text("cat\ndog\ncat\ndog\ncat\ndog\n")
    arrays = _json(simtrain(["datasets", "upload", str(x), "--labels", str(labels), "--json"],
                            url=url, key=svc.key_a))  # fmt: skip
    assert (
        arrays["format"] == "npy" and arrays["classes"] == ["cat", "dog"] and arrays["class_counts"] == [3, 3]
    )
    assert arrays["dtype"] == "uint8" and arrays["feature_shape"] == [1, 8, 8]

    csv = tmp_path / "t.csv"
    csv.write_text("f1,f2,kind\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n")
    tabular = _json(simtrain(["datasets", "upload", str(csv), "--label-column", "kind", "--json"],
                             url=url, key=svc.key_a))  # fmt: skip
    assert tabular["classes"] == ["x", "y"] and tabular["feature_shape"] == [2]


def test_upload_errors_are_one_red_line_naming_the_field(live, tmp_path):
    url, svc = live
    path = tmp_path / "imgs.zip"
    path.write_bytes(_zip({name: _png(px) for name, px in _images(per_class=2).items()}))
    big = simtrain(["datasets", "upload", str(path), "--image-size", "600"], url=url, key=svc.key_a)
    assert "--image-size" in _one_red_line(big) and "8..512" in big.stderr
    assert big.stdout == ""
    shape = simtrain(["datasets", "upload", str(path), "--image-size", "9x9x9"], url=url, key=svc.key_a)
    assert "--image-size" in _one_red_line(shape)
    resize = simtrain(["datasets", "upload", str(path), "--resize", "crop"], url=url, key=svc.key_a)
    assert resize.exit_code == 2 and "crop" in resize.output  # a usage error: not one of the choices
    csv = tmp_path / "t.csv"
    csv.write_text("f1,label\n1,x\n2,y\n")
    column = simtrain(["datasets", "upload", str(csv), "--label-column", "nope"], url=url, key=svc.key_a)
    line = _one_red_line(column)
    assert line.startswith("simtrain: 422 invalid_dataset: file.label: no label column 'nope'"), line
    long_name = simtrain(["datasets", "upload", str(csv), "--name", "n" * 201], url=url, key=svc.key_a)
    line = _one_red_line(long_name)
    assert line.startswith("simtrain: 422") and "name" in line
    assert svc.client.get("/v1/datasets", headers=svc.auth_a).json()["items"] == []  # nothing stored


# -------------------------------------------------------------------------------------------- add by URI


def play_import(svc, *, timeout: float = 30.0) -> threading.Thread:
    """A thread that waits for a dataset to be `importing`, then imports it as the worker would."""
    from sqlalchemy import select

    from core.dataset_import import import_dataset
    from core.db.models import Dataset

    def run() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with svc.sessionmaker() as s:
                found = s.execute(select(Dataset.id).where(Dataset.status == "importing")).scalars().first()
            if found:
                import_dataset(svc.sessionmaker, svc.storage, svc.settings, found)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_add_wait_imports_a_dataset_by_uri(refs):
    url, svc, files = refs
    data = _npz()
    uri = files.serve("/table.npz", data)
    worker = play_import(svc)
    result = simtrain(["datasets", "add", uri, "--name", "table", "--sha256", hashlib.sha256(data).hexdigest(),
                       "--wait"], url=url, key=svc.key_a)  # fmt: skip
    worker.join(30)
    assert result.exit_code == 0, result.output
    ds_id = result.stdout.strip()
    assert f"dataset {ds_id}: importing {uri}" in result.stderr
    assert "dataset table: 12 samples, 3 classes (npz)" in result.stderr
    shown = simtrain(["datasets", "show", ds_id], url=url, key=svc.key_a)
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines()[0] == f"dataset {ds_id}: table (npz) ready"
    assert f"source: {uri}" in shown.stdout and "samples: 12, classes: 3 (0: 4, 1: 4, 2: 4)" in shown.stdout
    again = _json(simtrain(["datasets", "add", uri, "--name", "table", "--sha256",
                            hashlib.sha256(data).hexdigest(), "--json"], url=url, key=svc.key_a))  # fmt: skip
    assert again["id"] == ds_id and again["status"] == "ready"  # the same reference: the same dataset
    other = simtrain(["datasets", "show", ds_id], url=url, key=svc.key_b)
    assert _one_red_line(other).startswith("simtrain: 404 not_found")


def test_add_wait_fails_naming_the_field_when_the_import_fails(refs):
    url, svc, files = refs
    uri = files.serve("/wrong.npz", _npz())
    worker = play_import(svc)
    result = simtrain(["datasets", "add", uri, "--sha256", "0" * 64, "--wait"], url=url, key=svc.key_a)
    worker.join(30)
    assert result.exit_code == 1, result.output
    ds_id = result.stdout.strip()
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"simtrain: dataset {ds_id} failed: fetch_failed: sha256: "), last
    shown = _json(simtrain(["datasets", "show", ds_id, "--json"], url=url, key=svc.key_a))
    assert shown["status"] == "failed" and shown["error"]["field"] == "sha256"
    text = simtrain(["datasets", "show", ds_id], url=url, key=svc.key_a).stdout
    first = text.splitlines()[0]
    assert first.startswith(f"dataset {ds_id}: ") and first.endswith(" (npz) failed"), first
    assert "  error: fetch_failed: sha256: the downloaded file's sha256 is" in text


def test_add_refusals_and_a_wait_that_times_out(refs):
    url, svc, files = refs
    refused = simtrain(["datasets", "add", "file:///etc/passwd"], url=url, key=svc.key_a)
    line = _one_red_line(refused)
    assert line.startswith("simtrain: 422") and "uri" in line
    bad_sha = simtrain(["datasets", "add", files.base + "/t.npz", "--sha256", "abc"], url=url, key=svc.key_a)
    assert "sha256" in _one_red_line(bad_sha)
    bad_size = simtrain(
        ["datasets", "add", files.base + "/t.zip", "--image-size", "4"], url=url, key=svc.key_a
    )
    assert "--image-size" in _one_red_line(bad_size)
    # no worker imports it: it stays importing past the timeout
    pending = simtrain(["datasets", "add", files.base + "/slow.npz", "--wait", "--timeout", "0.3"],
                       url=url, key=svc.key_a)  # fmt: skip
    assert pending.exit_code == 1
    assert (
        pending.stderr.strip().splitlines()[-1].startswith("simtrain: dataset ")
        and "importing" in pending.stderr
    )
    page = svc.client.get("/v1/datasets", headers=svc.auth_a).json()["items"]
    assert [d["status"] for d in page] == ["importing"]  # only the one that was accepted


# -------------------------------------------------------------------------------------------------- predict


def _train_job(svc, dataset_id: str, tmp_path, finish_with_artifacts) -> tuple[dict, dict]:
    """A job on the dataset, trained here (a tiny CNN, one epoch) and finished with its artifacts."""
    from core.artifacts import write_artifacts
    from core.dataset_store import open_dataset
    from core.training import TrainingSpec, TrainPlan, train

    with svc.sessionmaker() as s:
        ds = open_dataset(s, svc.storage, svc.tenant_a, dataset_id)
    model = {"kind": "cnn", "channels": [4], "hidden": [8]}
    result = train(
        TrainPlan(ds, None, {"kind": "cross_entropy"}, model, TrainingSpec(epochs=1, seed=0), "cpu")
    )
    artifacts = {"paths": write_artifacts(result, tmp_path / "artifacts"), "result": result, "dataset": ds}
    job = svc.create_job(
        {"dataset": dataset_id, "loss": {"kind": "cross_entropy"}, "training": {"epochs": 1}}
    )
    finish_with_artifacts(svc, job["id"], artifacts)
    return job, artifacts


def test_predict_image_files_gives_the_class_of_the_jobs_own_evaluation(
    live, tmp_path, finish_with_artifacts
):
    url, svc = live
    images = _images()
    folder = tmp_path / "images"
    for name, pixels in images.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(_png(pixels))
    (tmp_path / "set.zip").write_bytes(_zip({name: (folder / name).read_bytes() for name in images}))
    up = simtrain(["datasets", "upload", str(tmp_path / "set.zip"), "--image-size", str(IMAGE_SIDE),
                   "--resize", "stretch"], url=url, key=svc.key_a)  # fmt: skip
    assert up.exit_code == 0, up.output
    job, artifacts = _train_job(svc, up.stdout.strip(), tmp_path, finish_with_artifacts)

    evaluated = np.load(artifacts["paths"][[p.name for p in artifacts["paths"]].index("predictions.npz")])
    stored = np.asarray(artifacts["dataset"].x)
    classes = [str(c) for c in evaluated["classes"]]
    files, expected = [], []
    for row, probs in zip(evaluated["indices"], evaluated["probs"], strict=True):  # the job's val rows
        [name] = [n for n, px in images.items() if np.array_equal(px.transpose(2, 0, 1), stored[row])]
        files.append(str(folder / name))
        expected.append(classes[int(np.argmax(probs))])
    assert files, "the job evaluated no rows"

    answer = _json(
        simtrain(["predict", job["id"], *files, "--batch-size", "2", "--json"], url=url, key=svc.key_a)
    )
    assert answer["predictions"] == expected and answer["inputs"] == files
    assert np.allclose(answer["probabilities"], evaluated["probs"], atol=1e-5)
    rows = stored[evaluated["indices"]].tolist()
    by_rows = _json(
        simtrain(["predict", job["id"], "--inputs", json.dumps(rows), "--json"], url=url, key=svc.key_a)
    )
    assert by_rows["predictions"] == expected
    text = simtrain(["predict", job["id"], files[0]], url=url, key=svc.key_a)
    assert text.exit_code == 0 and text.stdout.startswith(f"{files[0]}: {expected[0]} (0.")

    neither = simtrain(["predict", job["id"]], url=url, key=svc.key_a)
    assert _one_red_line(neither) == "simtrain: give image files or --inputs (one of the two) (field: IMAGE)"
    both = simtrain(["predict", job["id"], files[0], "--inputs", "[[1]]"], url=url, key=svc.key_a)
    assert "one of the two" in _one_red_line(both)
    not_png = tmp_path / "x.png"
    not_png.write_bytes(b"not a png")
    line = _one_red_line(simtrain(["predict", job["id"], str(not_png)], url=url, key=svc.key_a))
    assert line.startswith("simtrain: 422") and "files" in line
    other = simtrain(["predict", job["id"], files[0]], url=url, key=svc.key_b)
    assert _one_red_line(other).startswith("simtrain: 404 not_found")


def test_predict_image_files_on_a_feature_row_model_names_files(live, trained_artifacts, finish_with_artifacts,
                                                                 tmp_path):  # fmt: skip
    url, svc = live
    job = svc.create_job(SIMLOSS_JOB)
    finish_with_artifacts(svc, job["id"], trained_artifacts)
    png = tmp_path / "one.png"
    png.write_bytes(_png(np.zeros((8, 8, 3), np.uint8)))
    line = _one_red_line(simtrain(["predict", job["id"], str(png)], url=url, key=svc.key_a))
    assert line.startswith("simtrain: 422") and "feature rows" in line and "files" in line
    rows = trained_artifacts["dataset"].x[:3].tolist()
    answer = _json(
        simtrain(["predict", job["id"], "--inputs", json.dumps(rows), "--json"], url=url, key=svc.key_a)
    )
    assert len(answer["predictions"]) == 3 and set(answer["predictions"]) <= {"0", "1", "2"}
    bad = simtrain(["predict", job["id"], "--inputs", "[[1, 2]]"], url=url, key=svc.key_a)
    assert "inputs" in _one_red_line(bad)
