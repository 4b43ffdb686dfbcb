"""How training and validation samples reach the device: resident tensors, or streamed by a DataLoader.

    train_feed, val_feed = make_feeds(ds, train_idx, val_idx, batch_size=64, device=device,
                                      budget_bytes=2 << 30, workers=None, augmenter=augmenter)
    for xb, yb in train_feed.batches(order, seeds):   # one epoch, on the device, augmented
        ...
    for xb in val_feed.chunks(256, device):            # the validation rows in order
        ...
    train_feed.close()                                 # stops the loader's worker processes

Features travel as they are stored (uint8 images stay uint8 until the model's Standardize). When the
training and validation features together fit `budget_bytes`, both are copied once to the device (host
memory on CPU) and every batch is sliced there, augmentation included (`ResidentFeed`). A larger set, or
a memmap larger than the budget, is never loaded whole: `StreamingFeed` reads each batch in
`torch.utils.data.DataLoader` worker processes (core/training/rows.py: os.pread from the file, then
augmentation), with persistent workers, pinned memory on CUDA and at most `prefetch_factor` batches per
worker in flight, and the validation rows are read chunk by chunk in this process. Both feeds give the
same batches in the same order for the same (order, seeds), so the paths train alike (bit for bit on CPU).

The loader gets its own torch.Generator: creating its iterator draws a base seed, which must not come
from the global RNG (that would shift dropout's random numbers between the paths and across a resume).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import numpy as np
import torch

from core.data.dataset import ArrayDataset
from core.training.augment import Augmenter
from core.training.rows import RowReader

__all__ = ["EvalFeed", "ResidentFeed", "StreamingFeed", "default_workers", "make_feeds"]

PREFETCH_BATCHES = 2  # per loader worker
MAX_WORKERS = 8


def default_workers() -> int:
    """Loader worker processes when the plan does not say: one core is left to the training loop."""
    return max(1, min(MAX_WORKERS, (os.cpu_count() or 2) - 1))


def make_feeds(
    ds: ArrayDataset,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    *,
    batch_size: int,
    device: torch.device,
    budget_bytes: int,
    workers: int | None,
    augmenter: Augmenter | None,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> tuple[ResidentFeed | StreamingFeed, EvalFeed]:
    """The training and validation feeds of a run (see the module docstring for which path is taken)."""
    reader = RowReader(ds.x)
    y_train = torch.from_numpy(np.ascontiguousarray(ds.y[train_idx]))
    if reader.nbytes(len(train_idx) + len(val_idx)) <= budget_bytes:
        x_train = torch.from_numpy(reader.read(train_idx)).to(device)
        x_val = torch.from_numpy(reader.read(val_idx)).to(device)
        train = ResidentFeed(x_train, y_train.to(device), batch_size, augmenter, memory_format)
        return train, EvalFeed(reader, val_idx, resident=x_val)
    streaming = StreamingFeed(
        reader, train_idx, y_train, batch_size, device, augmenter, memory_format,
        workers=default_workers() if workers is None else workers,
    )  # fmt: skip
    return streaming, EvalFeed(reader, val_idx, resident=None)


class ResidentFeed:
    """The training split as tensors on the device; batches are slices, augmented there."""

    streaming = False

    def __init__(self, x, y, batch_size, augmenter, memory_format) -> None:
        self.x, self.y, self.batch_size = x, y, batch_size
        self.augmenter, self.memory_format = augmenter, memory_format

    def batches(self, order: torch.Tensor, seeds: torch.Tensor | None) -> Iterator[tuple[torch.Tensor, ...]]:
        """(x, y) per batch of `order` (CPU positions into the split); `seeds`: per position, or None."""
        on_device = order.to(self.x.device)
        for b in range(math.ceil(len(order) / self.batch_size)):
            part = slice(b * self.batch_size, (b + 1) * self.batch_size)
            idx = on_device[part]
            xb, yb = self.x.index_select(0, idx), self.y.index_select(0, idx)
            if self.augmenter is not None:
                xb = self.augmenter(xb, seeds[order[part]])
            yield xb.contiguous(memory_format=self.memory_format), yb

    def close(self) -> None:
        pass


class StreamingFeed:
    """The training split read batch by batch in DataLoader workers (pinned on CUDA, bounded prefetch)."""

    streaming = True

    def __init__(self, reader, rows, y, batch_size, device, augmenter, memory_format, *, workers) -> None:
        self.y, self.batch_size, self.device, self.memory_format = y, batch_size, device, memory_format
        self.sampler = _EpochBatches(batch_size)
        self.workers = max(1, int(workers))
        self.loader = torch.utils.data.DataLoader(
            _BatchReader(reader, np.asarray(rows, dtype=np.int64), y.numpy(), augmenter),
            batch_size=None,
            sampler=self.sampler,
            num_workers=self.workers,
            persistent_workers=True,
            pin_memory=device.type == "cuda",
            prefetch_factor=PREFETCH_BATCHES,
            generator=torch.Generator().manual_seed(0),
        )

    def batches(self, order: torch.Tensor, seeds: torch.Tensor | None) -> Iterator[tuple[torch.Tensor, ...]]:
        self.sampler.set_epoch(order, seeds)
        for xb, yb in self.loader:
            xb = xb.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
            yield xb, yb.to(self.device, non_blocking=True)

    def close(self) -> None:
        """Stop the worker processes (they would otherwise live as long as the loader)."""
        iterator = getattr(self.loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
        self.loader = None


class EvalFeed:
    """The validation rows in order, chunk by chunk: sliced from the resident copy, else read."""

    def __init__(self, reader: RowReader, rows: np.ndarray, resident: torch.Tensor | None) -> None:
        self.reader, self.rows, self.resident = reader, rows, resident

    def __len__(self) -> int:
        return len(self.rows)

    def chunks(self, size: int, device: torch.device) -> Iterator[torch.Tensor]:
        for start in range(0, len(self.rows), size):
            if self.resident is not None:
                chunk = self.resident[start : start + size]
            else:
                chunk = torch.from_numpy(self.reader.read(self.rows[start : start + size]))
            yield chunk.to(device, non_blocking=True)


class _EpochBatches(torch.utils.data.Sampler):
    """Yields (positions, seeds) per batch of the current epoch's order (set before each epoch)."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.order: np.ndarray = np.zeros(0, dtype=np.int64)
        self.seeds: np.ndarray | None = None

    def set_epoch(self, order: torch.Tensor, seeds: torch.Tensor | None) -> None:
        self.order = order.numpy()
        self.seeds = seeds.numpy() if seeds is not None else None

    def __len__(self) -> int:
        return math.ceil(len(self.order) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        for b in range(len(self)):
            positions = self.order[b * self.batch_size : (b + 1) * self.batch_size]
            yield positions, (self.seeds[positions] if self.seeds is not None else None)


class _BatchReader(torch.utils.data.Dataset):
    """In a worker: the batch at (positions, seeds): its rows read from the source, then augmented."""

    def __init__(self, reader: RowReader, rows: np.ndarray, y: np.ndarray, augmenter) -> None:
        self.reader, self.rows, self.y, self.augmenter = reader, rows, y, augmenter

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: tuple[np.ndarray, np.ndarray | None]) -> tuple[torch.Tensor, torch.Tensor]:
        positions, seeds = key
        x = torch.from_numpy(self.reader.read(self.rows[positions]))
        if self.augmenter is not None:
            x = self.augmenter(x, torch.from_numpy(seeds))
        return x, torch.from_numpy(self.y[positions])
