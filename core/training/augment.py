"""Training augmentation with torchvision.transforms.v2, a different random draw for every sample.

    check_augment(spec.augment, ds.x.dtype, ds.feature_shape)   # SpecError("training.augment...") if unfit
                                                                # (core/training/spec.py; re-exported)
    augment = Augmenter(spec.augment, ds.feature_shape)
    xb = augment(xb, seeds)        # (N, C, H, W) on any device, one int64 seed per row

A v2 transform given a batch tensor draws one set of parameters for the whole batch ("randomized
transformations will apply the same transformation to all the images of a given batch", torchvision's
documentation; per-image parameters are pytorch/vision#8484, still open). So `Augmenter` applies the
pipeline to each image on its own, with torch's CPU generator (the only one v2 draws its parameters
from) seeded with that image's seed inside `torch.random.fork_rng`: the global RNG state is left as it
was, and an image's augmentation depends on its seed alone (core/training/rng.py, `augment_seeds`).

Pipeline order: RandomResizedCrop (back to the image size), RandomHorizontalFlip, TrivialAugmentWide,
ColorJitter (brightness, contrast, saturation), RandomErasing. The colour transforms need uint8 images
with 1 or 3 channels (v2 reads float images as [0, 1]); the geometric ones and erasing take any image.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from core.training.spec import AugmentSpec, check_augment

__all__ = ["Augmenter", "check_augment"]


class Augmenter:
    """The v2 pipeline of an `AugmentSpec`, applied image by image under per-image seeds."""

    def __init__(self, spec: AugmentSpec, feature_shape: tuple[int, ...]) -> None:
        self.transform = _pipeline(spec, tuple(int(d) for d in feature_shape[1:]))

    def __call__(self, x: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
        """A new batch: image i of `x` (N, C, H, W) augmented under `seeds[i]` (CPU int64)."""
        out = torch.empty_like(x)
        cpu = torch.default_generator
        with torch.random.fork_rng(devices=[]), _one_thread(x.device):
            for i, seed in enumerate(seeds.tolist()):
                cpu.manual_seed(seed)
                out[i] = self.transform(x[i])
        return out

    def __repr__(self) -> str:
        return f"Augmenter({self.transform})"


@contextlib.contextmanager
def _one_thread(device: torch.device) -> Iterator[None]:
    """One intra-op thread for the per-image CPU ops: each is far too small to split, and splitting them
    made the pipeline 4-10x slower on a busy two-core machine."""
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _pipeline(spec: AugmentSpec, size: tuple[int, int]):
    from torchvision.transforms import v2

    steps = []
    if spec.random_resized_crop is not None:
        steps.append(v2.RandomResizedCrop(size, scale=tuple(spec.random_resized_crop.scale), antialias=True))
    if spec.horizontal_flip:
        steps.append(v2.RandomHorizontalFlip())
    if spec.trivial_augment:
        steps.append(v2.TrivialAugmentWide())
    if spec.color_jitter is not None:
        x = spec.color_jitter
        steps.append(v2.ColorJitter(brightness=x, contrast=x, saturation=x))
    if spec.random_erasing is not None:
        steps.append(v2.RandomErasing(p=spec.random_erasing))
    return v2.Compose(steps)
