"""API process memory: the API's resident set when idle (after its first `/healthz`) and at its peak while it
receives and converts one big streamed `.npy` upload, split into anonymous memory (RssAnon: what the
process allocated) and mapped file pages (RssFile: page cache the kernel can take back).

Setup: the API exactly as `benchmarks/upload_memory.py` starts it (`python -m uvicorn --factory
api.main:create_app`, one process, SQLite under a temporary SIMTRAIN_HOME), and per kind one generated file
of --size-mib:

- `features`  float32 rows of 256 features (tabular): parsed batch by batch, checked for NaN / infinity,
              stored float32.
- `images`    uint8 images (N, 3, 64, 64): already the stored layout, moved into place.

Each of VmRSS, RssAnon and RssFile is sampled from /proc every 20 ms during the upload; the table shows
the idle value and the largest seen. Target: VmRSS under 300 MB for a 1 GiB upload.

    python benchmarks/api_memory.py                     # 1024 MiB, features + images; prints the table
    python benchmarks/api_memory.py --size-mib 256 --kinds images

The table is what docs/benchmarks.md "API process memory" shows (with the numbers from before, kept there).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from common import command_line, load_average, machine, today
from upload_memory import Api

MiB = 1024 * 1024
FIELDS = ("VmRSS", "RssAnon", "RssFile")
SHAPES = {"features": ((256,), np.float32), "images": ((3, 64, 64), np.uint8)}


def make_npy(directory: Path, kind: str, size: int) -> tuple[Path, Path]:
    """An .npy of about `size` bytes of `kind`, written block by block, and its labels (4 classes)."""
    row_shape, dtype = SHAPES[kind]
    n = max(16, size // (int(np.prod(row_shape)) * np.dtype(dtype).itemsize))
    x = np.lib.format.open_memmap(directory / "x.npy", mode="w+", dtype=dtype, shape=(n, *row_shape))
    rng = np.random.default_rng(0)
    for start in range(0, n, 4096):
        block = rng.random((min(4096, n - start), *row_shape), dtype=np.float32)
        x[start : start + 4096] = block if dtype == np.float32 else (block * 255).astype(np.uint8)
    x.flush()
    del x
    np.save(directory / "y.npy", np.arange(n) % 4)
    return directory / "x.npy", directory / "y.npy"


def sample(api: Api, peaks: dict[str, int], stop: threading.Event) -> None:
    while not stop.is_set():
        for name in FIELDS:
            peaks[name] = max(peaks[name], api.status_kb(name))
        time.sleep(0.02)


def upload(api: Api, x: Path, y: Path) -> dict:
    """One streamed upload (deleted again after): wall time and the peak of each RSS field, in kB."""
    import httpx

    peaks, stop = dict.fromkeys(FIELDS, 0), threading.Event()
    sampler = threading.Thread(target=sample, args=(api, peaks, stop), daemon=True)
    headers = {"Authorization": f"Bearer {api.key}"}
    with x.open("rb") as fx, y.open("rb") as fy:
        sampler.start()
        t0 = time.perf_counter()
        r = httpx.post(f"{api.url}/v1/datasets", files={"file": ("x.npy", fx), "labels": ("y.npy", fy)},
                       headers=headers, timeout=3600)  # fmt: skip
        wall = time.perf_counter() - t0
        stop.set()
        sampler.join()
    if r.status_code != 201:
        raise RuntimeError(f"upload answered {r.status_code}: {r.text[:500]}")
    httpx.delete(f"{api.url}/v1/datasets/{r.json()['id']}", headers=headers, timeout=60).raise_for_status()
    return {"wall": wall, **peaks}


def measure(kinds: list[str], size: int) -> tuple[dict, dict]:
    with tempfile.TemporaryDirectory(prefix="simtrain-api-memory-") as tmp:
        work = Path(tmp)
        api = Api(work)
        try:
            idle = {name: api.status_kb(name) for name in FIELDS}  # Api waited for /healthz
            results = {}
            for kind in kinds:
                x, y = make_npy(work, kind, size)
                results[kind] = {"bytes": x.stat().st_size, **upload(api, x, y)}
                x.unlink()
                y.unlink()
                print(f"{kind}: peak VmRSS {results[kind]['VmRSS'] / 1024:.0f} MiB", flush=True)
        finally:
            api.stop()
    return idle, results


def mib(kb: int) -> str:
    return f"{kb / 1024:.0f} MiB"


def report(idle: dict, results: dict, argv: list[str] | None) -> str:
    lines = [
        f"{today()}, {machine()}, load average {load_average()}.",
        f"`{command_line('api_memory.py', argv)}`",
        "",
        "| upload | size | time | VmRSS | RssAnon | RssFile |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    idle_cells = " | ".join(mib(idle[name]) for name in FIELDS)
    lines.append(f"| none (idle, after the first /healthz) | | | {idle_cells} |")
    for kind, r in results.items():
        lines.append(
            f"| .npy {kind} (peak) | {r['bytes'] / MiB:.0f} MiB | {r['wall']:.1f} s | {mib(r['VmRSS'])} | "
            f"{mib(r['RssAnon'])} | {mib(r['RssFile'])} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--kinds", default="features,images")
    args = parser.parse_args(argv)
    idle, results = measure(args.kinds.split(","), args.size_mib * MiB)
    print(report(idle, results, argv))


if __name__ == "__main__":
    main()
