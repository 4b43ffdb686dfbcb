"""The network building blocks: `Standardize` preprocessing, and the linear / MLP / CNN classifiers.

Every classifier is `Classifier(standardize, body)`: raw float32 (or integer) features go in, logits
(N, C) come out; the body is one of these or a timm network (core/models/timm_nets.py).
The standardisation statistics live in the model as buffers, so the saved weights and the ONNX export
include the preprocessing and a client feeds raw features.

    mean, std = standardization_stats(x_train)          # per feature, or per channel for (C, H, W)
    mean, std = standardization_stats(reader.chunks(train_idx, 32 << 20))   # a memmap, chunk by chunk
    net = Classifier(Standardize(mean, std), mlp_body(64, [128], 10, dropout=0.1))
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch import nn

__all__ = [
    "MIN_STD",
    "STATS_CHUNK_BYTES",
    "Classifier",
    "MaxPool2",
    "Standardize",
    "cnn_body",
    "linear_body",
    "mlp_body",
    "standardization_stats",
    "stats_shape",
]

MIN_STD = 1e-6  # a constant feature is left unscaled (std replaced by 1)
STATS_CHUNK_BYTES = 64 << 20  # float64 bytes of one chunk in standardization_stats


def stats_shape(input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of the mean/std buffers: per channel (C, 1, 1) for images, per feature otherwise."""
    if len(input_shape) == 3:
        return (input_shape[0], 1, 1)
    return tuple(input_shape)


def standardization_stats(x: np.ndarray | Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (float32, shaped by `stats_shape`) of training features, accumulated in float64.

    `x` is the (N, *shape) array, or an iterable of such chunks (e.g. rows read from a memmap, see
    core/training/rows.py). Either way the data is visited in chunks of at most 8192 rows and
    `STATS_CHUNK_BYTES` of float64, so no float64 (or float32) copy of the whole set is ever made.
    """
    chunks = _row_chunks(x) if isinstance(x, np.ndarray) else iter(x)
    mean = sq = shape = None
    n = 0
    for raw in chunks:
        for chunk in _row_chunks(raw):
            if shape is None:
                shape = stats_shape(tuple(chunk.shape[1:]))
                mean, sq = np.zeros(shape, dtype=np.float64), np.zeros(shape, dtype=np.float64)
            axes = (0, 2, 3) if chunk.ndim == 4 else (0,)
            chunk = chunk.astype(np.float64)
            mean += chunk.sum(axis=axes).reshape(shape)
            sq += (chunk**2).sum(axis=axes).reshape(shape)
            n += chunk.size // int(np.prod(shape))
    if shape is None:
        raise ValueError("standardization_stats needs at least one sample")
    mean /= max(n, 1)
    var = np.maximum(sq / max(n, 1) - mean**2, 0.0)
    std = np.sqrt(var)
    std = np.where(std < MIN_STD, 1.0, std)
    return mean.astype(np.float32), std.astype(np.float32)


def _row_chunks(x: np.ndarray) -> Iterator[np.ndarray]:
    """`x` in pieces of at most 8192 rows and `STATS_CHUNK_BYTES` once converted to float64."""
    row_bytes = 8 * max(1, int(np.prod(x.shape[1:])))
    rows = max(1, min(8192, STATS_CHUNK_BYTES // row_bytes))
    for start in range(0, len(x), rows):
        yield x[start : start + rows]


class Standardize(nn.Module):
    """(x - mean) / std with mean and std as buffers (saved in the state dict and exported to ONNX).

    Integer inputs (uint8 images, in their stored 0-255 units: the statistics are in those units too) are
    cast to float32 first; float inputs go through unchanged.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).clone())
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_floating_point():
            x = x.to(self.mean.dtype)
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """standardize -> body; returns logits."""

    def __init__(self, standardize: Standardize, body: nn.Module) -> None:
        super().__init__()
        self.standardize = standardize
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.standardize(x))


def linear_body(in_features: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, num_classes))


def mlp_body(in_features: int, hidden: list[int], num_classes: int, dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


class MaxPool2(nn.MaxPool2d):
    """2 x 2 max pooling, stride 2 (nn.MaxPool2d(2)); without autograd on the CPU, as the max of the four
    strided sub-grids: the same values bit for bit (a maximum is exact), 5-10x faster than the CPU's
    max_pool2d kernel on NCHW tensors, which dominated the small CNN's validation and prediction time
    (docs/benchmarks.md, "Engine overhead"). Training (autograd on) and CUDA keep max_pool2d, whose
    gradient goes to one element of a tied window; an ONNX export traces the MaxPool operator."""

    def __init__(self) -> None:
        super().__init__(kernel_size=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.device.type != "cpu"
            or torch.is_grad_enabled()
            or torch.jit.is_tracing()
            or torch.jit.is_scripting()
            or torch.compiler.is_compiling()
            or x.dim() != 4
        ):
            return super().forward(x)
        x = x[..., : x.shape[-2] // 2 * 2, : x.shape[-1] // 2 * 2]  # floor mode: drop an odd last row/column
        top = torch.maximum(x[..., 0::2, 0::2], x[..., 0::2, 1::2])
        return torch.maximum(top, torch.maximum(x[..., 1::2, 0::2], x[..., 1::2, 1::2]))


def cnn_body(
    input_shape: tuple[int, int, int],
    channels: list[int],
    hidden: list[int],
    num_classes: int,
    dropout: float = 0.0,
) -> nn.Sequential:
    """[conv3x3 -> ReLU -> maxpool2 (while H, W >= 2)] per entry of `channels`, then an MLP head."""
    c, h, w = input_shape
    layers: list[nn.Module] = []
    for out in channels:
        layers += [nn.Conv2d(c, out, kernel_size=3, padding=1), nn.ReLU()]
        if h >= 2 and w >= 2:
            layers.append(MaxPool2())
            h, w = h // 2, w // 2
        c = out
    head = mlp_body(c * h * w, hidden, num_classes, dropout)
    return nn.Sequential(*layers, *head)
