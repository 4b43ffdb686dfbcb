"""Helpers of the storage and weights tests: safetensors bytes, files that must never be unpickled.

    from storage_testlib import safetensors_bytes, pickles_that_must_not_load
    data = safetensors_bytes({"w": torch.zeros(2, 2)})
    for name, data in pickles_that_must_not_load(marker).items(): ...   # unpickling one creates `marker`

Imported by the test modules of this folder (its conftest.py puts the folder on `sys.path`).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import torch
from safetensors.torch import save

__all__ = ["Trap", "pickles_that_must_not_load", "safetensors_bytes", "upload_weights"]


def safetensors_bytes(tensors: dict | None = None, metadata: dict | None = None) -> bytes:
    """A safetensors file of `tensors` (default: two small float tensors and an int64 counter)."""
    if tensors is None:
        tensors = {"body.0.weight": torch.randn(4, 3), "body.0.bias": torch.zeros(4), "n": torch.tensor(7)}
    return save(tensors, metadata=metadata)


class Trap:
    """Unpickling this opens (creates) `marker`: proof that a file was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def pickles_that_must_not_load(marker: Path) -> dict[str, bytes]:
    """A plain pickle, torch.save's zip (.pt) and its legacy format, each holding a `Trap`."""
    trap = {"weight": torch.zeros(2), "trap": Trap(marker)}
    zipped, legacy = io.BytesIO(), io.BytesIO()
    torch.save(trap, zipped)
    torch.save(trap, legacy, _use_new_zipfile_serialization=False)
    return {
        "model.pkl": pickle.dumps(trap, protocol=4),
        "model.pt": zipped.getvalue(),
        "model.pth": legacy.getvalue(),
    }


def upload_weights(client, headers: dict, data: bytes, filename: str = "w.safetensors", **form):
    """POST /v1/weights with `data` as the file and `form` as the other fields; the response."""
    return client.post("/v1/weights", files={"file": (filename, data)}, data=form, headers=headers)
