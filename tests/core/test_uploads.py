"""Tests of core.data.uploads.parse_upload: every format, the data checks and the zip safety checks.

/tmp/venv/bin/python -m pytest tests/core/test_uploads.py -q
"""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from core.data import UploadLimits, parse_upload
from core.errors import DatasetError

LIMITS = UploadLimits(max_bytes=10 << 20, image_size=8)


def parse(tmp_path: Path, name: str, data: bytes, limits: UploadLimits = LIMITS):
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    return parse_upload(path, name, limits=limits)


def rejects(tmp_path, name, data, match=None, field="file", limits=LIMITS):
    with pytest.raises(DatasetError, match=match) as info:
        parse(tmp_path, name, data, limits)
    assert info.value.field == field, info.value.message
    return info.value


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def png_bytes(color, size=(5, 7), mode="RGB", fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format=fmt)
    return buf.getvalue()


def zip_bytes(entries: dict[str, bytes], *, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------- npz


def test_npz_int_labels(tmp_path):
    x = np.random.default_rng(0).normal(size=(6, 3))
    ds = parse(tmp_path, "d.npz", npz_bytes(x=x, y=np.array([0, 1, 2, 0, 1, 2])))
    assert ds.classes == ["0", "1", "2"] and ds.x.dtype == np.float32 and ds.feature_shape == (3,)
    assert np.allclose(ds.x, x)


def test_npz_string_labels_and_explicit_classes(tmp_path):
    x = np.zeros((4, 2, 2))
    ds = parse(tmp_path, "d.NPZ", npz_bytes(x=x, y=np.array(["dog", "cat", "dog", "cat"])))
    assert ds.classes == ["cat", "dog"] and ds.y.tolist() == [1, 0, 1, 0] and ds.feature_shape == (2, 2)
    ds = parse(tmp_path, "d.npz", npz_bytes(x=x, y=np.array([1, 0, 1, 0]), classes=np.array(["b", "a"])))
    assert ds.classes == ["b", "a"] and ds.y.tolist() == [1, 0, 1, 0]
    ds = parse(
        tmp_path, "d.npz", npz_bytes(x=x, y=np.array(["a", "b", "a", "b"]), classes=np.array(["b", "a"]))
    )
    assert ds.y.tolist() == [1, 0, 1, 0]


def test_npz_errors(tmp_path):
    x = np.zeros((4, 2))
    rejects(tmp_path, "d.npz", npz_bytes(x=x), match="'x' and 'y'")
    rejects(tmp_path, "d.npz", npz_bytes(x=x, y=np.array([0, 1, 0])), field="file.y")
    rejects(
        tmp_path, "d.npz", npz_bytes(x=np.array([[np.nan, 1]] * 4), y=np.array([0, 1, 0, 1])), field="file.x"
    )
    rejects(tmp_path, "d.npz", npz_bytes(x=x, y=np.array([0.5, 1, 0, 1])), field="file.label")
    rejects(
        tmp_path,
        "d.npz",
        npz_bytes(x=x, y=np.array([0, 5, 0, 1]), classes=np.array(["a", "b"])),
        field="file.label",
    )
    rejects(tmp_path, "d.npz", npz_bytes(x=np.array([["a"]] * 4), y=np.array([0, 1, 0, 1])), field="file.x")
    # object arrays need pickle: refused
    obj = np.empty(4, dtype=object)
    obj[:] = [0, 1, 0, 1]
    rejects(tmp_path, "d.npz", npz_bytes(x=x, y=obj), match="pickle|Object", field="file.y")
    rejects(tmp_path, "d.npz", b"PK\x03\x04garbage", match="zip")


def test_class_requirements(tmp_path):
    rejects(
        tmp_path,
        "d.npz",
        npz_bytes(x=np.zeros((3, 1)), y=np.zeros(3, dtype=int)),
        field="classes",
        match="2 classes",
    )
    rejects(
        tmp_path,
        "d.npz",
        npz_bytes(x=np.zeros((3, 1)), y=np.array([0, 0, 1])),
        field="classes",
        match="1 sample",
    )
    rejects(
        tmp_path,
        "d.npz",
        npz_bytes(x=np.zeros((4, 1)), y=np.array([0, 0, 2, 2]), classes=np.array(["a", "b", "c"])),
        field="classes",
        match="no samples",
    )
    many = UploadLimits(max_classes=3)
    rejects(
        tmp_path,
        "d.npz",
        npz_bytes(x=np.zeros((8, 1)), y=np.repeat(np.arange(4), 2)),
        field="classes",
        limits=many,
    )


def test_size_limits(tmp_path):
    data = npz_bytes(x=np.zeros((10, 5)), y=np.repeat([0, 1], 5))
    rejects(tmp_path, "d.npz", data, limits=UploadLimits(max_samples=9), match="samples")
    rejects(tmp_path, "d.npz", data, limits=UploadLimits(max_features=4), match="values per sample")
    rejects(tmp_path, "d.npz", data, limits=UploadLimits(max_bytes=100), match="bytes")
    rejects(tmp_path, "d.npz", b"", match="empty")


def test_unknown_extension(tmp_path):
    rejects(tmp_path, "data.xlsx", b"abc", match="unsupported")
    rejects(tmp_path, "noext", b"abc", match="unsupported")


# ---------------------------------------------------------------------------------------------- csv / parquet


def test_csv(tmp_path):
    text = "a,b,label\n1,2,cat\n3,4.5,dog\n5,6,cat\n7,8,dog\n"
    ds = parse(tmp_path, "d.csv", text.encode())
    assert ds.classes == ["cat", "dog"] and ds.x.tolist() == [[1, 2], [3, 4.5], [5, 6], [7, 8]]
    ds = parse(tmp_path, "d.csv", b"\xef\xbb\xbfa,label\n1,10\n2,2\n3,10\n4,2\n")  # BOM, numeric labels
    assert ds.classes == ["2", "10"] and ds.y.tolist() == [1, 0, 1, 0]
    ds = parse(tmp_path, "d.csv", b"a,y\n1,p\n2,q\n3,p\n4,q\n", UploadLimits(label_column="y"))
    assert ds.classes == ["p", "q"]


def test_csv_errors(tmp_path):
    err = rejects(tmp_path, "d.csv", b"a,b\n1,2\n3,4\n", field="file.label")
    assert "'label'" in err.message
    rejects(tmp_path, "d.csv", b"a,label\n1,x\nfoo,y\n3,x\n4,y\n", match="column 'a' is not numeric")
    rejects(tmp_path, "d.csv", b"a,label\n1,x\n,y\n3,x\n4,y\n", match="missing")
    rejects(tmp_path, "d.csv", b"a,label\n1,x\n2,\n3,x\n4,y\n", field="file.label", match="missing label")
    rejects(tmp_path, "d.csv", "a,label\n1,\xe9\n".encode("latin-1"), match="UTF-8")
    rejects(tmp_path, "d.csv", b"a,label\ninf,x\n2,y\n3,x\n4,y\n", match="infinite")
    rejects(tmp_path, "d.csv", b"label\nx\ny\n", match="no feature columns")
    rejects(tmp_path, "d.csv", b"\n", match="empty|parse")
    rejects(tmp_path, "d.csv", b'a,label\n1,x\n2,y,3,4\n"', match="parse")


def test_parquet(tmp_path):
    frame = pd.DataFrame({"f1": [0.5, 1.5, 2.5, 3.5], "f2": [1, 2, 3, 4], "label": ["b", "a", "b", "a"]})
    buf = io.BytesIO()
    frame.to_parquet(buf)
    ds = parse(tmp_path, "d.parquet", buf.getvalue())
    assert ds.classes == ["a", "b"] and ds.feature_shape == (2,) and ds.y.tolist() == [1, 0, 1, 0]

    frame["f2"] = ["1", "2", "x", "4"]
    buf = io.BytesIO()
    frame.to_parquet(buf)
    rejects(tmp_path, "d.parquet", buf.getvalue(), match="not numeric")
    rejects(tmp_path, "d.parquet", b"PAR1 not really", match="parquet")
    buf = io.BytesIO()
    pd.DataFrame({"f1": np.zeros(50), "label": np.repeat(["a", "b"], 25)}).to_parquet(buf)
    rejects(tmp_path, "d.parquet", buf.getvalue(), limits=UploadLimits(max_samples=49), match="rows")


# ---------------------------------------------------------------------------------------------- image zips


def test_image_zip_grayscale_and_top_folder(tmp_path):
    entries = {
        "digits/zero/a.png": png_bytes(0, mode="L"),
        "digits/zero/b.bmp": png_bytes(10, mode="L", fmt="BMP"),
        "digits/one/c.png": png_bytes((255, 255, 255)),  # RGB file with gray content
        "digits/one/d.JPG": png_bytes(255, mode="L", fmt="JPEG"),
        "digits/README.txt": b"ignored",
        "__MACOSX/digits/one/._c.png": b"junk",
        "digits/one/.DS_Store": b"junk",
    }
    ds = parse(tmp_path, "imgs.zip", zip_bytes(entries))
    assert ds.classes == ["one", "zero"] and ds.feature_shape == (1, 8, 8)
    assert ds.class_counts == [2, 2]
    assert ds.x.dtype == np.uint8  # stored as pixels 0..255, not scaled floats
    assert np.allclose(ds.x[ds.y == 0], 255, atol=5)  # white "one" images


def test_image_zip_rgb(tmp_path):
    entries = {
        "red/a.png": png_bytes((255, 0, 0)),
        "red/b.png": png_bytes((250, 0, 0, 255), mode="RGBA"),
        "gray/c.png": png_bytes(128, mode="L"),
        "gray/d.png": png_bytes(100, mode="L"),
    }
    ds = parse(tmp_path, "imgs.zip", zip_bytes(entries), UploadLimits(image_size=4))
    assert ds.feature_shape == (3, 4, 4) and ds.classes == ["gray", "red"]
    red = ds.x[ds.y == 1]
    assert ds.x.dtype == np.uint8
    assert np.allclose(red[:, 0], 255, atol=8) and np.allclose(red[:, 1:], 0)


@pytest.mark.parametrize(
    "name", ["../evil/a.png", "a/../../b.png", "/abs/a.png", "win\\a.png", "C:/a.png", "a/b\x00.png"]
)
def test_zip_slip_names_rejected(tmp_path, name):
    placeholder = "q" * len(name)  # zipfile sanitises names on write: patch the raw bytes afterwards
    data = zip_bytes({"ok/a.png": png_bytes(0), "ok2/a.png": png_bytes(0), placeholder: png_bytes(0)})
    data = data.replace(placeholder.encode(), name.encode("latin-1"))
    rejects(tmp_path, "imgs.zip", data, match="unsafe path")


def test_symlink_entry_rejected(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a/x.png", png_bytes(0))
        zf.writestr("b/y.png", png_bytes(0))
        link = zipfile.ZipInfo("a/link.png")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    rejects(tmp_path, "imgs.zip", buf.getvalue(), match="symbolic link")


def test_zip_bomb_limits(tmp_path):
    bomb = zip_bytes({"a/x.png": b"\0" * (4 << 20), "b/y.png": png_bytes(0)})
    rejects(tmp_path, "imgs.zip", bomb, match="compression ratio")
    rejects(tmp_path, "imgs.zip", bomb, limits=UploadLimits(max_uncompressed_bytes=1 << 20), match="expands")
    many = zip_bytes({f"c{i % 2}/{i}.png": b"" for i in range(30)}, compression=zipfile.ZIP_STORED)
    rejects(tmp_path, "imgs.zip", many, limits=UploadLimits(max_zip_entries=20), match="entries")


def _declare_size(data: bytes, name: str, size: int) -> bytes:
    """Rewrite the uncompressed size the central directory declares for `name`."""
    out = bytearray(data)
    pos = zipfile.ZipFile(io.BytesIO(data)).start_dir
    while out[pos : pos + 4] == b"PK\x01\x02":
        name_len, extra_len, comment_len = (
            int.from_bytes(out[pos + k : pos + k + 2], "little") for k in (28, 30, 32)
        )
        if out[pos + 46 : pos + 46 + name_len] == name.encode():
            out[pos + 24 : pos + 28] = size.to_bytes(4, "little")
        pos += 46 + name_len + extra_len + comment_len
    return bytes(out)


def test_zip_entry_lying_about_its_size(tmp_path):
    """A bomb whose central directory understates its size passes the up-front checks and is stopped
    while reading: never more than the declared bytes are decompressed."""
    data = zip_bytes({"a/x.png": b"\0" * (4 << 20), "b/y.png": png_bytes(0), "b/z.png": png_bytes(0)})
    data = _declare_size(data, "a/x.png", 1000)
    assert zipfile.ZipFile(io.BytesIO(data)).getinfo("a/x.png").file_size == 1000
    rejects(tmp_path, "imgs.zip", data, match="cannot read")


def test_image_zip_layout_errors(tmp_path):
    rejects(
        tmp_path,
        "i.zip",
        zip_bytes({"a.png": png_bytes(0), "b.png": png_bytes(0)}),
        match="one folder per class",
    )
    rejects(tmp_path, "i.zip", zip_bytes({"readme.txt": b"x"}), match="no images")
    rejects(
        tmp_path,
        "i.zip",
        zip_bytes(
            {
                "a/1.png": png_bytes(0),
                "a/2.png": png_bytes(0),
                "b/1.png": png_bytes(0),
                "b/2.png": png_bytes(0),
                "c/": b"",
            }
        ),
        field="classes",
        match="without images",
    )
    rejects(
        tmp_path,
        "i.zip",
        zip_bytes({"a/1.png": b"not an image", "b/1.png": png_bytes(0)}),
        match="cannot read image",
    )
    gif = io.BytesIO()
    Image.new("L", (4, 4)).save(gif, format="GIF")
    rejects(
        tmp_path,
        "i.zip",
        zip_bytes({"a/1.png": gif.getvalue(), "b/1.png": png_bytes(0)}),
        match="cannot read image",
    )
    big = UploadLimits(max_image_pixels=10)
    rejects(
        tmp_path,
        "i.zip",
        zip_bytes({"a/1.png": png_bytes(0), "b/1.png": png_bytes(0)}),
        limits=big,
        match="too large",
    )


# ---------------------------------------------------------------------------------------------- uint8 images


def _bands_png(width: int = 48, height: int = 16) -> bytes:
    """Red | green | blue vertical bands (see tests/core/test_images.py)."""
    pixels = np.zeros((height, width, 3), np.uint8)
    third = width // 3
    pixels[:, :third], pixels[:, third : 2 * third], pixels[:, 2 * third :] = (
        (255, 0, 0),
        (0, 255, 0),
        (0, 0, 255),
    )
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("resize", "left", "centre"),
    [
        ("stretch", (255, 0, 0), (0, 255, 0)),
        ("shorter_side", (0, 255, 0), (0, 255, 0)),
        ("pad", (255, 0, 0), (0, 255, 0)),
    ],
)
def test_image_zip_to_uint8_at_16x16_in_each_resize_mode(tmp_path, resize, left, centre):
    entries = {f"{c}/{i}.png": _bands_png() for c in ("a", "b") for i in range(2)}
    limits = UploadLimits(image_size=16, resize=resize)
    ds = parse_upload(_write(tmp_path, zip_bytes(entries)), "i.zip", limits=limits, workdir=tmp_path / "out")
    assert ds.x.dtype == np.uint8 and ds.feature_shape == (3, 16, 16)
    assert ds.preprocessing == {"kind": "image", "size": [16, 16], "resize": resize, "channels": 3}
    assert tuple(ds.x[0, :, 8, 0]) == left and tuple(ds.x[0, :, 8, 8]) == centre
    if resize == "pad":
        assert tuple(ds.x[0, :, 0, 8]) == (0, 0, 0)  # the letterbox bar
    assert isinstance(ds.x, np.memmap) and Path(ds.x.filename) == tmp_path / "out" / "x.npy"
    assert not (tmp_path / "out" / "x-rgb.npy").exists()


def _write(tmp_path: Path, data: bytes, name: str = "upload.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_gray_images_are_reduced_to_one_channel_on_disk(tmp_path):
    entries = {f"{c}/{i}.png": png_bytes(40 * i + 10, mode="L") for c in ("a", "b") for i in range(3)}
    ds = parse_upload(_write(tmp_path, zip_bytes(entries)), "i.zip", limits=LIMITS, workdir=tmp_path / "w")
    assert ds.feature_shape == (1, 8, 8) and ds.preprocessing["channels"] == 1
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["x.npy"]
    assert sorted(int(v) for v in ds.x[:, 0, 0, 0]) == [10, 10, 50, 50, 90, 90]


def test_stored_bytes_bound_refuses_before_writing(tmp_path):
    from core.data import OutputTooLarge

    entries = {f"{c}/{i}.png": png_bytes((200, 10, 10)) for c in ("a", "b") for i in range(2)}
    limits = UploadLimits(image_size=16, max_stored_bytes=4 * 3 * 16 * 16 - 1)
    with pytest.raises(OutputTooLarge):
        parse_upload(_write(tmp_path, zip_bytes(entries)), "i.zip", limits=limits, workdir=tmp_path / "w")
    assert list((tmp_path / "w").iterdir()) == []  # refused before a byte was written


def _hf_parquet(labels, *, names=None, struct=True, column="image") -> bytes:
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    images = [png_bytes(c, size=(12, 6)) for c in [(255, 0, 0), (0, 0, 255)] * (len(labels) // 2)]
    if struct:
        values = pa.array([{"bytes": b, "path": f"{i}.png"} for i, b in enumerate(images)],
                          type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]))  # fmt: skip
    else:
        values = pa.array(images, type=pa.binary())
    table = pa.table({column: values, "label": pa.array(labels)})
    if names is not None:
        features = {"image": {"_type": "Image"}, "label": {"names": names, "_type": "ClassLabel"}}
        table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=2)
    return buf.getvalue()


def test_parquet_in_the_hugging_face_layout(tmp_path):
    data = _hf_parquet([1, 0, 1, 0], names=["cat", "dog"])
    ds = parse_upload(_write(tmp_path, data), "train.parquet", limits=UploadLimits(image_size=(8, 8)))
    assert ds.classes == ["cat", "dog"] and ds.y.tolist() == [1, 0, 1, 0]
    assert ds.x.dtype == np.uint8 and ds.feature_shape == (3, 8, 8)
    assert tuple(ds.x[0, :, 4, 4]) == (255, 0, 0) and tuple(ds.x[1, :, 4, 4]) == (0, 0, 255)

    ds = parse_upload(_write(tmp_path, _hf_parquet(["b", "a", "b", "a"])), "t.parquet", limits=LIMITS)
    assert ds.classes == ["a", "b"] and ds.feature_shape == (3, 8, 8)  # string labels, no metadata
    ds = parse_upload(
        _write(tmp_path, _hf_parquet([3, 5, 3, 5], struct=False, column="png")), "t.parquet", limits=LIMITS
    )
    assert ds.classes == ["3", "5"] and ds.num_samples == 4  # a plain binary column


def test_parquet_images_errors(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rejects(
        tmp_path, "t.parquet", _hf_parquet([0, 1, 0, 7], names=["a", "b"]), field="file.label", match="lie in"
    )
    table = pa.table(
        {"image": pa.array([png_bytes(0), None, png_bytes(0), png_bytes(0)]), "label": [0, 1, 0, 1]}
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    rejects(tmp_path, "t.parquet", buf.getvalue(), match="row 1: no image bytes")
    table = pa.table({"image": pa.array([b"nope"] * 4), "label": [0, 1, 0, 1]})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    rejects(tmp_path, "t.parquet", buf.getvalue(), match="cannot read image 'row 0'")
    table = pa.table({"image": pa.array([png_bytes(0)] * 4), "y": [0, 1, 0, 1]})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    rejects(tmp_path, "t.parquet", buf.getvalue(), field="file.label", match="no label column 'label'")


@pytest.mark.parametrize("layout", ["nhw", "nchw", "nhwc"])
def test_npz_of_uint8_images_in_each_layout(tmp_path, layout):
    rng = np.random.default_rng(1)
    nchw = rng.integers(0, 256, size=(6, 1 if layout == "nhw" else 3, 10, 12), dtype=np.uint8)
    x = {"nhw": nchw[:, 0], "nchw": nchw, "nhwc": nchw.transpose(0, 2, 3, 1)}[layout]
    data = npz_bytes(x=x, y=np.array(["a", "b"] * 3))
    ds = parse_upload(_write(tmp_path, data), "d.npz", limits=UploadLimits(), workdir=tmp_path / "w")
    assert ds.x.dtype == np.uint8 and np.array_equal(ds.x, nchw) and isinstance(ds.x, np.memmap)
    assert ds.preprocessing == {
        "kind": "image",
        "size": [10, 12],
        "resize": "stretch",
        "channels": nchw.shape[1],
    }
    resized = parse_upload(_write(tmp_path, data), "d.npz", limits=UploadLimits(image_size=8, resize="pad"))
    assert resized.feature_shape == (nchw.shape[1], 8, 8) and resized.preprocessing["resize"] == "pad"


def test_npy_with_a_labels_file(tmp_path):
    x = np.random.default_rng(2).integers(0, 256, size=(4, 3, 9, 9), dtype=np.uint8)
    xs = _write(tmp_path, _npy_bytes(x), "x.npy")
    labels = _write(tmp_path, _npy_bytes(np.array([0, 1, 1, 0])), "y.npy")
    workdir = tmp_path / "w"
    workdir.mkdir()
    ds = parse_upload(xs, "x.npy", limits=UploadLimits(), workdir=workdir, labels=labels, labels_name="y.npy")
    assert np.array_equal(ds.x, x) and ds.classes == ["0", "1"] and isinstance(ds.x, np.memmap)
    assert not xs.exists() and (workdir / "x.npy").exists()  # already the stored form: moved, not copied
    text = _write(tmp_path, b"cat\ndog\ndog\ncat\n", "labels.txt")
    xs = _write(tmp_path, _npy_bytes(x.transpose(0, 2, 3, 1)), "x.npy")
    ds = parse_upload(xs, "x.npy", limits=UploadLimits(), labels=text, labels_name="labels.txt")
    assert ds.classes == ["cat", "dog"] and ds.y.tolist() == [0, 1, 1, 0] and np.array_equal(ds.x, x)


def _npy_bytes(arr: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def test_npy_refusals_name_the_field(tmp_path):
    x = np.zeros((4, 1, 8, 8), np.uint8)
    labels = _write(tmp_path, _npy_bytes(np.array([0, 1, 0, 1])), "y.npy")
    pickled = np.empty(4, dtype=object)
    pickled[:] = [{"a": 1}, 2, 3, 4]
    cases = [
        (_npy_bytes(pickled, allow_pickle=True), labels, "y.npy", "file", "pickle"),
        (_npy_bytes(x), None, "", "labels", "labels"),
        (
            _npy_bytes(x),
            _write(tmp_path, _npy_bytes(pickled, allow_pickle=True), "p.npy"),
            "p.npy",
            "labels",
            "pickle",
        ),
        (_npy_bytes(x), _write(tmp_path, _npy_bytes(np.array([0, 1])), "s.npy"), "s.npy", "labels", "shape"),
        (_npy_bytes(x), labels, "y.csv", "labels", "labels must be one of"),
        (_npy_bytes(np.zeros((4, 5, 8, 8), np.uint8)), labels, "y.npy", "file", "channels"),
        (_npy_bytes(x)[:-10], labels, "y.npy", "file", "truncated"),
        (b"\x93NUMPY garbage", labels, "y.npy", "file", "npy"),
    ]
    for data, label_path, label_name, field, words in cases:
        with pytest.raises(DatasetError, match=words) as info:
            parse_upload(_write(tmp_path, data, "x.npy"), "x.npy", limits=UploadLimits(), labels=label_path,
                         labels_name=label_name)  # fmt: skip
        assert info.value.field == field, (words, info.value.message)


def test_big_array_images_need_an_image_size(tmp_path):
    data = npz_bytes(x=np.zeros((4, 3, 8, 600), np.uint8), y=np.array([0, 1, 0, 1]))
    rejects(tmp_path, "d.npz", data, field="file.x", match="1..512", limits=UploadLimits())
    ds = parse(tmp_path, "d.npz", data, UploadLimits(image_size=(8, 64)))
    assert ds.feature_shape == (3, 8, 64)
