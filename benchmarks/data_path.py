"""Data path benchmark: images/s of simtrain's training feeds vs a plain torchvision DataLoader.

The same synthetic uint8 images (N x 3 x 32 x 32, stored with `core.data.stored.write_stored` and
opened as the read-only memmap a worker trains on), the same augmentation (RandomResizedCrop back to
32 x 32 with scale [0.08, 1], RandomHorizontalFlip: torchvision.transforms.v2, one random draw per
image), the same batch size. Each case delivers one epoch of augmented batches on the device; nothing
trains. Pairs with the same number of loader worker processes:

- simtrain streaming (`StreamingFeed`, what a set larger than the device budget gets): batches read from
  the memmapped store with os.pread in W DataLoader workers and augmented there (core/training/feed.py,
  rows.py, augment.py); vs torchvision with W workers: a map-style Dataset over the uint8 tensor in
  memory, `v2.Compose` per image in `__getitem__`, `DataLoader(shuffle=True, num_workers=W,
  persistent_workers=True)`, default collate.
- simtrain resident (`ResidentFeed`, the default for a set that fits): the split as one tensor on the
  device, batches sliced and augmented in the training process; vs torchvision with 0 workers.

All loaders are built once and warmed up by one epoch; then the cases alternate epoch by epoch (A B C D,
D C B A, ...), medians reported. The training process runs one torch thread (`--threads`; DataLoader
workers always run one). W defaults to simtrain's own choice (core/training/feed.py `default_workers`:
one per core but one, at most 8).

    python benchmarks/data_path.py                      # CPU, writes its section of docs/benchmarks.md
    python benchmarks/data_path.py --device cuda --samples 50000 --label cuda
    python benchmarks/data_path.py --workers 2 --rounds 3 --no-write

Target: simtrain >= 0.95x the torchvision loader's images/s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import (
    add_report_args,
    interleaved,
    load_average,
    median,
    publish,
    ratio,
    run_line,
)

from core.data import ArrayDataset
from core.data.stored import open_stored, write_stored
from core.training.augment import Augmenter
from core.training.feed import default_workers, make_feeds
from core.training.rng import augment_seeds, epoch_order
from core.training.spec import AugmentSpec

SECTION = "Data path"
TARGET = 0.95
SCALE = (0.08, 1.0)
AUGMENT = AugmentSpec(random_resized_crop={"scale": list(SCALE)}, horizontal_flip=True)


# ------------------------------------------------------------------------------------------------ data


def store_images(n: int, directory: Path, seed: int = 0) -> ArrayDataset:
    """n random uint8 3 x 32 x 32 images with 10 labels, written as a stored dataset and opened as a memmap."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    write_stored(ArrayDataset(x, rng.integers(0, 10, n), [f"c{i}" for i in range(10)]), directory)
    return open_stored(directory)


# ------------------------------------------------------------------------------------------------ cases


class TorchvisionImages(torch.utils.data.Dataset):
    """The plain way: images of a uint8 tensor, the v2 pipeline applied to each in `__getitem__`."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        from torchvision.transforms import v2

        self.x, self.y = x, y
        self.transform = v2.Compose([v2.RandomResizedCrop((32, 32), scale=SCALE, antialias=True),
                                     v2.RandomHorizontalFlip()])  # fmt: skip

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.transform(self.x[i]), self.y[i]


def torchvision_epoch(ds: ArrayDataset, args, device: torch.device, workers: int):
    """One epoch of a persistent torchvision DataLoader with `workers` processes (built once)."""
    data = TorchvisionImages(torch.from_numpy(np.asarray(ds.x).copy()), torch.from_numpy(ds.y.copy()))
    loader = torch.utils.data.DataLoader(
        data, batch_size=args.batch_size, shuffle=True, num_workers=workers, persistent_workers=workers > 0,
        pin_memory=device.type == "cuda", prefetch_factor=2 if workers else None,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip

    def epoch() -> tuple[int, float]:
        count, cpu0 = 0, workers_cpu(loader)
        for xb, yb in loader:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            count += len(xb)
        _sync(device)
        return count, workers_cpu(loader) - cpu0

    return epoch, loader


def simtrain_epoch(ds: ArrayDataset, args, device: torch.device, streaming: bool, workers: int):
    """One epoch of simtrain's training feed (resident or streaming), every image augmented under its seed."""
    n = ds.num_samples
    feed, _ = make_feeds(
        ds, np.arange(n, dtype=np.int64), np.zeros(0, dtype=np.int64), batch_size=args.batch_size,
        device=device, budget_bytes=0 if streaming else 1 << 62, workers=workers,
        augmenter=Augmenter(AUGMENT, ds.feature_shape),
    )  # fmt: skip
    assert feed.streaming == streaming
    epochs = iter(range(1, 1 << 30))

    def epoch() -> tuple[int, float]:
        e = next(epochs)
        count, cpu0 = 0, workers_cpu(feed.loader) if streaming else 0.0
        for xb, yb in feed.batches(epoch_order(n, 1, e), augment_seeds(n, 1, e)):
            count += len(xb)
        _sync(device)
        return count, (workers_cpu(feed.loader) - cpu0) if streaming else 0.0

    return epoch, feed


def workers_cpu(loader) -> float:
    """CPU seconds used so far by a DataLoader's (persistent) worker processes, from /proc; 0 before any."""
    workers = getattr(getattr(loader, "_iterator", None), "_workers", None) or []
    total = 0
    for w in workers:
        fields = Path(f"/proc/{w.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------------------------ run


def run(args, device: torch.device, ds: ArrayDataset) -> dict:
    """Build the four loaders, one warm-up epoch each, then alternate epochs; median images/s."""
    w = args.workers
    built = {
        f"torchvision, {w} worker(s)": torchvision_epoch(ds, args, device, w),
        f"simtrain streaming, {w} worker(s)": simtrain_epoch(ds, args, device, True, w),
        "torchvision, 0 workers": torchvision_epoch(ds, args, device, 0),
        "simtrain resident, 0 workers": simtrain_epoch(ds, args, device, False, 0),
    }
    cases = {name: epoch for name, (epoch, _) in built.items()}

    cpu: dict[str, list[float]] = {name: [] for name in built}

    def check(name, r, t, value):
        count, worker_cpu = value
        assert count == ds.num_samples, (name, count)
        cpu[name].append(t["cpu"] + worker_cpu)
        print(f"  round {r + 1} {name:34s} {t['wall']:6.2f} s  {count / t['wall']:9,.0f} images/s  "
              f"CPU {cpu[name][-1]:6.2f} s", flush=True)  # fmt: skip

    try:
        times = interleaved(cases, rounds=args.rounds, warmup=1, on_result=check)
    finally:
        for name, (_, owner) in built.items():
            if name.startswith("simtrain"):
                owner.close()
    ips = {k: ds.num_samples / median(v["wall"]) for k, v in times.items()}
    us = {k: 1e6 * median(v) / ds.num_samples for k, v in cpu.items()}  # CPU microseconds per image
    names = list(built)
    return {"ips": ips, "us": us, "pairs": [(names[1], names[0]), (names[3], names[2])]}


def ratios(res: dict, mine: str, theirs: str) -> dict[str, float]:
    """simtrain / torchvision in images/s (wall) and in images per CPU second (process + workers)."""
    return {
        "wall": ratio(res["ips"][mine], res["ips"][theirs]),
        "cpu": ratio(res["us"][theirs], res["us"][mine]),
    }


def table(res: dict) -> str:
    mark = lambda r: f"{r:.3f}x" + ("" if r >= TARGET else " ✗")
    lines = [
        "| case | images/s | simtrain / torchvision, wall | CPU per image (µs) | simtrain / torchvision, CPU |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for mine, theirs in res["pairs"]:
        r = ratios(res, mine, theirs)
        lines.append(f"| {theirs} | {res['ips'][theirs]:,.0f} | | {res['us'][theirs]:.0f} | |")
        lines.append(
            f"| {mine} | {res['ips'][mine]:,.0f} | {mark(r['wall'])} | {res['us'][mine]:.0f} | {mark(r['cpu'])} |"
        )
    return "\n".join(lines)


def verdict(res: dict) -> str:
    missed = [f"{mine} ({m} {r:.3f}x)" for mine, theirs in res["pairs"]
              for m, r in ratios(res, mine, theirs).items() if not r >= TARGET]  # fmt: skip
    return "all met" if not missed else "missed: " + ", ".join(missed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument(
        "--workers", type=int, default=default_workers(), help="loader processes (default: simtrain's)"
    )
    ap.add_argument("--rounds", type=int, default=5, help="timed epochs of each case (median reported)")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads of the training process (0: torch's default)"
    )
    add_report_args(ap, SECTION)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda but no CUDA device is available")
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before, t0 = load_average(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="simtrain-bench-data-") as tmp:
        res = run(args, device, store_images(args.samples, Path(tmp)))
    minutes = (time.perf_counter() - t0) / 60
    tbl = table(res)
    print(f"\n{tbl}\n\ntarget (simtrain >= {TARGET:.2f}x torchvision): {verdict(res)}")
    if args.no_write:
        return 0
    publish(
        args,
        SECTION,
        run_line("data_path.py", argv, str(device), load_before, minutes),
        f"One epoch of augmented batches (RandomResizedCrop scale [0.08, 1] + horizontal flip, per image) of "
        f"{args.samples:,} uint8 3 x 32 x 32 images, batch size {args.batch_size}, delivered on the device, "
        f"no training; simtrain's feeds vs a plain torchvision v2 DataLoader with the same number of "
        f"workers; {args.rounds} epochs per case alternating after a warm-up epoch, medians. CPU = the "
        f"process's CPU time plus its loader workers' (/proc), per image: steadier than wall time on a "
        f"shared machine; the CPU ratio is torchvision's CPU per image / simtrain's. "
        f"Target: >= {TARGET:.2f}x (✗ marks a miss): {verdict(res)}.",
        tbl,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
