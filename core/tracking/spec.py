"""The job spec's `tracking` field: where a job's MLflow run goes.

    {"tracking": {"mlflow": {"experiment": "ordinal-losses", "run_name": "simloss-0.3"}}}

Both names are optional, bounded, printable strings. A job is tracked whenever the server has an MLflow
tracking server (`SIMTRAIN_MLFLOW_TRACKING_URI`); this field only names the experiment (the MLflow
experiment is `<tenant>/<experiment>`, default `<tenant>/simtrain`) and the run (default: the variant and
seed of a comparison child, the trial of a tuning study, else `job-<id>`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = ["MAX_EXPERIMENT_LENGTH", "MAX_RUN_NAME_LENGTH", "MlflowRunSpec", "TrackingSpec"]

MAX_EXPERIMENT_LENGTH = 200
MAX_RUN_NAME_LENGTH = 200
_PRINTABLE = r"^[^\x00-\x1f\x7f]*\S[^\x00-\x1f\x7f]*$"  # no control characters, not blank

ExperimentName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=MAX_EXPERIMENT_LENGTH, pattern=_PRINTABLE
    ),
]
RunName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=MAX_RUN_NAME_LENGTH, pattern=_PRINTABLE
    ),
]


class MlflowRunSpec(BaseModel):
    """The MLflow experiment (within the tenant's namespace) and run name of one job."""

    model_config = ConfigDict(extra="forbid")

    experiment: ExperimentName | None = Field(
        default=None, description="the MLflow experiment, created on first use as `<tenant>/<experiment>`"
    )
    run_name: RunName | None = Field(default=None, description="the run's name in MLflow")


class TrackingSpec(BaseModel):
    """Experiment tracking of a job (used when the server has `SIMTRAIN_MLFLOW_TRACKING_URI`)."""

    model_config = ConfigDict(extra="forbid")

    mlflow: MlflowRunSpec | None = Field(default=None, description="the job's MLflow experiment and run name")
