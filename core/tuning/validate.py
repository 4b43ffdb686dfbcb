"""Checks of a tuning request against its dataset, before anything is stored (each failure a `SpecError`
naming the field, a 422):

- every search path exists in the job spec (`search_space.<path>`), outside `dataset`, `classes`,
  `metadata`;
- every value the space can produce makes a valid job: low and high of a range, each choice (each a
  full job through `core.jobspec.validate_job`);
- the objective and constraint metrics are ones the jobs report on the validation split
  (`objective.metric`, `objective.constraint.metric`).

    base, spec = check_request(body, dataset_classes, max_epochs=settings.max_epochs)
    job, spec = trial_job(base, {"training.learning_rate": 0.01}, classes, max_epochs, field="trial")
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from core.errors import SpecError
from core.jobspec import JobCreate, validate_job
from core.tuning.paths import get_path, with_values
from core.tuning.spec import TuningCreate

__all__ = ["NOT_SEARCHABLE", "check_request", "reported_metrics", "trial_job"]

NOT_SEARCHABLE = ("dataset", "classes", "metadata")


def trial_job(
    base: dict[str, Any], values: dict[str, Any], classes: list[str], max_epochs: int, *, field: str
) -> tuple[JobCreate, dict[str, Any]]:
    """The job `base` makes with `values` set at their paths, validated as any job is, and its spec to
    store; a SpecError naming `field` (with the job field that fails) when it is not a valid job."""
    shown = ", ".join(f"{p}={v!r}" for p, v in values.items())
    try:
        job = JobCreate.model_validate(with_values(base, values))
    except ValidationError as e:
        first = e.errors(include_input=False)[0]
        where = ".".join(
            str(p) for p in first.get("loc", ()) if not str(p).startswith(("function-", "tagged"))
        )
        raise SpecError(field, f"{shown} makes an invalid job: {where}: {first.get('msg')}") from None
    try:
        spec = validate_job(job, classes, max_epochs=max_epochs)
    except SpecError as e:
        raise SpecError(field, f"{shown} makes an invalid job: {e.field}: {e.reason}") from None
    return job, spec


def _check_space(body: TuningCreate, base: dict[str, Any], classes: list[str], max_epochs: int) -> None:
    for path, param in body.search_space.items():
        field = f"search_space.{path}"
        if path.split(".")[0] in NOT_SEARCHABLE:
            raise SpecError(field, f"{path.split('.')[0]!r} cannot be searched")
        try:
            get_path(base, path)
        except LookupError as e:
            raise SpecError(field, str(e)) from None
        for value in param.extremes():
            trial_job(base, {path: value}, classes, max_epochs, field=field)


def reported_metrics(spec: dict[str, Any]) -> set[str]:
    """The numeric metrics a job of `spec` reports for its validation split each epoch (and in its final
    metrics): what `core.metrics.evaluate` gives for its classes and similarity, and `loss`."""
    import torch

    from core.metrics import evaluate
    from core.similarity import build_similarity

    classes = list(spec["classes"])
    sim_spec = spec.get("similarity")
    similarity = build_similarity(sim_spec, classes) if sim_spec is not None else None
    n = len(classes)
    targets = torch.arange(n).repeat(2)  # every class twice: once right, once mistaken for its neighbour
    logits = torch.eye(n)[torch.cat([torch.arange(n), torch.arange(n).roll(1)])]
    metrics = evaluate(logits, targets, similarity, classes, similarity_spec=sim_spec)
    numeric = {
        k for k, v in metrics.items() if v is None or (isinstance(v, int | float) and not isinstance(v, bool))
    }
    return (numeric - {"count"}) | {"loss"}


def _check_objective(body: TuningCreate, spec: dict[str, Any]) -> None:
    known = reported_metrics(spec)
    named = [("objective.metric", body.objective.metric)]
    if body.objective.constraint is not None:
        named.append(("objective.constraint.metric", body.objective.constraint.metric))
    for field, metric in named:
        if metric not in known:
            raise SpecError(
                field, f"the jobs do not report {metric!r}; they report {', '.join(sorted(known))}"
            )


def check_request(
    body: TuningCreate, classes: list[str], *, max_epochs: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check `body` against the dataset's classes; (the base job document, the base job's spec)."""
    base = body.job_document()
    spec = validate_job(JobCreate.model_validate(base), classes, max_epochs=max_epochs)
    _check_space(body, base, classes, max_epochs)
    _check_objective(body, spec)
    return base, spec
