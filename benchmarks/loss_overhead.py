"""Loss overhead benchmark: forward + backward of every loss kind vs torch.nn.functional.cross_entropy.

For N = 4096 rows and C in {10, 100, 1000} classes it times loss(logits, targets).backward() for each
kind (built by core.losses.build_loss with a dense ordinal similarity, a two-level hierarchy for
hierarchical_xe, the binomial family for unimodal_soft_labels, whose beta family has parameters for 3-14
classes only) and for F.cross_entropy in the same run, interleaved round-robin, and reports the
median time of each as a ratio to cross-entropy's median. It prints a markdown table and writes the
"Loss overhead" section of docs/benchmarks.md ("Loss overhead (cuda)" for a GPU run: date, machine, torch
version, ratios), replacing the previous one and leaving the rest of the file alone.

    python benchmarks/loss_overhead.py                      # CPU, writes docs/benchmarks.md
    python benchmarks/loss_overhead.py --device cuda        # on a GPU
    python benchmarks/loss_overhead.py --repeats 50 --threads 1 --no-write

Target: simloss, soft_labels and expected_cost within 1.5x cross-entropy at every C.

The script re-executes itself once with glibc's malloc told to keep freed memory
(MALLOC_MMAP_THRESHOLD_ = 32 MiB, MALLOC_TRIM_THRESHOLD_ = 4 GiB): otherwise every (4096 x 1000) float
tensor is a fresh mmap whose page faults cost several times the arithmetic, by an amount that varied
3-4x between runs on a virtual machine, and even cross_entropy vs F.cross_entropy (the same kernel) read
0.4x-2x at C = 1000. `--system-malloc` skips it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import command_line, machine, write_section

from core.losses import LOSS_KINDS, build_loss

TARGETS = {"simloss": 1.5, "soft_labels": 1.5, "expected_cost": 1.5}
SECTION = "Loss overhead"


def _specs(c: int) -> dict[str, tuple[dict, dict | None]]:
    classes = [f"c{i}" for i in range(c)]
    ordinal = {"kind": "ordinal", "reduction_factor": 0.9}
    groups = max(2, round(c**0.5))
    tree = {"kind": "hierarchy", "parents": {name: f"g{i % groups}" for i, name in enumerate(classes)}}
    out: dict[str, tuple[dict, dict | None]] = {}
    for kind in LOSS_KINDS:
        if kind == "combined":
            spec = {
                "kind": "combined",
                "components": [
                    {"weight": 0.7, "loss": {"kind": "cross_entropy"}},
                    {"weight": 0.3, "loss": {"kind": "expected_value"}},
                ],
            }
        elif kind == "unimodal_soft_labels":
            spec = {"kind": kind, "family": "binomial"}
        else:
            spec = {"kind": kind}
        out[kind] = (spec, tree if kind == "hierarchical_xe" else ordinal)
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(c: int, n: int, repeats: int, device: torch.device, kinds: list[str]) -> dict[str, float]:
    """Per kind, the median over rounds of (its time / F.cross_entropy's time in the same round) at
    C = c; under "F.cross_entropy", that loss's median seconds. Pairing within a round cancels most of
    the drift of a shared machine's load."""
    classes = [f"c{i}" for i in range(c)]
    g = torch.Generator().manual_seed(c)
    logits = torch.randn(n, c, generator=g).to(device).requires_grad_(True)
    targets = torch.randint(0, c, (n,), generator=g).to(device)
    fns = {"F.cross_entropy": lambda z, y: F.cross_entropy(z, y)}
    for kind, (spec, sim_spec) in _specs(c).items():
        if kind in kinds:
            fns[kind] = build_loss(spec, None, classes, sim_spec).to(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(repeats + 3):  # 3 warm-up rounds
        for name, fn in fns.items():
            logits.grad = None
            _sync(device)
            t = time.perf_counter()
            fn(logits, targets).backward()
            _sync(device)
            if r >= 3:
                times[name].append(time.perf_counter() - t)
    base = times["F.cross_entropy"]
    out = {name: statistics.median(a / b for a, b in zip(ts, base)) for name, ts in times.items()}
    out["F.cross_entropy"] = statistics.median(base)
    return out


def table(results: dict[int, dict[str, float]], kinds: list[str]) -> str:
    sizes = sorted(results)
    lines = [
        "| loss | " + " | ".join(f"C = {c}" for c in sizes) + " |",
        "| --- | " + " | ".join("---:" for _ in sizes) + " |",
        "| F.cross_entropy (ms) | "
        + " | ".join(f"{results[c]['F.cross_entropy'] * 1e3:.3f}" for c in sizes)
        + " |",
    ]
    for kind in kinds:
        cells = []
        for c in sizes:
            ratio = results[c][kind]
            flag = " ✗" if kind in TARGETS and ratio > TARGETS[kind] else ""
            cells.append(f"{ratio:.2f}x{flag}")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--n", type=int, default=4096, help="rows per batch (default 4096)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000], help="class counts")
    ap.add_argument("--repeats", type=int, default=30, help="timed rounds per size (median is reported)")
    ap.add_argument("--kinds", nargs="+", default=list(LOSS_KINDS), choices=list(LOSS_KINDS))
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    ap.add_argument("--note", default="", help="a sentence to add to the section (e.g. machine load)")
    ap.add_argument("--no-write", action="store_true", help="only print the table")
    ap.add_argument("--system-malloc", action="store_true", help="keep glibc's default mmap behaviour")
    args = ap.parse_args(argv)
    if not args.system_malloc and argv is None and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(4 << 30)}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    device = torch.device(args.device)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda but no CUDA device is available")
    kinds = [k for k in LOSS_KINDS if k in args.kinds]
    results = {c: bench(c, args.n, args.repeats, device, kinds) for c in args.sizes}
    tbl = table(results, kinds)
    missed = [
        f"{k} at C = {c}" for c in results for k in TARGETS if k in kinds and results[c][k] > TARGETS[k]
    ]
    print(tbl)
    print("\ntargets (<= 1.5x): " + ("all met" if not missed else "missed: " + ", ".join(missed)))
    if not args.no_write:
        command = command_line("loss_overhead.py", argv)
        section = SECTION + ("" if device.type == "cpu" else f" ({device.type})")
        body = (
            f"`{command}` on {dt.date.today().isoformat()} ({device.type}); {machine(str(device))}.\n\n"
            f"Forward + backward of each loss on N = {args.n} rows against `torch.nn.functional.cross_entropy` "
            f"timed in the same round; {args.repeats} interleaved rounds after 3 warm-up rounds. Each cell is "
            f"the median over rounds of (loss time / cross-entropy time); the first row is cross-entropy's "
            f"median time. Target: simloss, soft_labels and expected_cost <= 1.5x (✗ marks a miss).\n\n"
            f"{tbl}\n" + (f"\n{args.note.strip()}\n" if args.note.strip() else "")
        )
        write_section(section, body, args.doc)
        print(f"wrote the '{section}' section of {args.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
