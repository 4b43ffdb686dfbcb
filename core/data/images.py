"""Images to uint8 arrays, the one way for uploads and predictions alike.

A dataset of images is stored as uint8 `(N, C, H, W)` at a size the user picks at upload; the way raw
images became those arrays is its `preprocessing`:

    {"kind": "image", "size": [H, W], "resize": "shorter_side" | "stretch" | "pad", "channels": 1 | 3}

- `stretch`       resize to H x W, ignoring the aspect ratio;
- `shorter_side`  scale so the image covers H x W, then cut the centre (`PIL.ImageOps.fit`);
- `pad`           scale so the image fits inside H x W, then letterbox with black (`PIL.ImageOps.pad`).

`prepare_image(data, preprocessing)` decodes PNG / JPEG / BMP bytes (bounded by pixels before decoding,
EXIF orientation applied, transparency composited on white, 16-bit gray scaled to 8 bits), resizes and
returns `(C, H, W)` uint8. The training upload and `POST /v1/jobs/{id}/predict` both call it, so a
model sees at prediction exactly what it saw in training.

    pre = image_preprocessing(parse_image_size("32"), "shorter_side", channels=3)
    x = prepare_image(png_bytes, pre)           # (3, 32, 32) uint8
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from core.errors import DatasetError

__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "DEFAULT_RESIZE",
    "MAX_IMAGE_SIDE",
    "MIN_IMAGE_SIDE",
    "PIL_FORMATS",
    "RESIZE_MODES",
    "image_preprocessing",
    "image_spec",
    "parse_image_size",
    "prepare_image",
    "resize_pixels",
]

RESIZE_MODES = ("shorter_side", "stretch", "pad")
DEFAULT_RESIZE = "stretch"
DEFAULT_IMAGE_SIZE = 28
MIN_IMAGE_SIDE, MAX_IMAGE_SIDE = 8, 512
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096  # per image, before resizing
PIL_FORMATS = ["PNG", "JPEG", "BMP"]
_SIZE = re.compile(r"^\s*(\d{1,4})\s*(?:[xX\u00d7]\s*(\d{1,4}))?\s*$")


def parse_image_size(value: str | int | Sequence[int], *, field: str = "image_size") -> tuple[int, int]:
    """`32` / "32" -> (32, 32); "24x32" (H x W) -> (24, 32); each side within MIN..MAX_IMAGE_SIDE."""
    if isinstance(value, int) and not isinstance(value, bool):
        sides = (value, value)
    elif isinstance(value, str) and (match := _SIZE.match(value)):
        sides = (int(match[1]), int(match[2] or match[1]))
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        sides = (int(value[0]), int(value[1]))
    else:
        raise DatasetError(field, f"give one side (32) or HxW (24x32), got {str(value)[:40]!r}")
    if not all(MIN_IMAGE_SIDE <= s <= MAX_IMAGE_SIDE for s in sides):
        raise DatasetError(field, f"each side must lie in {MIN_IMAGE_SIDE}..{MAX_IMAGE_SIDE}, got {sides}")
    return sides


def image_preprocessing(size: tuple[int, int], resize: str, channels: int) -> dict[str, Any]:
    """The `preprocessing` record of images stored at `size` (H, W) with `channels`."""
    if resize not in RESIZE_MODES:
        raise DatasetError("resize", f"choose one of {list(RESIZE_MODES)}, got {str(resize)[:40]!r}")
    if channels not in (1, 3):
        raise DatasetError("file", f"images need 1 or 3 channels, got {channels}")
    return {"kind": "image", "size": [int(size[0]), int(size[1])], "resize": resize, "channels": channels}


def image_spec(preprocessing: Mapping[str, Any] | None) -> tuple[tuple[int, int], str, int] | None:
    """((H, W), resize, channels) of an image `preprocessing` record; None when it is not one."""
    if not isinstance(preprocessing, Mapping) or preprocessing.get("kind") != "image":
        return None
    try:
        height, width = (int(s) for s in preprocessing["size"])
        resize, channels = str(preprocessing.get("resize", DEFAULT_RESIZE)), int(preprocessing["channels"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"malformed image preprocessing {dict(preprocessing)!r}") from e
    if resize not in RESIZE_MODES or channels not in (1, 3) or height < 1 or width < 1:
        raise ValueError(f"malformed image preprocessing {dict(preprocessing)!r}")
    return (height, width), resize, channels


def prepare_image(
    data: bytes,
    preprocessing: Mapping[str, Any],
    *,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    name: str = "image",
    field: str = "file",
) -> np.ndarray:
    """PNG / JPEG / BMP bytes -> `(C, H, W)` uint8 as `preprocessing` says (DatasetError(field) if not)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    spec = image_spec(preprocessing)
    if spec is None:
        raise ValueError("prepare_image needs an image preprocessing record")
    size, resize, channels = spec
    try:
        with Image.open(io.BytesIO(data), formats=PIL_FORMATS) as img:
            width, height = img.size
            if width * height > max_pixels or width < 1 or height < 1:
                raise DatasetError(field, f"image {name!r} is {width}x{height}, too large")
            side = max(size)
            img.draft("RGB", (side, side))  # JPEG: decode at a reduced scale when that is enough
            rgb = _to_rgb(ImageOps.exif_transpose(img))
        out = _resize(rgb, size, resize)
    except DatasetError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as e:
        raise DatasetError(field, f"cannot read image {name!r}: {e}") from e
    return _channels_first(out, channels)


def resize_pixels(pixels: np.ndarray, size: tuple[int, int], resize: str) -> np.ndarray:
    """One uint8 image `(H, W)` or `(H, W, C)` (C = 1 or 3) resized to `size` like `prepare_image`;
    returns `(C, h, w)`."""
    from PIL import Image

    gray = pixels.ndim == 2 or pixels.shape[-1] == 1
    img = Image.fromarray(pixels.reshape(pixels.shape[:2]) if gray else pixels, "L" if gray else "RGB")
    return _channels_first(_resize(img, size, resize), 1 if gray else 3)


def _to_rgb(img):
    """Any decoded mode -> RGB: 16/32-bit gray scaled to 8 bits, transparency composited on white."""
    from PIL import Image

    if img.mode.startswith("I") or img.mode == "F":
        values = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16") or (img.mode == "I" and values.max(initial=0) > 255):
            values = values / 257.0
        img = Image.fromarray(np.clip(values, 0, 255).astype(np.uint8))
    elif img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", img.size, (255, 255, 255, 255)), img)
    return img.convert("RGB")


def _resize(img, size: tuple[int, int], resize: str):
    from PIL import Image, ImageOps

    height, width = size
    method = Image.Resampling.BILINEAR
    if img.size == (width, height):
        return img
    if resize == "shorter_side":
        return ImageOps.fit(img, (width, height), method=method, centering=(0.5, 0.5))
    if resize == "pad":
        return ImageOps.pad(img, (width, height), method=method, color=0, centering=(0.5, 0.5))
    return img.resize((width, height), method)


def _channels_first(img, channels: int) -> np.ndarray:
    if channels == 1 and img.mode != "L":
        img = img.convert("L")  # ITU-R 601 luma: exactly the value of a gray image's channels
    elif channels == 3 and img.mode != "RGB":
        img = img.convert("RGB")
    arr = np.asarray(img, dtype=np.uint8)
    return np.ascontiguousarray(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
