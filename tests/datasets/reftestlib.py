"""Helpers of the dataset-reference tests: small dataset files to serve, and the API calls around them.

    data = npz_bytes(seed=1)                      # tabular .npz: 3 classes, 20 rows each, 8 features
    data = zip_bytes()                            # an image folder of 8x8 PNGs, 3 classes
    data = parquet_bytes()                        # tabular .parquet with a `label` column
    r = register(client, headers, uri, sha256=...)       # POST /v1/datasets, JSON body
    ds = wait_dataset(client, headers, dataset_id)       # until it is no longer `importing`

Imported by the test modules of this folder (its conftest.py puts the folder on `sys.path`).
"""

from __future__ import annotations

import hashlib
import io
import time
import zipfile
from typing import Any

import numpy as np

__all__ = [
    "CLASSES",
    "SMALL_JOB",
    "leftover_scratch",
    "npz_bytes",
    "parquet_bytes",
    "register",
    "sha256_of",
    "wait_dataset",
    "zip_bytes",
]

CLASSES = ["low", "mid", "high"]
SMALL_JOB: dict[str, Any] = {"model": {"kind": "mlp", "hidden": [16]}, "training": {"epochs": 2, "seed": 1}}


def _table(seed: int, rows_per_class: int = 20, features: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(3.0 * k, 0.5, (rows_per_class, features)) for k in range(len(CLASSES))])
    y = np.repeat(np.array(CLASSES), rows_per_class)
    return x.astype(np.float32), y


def npz_bytes(seed: int = 0, rows_per_class: int = 20) -> bytes:
    x, y = _table(seed, rows_per_class)
    buffer = io.BytesIO()
    np.savez(buffer, x=x, y=y)
    return buffer.getvalue()


def parquet_bytes(seed: int = 0) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    x, y = _table(seed)
    columns = {"label": y.tolist(), **{f"f{i}": x[:, i].tolist() for i in range(x.shape[1])}}
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    return buffer.getvalue()


def _png(level: int, seed: int) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = np.clip(rng.normal(level, 10.0, (8, 8, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def zip_bytes(per_class: int = 4) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for k, name in enumerate(CLASSES):
            for i in range(per_class):
                archive.writestr(f"{name}/{i}.png", _png(40 + 80 * k, seed=10 * k + i))
    return buffer.getvalue()


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def register(client, headers: dict[str, str], uri: str, **fields: Any):
    """POST /v1/datasets with the JSON body {"uri": uri, **fields}; the response."""
    return client.post("/v1/datasets", json={"uri": uri, **fields}, headers=headers)


def wait_dataset(client, headers: dict[str, str], dataset_id: str, timeout: float = 90.0) -> dict:
    """GET the dataset until it is no longer `importing`; its body."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(f"/v1/datasets/{dataset_id}", headers=headers)
        assert r.status_code == 200, r.text
        if r.json()["status"] != "importing" or time.monotonic() > deadline:
            return r.json()
        time.sleep(0.1)


def leftover_scratch(home) -> list[str]:
    """What imports left in the scratch directory (`<home>/tmp`) and anywhere under it: nothing, always."""
    scratch = home / "tmp"
    return sorted(str(p.relative_to(scratch)) for p in scratch.rglob("*")) if scratch.exists() else []
