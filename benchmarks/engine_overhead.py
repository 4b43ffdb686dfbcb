"""Engine overhead benchmark: `core.training.train` vs a minimal hand-written PyTorch loop, same process.

Two jobs on synthetic data (10 classes, 5 epochs, batch size 64, AdamW lr 1e-3, val_fraction 0.2, the
engine's defaults):

- mlp: 100,000 x 64 features, model {"kind": "mlp"} (one hidden layer of 128);
- cnn: 28 x 28 x 1 images (10,000 on CPU, 60,000 on CUDA), model {"kind": "cnn"} (channels 16, 32, hidden 128).

Cases per job, run interleaved round by round (A B C D, then D C B A, ...) after a warm-up round,
medians reported:

- baseline: the hand-written loop: the same model (built with core.models.build_model, so the
  architecture, the standardisation layer and the initial weights are identical), the same training
  split, batch size and optimizer; data on the device as tensors, a fresh permutation per epoch,
  F.cross_entropy, bf16 autocast on CUDA; no validation, no metrics, no checkpoints.
- baseline+val: the same plus a minimal per-epoch validation (logits, mean loss, accuracy): what any
  real loop does, for reference.
- engine: `train(plan, NoopHooks())`: everything the engine does (split, standardisation stats,
  per-epoch validation with all metrics, training loss / accuracy, best-weights tracking, the final
  float32 evaluation on CPU and model.json).
- engine+ckpt: the same plus what the worker adds cheaply: hooks that JSON-encode every epoch record
  (the progress write, without the database) and a CheckpointStore on a local temporary directory
  written every epoch (fsync'd).
- before, before+ckpt (with --before PATH): the same two with another copy of the engine module, to
  measure an engine change in the same run.

samples/s = training samples x epochs / wall time of the whole call. The ratio case / baseline is
reported for wall time and for process CPU time (steadier on a shared machine; CPU runs use one torch
thread by default so that no spin-waiting is counted); the target applies to engine and engine+ckpt vs
baseline. The engine's own per-phase times (train / validation / the rest) come from its history. On
CUDA each call also reports the GPU's mean utilisation while it ran (NVML, sampled every 0.1 s).

    python benchmarks/engine_overhead.py                         # CPU, both jobs, writes docs/benchmarks.md
    python benchmarks/engine_overhead.py --device cuda           # on a GPU (60k CNN images by default)
    python benchmarks/engine_overhead.py --jobs mlp --rounds 3 --no-write
    python benchmarks/engine_overhead.py --profile mlp           # torch.profiler + cProfile of one engine run
    git show <commit>:core/training/engine.py > /tmp/engine_before.py     # the engine before a change
    python benchmarks/engine_overhead.py --before /tmp/engine_before.py --label "before vs after"

Target: engine samples/s >= 0.9 x baseline for both jobs, with and without checkpoints.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import io
import json
import math
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
import torch.nn.functional as F
from common import (
    GpuUtilization,
    add_report_args,
    command_line,
    interleaved,
    load_average,
    machine,
    median,
    ratio,
    today,
    write_section,
)

from core.checkpoint import CheckpointStore
from core.data import ArrayDataset
from core.data.dataset import stratified_split
from core.models import build_model, standardization_stats
from core.storage import LocalStorage
from core.training import NoopHooks, TrainingSpec, TrainPlan, train

SECTION = "Engine overhead"
TARGET = 0.90
CLASSES = [f"c{i}" for i in range(10)]
MODELS = {"mlp": {"kind": "mlp"}, "cnn": {"kind": "cnn"}}


# ------------------------------------------------------------------------------------------------ data


def make_dataset(job: str, n: int, seed: int = 0) -> ArrayDataset:
    """Learnable synthetic data: labels from a random linear teacher (mlp) or class templates (cnn)."""
    rng = np.random.default_rng(seed)
    if job == "mlp":
        x = rng.standard_normal((n, 64), dtype=np.float32)
        w = rng.standard_normal((64, 10), dtype=np.float32)
        y = np.argmax(x @ w + 2.0 * rng.standard_normal((n, 10), dtype=np.float32), axis=1)
    else:
        templates = rng.random((10, 1, 28, 28), dtype=np.float32)
        y = rng.integers(0, 10, n)
        x = templates[y] + 0.8 * rng.standard_normal((n, 1, 28, 28), dtype=np.float32)
    return ArrayDataset(x.astype(np.float32), y.astype(np.int64), list(CLASSES))


# ------------------------------------------------------------------------------------------------ cases


class WorkerLikeHooks(NoopHooks):
    """What the worker's hooks do, minus the database: serialise each epoch record as JSON."""

    def __init__(self) -> None:
        self.bytes_written = 0

    def on_epoch(self, epoch, epochs, record):
        self.bytes_written += len(json.dumps(record))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def handwritten(
    ds: ArrayDataset,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    spec: TrainingSpec,
    model_spec: dict,
    device: torch.device,
    validate: bool,
) -> dict:
    """The minimal loop. Same model (and initial weights), split, batch size and optimizer as the engine.

    With `validate`, a minimal per-epoch validation too: logits of the validation split in chunks of
    1024 under no_grad, mean cross-entropy and accuracy (one sync per epoch).
    """
    torch.manual_seed(spec.seed)
    x_np, y_np = ds.x[train_idx], ds.y[train_idx]
    mean, std = standardization_stats(x_np)
    model = build_model(model_spec, ds.feature_shape, ds.num_classes, mean=mean, std=std).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=spec.weight_decay)
    cuda = device.type == "cuda"

    def put(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(a))
        return (t.pin_memory() if cuda else t).to(device, non_blocking=True)

    x, y = put(x_np), put(y_np)
    xv, yv = (put(ds.x[val_idx]), put(ds.y[val_idx])) if validate else (None, None)
    n, bs = len(y), spec.batch_size
    history = []
    for _ in range(spec.epochs):
        model.train()
        order = torch.randperm(n, device=device)
        for start in range(0, n, bs):
            idx = order[start : start + bs]
            xb, yb = x[idx], y[idx]
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=cuda):
                logits = model(xb)
            loss = F.cross_entropy(logits.float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if validate:
            model.eval()
            with torch.no_grad(), torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=cuda):
                out = torch.cat([model(xv[i : i + 1024]).float() for i in range(0, len(yv), 1024)])
                history.append((float(F.cross_entropy(out, yv)), float((out.argmax(1) == yv).float().mean())))
    _sync(device)
    return {"loss": float(loss.detach()), "history": history}


def engine_run(
    train_fn, ds: ArrayDataset, spec: TrainingSpec, model_spec: dict, device: torch.device, checkpoints: bool
) -> dict:
    plan = TrainPlan(ds, None, {"kind": "cross_entropy"}, model_spec, spec, device=str(device))
    if not checkpoints:
        result = train_fn(plan, NoopHooks())
        written = 0
    else:
        with tempfile.TemporaryDirectory(prefix="simtrain-bench-ckpt-") as tmp:  # fresh: never resumes
            store = CheckpointStore(LocalStorage(tmp), "jobs/bench/checkpoints")
            result = train_fn(plan, WorkerLikeHooks(), store)
            written = len(store.epochs())
    assert result.epochs_completed == spec.epochs and result.stop_reason == "completed", result.stop_reason
    hist = result.history
    n_train = len(ds.y) - len(result.val_indices)
    train_s = sum(n_train / r["samples_per_s"] for r in hist)
    epoch_s = sum(r["seconds"] for r in hist)
    return {
        "train_s": train_s,
        "val_s": epoch_s - train_s,
        "epoch_s": epoch_s,
        "val_accuracy": result.final_metrics["accuracy"],
        "checkpoints": written,
    }


def load_engine(path: Path):
    """`train` of another copy of core/training/engine.py (e.g. `git show <commit>:core/training/engine.py`)."""
    spec = importlib.util.spec_from_file_location("engine_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["engine_before"] = module
    spec.loader.exec_module(module)
    return module.train


# ------------------------------------------------------------------------------------------------ run


ENGINE_CASES = ("engine", "engine+ckpt", "before", "before+ckpt")
ALL_CASES = ("baseline", "baseline+val", *ENGINE_CASES)
DEFAULT_CASES = ("baseline", "baseline+val", "engine", "engine+ckpt")


def bench_job(job: str, n: int, args, device: torch.device, before=None) -> dict:
    ds = make_dataset(job, n)
    spec = TrainingSpec(epochs=args.epochs, batch_size=args.batch_size, seed=1)
    model_spec = MODELS[job]
    train_idx, val_idx = stratified_split(ds.y, spec.val_fraction, spec.seed)
    samples = len(train_idx) * spec.epochs
    extra: dict[str, list[dict]] = {name: [] for name in ENGINE_CASES}
    gpu: dict[str, list[float]] = {}  # case -> mean GPU utilisation (%) of each timed call (CUDA only)

    def keep(name, _round, t, value):
        value, util = value
        if name in extra:
            extra[name].append({**value, "wall_s": t["wall"]})
        if util is not None:
            gpu.setdefault(name, []).append(util)
        print(
            f"  {job} {name:12s} wall {t['wall']:7.2f} s  cpu {t['cpu']:7.2f} s  "
            f"{samples / t['wall']:10,.0f} samples/s" + (f"  GPU {util:5.1f}%" if util is not None else ""),
            flush=True,
        )

    every = {
        "baseline": lambda: handwritten(ds, train_idx, val_idx, spec, model_spec, device, validate=False),
        "baseline+val": lambda: handwritten(ds, train_idx, val_idx, spec, model_spec, device, validate=True),
        "engine": lambda: engine_run(train, ds, spec, model_spec, device, checkpoints=False),
        "engine+ckpt": lambda: engine_run(train, ds, spec, model_spec, device, checkpoints=True),
        "before": lambda: engine_run(before, ds, spec, model_spec, device, checkpoints=False),
        "before+ckpt": lambda: engine_run(before, ds, spec, model_spec, device, checkpoints=True),
    }
    cases = {name: _with_utilization(every[name], device) for name in args.cases}
    print(
        f"{job}: {n} samples ({len(train_idx)} train), {spec.epochs} epochs, batch {spec.batch_size}, "
        f"{args.rounds} rounds + {args.warmup} warm-up, device {device}, {torch.get_num_threads()} threads",
        flush=True,
    )
    times = interleaved(cases, rounds=args.rounds, warmup=args.warmup, on_result=keep)
    med = {name: {m: median(ts[m]) for m in ("wall", "cpu")} for name, ts in times.items()}
    return {
        "job": job,
        "n": n,
        "n_train": len(train_idx),
        "samples": samples,
        "median_s": med,
        "sps": {k: samples / v["wall"] for k, v in med.items()},
        "ratio": {k: {m: ratio(med["baseline"][m], v[m]) for m in ("wall", "cpu")} for k, v in med.items()},
        "phases": {
            k: {p: median(r[p] for r in rows) for p in ("train_s", "val_s", "epoch_s", "wall_s")}
            for k, rows in extra.items()
            if rows
        },
        "val_accuracy": median(r["val_accuracy"] for r in extra["engine"]) if extra["engine"] else math.nan,
        "gpu_util": {k: median(v) for k, v in gpu.items()},
        "rounds": times,
    }


def _with_utilization(fn, device: torch.device):
    """The case, returning (its value, the GPU's mean utilisation in % while it ran, or None on CPU)."""
    if device.type != "cuda":
        return lambda: (fn(), None)

    def run():
        with GpuUtilization(device.index or 0) as util:
            value = fn()
        return value, util.mean_percent

    return run


def _ratio_cell(r: float, case: str, judged: bool = True) -> str:
    return f"{r:.3f}x" + ("" if not judged or not case.startswith("engine") or r >= TARGET else " ✗")


def table(results: list[dict]) -> str:
    util = any(res["gpu_util"] for res in results)
    lines = [
        "| job | case | wall (s) | samples/s | vs baseline, wall | CPU (s) | vs baseline, CPU "
        "| train phase (s) | validation (s) | rest (s) |" + (" GPU util |" if util else ""),
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if util else ""),
    ]
    for res in results:
        for case in res["median_s"]:
            med, r = res["median_s"][case], res["ratio"][case]
            ph = res["phases"].get(case)
            cols = (
                f"{ph['train_s']:.2f} | {ph['val_s']:.2f} | {ph['wall_s'] - ph['epoch_s']:.2f}"
                if ph
                else f"{med['wall']:.2f} | – | –"
            )
            lines.append(
                f"| {res['job']} ({res['n_train']:,} train) | {case} | {med['wall']:.2f} | "
                f"{res['sps'][case]:,.0f} | {_ratio_cell(r['wall'], case)} | {med['cpu']:.2f} | "
                f"{_ratio_cell(r['cpu'], case, judged=not util)} | {cols} |"
                + (f" {res['gpu_util'].get(case, math.nan):.0f}% |" if util else "")
            )
    return "\n".join(lines)


def profile(job: str, n: int, args, device: torch.device) -> None:
    """One engine run (with checkpoints) under torch.profiler, then one under cProfile; top entries printed."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as tprofile

    ds = make_dataset(job, n)
    spec = TrainingSpec(epochs=args.epochs, batch_size=args.batch_size, seed=1)
    engine_run(train, ds, spec, MODELS[job], device, checkpoints=True)  # warm-up
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with tprofile(activities=activities) as prof:
        engine_run(train, ds, spec, MODELS[job], device, checkpoints=True)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=30))
    pr = cProfile.Profile()
    t0 = time.perf_counter()
    pr.enable()
    engine_run(train, ds, spec, MODELS[job], device, checkpoints=True)
    pr.disable()
    print(f"cProfile run: {time.perf_counter() - t0:.2f} s")
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(30)
    print(s.getvalue())


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The options, checked; `cases` resolved (baseline first, then the others in ALL_CASES order)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--jobs", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    ap.add_argument("--mlp-samples", type=int, default=100_000)
    ap.add_argument("--cnn-samples", type=int, default=None, help="default 10,000 on CPU, 60,000 on CUDA")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds (median reported)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch.set_num_threads on CPU (default 1: steadier on a shared machine; 0: torch's default)",
    )
    ap.add_argument(
        "--cases",
        nargs="+",
        choices=ALL_CASES,
        default=None,
        help=f"cases to run (default: {' '.join(DEFAULT_CASES)}, plus before and before+ckpt "
        f"with --before); baseline always runs",
    )
    ap.add_argument(
        "--before",
        type=Path,
        help="another engine.py to time in the same run as 'before' (git show <commit>:core/training/engine.py)",
    )
    ap.add_argument("--profile", choices=["mlp", "cnn"], help="profile one engine run of this job instead")
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    add_report_args(ap, SECTION)
    args = ap.parse_args(argv)
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda but no CUDA device is available")
    if args.cases is None:
        args.cases = list(DEFAULT_CASES) + (["before", "before+ckpt"] if args.before else [])
    args.cases = ["baseline"] + [c for c in ALL_CASES if c in args.cases and c != "baseline"]
    if any(c.startswith("before") for c in args.cases) and not args.before:
        ap.error("the before cases need --before PATH")
    return args


def sample_sizes(args: argparse.Namespace, device: torch.device) -> dict[str, int]:
    """Samples per job: --mlp-samples, and --cnn-samples or 10,000 on CPU / 60,000 on CUDA."""
    return {"mlp": args.mlp_samples, "cnn": args.cnn_samples or (60_000 if device.type == "cuda" else 10_000)}


def verdict_of(results: list[dict], device: torch.device) -> str:
    """The verdict: "all met", or the engine cases below TARGET (wall and CPU time; wall only on a GPU)."""
    judged = ("wall",) if device.type == "cuda" else ("wall", "cpu")  # on a GPU, CPU time is not the work
    missed = [
        f"{r['job']} {case} ({m} {r['ratio'][case][m]:.3f}x)"
        for r in results
        for case in ("engine", "engine+ckpt")
        if case in r["ratio"]
        for m in judged
        if not r["ratio"][case][m] >= TARGET
    ]
    return "all met" if not missed else "missed: " + ", ".join(missed)


def describe(
    args,
    argv,
    device: torch.device,
    results: list[dict],
    tbl: str,
    verdict: str,
    load_before: str,
    minutes: float,
) -> str:
    """The docs section's body: the run line, what was compared, --note, the table, phases and accuracy."""
    cmd = command_line("engine_overhead.py", argv)
    return (
        f"`{cmd.strip()}` on {today()}; {machine(str(device))}; load average {load_before} before, "
        f"{load_average()} after ({minutes:.1f} min).\n\n"
        f"`core.training.train` vs a minimal hand-written loop with the same model (`build_model`), split, "
        f"batch size {args.batch_size}, AdamW and {args.epochs} epochs, 10 classes; {args.rounds} rounds "
        f"interleaved after {args.warmup} warm-up, medians. samples/s = training samples x epochs / wall "
        f"time of the whole call (setup, per-epoch validation and metrics, checkpoints, final CPU "
        f"evaluation included). CPU = process CPU time of the call, the steadier number on a shared "
        f"machine (one torch thread on CPU, so no spin-waiting counts). Target: >= {TARGET:.2f}x the baseline (✗ marks a miss): {verdict}.\n\n"
        + (f"{args.note}\n\n" if args.note else "")
        + f"{tbl}\n\n"
        f"Phases are the engine's own: the train phase of every epoch, validation + metrics, and the rest "
        f"(setup, hooks, checkpoints, final evaluation). Median final val accuracy (engine, mlp / cnn "
        f"learnability check): "
        + ", ".join(f"{r['job']} {r['val_accuracy']:.3f}" for r in results)
        + ".\n"
        + (
            "GPU util = the mean of NVML's utilisation (% of time a kernel was running) sampled every 0.1 s "
            "during each call, median over rounds. On a GPU the target is judged on wall time only: process "
            "CPU time there counts the CUDA driver's threads and the final float32 evaluation on all CPU "
            "cores, not the training work.\n"
            if any(r["gpu_util"] for r in results)
            else ""
        )
    )


def prepare(args: argparse.Namespace, device: torch.device) -> tuple[dict[str, int], Any]:
    """The inputs of the run: samples per job and the --before engine's `train` (None without it); sets
    the torch threads on CPU."""
    before = load_engine(args.before) if args.before else None
    if args.threads and device.type == "cpu":
        torch.set_num_threads(args.threads)
    return sample_sizes(args, device), before


def publish(args, body: str) -> None:
    """Write `body` as the `## Engine overhead[ (<label>)]` section of --doc."""
    name = SECTION + (f" ({args.label})" if args.label else "")
    write_section(name, body, args.doc)
    print(f"wrote the '{name}' section of {args.doc}")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    device = torch.device(args.device)
    sizes, before = prepare(args, device)
    if args.profile:
        profile(args.profile, sizes[args.profile], args, device)
        return 0

    load_before, t0 = load_average(), time.perf_counter()
    results = [bench_job(job, sizes[job], args, device, before) for job in args.jobs]
    minutes = (time.perf_counter() - t0) / 60
    tbl, verdict = table(results), verdict_of(results, device)
    print(f"\n{tbl}\n\ntarget (engine >= {TARGET:.2f}x baseline samples/s): {verdict}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))
    if not args.no_write:
        publish(args, describe(args, argv, device, results, tbl, verdict, load_before, minutes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
