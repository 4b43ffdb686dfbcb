"""Many images into one uint8 `(N, C, H, W)` array of an `ArraySink`, one image at a time.

`store_encoded(sink, n, images, limits)` decodes PNG / JPEG / BMP bytes with `prepare_image`;
`store_pixels(sink, n, batches, limits, own_size, channels)` takes uint8 arrays already decoded (`.npy` /
`.npz` uploads), resizing them only when an image size was chosen, keeping their channels. Decoded
images are written as RGB, and when every one of them turns out gray the array is reduced to its first
channel at the end. Both return (x, preprocessing).

    x, pre = store_encoded(sink, len(entries), ((name, data) for name, data in entries), limits)
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from core.data.arrays import ArraySink
from core.data.images import (
    DEFAULT_IMAGE_SIZE,
    image_preprocessing,
    prepare_image,
    resize_pixels,
)
from core.data.limits import UploadLimits
from core.errors import DatasetError

__all__ = ["check_side", "store_encoded", "store_pixels"]


def check_side(size: tuple[int, int], limits: UploadLimits, field: str = "image_size") -> None:
    if max(size) > limits.max_image_side or min(size) < 1:
        raise DatasetError(
            field, f"images of {size[0]}x{size[1]}: each side must lie in 1..{limits.max_image_side}"
        )


def _is_gray(image: np.ndarray) -> bool:
    return image.shape[0] == 1 or bool((image[0] == image[1]).all() and (image[0] == image[2]).all())


def store_encoded(
    sink: ArraySink, n: int, images: Iterable[tuple[str, bytes]], limits: UploadLimits
) -> tuple[np.ndarray, dict]:
    """Decode `n` (name, bytes) images into array "x" of `sink`; (x, preprocessing)."""
    size = limits.image_hw((DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE))
    check_side(size, limits)
    rgb = image_preprocessing(size, limits.resize, channels=3)
    gray = True
    with sink.rows("x-rgb", n, (3, *size), np.uint8) as rows:
        for name, data in images:
            image = prepare_image(data, rgb, max_pixels=limits.max_image_pixels, name=name)
            gray = gray and _is_gray(image)
            rows.append(image)
    return _finish(sink, n, size, gray), image_preprocessing(size, limits.resize, 1 if gray else 3)


def store_pixels(
    sink: ArraySink,
    n: int,
    batches: Iterable[np.ndarray],
    limits: UploadLimits,
    own_size: tuple[int, int],
    channels: int,
) -> tuple[np.ndarray, dict]:
    """Write `n` uint8 images given as (B, channels, H, W) batches into array "x"; resized when
    `limits.image_size` was chosen, else kept at `own_size`. Arrays keep the channels they came with."""
    size = limits.image_hw(own_size)
    check_side(size, limits, "image_size" if limits.image_size is not None else "file.x")
    with sink.rows("x", n, (channels, *size), np.uint8) as rows:
        for batch in batches:
            if size != own_size:
                batch = np.stack(
                    [resize_pixels(img.transpose(1, 2, 0), size, limits.resize) for img in batch]
                )
            rows.extend(batch)
    return sink.open("x"), image_preprocessing(size, limits.resize, channels)


def _finish(sink: ArraySink, n: int, size: tuple[int, int], gray: bool) -> np.ndarray:
    """Array "x" from "x-rgb": its first channel when every image is gray, else the RGB array itself."""
    if not gray:
        sink.rename("x-rgb", "x")
        return sink.open("x")
    rgb = sink.open("x-rgb")
    with sink.rows("x", n, (1, *size), np.uint8) as rows:
        step = max(1, (16 << 20) // max(1, 3 * size[0] * size[1]))
        for start in range(0, n, step):
            rows.extend(rgb[start : start + step, :1])
    del rgb
    sink.discard("x-rgb")
    return sink.open("x")
