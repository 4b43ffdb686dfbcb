"""Upload memory: the API process's peak RSS while it receives and converts a big dataset upload, and the
upload's time next to a plain on-disk copy of the same file, measured in the same run.

Setup: the API as `python -m uvicorn --factory api.main:create_app` (one process, the embedded SQLite
default under a temporary SIMTRAIN_HOME, migrated first), a tenant key, and per format one generated
file of --size-mib:

- `npy`  uint8 images (N, 3, 64, 64) with a labels `.npy` (10 classes): stored as they are (streamed to
         disk while hashed, then moved into place: the cheapest path).
- `zip`  class folders of 256 x 256 JPEGs (noise, quality 90: about 100 KB each), stored at 32 x 32
         (`image_size=32`, `resize=shorter_side`): every image decoded and resized.

Each round uploads the file (a streamed multipart POST from this process, httpx) and then deletes the
dataset again, interleaved with the baseline: `shutil.copyfile` of the same file onto the same disk,
plus an fsync (what the upload's own write costs at least). Peak RSS is the API process's VmHWM from
/proc (reset through /proc/PID/clear_refs before each upload; sampled VmRSS every 20 ms as well, where
the reset is not allowed); the baseline RSS is the API's VmRSS just before. Target: peak RSS < 300 MB
for a 2 GiB upload.

    python benchmarks/upload_memory.py                        # 512 MiB, npy + zip, 2 rounds, writes the section
    python benchmarks/upload_memory.py --size-mib 2048 --formats npy --rounds 1 --no-write
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Self

import numpy as np
from common import ROOT, command_line, free_port, load_average, machine, median, ratio, today, write_section

MiB = 1024 * 1024
SECTION = "Upload memory"


# ---------------------------------------------------------------------------------------------- the files


def make_npy(directory: Path, size: int) -> tuple[Path, Path]:
    """uint8 images (N, 3, 64, 64) of about `size` bytes, and their labels."""
    n = max(20, size // (3 * 64 * 64))
    x = np.lib.format.open_memmap(directory / "x.npy", mode="w+", dtype=np.uint8, shape=(n, 3, 64, 64))
    rng = np.random.default_rng(0)
    for start in range(0, n, 4096):
        x[start : start + 4096] = rng.integers(0, 256, size=x[start : start + 4096].shape, dtype=np.uint8)
    x.flush()
    del x
    np.save(directory / "y.npy", np.arange(n) % 10)
    return directory / "x.npy", directory / "y.npy"


def make_zip(directory: Path, size: int) -> Path:
    """Class folders of noise JPEGs (256 x 256) adding up to about `size` bytes (stored, not deflated)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    path = directory / "images.zip"
    written = i = 0
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        while written < size or i < 20:
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, size=(256, 256, 3), dtype=np.uint8)).save(
                buf, "JPEG", quality=90
            )
            zf.writestr(f"class{i % 10}/{i}.jpg", buf.getvalue())
            written += buf.tell()
            i += 1
    return path


# ---------------------------------------------------------------------------------------------- the API


class Api:
    """The API as a uvicorn subprocess on a free port (its own process group), on a temporary home."""

    def __init__(self, home: Path) -> None:
        from migrations import upgrade_head

        self.home, self.port = home, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        database_url = f"sqlite:///{home / 'simtrain.db'}"
        upgrade_head(database_url)
        self.key = _api_key(database_url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIMTRAIN_")}
        env |= {"SIMTRAIN_HOME": str(home), "SIMTRAIN_MAX_STORED_BYTES_PER_TENANT": str(1 << 40),
                "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}  # fmt: skip
        self.log = open(home / "api.log", "wb")  # noqa: SIM115 - closed in stop()
        cmd = [sys.executable, "-m", "uvicorn", "--factory", "api.main:create_app", "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)  # fmt: skip
        self._wait_ready()

    def _wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError((self.home / "api.log").read_text()[-3000:])

    def status_kb(self, field: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def reset_peak(self) -> bool:
        try:
            Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(30)
        self.log.close()


def _api_key(database_url: str) -> str:
    from core.auth import create_api_key
    from core.db import make_engine, make_sessionmaker

    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            return create_api_key(session, "bench")
    finally:
        engine.dispose()


class RssSampler:
    """The largest VmRSS of the API seen every 20 ms while running (a fallback for VmHWM)."""

    def __init__(self, api: Api) -> None:
        self.api, self.peak_kb, self._stop = api, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, self.api.status_kb("VmRSS"))
            time.sleep(0.02)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------------------------------------- the cases


def upload(api: Api, files: dict[str, Path], form: dict[str, str]) -> dict:
    """One streamed upload, then the dataset is deleted again; wall time and the API's RSS."""
    import httpx

    headers = {"Authorization": f"Bearer {api.key}"}
    base_kb = api.status_kb("VmRSS")
    reset = api.reset_peak()
    handles = {name: path.open("rb") for name, path in files.items()}
    try:
        with RssSampler(api) as sampler:
            t0 = time.perf_counter()
            r = httpx.post(f"{api.url}/v1/datasets", files={k: (files[k].name, f) for k, f in handles.items()},
                           data=form, headers=headers, timeout=3600)  # fmt: skip
            wall = time.perf_counter() - t0
    finally:
        for f in handles.values():
            f.close()
    if r.status_code != 201:
        raise RuntimeError(f"upload answered {r.status_code}: {r.text[:500]}")
    peak_kb = max(sampler.peak_kb, api.status_kb("VmHWM") if reset else 0)
    httpx.delete(f"{api.url}/v1/datasets/{r.json()['id']}", headers=headers, timeout=60).raise_for_status()
    return {
        "wall": wall,
        "base_mb": base_kb / 1024,
        "peak_mb": peak_kb / 1024,
        "stored": r.json()["stored_bytes"],
    }


def plain_copy(src: Path, directory: Path) -> float:
    t0 = time.perf_counter()
    dst = directory / "copy.bin"
    shutil.copyfile(src, dst)
    with open(dst, "rb+") as f:
        os.fsync(f.fileno())
    wall = time.perf_counter() - t0
    dst.unlink()
    return wall


def run_format(api: Api, fmt: str, work: Path, size: int, rounds: int) -> dict:
    if fmt == "npy":
        x, y = make_npy(work, size)
        files, form = {"file": x, "labels": y}, {}
    else:
        files, form = {"file": make_zip(work, size)}, {"image_size": "32", "resize": "shorter_side"}
    total = sum(p.stat().st_size for p in files.values())
    uploads, copies = [], []
    for r in range(rounds):
        order = ("upload", "copy") if r % 2 == 0 else ("copy", "upload")
        for case in order:
            if case == "upload":
                uploads.append(upload(api, files, form))
            else:
                copies.append(sum(plain_copy(p, api.home) for p in files.values()))
        print(f"{fmt} round {r + 1}: upload {uploads[-1]['wall']:.2f}s peak {uploads[-1]['peak_mb']:.0f} MB, "
              f"copy {copies[-1]:.2f}s", flush=True)  # fmt: skip
    for p in files.values():
        p.unlink()
    return {"bytes": total, "uploads": uploads, "copies": copies}


def report(results: dict[str, dict], args) -> str:
    lines = [
        f"{today()}, {machine()}, load average {load_average()}.",
        f"`{command_line('upload_memory.py', sys.argv[1:])}`",
        "",
        "| format | upload | stored | API RSS before | API peak RSS | growth | upload time | plain copy | ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for fmt, res in results.items():
        up, copy = res["uploads"], median(res["copies"])
        wall = median(u["wall"] for u in up)
        lines.append(
            f"| {fmt} | {res['bytes'] / MiB:.0f} MiB | {up[0]['stored'] / MiB:.1f} MiB "
            f"| {median(u['base_mb'] for u in up):.0f} MB | {max(u['peak_mb'] for u in up):.0f} MB "
            f"| {max(u['peak_mb'] - u['base_mb'] for u in up):.0f} MB "
            f"| {wall:.2f} s | {copy:.2f} s | {ratio(wall, copy):.2f}x |"
        )
    note = (
        f"Medians over {args.rounds} round(s), interleaved with the copy. Peak RSS: the largest seen; growth: "
        "the largest peak minus the RSS just before (the idle API holds no torch: uploads never import it)."
    )
    lines += ["", note]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--formats", default="npy,zip")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="simtrain-bench-upload-") as tmp:
        work, home = Path(tmp) / "files", Path(tmp) / "home"
        work.mkdir()
        home.mkdir()
        api = Api(home)
        try:
            results = {
                f: run_format(api, f, work, args.size_mib * MiB, args.rounds) for f in args.formats.split(",")
            }
        finally:
            api.stop()
    body = report(results, args)
    print(body)
    if not args.no_write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
