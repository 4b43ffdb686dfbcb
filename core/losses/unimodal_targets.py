"""Unimodal soft-label tables for ordered classes: row k is the target distribution for the class at
position k in value order, peaked at k.

    table = unimodal_table("binomial", 5)                     # (5, 5) float64, rows sum to 1
    table = unimodal_table("exponential", 5, p=2.0, tau=0.5)
    table = unimodal_table("triangular", 5, alpha2=0.05)

The families and their sources (as dlordinal builds them, `dlordinal.soft_labelling`; C classes,
positions k = 0..C-1, the unit interval cut into C equal bins [k / C, (k + 1) / C]):

- "beta" (Vargas et al., "Unimodal regularisation based on beta distribution for deep ordinal
  regression", Pattern Recognition 2022): row k is the mass of Beta(a_k, b_k) in each bin, with the
  published parameters (a_k, b_k) for 3 to 14 classes (`BETA_PARAMETERS`; the rows for k past the middle
  mirror the first ones, (a, b) -> (b, a)). Other class counts have no published parameters: SpecError.
- "binomial" (Liu et al., "Unimodal regularized neuron stick-breaking for ordinal classification",
  Neurocomputing 2020): row k = Binomial(C - 1, theta_k) probabilities of 0..C-1, theta_k evenly spaced
  from 0.1 to 0.9 (so a row peaks at the binomial's mode floor(C theta_k), which for many classes is
  not k near the ends: row 0 of 14 classes peaks at 1).
- "poisson" (Liu et al. 2020, as dlordinal computes it): row k = softmax over j of the Poisson(k + 1)
  probability of j. The softmax is of the probabilities themselves (not of their logarithms), which
  makes the targets nearly uniform (at most 0.234 on the peak for 5 classes, less for more); it is kept
  so that the loss agrees with dlordinal's PoissonLoss. For sharper targets use "binomial" or
  "exponential".
- "exponential" (Vargas et al., "Exponential loss regularisation for encouraging ordinal constraint to
  shotgun stocks quality assessment", Applied Soft Computing 2023): row k = softmax over j of
  -|j - k| ** p / tau.
- "triangular" (Vargas et al., "Soft labelling based on triangular distributions for ordinal
  classification", Information Fusion 2023): row k is the mass of a triangular distribution in each bin,
  its corners chosen so that about `alpha2` falls into each neighbouring bin (the paper's closed forms
  for the first, middle and last classes). alpha2 = 0 gives one-hot rows.

Each row is normalised to sum to 1 (dlordinal's bins start at 1e-9 and end at 1 - 1e-9, so its rows
sum to 1 within about 1e-8: the targets agree to that).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.special import betainc, softmax
from scipy.stats import binom, poisson, triang

from core.errors import SpecError

__all__ = ["BETA_PARAMETERS", "unimodal_table"]

# Vargas et al. 2022, the first half of each row (classes 0 .. ceil(C / 2) - 1) of (a, b); the rest mirror
BETA_PARAMETERS: dict[int, list[tuple[int, int]]] = {
    3: [(1, 4), (4, 4)],
    4: [(1, 6), (6, 10)],
    5: [(1, 8), (6, 14), (12, 12)],
    6: [(1, 10), (7, 20), (15, 20)],
    7: [(1, 12), (7, 26), (16, 28), (24, 24)],
    8: [(1, 14), (7, 31), (17, 37), (27, 35)],
    9: [(1, 16), (8, 40), (18, 47), (30, 47), (40, 40)],
    10: [(1, 18), (8, 45), (19, 57), (32, 59), (45, 55)],
    11: [(1, 21), (8, 51), (20, 68), (34, 73), (48, 69), (60, 60)],
    12: [(1, 23), (8, 56), (20, 76), (35, 85), (51, 85), (65, 77)],
    13: [(1, 25), (8, 61), (20, 84), (36, 98), (53, 100), (70, 95), (84, 84)],
    14: [(1, 27), (2, 17), (5, 23), (9, 27), (13, 28), (18, 28), (23, 27)],
}


def _bins(c: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, c + 1)


def _beta(c: int) -> np.ndarray:
    if c not in BETA_PARAMETERS:
        raise SpecError(
            "loss.family",
            f"beta soft labels use the published parameters (Vargas et al. 2022), given for 3 to 14 "
            f"classes; there are {c}",
        )
    half = BETA_PARAMETERS[c]
    params = half + [(b, a) for a, b in reversed(half[: c // 2])]
    return np.stack([np.diff(betainc(a, b, _bins(c))) for a, b in params])


def _binomial(c: int) -> np.ndarray:
    theta = np.linspace(0.1, 0.9, c)
    return np.stack([binom.pmf(np.arange(c), c - 1, t) for t in theta])


def _poisson(c: int) -> np.ndarray:
    return softmax(np.stack([poisson.pmf(np.arange(c), k + 1) for k in range(c)]), axis=1)


def _exponential(c: int, p: float, tau: float) -> np.ndarray:
    k = np.arange(c, dtype=np.float64)
    return softmax(-(np.abs(k[None, :] - k[:, None]) ** p) / tau, axis=1)


def _triangle_corners(c: int, alpha2: float) -> list[tuple[float, float, float]]:
    """(lower, upper, mode) of each class's triangular distribution (Vargas et al. 2023, eqs. for a, b, c)."""
    r = math.sqrt(2 * alpha2)
    alpha1 = ((1 - math.sqrt(1 - 4 * (1 - 2 * alpha2) * (2 * alpha2 - r))) / 2) ** 2
    alpha3 = ((1 - math.sqrt(1 - 4 * ((c - 1) / c) ** 2 * (1 - 2 * alpha2) * (r * (r - 1)))) / 2) ** 2
    den = 2.0 * c * (1 - 2 * alpha2)
    corners = [(0.0, 1.0 / ((1.0 - math.sqrt(alpha1)) * c), 0.0)]
    for j in range(2, c):  # the middle classes, 1-based as in the paper
        lo = (2.0 * j - 2 - 4 * j * alpha2 + 2 * alpha2 + r) / den
        lo = lo if lo < (j - 1) / c else lo - 2 * r / den
        hi = (2.0 * j - 4 * j * alpha2 + 2 * alpha2 + r) / den
        hi = hi if hi > j / c else hi - 2 * r / den
        corners.append((lo, hi, (lo + hi) / 2))
    last = 1.0 + 1.0 / (c * (math.sqrt(alpha3) - 1.0))
    corners.append((last if last > 0 else 1.0 - 1.0 / (c * (math.sqrt(alpha3) - 1.0)), 1.0, 1.0))
    return corners


def _triangular(c: int, alpha2: float) -> np.ndarray:
    rows = []
    for lo, hi, mode in _triangle_corners(c, alpha2):
        rows.append(np.diff(triang.cdf(_bins(c), (mode - lo) / (hi - lo), loc=lo, scale=hi - lo)))
    return np.stack(rows)


def unimodal_table(
    family: str, num_classes: int, *, p: float = 1.0, tau: float = 1.0, alpha2: float = 0.05
) -> torch.Tensor:
    """The (C, C) float64 table of `family` (rows: the true class's position in value order)."""
    if family == "beta":
        table = _beta(num_classes)
    elif family == "binomial":
        table = _binomial(num_classes)
    elif family == "poisson":
        table = _poisson(num_classes)
    elif family == "exponential":
        table = _exponential(num_classes, p, tau)
    elif family == "triangular":
        table = _triangular(num_classes, alpha2)
    else:
        raise SpecError("loss.family", f"unknown unimodal family {family!r}")
    table = np.clip(table, 0.0, None)
    return torch.from_numpy(table / table.sum(axis=1, keepdims=True))
