"""Seeding and the global RNG states a checkpoint carries, so that a resumed run makes the same updates.

    seed_everything(spec.seed)                 # python, numpy, torch (and every CUDA device)
    order = epoch_order(n, spec.seed, epoch)   # the shuffle of epoch e, from (seed, e) alone
    seeds = augment_seeds(n, spec.seed, epoch) # one augmentation seed per training sample of epoch e
    saved = rng_state(); ...; set_rng_state(saved)

Augmentation draws no number from a generator that lives across epochs: sample i of epoch e is augmented
under its own seed `augment_seeds(n, seed, e)[i]`, so a resumed run, the in-memory and the streaming data
paths and any number of loader workers augment every sample alike, with no generator state to carry.

`rng_state()` is in a form `torch.load(weights_only=True)` accepts (tensors, lists and plain numbers).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

__all__ = ["augment_seeds", "epoch_order", "epoch_seed", "rng_state", "seed_everything", "set_rng_state"]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed derived from (seed, epoch) alone: epoch e shuffles alike in a fresh and a resumed run."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0] >> 1)


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The sample order of `epoch` (a CPU permutation of range(n))."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed(seed, epoch)))


def augment_seeds(n: int, seed: int, epoch: int) -> torch.Tensor:
    """One 62-bit seed per training sample (position in the training split) for `epoch`, from (seed, e)."""
    state = np.random.SeedSequence([seed, epoch, _AUGMENT_STREAM]).generate_state(1, dtype=np.uint64)
    generator = torch.Generator().manual_seed(int(state[0] >> 1))
    return torch.randint(0, 2**62, (n,), generator=generator, dtype=torch.int64)


_AUGMENT_STREAM = 0x617567  # separates the augmentation seeds from the epoch order's


def rng_state() -> dict[str, Any]:
    """All global RNG states, in a form `torch.load(weights_only=True)` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": pos,
            "has_gauss": has_gauss,
            "cached": cached,
        },
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned (CUDA states only on a machine with as many devices)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    np_state = state["numpy"]
    keys = np_state["keys"].numpy().astype(np.uint32)
    np.random.set_state((np_state["kind"], keys, np_state["pos"], np_state["has_gauss"], np_state["cached"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
