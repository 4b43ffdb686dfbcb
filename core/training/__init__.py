"""Training: `TrainingSpec`, the hooks protocol and the resumable training engine.

    from core.training import TrainPlan, TrainingSpec, train, with_seed
    result = train(TrainPlan(ds, None, {"kind": "cross_entropy"}, {"kind": "mlp"}, with_seed(TrainingSpec())))

`core.training.spec` and `core.training.hooks` import nothing heavy; the engine (torch, losses, metrics)
is imported lazily on first use of `train` / `TrainPlan` / `TrainResult`.
"""

from core.lazy import lazy_exports
from core.training.hooks import NoopHooks, TrainHooks
from core.training.spec import (
    MAX_EPOCHS,
    MAX_RUNTIME_S,
    MAX_SEED,
    SplitSpec,
    TrainingSpec,
    parse_training_spec,
    with_seed,
)

__all__ = [
    "MAX_EPOCHS",
    "MAX_RUNTIME_S",
    "MAX_SEED",
    "STOP_REASONS",
    "NoopHooks",
    "SplitSpec",
    "TrainHooks",
    "TrainPlan",
    "TrainResult",
    "TrainingSpec",
    "parse_training_spec",
    "resolve_device",
    "train",
    "with_seed",
]

__getattr__ = lazy_exports(
    __name__, {"engine": ("TrainPlan", "TrainResult", "train", "resolve_device", "STOP_REASONS")}
)
