"""`TrainHooks`: how the engine reports progress and learns it should stop.

The worker implements these to write epochs to the database, renew its lease and see cancellation; tests
record calls. Every method is optional in spirit: subclass `NoopHooks` and override what you need.

    class PrintHooks(NoopHooks):
        def on_epoch(self, epoch, epochs, record):
            print(epoch, record["val"]["loss"])
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["NoopHooks", "TrainHooks"]


@runtime_checkable
class TrainHooks(Protocol):
    def on_start(self, info: dict[str, Any]) -> None:
        """Once, before the first epoch: device, resumed_from_epoch, num_train, num_val, ..."""

    def on_epoch(self, epoch: int, epochs: int, record: dict[str, Any]) -> None:
        """After each epoch (1-based) with its record: epoch, train, val, lr (the head's learning rate as
        the epoch started), seconds, samples_per_s."""

    def on_checkpoint(self, epoch: int) -> None:
        """After the checkpoint of `epoch` is durably written."""

    def should_stop(self) -> bool:
        """Asked after every epoch; True cancels the run (a checkpoint is written first)."""

    def on_warning(self, message: str) -> None:
        """Something the user should know that does not stop training."""


class NoopHooks:
    """Hooks that do nothing and never stop the run."""

    def on_start(self, info: dict[str, Any]) -> None:
        pass

    def on_epoch(self, epoch: int, epochs: int, record: dict[str, Any]) -> None:
        pass

    def on_checkpoint(self, epoch: int) -> None:
        pass

    def should_stop(self) -> bool:
        return False

    def on_warning(self, message: str) -> None:
        pass
