"""Calibration of the comparison statistics: how often a true zero effect is called `better` / `worse`.

Simulates many comparisons in which every variant is drawn from the same distribution as the baseline
(seed-level noise: each run's skill; sample-level noise: which evaluation samples it gets right), runs
the verdict of the report on them (`core.compare.stats.seed_verdicts`: the paired test across seeds,
Holm across the variants) and, optionally, the two-level bootstrap interval, and prints a markdown table
of the measured rates with their binomial standard errors. docs/statistics.md shows its output.

    python benchmarks/stats_calibration.py                     # 3, 5, 10 seeds; verdicts and intervals
    python benchmarks/stats_calibration.py --sims 4000 --no-intervals
    python benchmarks/stats_calibration.py --seeds 3 --effect 0.03      # power at a planted effect

The model, per simulated comparison and seed: the evaluation split has `samples` samples of latent
difficulty z ~ N(0, 1), shared by every run of that seed (so the runs of a seed are paired); each run
(baseline and every variant) has a skill logit(base_accuracy) + effect + seed_sd * N(0, 1) and gets
sample i right with probability sigmoid(skill - z_i). Per-seed metric: the run's accuracy. With
`effect` = 0 every `better` / `worse` is a false positive. tests/compare/test_stats_calibration.py
imports `simulate` and `verdict_rates` from here, so the test and the documented numbers measure the
same thing.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.compare.stats import NO_EVIDENCE, choose_seed_test, seed_verdicts, two_level_bootstrap

__all__ = ["Model", "interval_rates", "simulate", "verdict_rates"]


@dataclass(frozen=True)
class Model:
    """The simulated study (see the module docstring)."""

    seeds: int = 5
    variants: int = 1
    samples: int = 200
    base_accuracy: float = 0.8
    seed_sd: float = 0.3  # sd of a run's skill (logit scale) from seed to seed
    effect: float = 0.0  # added to every variant's skill (logit scale): 0 is the null


def simulate(model: Model, sims: int, rng: np.random.Generator) -> np.ndarray:
    """Per-sample correctness, shape (sims, seeds, 1 + variants, samples): run 0 is the baseline."""
    z = rng.normal(size=(sims, model.seeds, 1, model.samples))
    base = math.log(model.base_accuracy / (1.0 - model.base_accuracy))
    skill = base + model.seed_sd * rng.normal(size=(sims, model.seeds, 1 + model.variants, 1))
    skill[:, :, 1:] += model.effect
    p = 1.0 / (1.0 + np.exp(-(skill - z)))
    return (rng.random(p.shape) < p).astype(np.float64)


def verdict_rates(correct: np.ndarray, alpha: float = 0.05) -> dict[str, float]:
    """Over the simulated comparisons: the share of (comparison, variant) verdicts that are `better` /
    `worse`, and the share of comparisons with any verdict other than `no evidence` (family-wise)."""
    acc = correct.mean(axis=3)  # (sims, seeds, runs)
    diffs = acc[:, :, 1:] - acc[:, :, :1]  # per seed: variant - baseline
    sims, _, variants = diffs.shape
    better = worse = any_call = 0
    for s in range(sims):
        v = seed_verdicts({f"v{j}": diffs[s, :, j].tolist() for j in range(variants)}, alpha=alpha)
        words = [r["verdict"] for r in v.values()]
        better += words.count("better")
        worse += words.count("worse")
        any_call += any(w != NO_EVIDENCE for w in words)
    n = sims * variants
    return {
        "better": better / n,
        "worse": worse / n,
        "called": (better + worse) / n,
        "familywise": any_call / sims,
    }


def interval_rates(correct: np.ndarray, n_boot: int = 500, confidence: float = 0.95) -> dict[str, float]:
    """The share of simulated (comparison, variant) pairs whose two-level bootstrap interval of the
    pooled accuracy difference excludes 0 (what the report's `distinguishable` says)."""
    sims, seeds, runs, samples = correct.shape
    labels = np.repeat(np.arange(seeds), samples)
    hits = 0
    for s in range(sims):
        for j in range(1, runs):
            r = two_level_bootstrap(
                correct[s, :, 0].ravel(), correct[s, :, j].ravel(), seeds=labels, n_boot=n_boot,
                confidence=confidence, seed=s,
            )  # fmt: skip
            hits += bool(r["distinguishable"])
    return {"excludes_zero": hits / (sims * (runs - 1))}


def _se(rate: float, n: int) -> float:
    return math.sqrt(max(rate * (1.0 - rate), 1e-12) / n)


def _row(seeds: int, args: argparse.Namespace, rng: np.random.Generator) -> str:
    model = Model(seeds=seeds, variants=args.variants, samples=args.samples, seed_sd=args.seed_sd,
                  effect=args.effect)  # fmt: skip
    correct = simulate(model, args.sims, rng)
    v = verdict_rates(correct, alpha=args.alpha)
    n = args.sims * args.variants
    test = choose_seed_test(seeds, args.variants, args.alpha)
    cells = [str(seeds), test, f"{v['called']:.4f} +- {_se(v['called'], n):.4f}", f"{v['better']:.4f}",
             f"{v['worse']:.4f}", f"{v['familywise']:.4f} +- {_se(v['familywise'], args.sims):.4f}"]  # fmt: skip
    if args.intervals:
        k = min(args.sims, args.interval_sims)
        iv = interval_rates(correct[:k], n_boot=args.n_boot)["excludes_zero"]
        cells.append(f"{iv:.4f} +- {_se(iv, k * args.variants):.4f}")
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[3, 5, 10])
    ap.add_argument("--sims", type=int, default=4000, help="simulated comparisons per seed count")
    ap.add_argument("--variants", type=int, default=3, help="variants besides the baseline (the Holm family)")
    ap.add_argument("--samples", type=int, default=200, help="evaluation samples per seed")
    ap.add_argument("--seed-sd", type=float, default=0.3)
    ap.add_argument("--effect", type=float, default=0.0, help="planted effect (logit scale); 0: the null")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--no-intervals", dest="intervals", action="store_false")
    ap.add_argument(
        "--interval-sims", type=int, default=500, help="comparisons whose interval is bootstrapped"
    )
    ap.add_argument("--n-boot", type=int, default=500)
    ap.add_argument("--rng", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.rng)
    t0 = time.perf_counter()
    print(f"{args.sims} simulated comparisons per row, {args.variants} variant(s) + baseline, {args.samples} "
          f"samples per seed, seed_sd {args.seed_sd}, effect {args.effect}, alpha {args.alpha}")  # fmt: skip
    head = ["seeds", "test", "better or worse (per variant)", "better", "worse", "any call (per comparison)"]
    if args.intervals:
        head.append(
            f"interval excludes 0 ({min(args.sims, args.interval_sims)} comparisons, {args.n_boot} replicates)"
        )
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for seeds in args.seeds:
        print(_row(seeds, args, rng), flush=True)
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
