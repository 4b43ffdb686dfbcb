"""Synthetic child runs with known structure, shared by the report and page tests.

runs = synthetic_runs()      # baseline / near / other over seeds 10 and 11, 5 ordinal classes
runs = swept_runs()          # baseline and simloss@r=0.2 / simloss@r=0.8 over seeds 10, 11, 12 (SWEEP)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from core.compare.report import ChildRun
from core.metrics import evaluate
from core.similarity import build_similarity

CLASSES = ["0", "1", "2", "3", "4"]
SIM_SPEC = {"kind": "ordinal", "reduction_factor": 0.5}
N_VAL = 120


def _probs(targets: np.ndarray, rng: np.random.Generator, skill: float, near: bool) -> np.ndarray:
    """Random predictions: right with probability `skill`, else a neighbour (near) or any class."""
    c = len(CLASSES)
    pred = targets.copy()
    wrong = rng.random(len(targets)) > skill
    if near:
        step = rng.choice([-1, 1], size=len(targets))
        pred[wrong] = np.clip(targets[wrong] + step[wrong], 0, c - 1)
        pred[wrong & (pred == targets)] = (targets[wrong & (pred == targets)] + 1) % c
    else:
        pred[wrong] = (targets[wrong] + rng.integers(1, c, size=int(wrong.sum()))) % c
    probs = rng.random((len(targets), c)) * 0.5
    probs[np.arange(len(targets)), pred] = 2.0
    return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)


def _run(variant: str, seed: int, indices, targets, probs, job_id: str) -> ChildRun:
    sim = build_similarity(SIM_SPEC, CLASSES)
    metrics = evaluate(np.log(probs.astype(np.float64)), targets, sim, CLASSES, similarity_spec=SIM_SPEC)
    metrics["loss"] = float(metrics["nll"])
    history = [
        {"epoch": e, "train": {"loss": 1.0 / e}, "val": {"loss": 1.5 / e, "accuracy": metrics["accuracy"]}}
        for e in (1, 2)
    ]
    return ChildRun(
        job_id=job_id,
        variant=variant,
        seed=seed,
        status="succeeded",
        metrics=metrics,
        history=history,
        predictions={"indices": indices, "targets": targets, "probs": probs},
        epochs_completed=2,
    )


def synthetic_runs(seeds: tuple[int, ...] = (10, 11)) -> list[ChildRun]:
    """Per seed: `baseline` (random mistakes), `near` (the same mistakes moved next to the true class,
    so never worse on any sample) and `other` (independent predictions of the same skill)."""
    out = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        indices = rng.permutation(1000)[:N_VAL]
        targets = rng.integers(0, len(CLASSES), size=N_VAL)
        base = _probs(targets, rng, 0.7, near=False)
        out.append(_run("baseline", seed, indices, targets, base, f"b{seed}"))
        # "near": the same mistakes moved next to the true class: never worse on any sample
        near = base.copy()
        pred = base.argmax(1)
        for i in np.flatnonzero(pred != targets):
            t = targets[i]
            n = t + 1 if t + 1 < len(CLASSES) else t - 1
            near[i] = 0.1 / (len(CLASSES) - 1)
            near[i, n] = 0.9
        out.append(_run("near", seed, indices, targets, near.astype(np.float32), f"n{seed}"))
        # "other": independent predictions of the same skill
        out.append(_run("other", seed, indices, targets, _probs(targets, rng, 0.7, near=True), f"o{seed}"))
    return out


SWEEP = {
    "axes": [{"name": "r", "path": "similarity.reduction_factor", "values": [0.2, 0.8]}],
    "points": {
        "simloss@r=0.2": {"variant": "simloss", "point": {"r": 0.2}},
        "simloss@r=0.8": {"variant": "simloss", "point": {"r": 0.8}},
    },
}
SWEPT_VARIANTS = ["baseline", "simloss@r=0.2", "simloss@r=0.8"]


def swept_runs(seeds: tuple[int, ...] = (10, 11, 12)) -> list[ChildRun]:
    """The runs of a sweep of `simloss` over r in {0.2, 0.8} (SWEEP): at r = 0.2 the baseline's mistakes
    moved next to the true class ("near"), at r = 0.8 independent predictions ("other")."""
    rename = {"near": "simloss@r=0.2", "other": "simloss@r=0.8"}
    return [
        dataclasses.replace(r, variant=rename[r.variant], job_id=f"s{r.job_id}") if r.variant in rename else r
        for r in synthetic_runs(seeds)
    ]
