"""The one parser of the job fields that `simtrain submit`, `simtrain compare` and `simtrain tune` share,
and their typer options.

    fields = JobFields(dataset="builtin:digits", classes="0,1,2", similarity='{"kind":"ordinal"}', epochs=4)
    fields.spec()                   # {"dataset", "classes", "similarity", "training": {"epochs": 4}}
    JobFields("builtin:digits", priority=Priority.high, device=Device.gpu).spec()
                                    # ... "priority": "high", "resources": {"device": "gpu"}
    tracking_body("digits-study", "lr-search")   # {"mlflow": {"experiment": ..., "run_name": ...}} or None
    comparison_body(fields, ['simloss={"kind":"simloss"}'], seeds=3)   # the POST /v1/comparisons body
    comparison_body(fields, [...], seeds=3, sweep=["r=similarity.reduction_factor=0,0.5,0.9"])
    sweep_axis("r=similarity.reduction_factor=0,0.5,0.9")   # {"name": "r", "path": ..., "values": [0, 0.5, 0.9]}

A JSON option may be `@file.json`. A value that cannot be used raises `OptionError`, whose message names
the option (`--variant a is not valid JSON: ...`); the CLI prints it as its one error line (exit 1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from core.errors import SimtrainError

__all__ = [
    "ClassesOption",
    "Device",
    "DeviceOption",
    "EpochsOption",
    "IdempotencyKeyOption",
    "JobFields",
    "ModelOption",
    "OptionError",
    "Priority",
    "PriorityOption",
    "SimilarityOption",
    "SweepOption",
    "TrackingExperimentOption",
    "TrackingRunNameOption",
    "TrainingOption",
    "comparison_body",
    "json_option",
    "sweep_axis",
    "tracking_body",
]

ClassesOption = Annotated[str | None, typer.Option(help="comma-separated subset / order of the classes")]
SimilarityOption = Annotated[str | None, typer.Option(help="similarity spec as JSON (or @file.json)")]
ModelOption = Annotated[str | None, typer.Option(help="model spec as JSON (or @file.json)")]
TrainingOption = Annotated[str | None, typer.Option(help="training spec as JSON (or @file.json)")]
EpochsOption = Annotated[int | None, typer.Option(help="training epochs (overrides the training spec's)")]
IdempotencyKeyOption = Annotated[
    str | None, typer.Option(help="the same key again answers what the first request made")
]
SweepOption = Annotated[
    list[str] | None,
    typer.Option(
        "--sweep",
        metavar="NAME=PATH=V1,V2,...",
        help="sweep every variant over a job path, e.g. r=similarity.reduction_factor=0,0.5,0.9 "
        "(values as JSON, or a JSON list after the second '='; repeat once for a grid of two axes)",
    ),
]
MAX_SWEEP_AXES = 2


class Priority(StrEnum):
    """A job's place in its queue (core.routing)."""

    low = "low"
    normal = "normal"
    high = "high"


class Device(StrEnum):
    """The worker a job needs: `resources.device` (core.routing)."""

    auto = "auto"
    cpu = "cpu"
    gpu = "gpu"


PriorityOption = Annotated[
    Priority | None, typer.Option(help="the job's place in the queue (default: normal)", show_default=False)
]
DeviceOption = Annotated[
    Device | None,
    typer.Option(
        help="the worker it needs: gpu waits for a GPU worker, cpu takes a CPU worker (default: auto)",
        show_default=False,
    ),
]
TrackingExperimentOption = Annotated[
    str | None, typer.Option(metavar="NAME", help="the MLflow experiment of the runs (tracking.mlflow)")
]
TrackingRunNameOption = Annotated[
    str | None, typer.Option(metavar="NAME", help="the name of the MLflow (parent) run")
]


class OptionError(SimtrainError):
    """A command-line value that cannot be used; `field` is the option (`--similarity`)."""

    status = 2
    code = "invalid_option"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, details={"field": field})
        self.field = field


def json_option(text: str | None, name: str) -> Any:
    """A JSON option's value (`@file.json` reads the file); OptionError naming `--name` when unusable."""
    if text is None:
        return None
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as e:
            raise OptionError(f"--{name}", f"--{name}: cannot read {text[1:]}: {e.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise OptionError(f"--{name}", f"--{name} is not valid JSON: {e}") from None


@dataclass(frozen=True)
class JobFields:
    """The options of a job spec as typed on the command line (JSON text, comma lists)."""

    dataset: str | None
    classes: str | None = None
    similarity: str | None = None
    model: str | None = None
    training: str | None = None
    epochs: int | None = None
    priority: Priority | None = None
    device: Device | None = None

    def spec(self) -> dict[str, Any]:
        """dataset, classes, similarity, model, training (with --epochs folded in), priority and
        resources (when given) as the API takes them."""
        spec: dict[str, Any] = {"dataset": self.dataset}
        if self.classes:
            spec["classes"] = [c.strip() for c in self.classes.split(",") if c.strip()]
        if self.similarity:
            spec["similarity"] = json_option(self.similarity, "similarity")
        if self.model:
            spec["model"] = json_option(self.model, "model")
        training = json_option(self.training, "training") or {}
        if self.epochs is not None:
            training["epochs"] = self.epochs
        if training:
            spec["training"] = training
        if self.priority is not None:
            spec["priority"] = Priority(self.priority).value
        if self.device is not None:
            spec["resources"] = {"device": Device(self.device).value}
        return spec


def tracking_body(experiment: str | None, run_name: str | None) -> dict[str, Any] | None:
    """`{"mlflow": {"experiment", "run_name"}}` from the --tracking-* options (None when neither is given;
    the API checks the names)."""
    if experiment is None and run_name is None:
        return None
    mlflow = {"experiment": experiment, "run_name": run_name}
    return {"mlflow": {k: v for k, v in mlflow.items() if v is not None}}


def _sweep_value(text: str) -> Any:
    """A value as JSON (`0.5`, `true`, `"x"`), else the text itself (`adamw`)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def sweep_axis(item: str) -> dict[str, Any]:
    """`NAME=PATH=V1,V2,...` (or `NAME=PATH=[JSON list]`) as a sweep axis; OptionError naming --sweep."""
    name, _, rest = item.partition("=")
    path, sep, values = rest.partition("=")
    if not sep or not name.strip() or not path.strip() or not values.strip():
        raise OptionError("--sweep", f"--sweep {item!r}: expected NAME=PATH=V1,V2,...")
    if values.strip().startswith("["):
        parsed = json_option(values, f"sweep {name.strip()}")
        if not isinstance(parsed, list):
            raise OptionError("--sweep", f"--sweep {name.strip()}: the values must be a JSON list")
    else:
        parsed = [_sweep_value(v.strip()) for v in values.split(",")]
    return {"name": name.strip(), "path": path.strip(), "values": parsed}


def comparison_body(
    fields: JobFields, variants: list[str], seeds: int, sweep: list[str] | None = None
) -> dict[str, Any]:
    """The POST /v1/comparisons body: the job fields, `seeds`, each `NAME=LOSS_JSON` variant and, when
    given, each `--sweep` axis."""
    if not fields.dataset:
        raise OptionError("--dataset", "compare needs --dataset (or --watch ID)")
    if not variants:
        raise OptionError("--variant", "compare needs at least one --variant NAME=LOSS_JSON")
    parsed = []
    for item in variants:
        name, sep, loss = item.partition("=")
        if not sep or not name.strip():
            raise OptionError("--variant", f"--variant {item!r}: expected NAME=LOSS_JSON")
        parsed.append({"name": name.strip(), "loss": json_option(loss, f"variant {name.strip()}")})
    body = fields.spec() | {"seeds": seeds, "variants": parsed}
    if sweep:
        if len(sweep) > MAX_SWEEP_AXES:
            raise OptionError("--sweep", f"at most {MAX_SWEEP_AXES} --sweep axes, got {len(sweep)}")
        body["sweep"] = [sweep_axis(item) for item in sweep]
    return body
