"""Dataset budget benchmark: a stored dataset 3x the device data budget (`--scale`), streamed vs in memory.

`plan.data_budget_bytes` (the worker's `SIMTRAIN_TRAIN_DATA_BUDGET_BYTES`, core/settings.py) decides
the path (core/training/feed.py): training + validation features up to the budget are copied to the
device once (resident; host memory on CPU), larger ones stream from the memmapped store through
DataLoader workers. This writes a synthetic uint8 3 x 32 x 32 dataset of 3 x `--budget-mib` (default
64 MiB -> 192 MiB, 65,536 images) with `core.data.stored.write_stored`, then trains on it with
`core.training.train` in a fresh subprocess per run, alternating:

- streaming: budget `--budget-mib` (the set is 3x over it): `StreamingFeed`, `--workers` loader processes;
- resident: budget 1 TiB (the same set fits): the whole split read into memory first.

Each subprocess first trains once on 640 of the images (lazy imports, kernels: not measured), then
resets its peak RSS (`echo 5 > /proc/self/clear_refs`) and reports, for the measured run: its RSS before
(VmRSS: torch imported, dataset opened), its peak (VmHWM), the loader workers' RSS sampled every 0.1 s
from /proc (the largest peak, and the largest growth after a worker's first sample: a forked worker
starts with the training process's pages, shared), and the CPU time of the process plus its joined
workers. (`getrusage(RUSAGE_CHILDREN).ru_maxrss` does not separate the workers: importing torch already
runs a child process as large as the interpreter.) samples/s = training samples x epochs / the epochs'
training time (the engine's history); the whole call is reported too. Default model {"kind": "linear"},
so the data path, not the model, sets the pace (`--model cnn` for a small CNN). On CUDA the resident
copy lives in GPU memory, not in the RSS: the run also reports the peak of torch's CUDA allocator.

    python benchmarks/dataset_budget.py                 # CPU, writes its section of docs/benchmarks.md
    python benchmarks/dataset_budget.py --device cuda --budget-mib 256 --label cuda
    python benchmarks/dataset_budget.py --rounds 1 --no-write

The claim checked: the streaming run's peak RSS stays bounded (well under the dataset's size), unlike
the resident run's, which holds the whole set.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Self

from common import (
    ROOT,
    add_report_args,
    load_average,
    median,
    publish,
    ratio,
    run_line,
)

SECTION = "Dataset budget"
MIB = 1 << 20
ROW_BYTES = 3 * 32 * 32
MODES = ("streaming", "resident")


# ------------------------------------------------------------------------------------------------ data


def write_dataset(directory: Path, n: int, seed: int = 0) -> None:
    """n uint8 images (class templates plus noise, 10 classes) written chunk by chunk as a stored dataset."""
    import numpy as np

    from core.data import ArrayDataset
    from core.data.stored import write_stored

    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    templates = rng.integers(0, 256, (10, 3, 32, 32), dtype=np.int16)
    y = rng.integers(0, 10, n)
    x = np.lib.format.open_memmap(directory / "x.npy", mode="w+", dtype=np.uint8, shape=(n, 3, 32, 32))
    for start in range(0, n, 8192):
        part = y[start : start + 8192]
        noise = rng.integers(-60, 61, (len(part), 3, 32, 32), dtype=np.int16)
        x[start : start + len(part)] = np.clip(templates[part] + noise, 0, 255)
    x.flush()
    del x
    x = np.load(directory / "x.npy", mmap_mode="r")
    write_stored(ArrayDataset(x, y, [f"c{i}" for i in range(10)]), directory)  # y.npy, meta.json


# ------------------------------------------------------------------------------------------------ child


def rss_mib(pid: int | str = "self", field: str = "VmRSS") -> float:
    """VmRSS (or VmHWM, the peak) of a process now, from /proc (nan when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan


def child_pids() -> list[int]:
    """The processes whose parent is this one (the loader workers), from /proc."""
    me, found = os.getpid(), []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                found.append(int(entry.name))
    return found


class WorkerRss:
    """Samples the RSS of this process's children (the loader workers) in a thread, every `interval_s`:
    the largest seen, and each worker's growth after its first sample (its fork-time pages)."""

    def __init__(self, interval_s: float = 0.1) -> None:
        self.interval_s, self.first, self.peak = interval_s, {}, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            for pid in child_pids():
                rss = rss_mib(pid)
                if not math.isnan(rss):
                    self.first.setdefault(pid, rss)
                    self.peak[pid] = max(self.peak.get(pid, 0.0), rss)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def largest(self) -> tuple[float, float]:
        """(peak RSS of the largest worker, the largest growth of any worker); nan without workers."""
        if not self.peak:
            return math.nan, math.nan
        return max(self.peak.values()), max(self.peak[p] - self.first[p] for p in self.peak)


class ModeHooks:
    """Notes which data path the engine took (its on_start info)."""

    data = "?"

    def on_start(self, info):
        self.data = info["data"]

    def on_epoch(self, epoch, epochs, record):
        pass

    def on_checkpoint(self, epoch):
        pass

    def should_stop(self):
        return False

    def on_warning(self, message):
        print(f"warning: {message}", file=sys.stderr)


def _cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (the joined loader workers)."""
    me, ended = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + ended.ru_utime + ended.ru_stime


def child(args) -> dict:
    """One training run in this (fresh) process, after a warm-up run on 640 images; what it measured."""
    import numpy as np
    import torch

    from core.data import ArrayDataset
    from core.data.stored import open_stored
    from core.training import TrainingSpec, TrainPlan, train

    if args.threads and args.device == "cpu":
        torch.set_num_threads(args.threads)
    ds = open_stored(Path(args.data))
    spec = TrainingSpec(epochs=args.epochs, batch_size=args.batch_size, seed=1, val_fraction=0.1)

    def plan(data: ArrayDataset, budget: int) -> TrainPlan:
        return TrainPlan(data, None, {"kind": "cross_entropy"}, {"kind": args.model}, spec, device=args.device,
                         data_budget_bytes=budget, loader_workers=args.workers)  # fmt: skip

    warm_up = ArrayDataset(np.asarray(ds.x[:640]), ds.y[:640], ds.classes)
    train(plan(warm_up, 1 << 40))  # lazy imports and kernels, before the measured run
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM: the peak from here on
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    hooks, before, cpu0 = ModeHooks(), rss_mib(), _cpu_seconds()
    t0 = time.perf_counter()
    with WorkerRss() as workers:
        result = train(plan(ds, args.budget_mib * MIB if args.child == "streaming" else 1 << 40), hooks)
    wall, cpu, n_train = time.perf_counter() - t0, _cpu_seconds() - cpu0, len(result.train_indices)
    worker_peak, worker_growth = workers.largest()
    return {
        "mode": hooks.data, "before_mib": before, "wall_s": wall, "cpu_s": cpu, "samples": n_train * args.epochs,
        "train_s": sum(n_train / r["samples_per_s"] for r in result.history),
        "peak_mib": rss_mib(field="VmHWM"),
        "worker_peak_mib": worker_peak, "worker_growth_mib": worker_growth, "workers": len(workers.peak),
        "accuracy": result.final_metrics["accuracy"],
        "gpu_peak_mib": torch.cuda.max_memory_allocated() / MIB if args.device.startswith("cuda") else math.nan,
    }  # fmt: skip


# ------------------------------------------------------------------------------------------------ parent


def run_child(mode: str, data: Path, args) -> dict:
    """This script with --child MODE in a new interpreter; its RESULT line."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--data", str(data),
           "--budget-mib", str(args.budget_mib), "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
           "--workers", str(args.workers), "--threads", str(args.threads), "--model", args.model,
           "--device", args.device]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH", "")] if p),
    }
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"child {mode} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    value = json.loads(line.removeprefix("RESULT "))
    if value["mode"] != mode:
        raise RuntimeError(f"asked for {mode}, the engine took the {value['mode']} path")
    return value


def run(args, data: Path) -> dict[str, list[dict]]:
    """`args.rounds` runs of each mode, alternating (S R, R S, ...)."""
    runs: dict[str, list[dict]] = {m: [] for m in MODES}
    for r in range(args.rounds):
        for mode in MODES if r % 2 == 0 else MODES[::-1]:
            v = run_child(mode, data, args)
            runs[mode].append(v)
            print(
                f"  round {r + 1} {mode:9s} {v['samples'] / v['train_s']:9,.0f} samples/s  RSS {v['before_mib']:.0f} "
                f"-> peak {v['peak_mib']:.0f} MiB  {v['workers']} worker(s): peak {v['worker_peak_mib']:.0f} MiB, "
                f"growth {v['worker_growth_mib']:.0f} MiB",
                flush=True,
            )
    return runs


def _mib(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.0f}"


def table(runs: dict[str, list[dict]]) -> str:
    med = {m: {k: median(r[k] for r in rows) for k in rows[0] if k != "mode"} for m, rows in runs.items()}
    head = ("| mode | samples/s (train phase) | whole call (s) | CPU (s) | training process: RSS before (MiB) | peak RSS "
            "(MiB) | growth (MiB) | loader workers | largest worker: peak RSS (MiB) | growth (MiB) |")  # fmt: skip
    lines = [head, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for m in MODES:
        v = med[m]
        lines.append(
            f"| {m} | {v['samples'] / v['train_s']:,.0f} | {v['wall_s']:.1f} | {v['cpu_s']:.1f} | "
            f"{v['before_mib']:.0f} | "
            f"{v['peak_mib']:.0f} | {v['peak_mib'] - v['before_mib']:.0f} | {v['workers']:.0f} | "
            f"{_mib(v['worker_peak_mib'])} | {_mib(v['worker_growth_mib'])} |"
        )
    sps = {m: med[m]["samples"] / med[m]["train_s"] for m in MODES}
    lines.append(
        f"| streaming / resident | {ratio(sps['streaming'], sps['resident']):.3f}x | | "
        f"{ratio(med['streaming']['cpu_s'], med['resident']['cpu_s']):.3f}x | | "
        f"{ratio(med['streaming']['peak_mib'], med['resident']['peak_mib']):.3f}x | | | | |"
    )
    if not math.isnan(med["resident"]["gpu_peak_mib"]):  # on CUDA: where the resident copy lives
        lines += ["", "| mode | peak CUDA memory allocated (MiB) |", "| --- | ---: |"]
        lines += [f"| {m} | {med[m]['gpu_peak_mib']:.0f} |" for m in MODES]
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument(
        "--budget-mib", type=int, default=64, help="the device data budget; the dataset is 3x this"
    )
    ap.add_argument("--scale", type=int, default=3, help="the dataset's size in budgets (default 3)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument(
        "--workers", type=int, default=0, help="loader processes when streaming (0: simtrain's default)"
    )
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads of the training process (0: torch's default)"
    )
    ap.add_argument("--model", default="linear", choices=["linear", "mlp", "cnn"])
    ap.add_argument("--rounds", type=int, default=3, help="runs of each mode (median reported)")
    add_report_args(ap, SECTION)
    ap.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.workers == 0:
        args.workers = max(1, min(8, (os.cpu_count() or 2) - 1))  # core/training/feed.py default_workers
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.child:
        print("RESULT " + json.dumps(child(args)), flush=True)
        return 0
    n = args.scale * args.budget_mib * MIB // ROW_BYTES
    load_before, t0 = load_average(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="simtrain-bench-budget-") as tmp:
        write_dataset(Path(tmp), n)
        runs = run(args, Path(tmp))
    minutes = (time.perf_counter() - t0) / 60
    tbl = table(runs)
    print(f"\n{tbl}")
    if args.no_write:
        return 0
    import torch  # for machine(): the torch version, and the children's thread count

    if args.threads and args.device == "cpu":
        torch.set_num_threads(args.threads)

    publish(
        args,
        SECTION,
        run_line("dataset_budget.py", argv, args.device, load_before, minutes),
        f"A stored uint8 dataset of {n:,} images 3 x 32 x 32 ({n * ROW_BYTES / MIB:.0f} MiB, {args.scale}x the "
        f'{args.budget_mib} MiB data budget), model {{"kind": "{args.model}"}}, {args.epochs} epochs, batch size '
        f"{args.batch_size}, val_fraction 0.1; `core.training.train` in a fresh process per run: streaming "
        f"(budget {args.budget_mib} MiB, {args.workers} loader worker(s)) vs resident (budget 1 TiB), "
        f"{args.rounds} runs each alternating, medians. RSS from /proc after a warm-up run in the same "
        f"process: before = VmRSS as the measured run starts, peak = VmHWM (reset after the warm-up), growth = "
        f"peak - before; loader workers sampled every 0.1 s (growth = after their first sample). CPU = the "
        f"training process plus its loader workers.",
        tbl,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
