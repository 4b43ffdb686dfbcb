"""The stored form of a dataset: a directory of `x.npy`, `y.npy` and `meta.json`, memory-mappable.

`meta.json` holds the class names, the shape and dtype of `x` and the `preprocessing` of images;
`open_stored` gives the dataset back with `x` as a read-only `np.memmap` (nothing is read until used)
and `y` in memory.

    write_stored(ds, Path("/scratch/ds"))    # x.npy (unless ds.x already is that file), y.npy, meta.json
    ds = open_stored(Path("/cache/ds"))            # isinstance(ds.x, np.memmap)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from core.data.dataset import ArrayDataset
from core.errors import DatasetError

__all__ = ["META_FORMAT", "STORED_FILES", "open_stored", "write_stored"]

META_FORMAT = "simtrain.dataset"
STORED_FILES = ("x.npy", "y.npy", "meta.json")


def _meta(ds: ArrayDataset) -> dict:
    return {
        "format": META_FORMAT,
        "format_version": 1,
        "classes": list(ds.classes),
        "num_samples": ds.num_samples,
        "feature_shape": list(ds.feature_shape),
        "dtype": ds.dtype,
        "preprocessing": ds.preprocessing,
    }


def write_stored(ds: ArrayDataset, directory: Path) -> dict[str, Path]:
    """Write the files of `ds` into `directory` (x.npy only when `ds.x` is not that file already)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {name: directory / name for name in STORED_FILES}
    x_file = getattr(ds.x, "filename", None)
    if not (isinstance(ds.x, np.memmap) and x_file and Path(x_file).resolve() == paths["x.npy"].resolve()):
        np.save(paths["x.npy"], ds.x, allow_pickle=False)
    np.save(paths["y.npy"], ds.y, allow_pickle=False)
    paths["meta.json"].write_text(json.dumps(_meta(ds), allow_nan=False) + "\n", encoding="utf-8")
    return paths


def open_stored(directory: Path) -> ArrayDataset:
    """The dataset whose files are in `directory`; `x` is a read-only memmap."""
    try:
        meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
        if meta.get("format") != META_FORMAT:
            raise ValueError(f"not a {META_FORMAT} directory")
        x = np.load(directory / "x.npy", mmap_mode="r", allow_pickle=False)
        y = np.load(directory / "y.npy", allow_pickle=False)
    except (OSError, ValueError, KeyError) as e:
        raise DatasetError("dataset", f"cannot read dataset: its stored files are damaged ({e})") from e
    if list(x.shape[1:]) != list(meta.get("feature_shape", [])) or len(x) != len(y):
        raise DatasetError("dataset", "the stored dataset's arrays do not match its meta.json")
    return ArrayDataset(x, y, list(meta["classes"]), preprocessing=meta.get("preprocessing"))
