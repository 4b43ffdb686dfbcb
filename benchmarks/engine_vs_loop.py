"""Engine vs loop on a real model: `core.training.train` vs a hand-written PyTorch loop, timm resnet18.

Both train the same network on the same synthetic 3 x 32 x 32 uint8 images (10 classes, learnable:
class templates plus noise): `build_model({"kind": "timm", "architecture": "resnet18"})`, which gets the
small-image stem at 32 px (core/models/timm_nets.py), with the training split's standardisation and the
same initial weights; AdamW (lr 1e-3), batch size 64, cross-entropy, the same training / validation rows.

Augmentation (`--augment JSON`, default `{"random_resized_crop": {"scale": [0.08, 1.0]}, "horizontal_flip":
true}`; `--no-augment` for none) is the same in both arms: the engine gets it as `training.augment`; the
loop applies torchvision.transforms.v2 `RandomResizedCrop(32, scale=..., antialias=True)` and
`RandomHorizontalFlip()` per sample in a `Dataset.__getitem__`, batched by a `DataLoader` (shuffle,
`num_workers=0`) over the tensors already on the device. That is how the engine applies it to a resident
dataset (core/training/feed.py `ResidentFeed`): image by image, in the training process, on the device,
before each step. Precision: fp32 on CPU in both; on CUDA both autocast to the dtype of the engine's
"auto" precision (bf16 where the GPU supports it, else fp32) and use channels_last.

- loop: without augmentation a fresh permutation per epoch sliced from the resident tensors, with it the
  `DataLoader` above; `F.cross_entropy`, `zero_grad` / `backward` / `step`, then the validation rows once
  per epoch under no_grad (what any real loop does; the engine validates too).
- engine: `train(plan, NoopHooks())`: split, statistics, per-epoch validation with every metric,
  best-weights tracking, the final CPU evaluation, model.json.

The two alternate call by call (loop engine, engine loop, ...) after one untimed warm-up call of each on
a few batches; medians are reported. samples/s = training samples x epochs / wall time of the whole call;
"train phase" counts only the epochs' training passes (the engine's own timing from its history). The
issue's workload is 50,000 samples; on a 2-core CPU one resnet18 step is ~2 s, so the CPU default is
`--samples 1024 --epochs 1 --rounds 3` (5 minutes on a quiet 2-core machine, 13 with other work on it);
on CUDA the default is the issue's 50,000.

    python benchmarks/engine_vs_loop.py                     # CPU, writes its section of docs/benchmarks.md
    python benchmarks/engine_vs_loop.py --device cuda --epochs 2 --label cuda   # 50,000 images
    python benchmarks/engine_vs_loop.py --samples 512 --rounds 1 --no-write
    python benchmarks/engine_vs_loop.py --no-augment --label "no augmentation" # the comparison without it

Target: engine >= 0.95x the loop's samples/s.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
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
from core.data.dataset import stratified_split
from core.models import build_model, standardization_stats
from core.training import NoopHooks, TrainingSpec, TrainPlan, train

SECTION = "Engine vs loop"
TARGET = 0.95
MODEL = {"kind": "timm", "architecture": "resnet18"}
CLASSES = [f"c{i}" for i in range(10)]
VAL_CHUNK = 256
AUGMENT = {"random_resized_crop": {"scale": [0.08, 1.0]}, "horizontal_flip": True}
LOOP_AUGMENTS = {"random_resized_crop", "horizontal_flip"}  # what the loop arm implements


# ------------------------------------------------------------------------------------------------ data


def make_images(n: int, seed: int = 0) -> ArrayDataset:
    """uint8 (n, 3, 32, 32) images: one random template per class plus noise, clipped to 0..255."""
    rng = np.random.default_rng(seed)
    templates = rng.integers(0, 256, (10, 3, 32, 32)).astype(np.int16)
    y = rng.integers(0, 10, n)
    x = np.empty((n, 3, 32, 32), dtype=np.uint8)
    for start in range(0, n, 4096):
        part = slice(start, start + 4096)
        noise = rng.integers(-60, 61, (len(y[part]), 3, 32, 32), dtype=np.int16)
        x[part] = np.clip(templates[y[part]] + noise, 0, 255)
    return ArrayDataset(x, y.astype(np.int64), list(CLASSES))


# ------------------------------------------------------------------------------------------------ cases


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def loop_setup(ds: ArrayDataset, train_idx, val_idx, spec: TrainingSpec, device: torch.device):
    """The loop's model (same build, statistics and seed as the engine's), optimizer and tensors."""
    torch.manual_seed(spec.seed)
    mean, std = standardization_stats(ds.x[train_idx])
    model = build_model(MODEL, ds.feature_shape, ds.num_classes, mean=mean, std=std)
    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    model = model.to(device, memory_format=fmt)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=spec.weight_decay)
    put = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)
    data = {"x": put(ds.x[train_idx]), "y": put(ds.y[train_idx]), "xv": put(ds.x[val_idx]),
            "yv": put(ds.y[val_idx])}  # fmt: skip
    return model, opt, data, fmt


def loop_transform(augment: dict | None):
    """The loop's v2 pipeline for `augment` (the spec's keys; None: no augmentation)."""
    if not augment:
        return None
    from torchvision.transforms import v2

    steps = []
    if "random_resized_crop" in augment:
        scale = tuple(augment["random_resized_crop"].get("scale", (0.08, 1.0)))
        steps.append(v2.RandomResizedCrop(32, scale=scale, antialias=True))
    if augment.get("horizontal_flip"):
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps)


class AugmentedImages(torch.utils.data.Dataset):
    """(transform(x[i]), y[i]) per sample: a typical user's augmenting Dataset."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform) -> None:
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.transform(self.x[i]), self.y[i]


def loop_batches(d: dict, batch_size: int, transform, device: torch.device, seed: int):
    """One epoch's (x, y) batches: slices of a permutation, or the augmenting Dataset's DataLoader."""
    if transform is None:
        order = torch.randperm(len(d["y"]), device=device)
        return ((d["x"][idx], d["y"][idx]) for idx in order.split(batch_size))
    return torch.utils.data.DataLoader(
        AugmentedImages(d["x"], d["y"], transform), batch_size=batch_size, shuffle=True, num_workers=0,
        generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip


def loop_amp(device: torch.device) -> dict:
    """Autocast as the engine's "auto" precision: bf16 on a CUDA device that supports it, else fp32."""
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    return {"device_type": device.type, "dtype": torch.bfloat16, "enabled": bf16}


def loop(ds: ArrayDataset, train_idx, val_idx, spec: TrainingSpec, device: torch.device) -> dict:
    """The hand-written loop: train every epoch, validate once per epoch; returns its train-phase time."""
    model, opt, d, fmt = loop_setup(ds, train_idx, val_idx, spec, device)
    amp, transform = loop_amp(device), loop_transform(spec.augment and spec.augment.model_dump())
    train_s, acc = 0.0, float("nan")
    for epoch in range(spec.epochs):
        t0 = time.perf_counter()
        model.train()
        for xb, yb in loop_batches(d, spec.batch_size, transform, device, spec.seed + epoch):
            with torch.autocast(**amp):
                logits = model(xb.contiguous(memory_format=fmt))
            loss = F.cross_entropy(logits.float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        _sync(device)
        train_s += time.perf_counter() - t0
        model.eval()
        with torch.no_grad(), torch.autocast(**amp):
            out = torch.cat(
                [model(d["xv"][i : i + VAL_CHUNK]).float() for i in range(0, len(d["yv"]), VAL_CHUNK)]
            )
        acc = float((out.argmax(1) == d["yv"]).float().mean())
    return {"train_s": train_s, "val_accuracy": acc}


def engine(ds: ArrayDataset, spec: TrainingSpec, device: torch.device) -> dict:
    """`train(plan)`; its train-phase time from the history (samples / the epoch's samples/s)."""
    result = train(
        TrainPlan(ds, None, {"kind": "cross_entropy"}, MODEL, spec, device=str(device)), NoopHooks()
    )
    assert result.stop_reason == "completed", result.stop_reason
    n_train = len(result.train_indices)
    return {"train_s": sum(n_train / r["samples_per_s"] for r in result.history),
            "val_accuracy": result.final_metrics["accuracy"]}  # fmt: skip


# ------------------------------------------------------------------------------------------------ run


def run(args, device: torch.device) -> dict:
    """Warm both up on a few batches, then alternate them `args.rounds` times; medians and ratios."""
    spec = TrainingSpec(
        epochs=args.epochs, batch_size=args.batch_size, seed=1, val_fraction=args.val_fraction,
        augment=args.augment, precision="auto",
    )  # fmt: skip
    small = make_images(4 * args.batch_size, seed=1)
    s_tr, s_va = stratified_split(small.y, spec.val_fraction, spec.seed)
    loop(small, s_tr, s_va, spec.model_copy(update={"epochs": 1}), device)
    engine(small, spec.model_copy(update={"epochs": 1}), device)

    ds = make_images(args.samples)
    train_idx, val_idx = stratified_split(ds.y, spec.val_fraction, spec.seed)
    samples = len(train_idx) * spec.epochs
    extra: dict[str, list[dict]] = {"loop": [], "engine": []}

    def keep(name, r, t, value):
        extra[name].append(value)
        print(
            f"  round {r + 1} {name:6s} wall {t['wall']:7.1f} s  {samples / t['wall']:8.1f} samples/s  "
            f"train phase {samples / value['train_s']:8.1f} samples/s",
            flush=True,
        )

    cases = {
        "loop": lambda: loop(ds, train_idx, val_idx, spec, device),
        "engine": lambda: engine(ds, spec, device),
    }
    times = interleaved(cases, rounds=args.rounds, warmup=0, on_result=keep)
    res = {
        "n_train": len(train_idx), "n_val": len(val_idx), "samples": samples,
        "wall": {k: median(v["wall"]) for k, v in times.items()},
        "cpu": {k: median(v["cpu"]) for k, v in times.items()},
        "train_s": {k: median(r["train_s"] for r in rows) for k, rows in extra.items()},
        "acc": {k: median(r["val_accuracy"] for r in rows) for k, rows in extra.items()},
    }  # fmt: skip
    for m in ("wall", "cpu", "train_s"):  # engine samples/s over the loop's = loop time / engine time
        res[f"ratio_{m.removesuffix('_s')}"] = ratio(res[m]["loop"], res[m]["engine"])
    return res


def table(res: dict) -> str:
    s = res["samples"]
    lines = [
        "| case | wall (s) | samples/s | CPU (s) | train phase (s) | train-phase samples/s | final val accuracy |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case in ("loop", "engine"):
        w, c, t = res["wall"][case], res["cpu"][case], res["train_s"][case]
        lines.append(
            f"| {case} | {w:.1f} | {s / w:,.1f} | {c:.1f} | {t:.1f} | {s / t:,.1f} | {res['acc'][case]:.3f} |"
        )
    mark = lambda r: f"{r:.3f}x" + ("" if r >= TARGET else " ✗")
    lines.append(
        f"| engine / loop | | {mark(res['ratio_wall'])} | {mark(res['ratio_cpu'])} | | {mark(res['ratio_train'])} | |"
    )
    return "\n".join(lines)


def describe_augment(augment: dict | None) -> str:
    if not augment:
        return "no augmentation"
    return (f"augmentation `{json.dumps(augment)}` in both arms (the engine's training.augment; the loop's "
            f"v2 transforms per sample in a Dataset, DataLoader with num_workers=0)")  # fmt: skip


def precision_text(device: torch.device) -> str:
    if loop_amp(device)["enabled"]:
        return 'bf16 autocast and channels_last in both arms (the engine\'s precision "auto")'
    return 'fp32 in both arms (the engine\'s precision "auto" on this device)'


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--samples", type=int, default=None, help="images (default 1,024 on CPU, 50,000 on CUDA)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--rounds", type=int, default=3, help="timed calls of each (median reported)")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads on CPU (default 1: steadier on a shared machine; 0: torch's default)",
    )
    ap.add_argument(
        "--augment",
        type=json.loads,
        default=AUGMENT,
        help=f"training.augment of both arms, JSON (default {json.dumps(AUGMENT)})",
    )
    ap.add_argument("--no-augment", dest="augment", action="store_const", const=None,
                    help="no augmentation in either arm")  # fmt: skip
    add_report_args(ap, SECTION)
    args = ap.parse_args(argv)
    if args.augment and not set(args.augment) <= LOOP_AUGMENTS:
        ap.error(f"--augment: the loop arm implements only {sorted(LOOP_AUGMENTS)}")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda but no CUDA device is available")
    if args.threads and device.type == "cpu":
        torch.set_num_threads(args.threads)
    args.samples = args.samples or (50_000 if device.type == "cuda" else 1024)
    load_before, t0 = load_average(), time.perf_counter()
    res = run(args, device)
    minutes = (time.perf_counter() - t0) / 60
    tbl = table(res)
    verdict = "met" if res["ratio_wall"] >= TARGET else f"missed ({res['ratio_wall']:.3f}x)"
    print(f"\n{tbl}\n\ntarget (engine >= {TARGET:.2f}x the loop's samples/s): {verdict}")
    if args.no_write:
        return 0
    publish(
        args,
        SECTION,
        run_line("engine_vs_loop.py", argv, str(device), load_before, minutes),
        f"timm resnet18 (small-image stem) on synthetic 3 x 32 x 32 uint8 images, 10 classes: "
        f"{res['n_train']:,} training and {res['n_val']:,} validation rows, {args.epochs} epoch(s), batch size "
        f"{args.batch_size}, AdamW, cross-entropy, {describe_augment(args.augment)}; "
        f"{precision_text(device)}. `core.training.train` vs a hand-written loop (same model, "
        f"weights, rows; validation once per epoch), alternating call by call, {args.rounds} rounds after a "
        f"warm-up, medians. samples/s = training samples x epochs / wall time of the whole call; CPU = the "
        f"process CPU time of the call (one torch thread: steadier than wall time on a shared machine); the "
        f"train phase counts the training passes only. Target: >= {TARGET:.2f}x the loop (✗ marks a miss): {verdict}.",
        tbl,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
