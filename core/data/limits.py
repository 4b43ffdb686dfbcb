"""`UploadLimits`: the bounds and the options applied to one upload.

    limits = UploadLimits(max_bytes=100 << 20, image_size=(32, 32), resize="shorter_side")

Bounds: the uploaded file's size, samples, values per tabular sample, classes, zip entries, total
uncompressed bytes of an archive (and of a Parquet file's tabular columns), the compression ratio of each
zip entry, pixels per image before resizing, the side of stored images, the bytes of tabular data parsed
in memory, and `max_stored_bytes` (what the converted arrays may take; None: unbounded).
Options: `image_size` (an int or (H, W); None: DEFAULT_IMAGE_SIZE for encoded images, and arrays of images
keep their own size), `resize` (one of RESIZE_MODES) and `label_column` (csv / Parquet).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.data.images import DEFAULT_MAX_IMAGE_PIXELS, DEFAULT_RESIZE, MAX_IMAGE_SIDE

__all__ = ["UploadLimits"]

MiB = 1024 * 1024


@dataclass(frozen=True)
class UploadLimits:
    """See the module docstring. `max_bytes` is the size of the uploaded file itself."""

    max_bytes: int = 256 * MiB
    max_samples: int = 200_000
    max_features: int = 100_000  # values per tabular sample
    max_classes: int = 1000
    max_zip_entries: int = 20_000
    max_uncompressed_bytes: int = 512 * MiB
    max_compression_ratio: float = 200.0
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS  # per image, before resizing
    max_image_side: int = MAX_IMAGE_SIDE  # of the stored images
    max_tabular_bytes: int = 512 * MiB  # csv text / tabular arrays parsed in memory
    max_stored_bytes: int | None = None
    image_size: int | tuple[int, int] | None = None
    resize: str = DEFAULT_RESIZE
    label_column: str = "label"

    def image_hw(self, default: tuple[int, int] | None) -> tuple[int, int] | None:
        """`image_size` as (H, W); `default` when none was chosen."""
        if self.image_size is None:
            return default
        if isinstance(self.image_size, int):
            return (self.image_size, self.image_size)
        return (int(self.image_size[0]), int(self.image_size[1]))
