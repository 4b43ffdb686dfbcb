"""Tests of core.data.images: image sizes, the preprocessing record, and prepare_image (every resize mode
at a known pixel, EXIF orientation, modes, the pixel bound, channels, arrays resized the same way).

.venv/bin/python -m pytest tests/core/test_images.py -q
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from core.data.images import (
    image_preprocessing,
    image_spec,
    parse_image_size,
    prepare_image,
    resize_pixels,
)
from core.errors import DatasetError

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def encode(img: Image.Image, fmt: str = "PNG", **save) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    return buf.getvalue()


def bands(width: int = 48, height: int = 16) -> Image.Image:
    """Three vertical bands, red | green | blue, each width/3 wide."""
    pixels = np.zeros((height, width, 3), np.uint8)
    third = width // 3
    pixels[:, :third], pixels[:, third : 2 * third], pixels[:, 2 * third :] = RED, GREEN, BLUE
    return Image.fromarray(pixels)


def pre(size=(16, 16), resize="stretch", channels=3) -> dict:
    return image_preprocessing(size, resize, channels)


@pytest.mark.parametrize(
    ("value", "want"),
    [("32", (32, 32)), (32, (32, 32)), ("24x40", (24, 40)), (" 8 X 512 ", (8, 512)), ([16, 9], (16, 9))],
)
def test_parse_image_size(value, want):
    assert parse_image_size(value) == want


@pytest.mark.parametrize("value", ["7", "513", "0x32", "32x", "abc", "-5", "1e3", "", True])
def test_parse_image_size_rejects(value):
    with pytest.raises(DatasetError) as info:
        parse_image_size(value)
    assert info.value.field == "image_size"


def test_preprocessing_record_and_spec():
    record = image_preprocessing((24, 32), "pad", 1)
    assert record == {"kind": "image", "size": [24, 32], "resize": "pad", "channels": 1}
    assert image_spec(record) == ((24, 32), "pad", 1)
    assert image_spec(None) is None and image_spec({"kind": "standardize"}) is None
    with pytest.raises(ValueError):
        image_spec({"kind": "image", "size": [8], "channels": 3})
    with pytest.raises(DatasetError) as info:
        image_preprocessing((8, 8), "crop", 3)
    assert info.value.field == "resize"


def test_each_resize_mode_at_known_pixels():
    data = encode(bands())  # 48 x 16: red | green | blue
    stretch = prepare_image(data, pre(resize="stretch"))
    assert stretch.shape == (3, 16, 16) and stretch.dtype == np.uint8
    assert (
        tuple(stretch[:, 8, 0]) == RED
        and tuple(stretch[:, 8, 8]) == GREEN
        and tuple(stretch[:, 8, 15]) == BLUE
    )

    shorter = prepare_image(data, pre(resize="shorter_side"))  # scale 1, the centre 16 columns: green
    assert tuple(shorter[:, 8, 0]) == GREEN and tuple(shorter[:, 8, 15]) == GREEN

    pad = prepare_image(data, pre(resize="pad"))  # 16 x 5.33 inside 16 x 16: black bars above and below
    assert tuple(pad[:, 0, 8]) == (0, 0, 0) and tuple(pad[:, 15, 8]) == (0, 0, 0)
    assert tuple(pad[:, 8, 0]) == RED and tuple(pad[:, 8, 8]) == GREEN and tuple(pad[:, 8, 15]) == BLUE


def test_non_square_size_is_height_by_width():
    out = prepare_image(encode(bands()), pre(size=(8, 24), resize="stretch"))
    assert out.shape == (3, 8, 24)
    assert tuple(out[:, 4, 0]) == RED and tuple(out[:, 4, 23]) == BLUE


def test_exif_orientation_is_applied():
    img = bands(48, 16)  # wide; EXIF 6 says "rotate 90 degrees clockwise to display"
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(img, "JPEG", exif=exif.tobytes(), quality=95)
    out = prepare_image(data, pre(size=(48, 16), resize="stretch"))  # H 48 x W 16: displayed portrait
    assert out.shape == (3, 48, 16)
    top, bottom = out[:, 2, 8].astype(int), out[:, 45, 8].astype(int)
    assert top[0] > 200 and top[2] < 60  # red on top after the clockwise turn
    assert bottom[2] > 200 and bottom[0] < 60


def test_modes_transparency_and_16_bit_gray():
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))  # fully transparent: white background shows
    assert (prepare_image(encode(rgba), pre()) == 255).all()
    gray16 = Image.fromarray(np.full((10, 10), 65535, np.uint16))
    assert (prepare_image(encode(gray16), pre(channels=1)) == 255).all()
    palette = Image.new("P", (10, 10), 0)
    palette.putpalette([0, 0, 255] + [0] * 765)
    assert tuple(prepare_image(encode(palette), pre())[:, 0, 0]) == BLUE


def test_one_channel_of_a_gray_image_equals_its_rgb_channels():
    gray = Image.fromarray(np.arange(100, dtype=np.uint8).reshape(10, 10) * 2, "L")
    data = encode(gray)
    one, three = prepare_image(data, pre(channels=1)), prepare_image(data, pre(channels=3))
    assert (
        one.shape == (1, 16, 16) and np.array_equal(one[0], three[0]) and np.array_equal(three[0], three[2])
    )


def test_pixel_bound_and_unreadable_bytes_name_the_field():
    with pytest.raises(DatasetError, match="too large") as info:
        prepare_image(encode(Image.new("RGB", (20, 20))), pre(), max_pixels=399, field="files")
    assert info.value.field == "files"
    for data in (b"not an image", encode(Image.new("L", (4, 4)), "GIF")):
        with pytest.raises(DatasetError, match="cannot read image") as info:
            prepare_image(data, pre(), name="x.png")
        assert info.value.field == "file"


def test_resize_pixels_matches_prepare_image():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    for mode in ("stretch", "shorter_side", "pad"):
        want = prepare_image(encode(Image.fromarray(pixels)), pre(size=(12, 12), resize=mode))
        assert np.array_equal(resize_pixels(pixels, (12, 12), mode), want), mode
    gray = pixels[..., :1]
    assert resize_pixels(gray, (8, 8), "stretch").shape == (1, 8, 8)
