"""Datasets: the in-memory `ArrayDataset`, upload parsing, built-in datasets, class selection and splits.

from core.data import parse_upload, UploadLimits, load_builtin, select_classes, stratified_split
ds = load_builtin("digits")
train_idx, val_idx = stratified_split(ds.y, 0.2, seed=0)
"""

from core.data.builtin import BUILTIN_DATASETS, load_builtin
from core.data.dataset import (
    MIN_SAMPLES_PER_CLASS,
    ArrayDataset,
    check_trainable,
    load_npz,
    save_npz,
    select_classes,
    split,
    stratified_split,
    subset,
)
from core.data.uploads import IMAGE_EXTENSIONS, SUPPORTED_EXTENSIONS, UploadLimits, parse_upload

__all__ = [
    "BUILTIN_DATASETS",
    "IMAGE_EXTENSIONS",
    "MIN_SAMPLES_PER_CLASS",
    "SUPPORTED_EXTENSIONS",
    "ArrayDataset",
    "UploadLimits",
    "check_trainable",
    "load_builtin",
    "load_npz",
    "parse_upload",
    "save_npz",
    "select_classes",
    "split",
    "stratified_split",
    "subset",
]
