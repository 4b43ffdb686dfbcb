"""Datasets: `ArrayDataset`, upload parsing, images as uint8 arrays, the stored form, built-in datasets,
class selection and splits.

from core.data import parse_upload, UploadLimits, load_builtin, select_classes, stratified_split
ds = load_builtin("digits")
train_idx, val_idx = stratified_split(ds.y, 0.2, seed=0)
x = prepare_image(png_bytes, ds.preprocessing)       # (C, H, W) uint8, as the dataset's images were made

Modules: `dataset` (ArrayDataset, selection, splits, the legacy .npz form), `stored` (x.npy / y.npy /
meta.json, memory-mapped), `images` (prepare_image and the preprocessing record), `uploads` (the format
dispatcher; readers in `image_zip`, `image_parquet`, `npy_arrays`, `tabular`), `arrays` (the sink that
writes parsed arrays to disk in row batches), `zipsafe`, `labels`, `limits`, `local_cache`, `builtin`.
"""

from core.data.arrays import OutputTooLarge
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
from core.data.images import RESIZE_MODES, image_preprocessing, image_spec, parse_image_size, prepare_image
from core.data.stored import open_stored, write_stored
from core.data.uploads import (
    IMAGE_EXTENSIONS,
    SUPPORTED_EXTENSIONS,
    UploadLimits,
    parse_upload,
    upload_format,
)

__all__ = [
    "BUILTIN_DATASETS",
    "IMAGE_EXTENSIONS",
    "MIN_SAMPLES_PER_CLASS",
    "RESIZE_MODES",
    "SUPPORTED_EXTENSIONS",
    "ArrayDataset",
    "OutputTooLarge",
    "UploadLimits",
    "check_trainable",
    "image_preprocessing",
    "image_spec",
    "load_builtin",
    "load_npz",
    "open_stored",
    "parse_image_size",
    "parse_upload",
    "prepare_image",
    "save_npz",
    "select_classes",
    "split",
    "stratified_split",
    "subset",
    "upload_format",
    "write_stored",
]
