"""The learning-rate schedule of a `TrainingSpec`, from torch.optim.lr_scheduler.

    schedule = build_schedule(optimizer, spec, steps_per_epoch)   # None without `spec.scheduler`
    schedule.after_step()      # once per optimizer step (advances cosine / onecycle)
    schedule.after_epoch()     # once per epoch (advances step)
    schedule.state_dict(); schedule.load_state_dict(saved)        # in the checkpoint

- cosine, per step: `LinearLR` warmup over `warmup_epochs` (from lr / (warmup steps + 1) up to lr),
  then `CosineAnnealingLR` down to 0 at the last step of the run (`SequentialLR` joins the two);
- onecycle, per step: `OneCycleLR` with max_lr = each parameter group's lr, its rising phase
  `warmup_epochs` long (30% of the run by default), momentum / betas left as the spec sets them;
- step, per epoch: `LinearLR` warmup over `warmup_epochs` epochs, then `StepLR` (x gamma every
  `step_epochs` epochs).

Every parameter group follows the schedule in proportion to its own lr (the backbone of a warm start at
lr * backbone_lr_factor stays at that fraction of the head's).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim import lr_scheduler

from core.training.spec import TrainingSpec

__all__ = ["Schedule", "build_schedule"]


@dataclass
class Schedule:
    """A torch scheduler and whether it advances per optimizer step (else per epoch)."""

    scheduler: lr_scheduler.LRScheduler
    per_step: bool

    def after_step(self) -> None:
        if self.per_step:
            _step(self.scheduler)

    def after_epoch(self) -> None:
        if not self.per_step:
            _step(self.scheduler)

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)


def build_schedule(
    optimizer: torch.optim.Optimizer, spec: TrainingSpec, steps_per_epoch: int
) -> Schedule | None:
    """The schedule of `spec.scheduler` for a run of `spec.epochs` x `steps_per_epoch` steps."""
    s = spec.scheduler
    if s is None:
        return None
    total = spec.epochs * steps_per_epoch
    if s.kind == "onecycle":
        warmup = s.warmup_epochs * steps_per_epoch if s.warmup_epochs is not None else None
        main = lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[group["lr"] for group in optimizer.param_groups],
            total_steps=total,
            pct_start=warmup / total if warmup is not None else 0.3,
            cycle_momentum=False,
        )
        return Schedule(main, per_step=True)
    if s.kind == "cosine":
        warmup = s.warmup_epochs * steps_per_epoch
        main = lr_scheduler.CosineAnnealingLR(optimizer, T_max=total - warmup)
        return Schedule(_with_warmup(optimizer, main, warmup), per_step=True)
    main = lr_scheduler.StepLR(optimizer, step_size=s.step_epochs, gamma=s.gamma)
    return Schedule(_with_warmup(optimizer, main, s.warmup_epochs), per_step=False)


def _with_warmup(
    optimizer: torch.optim.Optimizer, main: lr_scheduler.LRScheduler, warmup: int
) -> lr_scheduler.LRScheduler:
    if warmup <= 0:
        return main
    ramp = lr_scheduler.LinearLR(optimizer, start_factor=1.0 / (warmup + 1), total_iters=warmup)
    return lr_scheduler.SequentialLR(optimizer, [ramp, main], milestones=[warmup])


def _step(scheduler: lr_scheduler.LRScheduler) -> None:
    with warnings.catch_warnings():  # a GradScaler-skipped first step makes torch warn about the order
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)`")
        scheduler.step()
