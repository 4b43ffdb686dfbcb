"""Hostile dataset references and uploads: always a 4xx naming the field, never anything stored.

Complements tests/api/test_datasets.py (missing label column, non-numeric column, a non-UTF-8 byte, a
one-class .npz, a `../` zip entry, an upload over the bound through the test client): here dataset refs
that try paths and URLs, zip bombs (honest and lying headers, also inside .npz), zip entries that escape by
absolute / drive / backslash / NUL names or are symlinks, image folders with one class or an empty class,
more malformed CSVs, and an oversized upload against a real uvicorn server, refused while streaming.
"""

from __future__ import annotations

import io
import stat
import struct
import zipfile

import numpy as np
import pytest
from hostile_testlib import add_key, raw_post
from sqlalchemy import func, select

from core.db.models import Dataset, Job

# ------------------------------------------------------------------------------------------ dataset refs

BAD_REFS = [
    "../etc/passwd",
    "../../../../etc/passwd",
    "/etc/passwd",
    "/tmp/simtrain/datasets/x.npz",
    "builtin:../../etc/passwd",
    "builtin:digits/../../x",
    "builtin:digits\x00.npz",
    "00000000-0000-4000-8000-000000000000\x00",
    "builtin:digits\n",
    "00000000-0000-4000-8000-000000000000\n",
    "http://127.0.0.1/x.npz",
    "http://169.254.169.254/latest/meta-data/",
    "file:///etc/passwd",
    "ftp://example.com/key.npz",  # a scheme the allow-list does not open (s3:// and https:// are dataset references)
    "..%2F..%2Fetc%2Fpasswd",
    "C:\\Windows\\win.ini",
    "BUILTIN:DIGITS",
    "builtin:" + "d" * 500,
    "",
]


@pytest.mark.parametrize("ref", BAD_REFS, ids=[repr(r)[1:30] for r in BAD_REFS])
def test_dataset_ref_that_is_a_path_or_url_is_422_naming_dataset(embedded, ref):
    c, auth = embedded.client, embedded.auth_a
    body = {"dataset": ref, "loss": {"kind": "cross_entropy"}, "training": {"epochs": 1}}
    r = c.post("/v1/jobs", json=body, headers=auth)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["details"][0]["loc"] == ["dataset"], err
    comparison = {
        "dataset": ref,
        "variants": [{"name": "simloss", "loss": {"kind": "simloss"}}],
        "similarity": {"kind": "ordinal"},
        "seeds": 1,
        "training": {"epochs": 1},
    }
    r = c.post("/v1/comparisons", json=comparison, headers=auth)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["loc"] == ["dataset"], r.text
    with embedded.sessionmaker() as s:
        assert s.execute(select(func.count()).select_from(Job)).scalar_one() == 0


@pytest.mark.parametrize(
    "path",
    ["..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "x%00y", "http:%2F%2F127.0.0.1%2F", "%2E%2E", "a" * 5000],
)
def test_dataset_id_in_the_path_is_a_plain_404(embedded, path):
    for method in ("GET", "DELETE"):
        r = embedded.client.request(method, f"/v1/datasets/{path}", headers=embedded.auth_a)
        assert r.status_code == 404, (method, r.status_code, r.text)
        assert r.json()["error"]["code"] == "not_found"


# -------------------------------------------------------------------------------------------- uploads


def _png(rgb=(200, 10, 10), size=(10, 10)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, rgb).save(buf, format="PNG")
    return buf.getvalue()


def _zip(entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in entries.items():
            if name.endswith("/"):
                zf.writestr(zipfile.ZipInfo(name), b"")
            else:
                zf.writestr(name, data)
    return buf.getvalue()


def _good_images() -> dict[str, bytes]:
    return {
        f"{c}/{i}.png": _png(rgb)
        for c, rgb in (("red", (200, 0, 0)), ("blue", (0, 0, 200)))
        for i in range(3)
    }


def _patch_zip(
    data: bytes, *, name: tuple[bytes, bytes] | None = None, file_size: int | None = None
) -> bytes:
    """Rewrite the local and central headers of a one-entry-of-interest zip: a name's bytes (same length)
    or the declared uncompressed size of the *last* entry (what zipfile would never write)."""
    out = bytearray(data)
    if name is not None:
        old, new = name
        assert len(old) == len(new) and out.count(old) == 2
        out = bytearray(bytes(out).replace(old, new))
    if file_size is not None:
        local = bytes(out).rfind(b"PK\x03\x04")
        central = bytes(out).rfind(b"PK\x01\x02")
        struct.pack_into("<I", out, local + 22, file_size)
        struct.pack_into("<I", out, central + 24, file_size)
    return bytes(out)


def _symlink_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in _good_images().items():
            zf.writestr(name, data)
        link = zipfile.ZipInfo("red/link.png")
        link.create_system = 3  # unix
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    return buf.getvalue()


def _bomb_png_zip() -> bytes:
    return _zip({**_good_images(), "red/bomb.png": b"\0" * (40 * 1024 * 1024)})  # ~40 KB compressed


def _lying_zip() -> bytes:
    # a 4 MB entry that claims to be 1000 bytes (under the ratio check's floor): must stop at 1000
    data = _zip({**_good_images(), "red/zz.png": b"\0" * (4 * 1024 * 1024)})
    return _patch_zip(data, file_size=1000)


def _bomb_npz() -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, x=np.zeros((20_000, 1_000), dtype=np.float32), y=np.arange(20_000) % 2)
    return buf.getvalue()  # 80 MB of x in ~80 KB


def _nul_name_zip() -> bytes:
    data = _zip({**_good_images(), "red/evilXname.png": _png()})
    return _patch_zip(data, name=(b"red/evilXname.png", b"red/evil\x00name.png"))


def _png_bomb_zip(side: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (side, side)).save(buf, format="PNG")  # side^2 pixels in a few hundred KB
    return _zip({**_good_images(), "red/huge.png": buf.getvalue()}, compression=zipfile.ZIP_STORED)


def _csv(lines: list[str], encoding: str = "utf-8") -> bytes:
    return ("\n".join(lines) + "\n").encode(encoding)


GOOD_ROWS = [f"{i * 0.5},{i % 3},{['cat', 'dog'][i % 2]}" for i in range(10)]

UPLOADS = [
    # zip bombs
    ("bomb-image-zip", "d.zip", _bomb_png_zip, "file", "compression ratio"),
    ("bomb-lying-header", "d.zip", _lying_zip, "file", "zz.png"),
    ("bomb-npz", "d.npz", _bomb_npz, "file", "compression ratio"),
    ("bomb-png-100mpx", "d.zip", lambda: _png_bomb_zip(10_000), "file", "too large"),  # simtrain's bound
    ("bomb-png-900mpx", "d.zip", lambda: _png_bomb_zip(30_000), "file", "decompression bomb"),  # PIL's
    # entries that escape the archive
    ("slip-absolute", "d.zip", lambda: _zip({**_good_images(), "/etc/cron.d/x.png": _png()}), "file", "unsafe"),
    ("slip-drive", "d.zip", lambda: _zip({**_good_images(), "C:/x/y.png": _png()}), "file", "unsafe"),
    ("slip-backslash", "d.zip", lambda: _patch_zip(_zip({**_good_images(), "red/..X..Xx.png": _png()}),
                                                    name=(b"red/..X..Xx.png", b"red/..\\..\\x.png")), "file", "unsafe"),
    ("slip-deep-dotdot", "d.zip", lambda: _zip({**_good_images(), "red/../../../../x.png": _png()}), "file", "unsafe"),
    ("slip-nul-name", "d.zip", _nul_name_zip, "file", "unsafe"),
    ("symlink-entry", "d.zip", _symlink_zip, "file", "symbolic link"),
    # image folders that cannot train
    ("images-one-class", "d.zip", lambda: _zip({f"only/{i}.png": _png() for i in range(4)}), "classes", "2 classes"),
    ("images-empty-class", "d.zip", lambda: _zip({**{f"red/{i}.png": _png() for i in range(3)}, "blue/": b"",
                                                  **{f"green/{i}.png": _png((0, 200, 0)) for i in range(3)}}),
     "classes", "blue"),
    ("images-not-images", "d.zip", lambda: _zip({"red/1.png": b"not a png", "blue/1.png": b"nor this"}), "file",
     "cannot read image"),
    # CSVs
    ("csv-label-column-form", "d.csv", lambda: _csv(["a,b,label", *GOOD_ROWS]), "file.label", "species"),
    ("csv-nonnumeric-late", "d.csv", lambda: _csv(["a,b,label", *GOOD_ROWS, "1,oops,cat"]), "file", "numeric"),
    ("csv-empty-feature", "d.csv", lambda: _csv(["a,b,label", *GOOD_ROWS, "1,,cat"]), "file", "missing"),
    ("csv-inf-feature", "d.csv", lambda: _csv(["a,b,label", *GOOD_ROWS, "1,1e400,cat"]), "file", "infinite"),
    ("csv-label-only", "d.csv", lambda: _csv(["label", "cat", "dog", "cat", "dog"]), "file", "feature"),
    ("csv-header-only", "d.csv", lambda: _csv(["a,b,label"]), "file", "no samples"),
    ("csv-utf16", "d.csv", lambda: _csv(["a,b,label", *GOOD_ROWS], encoding="utf-16"), "file", "UTF-8"),
    ("csv-latin1-header", "d.csv", lambda: _csv(["\u00e4,b,label", *GOOD_ROWS], encoding="latin-1"), "file", "UTF-8"),
    ("csv-nul", "d.csv", lambda: _csv(["a,b,label", *GOOD_ROWS, "1,2,c\x00t"]), "file", "NUL"),
    ("csv-one-class", "d.csv", lambda: _csv(["a,label", *[f"{i},cat" for i in range(10)]]), "classes", "2 classes"),
    ("npz-pickled-object", "d.npz", lambda: _npz_object(), "file.x", "pickle"),
]  # fmt: skip


def _npz_object() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x=np.array([{"a": 1}, {"b": 2}], dtype=object), y=np.array([0, 1]))
    return buf.getvalue()


def _nothing_stored(svc) -> None:
    assert svc.storage.list("datasets/") == []
    tmp = svc.settings.home / "tmp"
    assert (list(tmp.iterdir()) if tmp.exists() else []) == []
    with svc.sessionmaker() as s:
        assert s.execute(select(func.count()).select_from(Dataset)).scalar_one() == 0
    assert svc.client.get("/v1/datasets", headers=svc.auth_a).json()["items"] == []


@pytest.mark.timeout(120)
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # the 100 Mpx image, refused
@pytest.mark.parametrize(
    ("filename", "make", "field", "words"), [u[1:] for u in UPLOADS], ids=[u[0] for u in UPLOADS]
)
def test_hostile_upload_is_422_and_stores_nothing(embedded, filename, make, field, words):
    data = make()
    form = {"label_column": "species"} if "species" in words else {}
    r = embedded.client.post(
        "/v1/datasets", files={"file": (filename, data, "application/octet-stream")}, data=form,
        headers=embedded.auth_a,
    )  # fmt: skip
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_dataset", err
    assert err["details"][0]["field"] == field, err
    assert words.lower() in err["message"].lower(), err
    _nothing_stored(embedded)


def test_upload_just_over_the_bound_is_413_while_copying(make_service):
    """Over `max_upload_bytes` but inside the multipart allowance of the body bound: the route's own
    bounded copy refuses it, and its temporary file is gone."""
    svc = make_service("sqlite", max_upload_bytes=4096)
    data = b"a,label\n" + b"1,cat\n" * 700  # 4208 bytes
    assert 4096 < len(data) < 4096 + 60_000
    r = svc.client.post("/v1/datasets", files={"file": ("d.csv", data)}, headers=svc.auth_a)
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "payload_too_large"
    _nothing_stored(svc)


def _multipart(total: int, boundary: str = "hostileboundary"):
    """(head, chunk generator, tail) of a multipart upload of a `total`-byte CSV, made as it is sent."""
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
        "Content-Type: text/csv\r\n\r\na,label\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    row = b"0.5,cat\n" * 8192

    def chunks():
        yield head
        sent = 0
        while sent < total:
            yield row
            sent += len(row)
        yield tail

    return chunks, f"multipart/form-data; boundary={boundary}"


@pytest.mark.timeout(120)
def test_upload_over_the_bound_is_refused_before_it_is_read(api_server, tmp_path):
    """200 MB against a 1 MiB bound on a real server: 413 after a few MB at most, with and without a
    declared length; no temporary file is left, neither simtrain's nor the multipart parser's."""
    sys_tmp = tmp_path / "sys-tmp"
    sys_tmp.mkdir()
    server = api_server(env={"TMPDIR": str(sys_tmp)}, max_upload_bytes=1024 * 1024)
    key = add_key(server.database_url, "tenant-a")
    total = 200 * 1024 * 1024
    chunks, content_type = _multipart(total)
    length = sum(len(c) for c in chunks())
    for chunked in (False, True):
        headers = {"Authorization": f"Bearer {key}", "Content-Type": content_type}
        if not chunked:
            headers["Content-Length"] = str(length)
        status, body, sent = raw_post(server.port, "/v1/datasets", headers, chunks(), chunked=chunked)
        assert status == 413, (chunked, status, body, server.logs())
        assert body["error"]["code"] == "payload_too_large"
        assert sent < 32 * 1024 * 1024, f"{sent} bytes sent before the refusal (chunked={chunked})"
        print(f"upload of {length} bytes (chunked={chunked}): 413 after {sent} bytes")
    assert not (server.home / "tmp").exists() or list((server.home / "tmp").iterdir()) == []
    assert list(sys_tmp.iterdir()) == []
    assert not (server.home / "artifacts").exists() or list((server.home / "artifacts").rglob("*.npz")) == []
    import httpx

    r = httpx.get(f"{server.url}/v1/datasets", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200 and r.json()["items"] == []
