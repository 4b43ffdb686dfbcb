"""`TuningCreate`: the request of `POST /v1/tuning`: a job spec (the fields of `core.jobspec.JobCreate`)
plus what to search, what to optimise and how.

    body = TuningCreate.model_validate({
        "dataset": "builtin:digits", "similarity": {"kind": "ordinal"}, "loss": {"kind": "simloss"},
        "search_space": {"similarity.reduction_factor": {"type": "float", "low": 0.1, "high": 0.9}},
        "objective": {"metric": "accuracy", "direction": "maximize"},
        "trials": 12, "parallel": 2, "sampler": "tpe", "pruner": "median", "seed": 7})
    body.job_document()        # the job part as a JSON document (every default filled in)

A search space maps dotted job paths to an Optuna distribution: `float` (low, high, log, step), `int`
(low, high, log, step) or `categorical` (choices: strings, numbers, booleans or null). The objective is a
validation metric the jobs report, optionally subject to `constraint`: another metric that must not fall
below `min`. Structure is checked here; whether the paths exist and every value they can take makes a
valid job is checked against the dataset by `core.tuning.validate`.

`tracking` (`{"mlflow": {"experiment", "run_name"}}`, as a job's) puts the study's parent MLflow run and
every trial's run in that experiment and names the parent run `run_name` (the trials keep their own
names, `trial-<n>`; `core.tracking.context`).

`priority` and `resources` (a job's fields, `core.routing`) are in the job document: every trial job is
queued with them. A `model.init` (the base's, or one a `model.init.*` search path makes) is checked
against the tenant's jobs and weights when the study is created (`core.tuning.service.create`).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from core.jobspec import JobCreate
from core.tracking.spec import TrackingSpec

__all__ = [
    "JOB_FIELDS",
    "MAX_PARALLEL",
    "MAX_PARAMS",
    "MAX_TRIALS",
    "CategoricalParam",
    "Constraint",
    "FloatParam",
    "IntParam",
    "Objective",
    "Param",
    "TuningCreate",
]

MAX_TRIALS = 200
MAX_PARALLEL = 16
MAX_PARAMS = 16
MAX_CHOICES = 64
JOB_FIELDS = frozenset(
    {"dataset", "classes", "similarity", "loss", "model", "training", "metadata", "priority", "resources"}
)

JobPath = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$"),
]
MetricName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")]
Choice = None | bool | int | float | Annotated[str, StringConstraints(max_length=200)]


def _finite(*values: float | None) -> None:
    if any(v is not None and not math.isfinite(v) for v in values):
        raise ValueError("must be finite numbers")


class FloatParam(BaseModel):
    """A float in [low, high]; `log`: sampled on a log scale (low > 0); `step`: a grid of that spacing."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> FloatParam:
        _finite(self.low, self.high, self.step)
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("a log scale needs low > 0")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be used together")
        return self

    def extremes(self) -> list[Any]:
        return [self.low, self.high]


class IntParam(BaseModel):
    """An integer in [low, high] (every `step`-th); `log`: sampled on a log scale (low >= 1, step 1)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _check(self) -> IntParam:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        if self.log and (self.low < 1 or self.step != 1):
            raise ValueError("a log scale needs low >= 1 and step 1")
        return self

    def extremes(self) -> list[Any]:
        return [self.low, self.low + (self.high - self.low) // self.step * self.step]


class CategoricalParam(BaseModel):
    """One of `choices` (distinct strings, numbers, booleans or null)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["categorical"]
    choices: list[Choice] = Field(min_length=1, max_length=MAX_CHOICES)

    @model_validator(mode="after")
    def _check(self) -> CategoricalParam:
        _finite(*(c for c in self.choices if isinstance(c, float)))
        keys = [(type(c).__name__, c) for c in self.choices]
        if len(set(keys)) != len(keys):
            raise ValueError("choices must be distinct")
        return self

    def extremes(self) -> list[Any]:
        return list(self.choices)


Param = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]


class Constraint(BaseModel):
    """`metric` (on the validation split) must be at least `min` for a trial to count as feasible."""

    model_config = ConfigDict(extra="forbid")

    metric: MetricName
    min: float

    @model_validator(mode="after")
    def _check(self) -> Constraint:
        _finite(self.min)
        return self


class Objective(BaseModel):
    """The validation metric to optimise (`core.metrics` names, or `loss`)."""

    model_config = ConfigDict(extra="forbid")

    metric: MetricName
    direction: Literal["minimize", "maximize"] = "maximize"
    constraint: Constraint | None = None


class TuningCreate(JobCreate):
    """A job spec and an Optuna study over it: every trial is one job with the searched fields set."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    search_space: dict[JobPath, Param] = Field(
        min_length=1, max_length=MAX_PARAMS, description="dotted job paths and the distribution of each"
    )
    objective: Objective
    trials: int = Field(default=20, ge=1, le=MAX_TRIALS, description="trials in all (each one job)")
    parallel: int = Field(default=2, ge=1, le=MAX_PARALLEL, description="trials trained at the same time")
    sampler: Literal["tpe", "random"] = Field(
        default="tpe", description="Optuna's TPESampler or RandomSampler"
    )
    pruner: Literal["median", "asha", "none"] = Field(
        default="median", description="Optuna's MedianPruner, SuccessiveHalvingPruner (ASHA) or none"
    )
    seed: int | None = Field(
        default=None, ge=0, le=2**31 - 1, description="the sampler's seed; also every trial's training seed "
        "when `training.seed` is not given, so all trials share one data split",
    )  # fmt: skip

    tracking: TrackingSpec | None = Field(
        default=None,
        description="MLflow: the experiment of the study's parent run and its trials, the parent's run_name",
    )

    def trial_tracking(self) -> dict[str, Any] | None:
        """A trial job's `tracking`: the study's experiment, no run name (that one names the parent run)."""
        if self.tracking is None or self.tracking.mlflow is None:
            return None
        return {"mlflow": {"experiment": self.tracking.mlflow.experiment}}

    def job_document(self) -> dict[str, Any]:
        """The job part of the request as JSON, every default filled in (what search paths point into)."""
        return self.model_dump(mode="json", include=set(JOB_FIELDS))
