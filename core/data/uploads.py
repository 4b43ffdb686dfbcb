"""Parse an uploaded dataset file into an `ArrayDataset`, safely.

Formats (chosen by the file name's extension):

- `.npz`      arrays `x` (N, features...) and `y` (N,) of ints or strings, optional `classes`; no pickles.
- `.csv`      UTF-8, a header row, a label column (`limits.label_column`, default "label"), numeric features.
- `.parquet`  same layout as csv.
- `.zip`      an image folder: `<class>/<image>` or `<top>/<class>/<image>`; PNG, JPEG or BMP. Images are
              decoded from memory (never extracted), made grayscale (1 channel) when every image is gray,
              RGB (3) otherwise, resized to `image_size` squared and scaled to [0, 1]: x is (N, C, H, W).

Everything untrusted is bounded by `UploadLimits`: file size, samples, values per sample, classes, zip entry
count, total uncompressed bytes and per-entry compression ratio (checked from the zip central directory
before anything is decompressed, and enforced again while reading), image pixels. Unsafe zip names
(`..`, absolute, backslash, NUL, drive letters), symlinks and encrypted entries are rejected. Every problem
is a `DatasetError(field, reason)`.

    ds = parse_upload(Path("/tmp/upload-123"), "flowers.zip", limits=UploadLimits(max_bytes=100 << 20))
"""

from __future__ import annotations

import io
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from core.data.dataset import ArrayDataset, check_trainable
from core.errors import DatasetError

__all__ = ["IMAGE_EXTENSIONS", "SUPPORTED_EXTENSIONS", "UploadLimits", "parse_upload"]

SUPPORTED_EXTENSIONS = (".npz", ".csv", ".parquet", ".zip")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
_PIL_FORMATS = ["PNG", "JPEG", "BMP"]
_IGNORED_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
_RATIO_CHECK_MIN_BYTES = 64 * 1024  # tiny entries may compress very well without being bombs


@dataclass(frozen=True)
class UploadLimits:
    """Bounds applied to one upload. `max_bytes` is the size of the uploaded file itself."""

    max_bytes: int = 256 * 1024 * 1024
    max_samples: int = 200_000
    max_features: int = 100_000  # values per sample
    max_classes: int = 1000
    max_zip_entries: int = 20_000
    max_uncompressed_bytes: int = 512 * 1024 * 1024
    max_compression_ratio: float = 200.0
    max_image_pixels: int = 4096 * 4096  # per image, before resizing
    image_size: int = 28
    label_column: str = "label"


def parse_upload(path: Path, filename: str, *, limits: UploadLimits) -> ArrayDataset:
    """Read the uploaded file at `path` (its original name is `filename`) into a trainable ArrayDataset."""
    path = Path(path)
    suffix = PurePosixPath(filename.replace("\\", "/")).suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        raise DatasetError(
            "file", f"unsupported file type {suffix or '(none)'!r}; use one of {SUPPORTED_EXTENSIONS}"
        )
    try:
        size = path.stat().st_size
    except OSError as e:
        raise DatasetError("file", f"cannot read the upload: {e}") from e
    if size > limits.max_bytes:
        raise DatasetError("file", f"file is {size} bytes, the limit is {limits.max_bytes}")
    if size == 0:
        raise DatasetError("file", "file is empty")

    reader = {".npz": _read_npz, ".csv": _read_csv, ".parquet": _read_parquet, ".zip": _read_image_zip}[
        suffix
    ]
    ds = reader(path, limits)
    _check_sizes(ds.num_samples, int(np.prod(ds.feature_shape)), limits)
    check_trainable(ds, max_classes=limits.max_classes)
    return ds


# ---------------------------------------------------------------------------------------------------------
# shared helpers


def _check_sizes(num_samples: int, num_features: int, limits: UploadLimits) -> None:
    if num_samples > limits.max_samples:
        raise DatasetError("file", f"{num_samples} samples, the limit is {limits.max_samples}")
    if num_features > limits.max_features:
        raise DatasetError("file", f"{num_features} values per sample, the limit is {limits.max_features}")
    if num_samples == 0:
        raise DatasetError("file", "the dataset has no samples")


def _encode_labels(
    labels: np.ndarray, classes: list[str] | None, limits: UploadLimits
) -> tuple[np.ndarray, list[str]]:
    """Turn raw labels (ints, integral floats or strings) into (int64 indices, class names).

    With explicit `classes`: integer labels index into them, string labels must be among them.
    Without: the sorted distinct labels (numeric order for numbers) become the classes.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise DatasetError("file.label", f"labels must be 1-D, got shape {labels.shape}")
    kind = labels.dtype.kind
    if kind == "f":
        if not np.isfinite(labels).all() or not (labels == np.round(labels)).all():
            raise DatasetError("file.label", "float labels must be whole numbers")
        labels, kind = labels.astype(np.int64), "i"
    elif kind == "b":
        labels, kind = labels.astype(np.int64), "i"
    elif kind not in "iuUS":
        raise DatasetError("file.label", f"labels must be integers or strings, got dtype {labels.dtype}")
    if kind == "S":
        try:
            labels, kind = np.char.decode(labels, "utf-8"), "U"
        except UnicodeDecodeError as e:
            raise DatasetError("file.label", "labels are not valid UTF-8") from e

    if classes is not None:
        if len(classes) > limits.max_classes:
            raise DatasetError("classes", f"{len(classes)} classes, the limit is {limits.max_classes}")
        if kind in "iu":
            if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
                raise DatasetError("file.label", f"integer labels must lie in [0, {len(classes)})")
            return labels.astype(np.int64), classes
        position = {name: i for i, name in enumerate(classes)}
        unknown = sorted(set(labels.tolist()) - set(position))
        if unknown:
            raise DatasetError("file.label", f"labels not in classes: {unknown[:10]}")
        return np.array([position[v] for v in labels.tolist()], dtype=np.int64), classes

    uniques, inverse = np.unique(labels, return_inverse=True)
    if len(uniques) > limits.max_classes:
        raise DatasetError("classes", f"{len(uniques)} classes, the limit is {limits.max_classes}")
    names = [str(v) for v in uniques.tolist()]
    if any(not n.strip() for n in names):
        raise DatasetError("file.label", "labels must be non-empty")
    return inverse.reshape(-1).astype(np.int64), names


# ---------------------------------------------------------------------------------------------------------
# zip safety (shared by .npz, which is a zip, and image folders)


def _open_zip(path: Path, limits: UploadLimits) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    """Open a zip and vet its central directory; returns the file (non-directory) entries."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise DatasetError("file", f"not a valid zip archive: {e}") from e
    try:
        infos = zf.infolist()
        if len(infos) > limits.max_zip_entries:
            raise DatasetError("file", f"{len(infos)} zip entries, the limit is {limits.max_zip_entries}")
        total = 0
        files = []
        for info in infos:
            _check_entry_name(getattr(info, "orig_filename", info.filename))  # zipfile cuts names at NUL
            _check_entry_name(info.filename)
            mode = info.external_attr >> 16
            if info.create_system == 3 and stat.S_ISLNK(mode):
                raise DatasetError("file", f"zip entry {info.filename!r} is a symbolic link")
            if info.flag_bits & 0x1:
                raise DatasetError("file", f"zip entry {info.filename!r} is encrypted")
            if info.is_dir():
                continue
            total += info.file_size
            if total > limits.max_uncompressed_bytes:
                raise DatasetError(
                    "file", f"archive expands to more than {limits.max_uncompressed_bytes} bytes"
                )
            if info.file_size > _RATIO_CHECK_MIN_BYTES and (
                info.file_size > limits.max_compression_ratio * max(info.compress_size, 1)
            ):
                raise DatasetError("file", f"zip entry {info.filename!r} has a suspicious compression ratio")
            files.append(info)
        return zf, files
    except BaseException:
        zf.close()
        raise


def _check_entry_name(name: str) -> None:
    bad = (
        "\x00" in name
        or "\\" in name
        or name.startswith("/")
        or (len(name) >= 2 and name[1] == ":")
        or any(part == ".." for part in name.split("/"))
    )
    if bad:
        raise DatasetError("file", f"unsafe path in zip: {name!r}")


def _read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: list[int]) -> bytes:
    """Decompress one entry, never more than its declared size nor the remaining byte budget."""
    limit = min(info.file_size, budget[0])
    try:
        with zf.open(info) as f:
            data = f.read(limit + 1)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
        raise DatasetError("file", f"cannot read zip entry {info.filename!r}: {e}") from e
    if len(data) > limit:
        raise DatasetError("file", f"zip entry {info.filename!r} expands beyond its declared or allowed size")
    budget[0] -= len(data)
    return data


# ---------------------------------------------------------------------------------------------------------
# .npz


def _read_npz(path: Path, limits: UploadLimits) -> ArrayDataset:
    zf, files = _open_zip(path, limits)
    with zf:
        members = {info.filename: info for info in files}
        budget = [limits.max_uncompressed_bytes]

        def load(name: str) -> np.ndarray | None:
            info = members.get(f"{name}.npy")
            if info is None:
                return None
            try:
                return np.load(io.BytesIO(_read_entry(zf, info, budget)), allow_pickle=False)
            except DatasetError:
                raise
            except (ValueError, OSError, EOFError) as e:
                raise DatasetError(f"file.{name}", f"cannot read array {name!r}: {e}") from e

        x, y = load("x"), load("y")
        if x is None or y is None:
            raise DatasetError("file", f"npz must contain arrays 'x' and 'y', found {sorted(members)}")
        raw_classes = load("classes")

    if x.dtype.kind not in "biuf":
        raise DatasetError("file.x", f"x must be numeric, got dtype {x.dtype}")
    if x.ndim == 1:
        x = x.reshape(-1, 1)
    if x.ndim < 2:
        raise DatasetError("file.x", f"x must have shape (N, features...), got {x.shape}")
    if y.ndim != 1 or len(y) != len(x):
        raise DatasetError("file.y", f"y must have shape ({len(x)},), got {y.shape}")
    _check_sizes(len(x), int(np.prod(x.shape[1:])), limits)
    if not np.isfinite(x).all():
        raise DatasetError("file.x", "x contains NaN or infinite values")

    classes = None
    if raw_classes is not None:
        if raw_classes.ndim != 1 or raw_classes.dtype.kind not in "US":
            raise DatasetError("file.classes", "classes must be a 1-D array of strings")
        try:
            classes = [c.decode("utf-8") if isinstance(c, bytes) else str(c) for c in raw_classes.tolist()]
        except UnicodeDecodeError as e:
            raise DatasetError("file.classes", "class names are not valid UTF-8") from e
    labels, classes = _encode_labels(y, classes, limits)
    return ArrayDataset(x, labels, classes)


# ---------------------------------------------------------------------------------------------------------
# .csv and .parquet


def _read_csv(path: Path, limits: UploadLimits) -> ArrayDataset:
    import pandas as pd

    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DatasetError("file", f"csv is not valid UTF-8 (byte offset {e.start})") from e
    if "\x00" in text:
        raise DatasetError("file", "csv contains NUL characters")
    try:
        frame = pd.read_csv(io.StringIO(text), low_memory=False)
    except pd.errors.EmptyDataError as e:
        raise DatasetError("file", "csv is empty") from e
    except (pd.errors.ParserError, ValueError) as e:
        raise DatasetError("file", f"cannot parse csv: {e}") from e
    return _from_frame(frame, limits)


def _read_parquet(path: Path, limits: UploadLimits) -> ArrayDataset:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path) as parquet_file:
            meta = parquet_file.metadata
        if meta.num_rows > limits.max_samples:
            raise DatasetError("file", f"{meta.num_rows} rows, the limit is {limits.max_samples}")
        if meta.num_columns - 1 > limits.max_features:
            raise DatasetError(
                "file", f"{meta.num_columns - 1} feature columns, the limit is {limits.max_features}"
            )
        expanded = sum(
            meta.row_group(i).column(j).total_uncompressed_size
            for i in range(meta.num_row_groups)
            for j in range(meta.num_columns)
        )
        if expanded > limits.max_uncompressed_bytes:
            raise DatasetError("file", f"parquet expands to more than {limits.max_uncompressed_bytes} bytes")
        frame = pq.read_table(path).to_pandas()
    except DatasetError:
        raise
    except (pa.ArrowException, OSError, ValueError) as e:
        raise DatasetError("file", f"cannot read parquet: {e}") from e
    return _from_frame(frame, limits)


def _from_frame(frame, limits: UploadLimits) -> ArrayDataset:
    """A pandas frame with a label column and numeric feature columns -> ArrayDataset."""
    import pandas as pd

    label = limits.label_column
    columns = [str(c) for c in frame.columns]
    if label not in columns:
        raise DatasetError("file.label", f"no label column {label!r}; columns are {columns[:20]}")
    if columns.count(label) > 1:
        raise DatasetError("file.label", f"more than one column named {label!r}")
    frame.columns = columns
    feature_cols = [c for c in columns if c != label]
    if not feature_cols:
        raise DatasetError("file", "no feature columns besides the label")
    _check_sizes(len(frame), len(feature_cols), limits)

    for col in feature_cols:
        series = frame[col]
        if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
            bad = series[pd.to_numeric(series, errors="coerce").isna() & series.notna()]
            example = f" (row {bad.index[0]}: {str(bad.iloc[0])[:40]!r})" if len(bad) else ""
            raise DatasetError("file", f"column {col!r} is not numeric{example}")
        if series.isna().any():
            raise DatasetError(
                "file", f"column {col!r} has missing values (row {int(series.isna().to_numpy().argmax())})"
            )
    labels = frame[label]
    if labels.isna().any():
        raise DatasetError("file.label", f"missing label in row {int(labels.isna().to_numpy().argmax())}")

    x = frame[feature_cols].to_numpy(dtype=np.float64)
    if not np.isfinite(x).all():
        raise DatasetError("file", "features contain infinite values")
    if pd.api.types.is_numeric_dtype(labels) or pd.api.types.is_bool_dtype(labels):
        raw = labels.to_numpy()
    else:
        raw = labels.astype(str).to_numpy().astype(np.str_)
    y, classes = _encode_labels(raw, None, limits)
    return ArrayDataset(x.astype(np.float32), y, classes)


# ---------------------------------------------------------------------------------------------------------
# .zip image folders


def _read_image_zip(path: Path, limits: UploadLimits) -> ArrayDataset:
    zf, files = _open_zip(path, limits)
    with zf:
        images, class_dirs = _layout(zf, files)
        if len(images) > limits.max_samples:
            raise DatasetError("file", f"{len(images)} images, the limit is {limits.max_samples}")
        if limits.image_size**2 > limits.max_features:
            raise DatasetError("file", f"image_size {limits.image_size} exceeds {limits.max_features} values")
        classes = sorted(set(class_dirs) | {c for c, _ in images})
        if len(classes) > limits.max_classes:
            raise DatasetError("classes", f"{len(classes)} classes, the limit is {limits.max_classes}")
        counts = {c: 0 for c in classes}
        for c, _ in images:
            counts[c] += 1
        empty = [c for c, n in counts.items() if n == 0]
        if empty:
            raise DatasetError("classes", f"class folder(s) without images: {empty[:10]}")

        budget = [limits.max_uncompressed_bytes]
        size = limits.image_size
        pixels = np.empty((len(images), size, size, 3), dtype=np.uint8)
        for i, (_, info) in enumerate(images):
            pixels[i] = _decode_image(_read_entry(zf, info, budget), info.filename, size, limits)

    gray = bool((pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 0] == pixels[..., 2]).all())
    if gray:
        pixels = pixels[..., :1]
    x = pixels.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    position = {c: i for i, c in enumerate(classes)}
    y = np.array([position[c] for c, _ in images], dtype=np.int64)
    return ArrayDataset(x, y, classes)


def _layout(
    zf: zipfile.ZipFile, files: list[zipfile.ZipInfo]
) -> tuple[list[tuple[str, zipfile.ZipInfo]], set[str]]:
    """Find (class, entry) for each image and the set of class folders (to spot empty ones)."""
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


def _decode_image(data: bytes, name: str, size: int, limits: UploadLimits) -> np.ndarray:
    """Decode PNG/JPEG/BMP bytes to a (size, size, 3) uint8 RGB array."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data), formats=_PIL_FORMATS) as img:
            width, height = img.size
            if width * height > limits.max_image_pixels or width < 1 or height < 1:
                raise DatasetError("file", f"image {name!r} is {width}x{height}, too large")
            img.draft("RGB", (size, size))  # JPEG: decode at reduced scale when possible
            if img.mode.startswith("I") or img.mode == "F":  # 16/32-bit gray: scale to 8 bits
                values = np.asarray(img, dtype=np.float64)
                if img.mode.startswith("I;16") or (img.mode == "I" and values.max(initial=0) > 255):
                    values = values / 257.0
                img = Image.fromarray(np.clip(values, 0, 255).astype(np.uint8))
            elif img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                img = img.convert("RGBA")
                background = Image.new("RGBA", img.size, (255, 255, 255, 255))
                img = Image.alpha_composite(background, img)
            img = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except DatasetError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as e:
        raise DatasetError("file", f"cannot read image {name!r}: {e}") from e
