"""Image-folder uploads: a `.zip` of `<class>/<image>` or `<top>/<class>/<image>` (PNG, JPEG or BMP).

Images are decoded from memory one at a time (never extracted) by `core.data.images.prepare_image`
and written to the upload's array sink as uint8 at the chosen size; the archive is vetted first
(`core.data.zipsafe`). Hidden files, `__MACOSX` and files that are not images are ignored; a class folder
without images is an error.

    ds = read_image_zip(Path("flowers.zip"), UploadLimits(image_size=32), ArraySink(workdir))
"""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

import numpy as np

from core.data.arrays import ArraySink
from core.data.dataset import ArrayDataset
from core.data.image_rows import store_encoded
from core.data.limits import UploadLimits
from core.data.zipsafe import open_zip, read_entry
from core.errors import DatasetError

__all__ = ["IMAGE_EXTENSIONS", "read_image_zip"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
_IGNORED_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}


def read_image_zip(path: Path, limits: UploadLimits, sink: ArraySink) -> ArrayDataset:
    zf, files = open_zip(path, limits)
    with zf:
        images, class_dirs = _layout(zf, files)
        if len(images) > limits.max_samples:
            raise DatasetError("file", f"{len(images)} images, the limit is {limits.max_samples}")
        classes = _classes(images, class_dirs, limits)
        budget = [limits.max_uncompressed_bytes]
        decoded = ((info.filename, read_entry(zf, info, budget)) for _, info in images)
        x, preprocessing = store_encoded(sink, len(images), decoded, limits)
    position = {c: i for i, c in enumerate(classes)}
    y = np.array([position[c] for c, _ in images], dtype=np.int64)
    return ArrayDataset(x, y, classes, preprocessing=preprocessing)


def _classes(
    images: list[tuple[str, zipfile.ZipInfo]], class_dirs: set[str], limits: UploadLimits
) -> list[str]:
    classes = sorted(set(class_dirs) | {c for c, _ in images})
    if len(classes) > limits.max_classes:
        raise DatasetError("classes", f"{len(classes)} classes, the limit is {limits.max_classes}")
    counts = dict.fromkeys(classes, 0)
    for c, _ in images:
        counts[c] += 1
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        raise DatasetError("classes", f"class folder(s) without images: {empty[:10]}")
    return classes


def _image_entries(files: list[zipfile.ZipInfo]) -> list[tuple[list[str], zipfile.ZipInfo]]:
    entries = []
    for info in files:
        parts = [p for p in info.filename.split("/") if p not in ("", ".")]
        if not parts or parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts):
            continue  # macOS resource forks, hidden files and folders
        if parts[-1].lower() in _IGNORED_NAMES:
            continue
        if PurePosixPath(parts[-1]).suffix.lower() not in IMAGE_EXTENSIONS:
            continue  # README, labels.txt, ...: ignored
        entries.append((parts, info))
    if not entries:
        raise DatasetError("file", f"no images ({', '.join(IMAGE_EXTENSIONS)}) in the zip")
    return entries


def _layout(
    zf: zipfile.ZipFile, files: list[zipfile.ZipInfo]
) -> tuple[list[tuple[str, zipfile.ZipInfo]], set[str]]:
    """Find (class, entry) for each image and the set of class folders (to spot empty ones)."""
    entries = _image_entries(files)
    depths = {len(parts) for parts, _ in entries}
    tops = {parts[0] for parts, _ in entries}
    if depths == {2}:
        strip = 0
    elif depths == {3} and len(tops) == 1:
        strip = 1
    else:
        raise DatasetError(
            "file", "zip must hold one folder per class (class/image.png), optionally inside one top folder"
        )
    images = [(parts[strip], info) for parts, info in entries]

    class_dirs = set()
    for info in zf.infolist():
        parts = [p for p in info.filename.split("/") if p not in ("", ".")]
        if not info.is_dir() or len(parts) != strip + 1 or parts[0] == "__MACOSX":
            continue
        if not any(p.startswith(".") for p in parts) and (strip == 0 or parts[0] in tops):
            class_dirs.add(parts[strip])
    return images, class_dirs
