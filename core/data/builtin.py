"""Built-in datasets that need no upload (bundled with scikit-learn, no network).

- `digits`         8x8 handwritten digits as 64-value vectors in [0, 1], classes "0".."9" (1797 samples).
- `digits-images`  the same data as (1, 8, 8) images, for the CNN.

    ds = load_builtin("digits")
"""

from __future__ import annotations

import numpy as np

from core.data.dataset import ArrayDataset
from core.errors import DatasetError

__all__ = ["BUILTIN_DATASETS", "load_builtin"]

BUILTIN_DATASETS: tuple[str, ...] = ("digits", "digits-images")


def load_builtin(name: str) -> ArrayDataset:
    """Load a built-in dataset by name (see BUILTIN_DATASETS)."""
    if name not in BUILTIN_DATASETS:
        raise DatasetError(
            "dataset", f"unknown built-in dataset {name!r}; choose from {list(BUILTIN_DATASETS)}"
        )
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = np.asarray(digits.data, dtype=np.float32) / 16.0
    if name == "digits-images":
        x = x.reshape(-1, 1, 8, 8)
    return ArrayDataset(x, np.asarray(digits.target, dtype=np.int64), [str(i) for i in range(10)])
