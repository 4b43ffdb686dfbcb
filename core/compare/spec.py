"""`ComparisonCreate`: one base job spec, the variants to compare (a loss, and optionally their own
similarity, model and training), an optional sweep, and how many seeds.

The request the REST API (`POST /v1/comparisons`) accepts unchanged. `arms` expands it into the jobs it
trains (the cross-entropy `baseline` with the base spec first, added when the request leaves it out;
then every variant, at every grid point of the sweep), each a full `JobCreate`; `child_jobs` gives one
per (arm, seed). Every arm of seed i trains with `training.seed = seed_values[i]`, so all arms of a seed
share the data split and the init seed.

    req = ComparisonCreate.model_validate({"dataset": "builtin:digits", "similarity": {...}, "seeds": 2,
        "variants": [{"name": "simloss", "loss": {"kind": "simloss"}, "training": {"learning_rate": 0.01}}],
        "sweep": [{"name": "r", "path": "similarity.reduction_factor", "values": [0.2, 0.8]}]})
    [a.name for a in arms(req) if a.trained]     # ["baseline", "simloss@r=0.2", "simloss@r=0.8"]
    for arm, seed, job in child_jobs(req, seed_values(req)):
        ...
    seed_of(job_spec)          # the training seed a stored child job spec trains with

A variant's `similarity`, `loss` and `model` replace the base's; its `training` is merged key by key over
the base's (not `seed`, `val_fraction` or `split`, which every arm of a seed shares). The sweep
(`core.compare.sweep`) applies to every variant but the baseline and those with `"swept": false`. An
arm that is no valid job raises `SpecError` naming the request field: `variants.<i>.<field...>` for a
variant's overrides, `sweep.<a>.path` for a path the variant's job does not have, `sweep.<a>.values.<j>`
(its message naming the path and the value) for a value that makes an invalid job, `sweep` for a
combination of two axes' values that does.

`tracking` (`{"mlflow": {"experiment", "run_name"}}`, as a job's) puts every child's MLflow run in that
experiment (`child_tracking`: the children keep their own names, `<variant>-seed<seed>`) and names the
comparison's parent run `run_name` (`core.tracking.context`).

`priority` and `resources` (as a job's: `core.routing`) are copied to every child job, which is routed
like any job. A `model.init` (the base's, a variant's model, or a swept `model.init.*` path) is checked
against the tenant's jobs and weights by `core.compare.service.create` (`check_init_sources`), the error
named as the request field like any other arm error.
"""

from __future__ import annotations

import copy
import dataclasses
import secrets
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from core.compare.sweep import (
    MAX_AXES,
    MAX_CHILDREN,
    SHARED_PATHS,
    SweepAxis,
    grid,
    point_label,
    value_text,
    with_point,
)
from core.errors import SpecError
from core.jobspec import DATASET_REF_PATTERN, ClassName, JobCreate
from core.losses import LossSpec
from core.models import ModelSpec
from core.routing import JobPriority, JobResources
from core.similarity import MAX_CLASSES, SimilaritySpec
from core.tracking.spec import TrackingSpec
from core.training import TrainingSpec

__all__ = [
    "BASELINE",
    "BASELINE_LOSS",
    "MAX_SEEDS",
    "MAX_VARIANTS",
    "Arm",
    "ComparisonCreate",
    "VariantSpec",
    "arm_error",
    "arms",
    "child_jobs",
    "child_tracking",
    "request_dump",
    "seed_of",
    "seed_values",
    "variants_public",
]

BASELINE = "baseline"
BASELINE_LOSS: dict[str, Any] = {"kind": "cross_entropy"}
MAX_VARIANTS = 8
MAX_SEEDS = 10
_MAX_SEED = 2**31 - 1
_NAME_LENGTH = 64  # a child job's variant name (the jobs.variant column)
_SHARED_TRAINING = tuple(p.split(".", 1)[1] for p in SHARED_PATHS if p.startswith("training."))

VariantName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$")]
MetaKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
MetaValue = Annotated[str, StringConstraints(max_length=512)]


class VariantSpec(BaseModel):
    """One variant to compare, named (lowercase letters, digits, '_' and '-'): its loss and what else it
    changes in the base job."""

    model_config = ConfigDict(extra="forbid")

    name: VariantName
    loss: LossSpec
    similarity: SimilaritySpec | None = Field(default=None, description="replaces the comparison's")
    model: ModelSpec | None = Field(default=None, description="replaces the comparison's")
    training: dict[str, JsonValue] | None = Field(
        default=None,
        max_length=32,
        description="merged key by key over the comparison's training (not seed, val_fraction, split)",
    )
    swept: bool = Field(default=True, description="false: the comparison's sweep leaves this variant out")

    @field_validator("training")
    @classmethod
    def _not_shared(cls, training: dict[str, Any] | None) -> dict[str, Any] | None:
        shared = [k for k in training or {} if k in _SHARED_TRAINING]
        if shared:
            raise ValueError(f"{shared[0]!r} is shared by every variant of a seed: set it for the comparison")
        return training

    def overrides(self) -> dict[str, Any]:
        """The fields besides `loss` this variant changes, as JSON."""
        dump = self.model_dump(mode="json", include={"similarity", "model", "training"})
        return {k: v for k, v in dump.items() if k in self.model_fields_set and v is not None}


class ComparisonCreate(BaseModel):
    """Train the same job with several variants over several seeds and compare them to cross-entropy."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    dataset: str = Field(min_length=1, max_length=100, pattern=DATASET_REF_PATTERN)
    classes: list[ClassName] | None = Field(default=None, min_length=2, max_length=MAX_CLASSES)
    similarity: SimilaritySpec | None = None
    model: ModelSpec = Field(default_factory=ModelSpec)
    training: TrainingSpec = Field(
        default_factory=TrainingSpec,
        description="shared by every child; `seed` (optional) is the first seed, the others follow it",
    )
    variants: list[VariantSpec] = Field(min_length=1, max_length=MAX_VARIANTS)
    seeds: int = Field(default=3, ge=1, le=MAX_SEEDS, description="runs per variant, seed i shared by all")
    metadata: dict[MetaKey, MetaValue] | None = Field(
        default=None, max_length=30, description="copied to every child job (with `variant` and `seed`)"
    )
    sweep: list[SweepAxis] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_AXES,
        description="each swept variant is trained at every point of the axes' product",
    )
    tracking: TrackingSpec | None = Field(
        default=None,
        description="MLflow: the experiment of the comparison's parent run and its children, the parent's "
        "run_name (core.tracking)",
    )
    priority: JobPriority = Field(default="normal", description="every child job's place in the queue")
    resources: JobResources = Field(
        default_factory=JobResources, description="the worker every child job needs (core.routing)"
    )

    @field_validator("variants")
    @classmethod
    def _unique_names(cls, variants: list[VariantSpec]) -> list[VariantSpec]:
        seen: set[str] = set()
        for i, v in enumerate(variants):
            if v.name in seen:
                raise ValueError(f"duplicate variant name {v.name!r} (entry {i})")
            seen.add(v.name)
            if v.name == BASELINE and (not _is_plain_cross_entropy(v.loss) or v.overrides()):
                raise ValueError(
                    f"the name {BASELINE!r} (entry {i}) is reserved for the plain cross-entropy baseline "
                    "with the comparison's spec, which every comparison includes"
                )
        return variants

    @field_validator("sweep")
    @classmethod
    def _bounded(cls, sweep: list[SweepAxis] | None, info: ValidationInfo) -> list[SweepAxis] | None:
        if sweep is None or "variants" not in info.data or "seeds" not in info.data:
            return sweep
        if len({a.name for a in sweep}) < len(sweep) or len({a.path for a in sweep}) < len(sweep):
            raise ValueError("the axes need distinct names and distinct paths")
        swept = sum(1 for v in info.data["variants"] if v.name != BASELINE and v.swept)
        if swept == 0:
            raise ValueError("no variant is swept (each is the baseline or has swept: false)")
        fixed = sum(1 for v in info.data["variants"] if v.name != BASELINE and not v.swept)
        points = len(grid(sweep))
        n = (1 + fixed + swept * points) * info.data["seeds"]
        if n > MAX_CHILDREN:
            raise ValueError(
                f"{n} child jobs ((1 baseline + {fixed} fixed + {swept} swept variants x {points} grid "
                f"points) x {info.data['seeds']} seeds); a comparison makes at most {MAX_CHILDREN}"
            )
        return sweep


def _loss_dict(loss: Any) -> dict[str, Any]:
    return loss.model_dump(mode="json") if isinstance(loss, BaseModel) else dict(loss)


def _is_plain_cross_entropy(loss: Any) -> bool:
    d = _loss_dict(loss)
    return d.get("kind") == "cross_entropy" and not d.get("label_smoothing")


def request_dump(req: ComparisonCreate) -> dict[str, Any]:
    """The request as validated, defaults filled in (`sweep` only when there is one)."""
    out = req.model_dump(mode="json")
    if out.get("sweep") is None:
        out.pop("sweep", None)
    return out


# ----------------------------------------------------------------------------------------------- arms


@dataclass(frozen=True)
class Arm:
    """One job a comparison implies, before its seed: `name` (its child jobs' variant), the requested
    `variant` it comes from and its `index` in `variants` (None: the baseline), its grid `point`, the job
    body and its `JobCreate`; `field` / `shown`: how an error of this job names the request.
    `trained`: False for a probe (two axes: one axis's value alone, checked before the grid)."""

    name: str
    variant: str
    index: int | None
    point: dict[str, Any] | None
    body: dict[str, Any]
    job: JobCreate
    field: str = ""
    shown: str = ""
    trained: bool = True


def arm_error(arm: Arm, field: str, reason: str) -> SpecError:
    """The SpecError for a job `field` of `arm` that cannot be used, named as the request field."""
    if arm.index is None:
        return SpecError(field, reason)
    if arm.point is None:
        return SpecError(f"{arm.field}.{field}", reason)
    return SpecError(
        arm.field, f"{arm.shown} makes an invalid job for variant {arm.variant!r}: {field}: {reason}"
    )


_VALIDATOR_LOC = ("function-", "json-or-python[", "lax-or-strict[", "tagged-union[", "chain[")


def _error_path(loc: tuple, body: Any) -> str:
    """The dotted job path of a pydantic error location, without the tags of tagged unions (a union's
    tag follows the field it is the `kind` of: ('similarity', 'groups', 'x') -> 'similarity.x')."""
    out: list[str] = []
    node: Any = body
    tagged = False  # the tag of `node` was seen
    for part in loc:
        if isinstance(part, str) and part.startswith(_VALIDATOR_LOC):
            continue
        if isinstance(node, dict) and not tagged and node.get("kind") == part:
            tagged = True
            continue
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
        tagged = False
        out.append(str(part))
    return ".".join(out)


def _variant_body(base: dict[str, Any], v: VariantSpec) -> dict[str, Any]:
    body = copy.deepcopy(base)
    body["loss"] = _loss_dict(v.loss)
    over = v.overrides()
    for key in ("similarity", "model"):
        if key in over:
            body[key] = over[key]
    if "training" in over:
        body["training"] = {**body.get("training", {}), **over["training"]}
    return body


def _arm(name: str, v: VariantSpec | None, index: int | None, body: dict[str, Any], **kw: Any) -> Arm:
    """The Arm of `body`, validated as a `JobCreate` (SpecError naming the request field otherwise)."""
    variant = BASELINE if v is None else v.name
    stub = Arm(name, variant, index, kw.pop("point", None), body, JobCreate.model_construct(), **kw)
    try:
        job = JobCreate.model_validate(body)
    except ValidationError as e:
        first = e.errors(include_input=False)[0]
        path = _error_path(tuple(first.get("loc", ())), body)
        raise arm_error(stub, path, str(first.get("msg", "invalid"))) from None
    return dataclasses.replace(stub, job=job)


def _missing_parent(body: dict[str, Any], path: str) -> str | None:
    """The first enclosing field of `path` the job body does not set (None when all are set)."""
    parts = path.split(".")
    node: Any = body
    for k, part in enumerate(parts[:-1]):
        if isinstance(node, dict) and node.get(part) is None:
            return ".".join(parts[: k + 1])
        node = node.get(part) if isinstance(node, dict) else None
    return None


def _not_applicable(
    axis_index: int, axis: SweepAxis, v: VariantSpec, body: dict[str, Any]
) -> SpecError | None:
    """A SpecError naming `sweep.<a>.path` when the variant's job has no such field: its kind lacks it,
    or an enclosing field is not set and the value alone does not make one (a similarity without kind)."""
    field = f"sweep.{axis_index}.path"
    try:
        probe = with_point(body, [axis], {axis.name: axis.values[0]})
    except LookupError as e:
        return SpecError(field, f"variant {v.name!r}: {e}")
    try:
        JobCreate.model_validate(probe)
    except ValidationError as e:
        missing = _missing_parent(body, axis.path)
        for err in e.errors(include_input=False):
            where = _error_path(tuple(err.get("loc", ())), probe)
            if err.get("type") == "extra_forbidden" and where == axis.path:
                return SpecError(field, f"{axis.path!r} is not a field of the job of variant {v.name!r}")
            if missing is not None and (where == missing or where.startswith(missing + ".")):
                return SpecError(
                    field, f"the job of variant {v.name!r} has no {missing!r} to set {axis.path!r} in"
                )
    return None


def _swept_arms(req: ComparisonCreate, i: int, v: VariantSpec, body: dict[str, Any]) -> list[Arm]:
    """The variant at every grid point (with two axes, first each axis's values alone, as probes)."""
    axes = req.sweep or []
    for a, axis in enumerate(axes):
        err = _not_applicable(a, axis, v, body)
        if err is not None:
            raise err
    out: list[Arm] = []
    if len(axes) > 1:
        for a, axis in enumerate(axes):
            for j, value in enumerate(axis.values):
                point = {axis.name: value}
                out.append(_arm(point_label(v.name, point), v, i, with_point(body, [axis], point), point=point,
                                field=f"sweep.{a}.values.{j}", shown=f"{axis.path} = {value_text(value)}",
                                trained=False))  # fmt: skip
    for k, point in enumerate(grid(axes)):
        name = point_label(v.name, point)
        if len(name) > _NAME_LENGTH:
            name = f"{v.name}@{k}"
        if len(name) > _NAME_LENGTH:
            raise SpecError(f"variants.{i}.name", f"too long for a sweep's child names ({name!r})")
        shown = ", ".join(f"{ax.path} = {value_text(point[ax.name])}" for ax in axes)
        field = f"sweep.0.values.{k}" if len(axes) == 1 else "sweep"
        out.append(_arm(name, v, i, with_point(body, axes, point), point=point, field=field, shown=shown))
    return out


def arms(req: ComparisonCreate) -> list[Arm]:
    """Every job the request implies, in the order they are checked: the baseline, then each variant
    (at each grid point when swept). Each a valid `JobCreate`, else SpecError naming the request field."""
    skip = {"variants", "seeds", "metadata", "sweep", "tracking"}
    base = req.model_dump(mode="json", exclude=skip, exclude_none=True)
    out = [_arm(BASELINE, None, None, {**base, "loss": dict(BASELINE_LOSS)})]
    for i, v in enumerate(req.variants):
        if v.name == BASELINE:
            continue
        body = _variant_body(base, v)
        if req.sweep and v.swept:
            out += _swept_arms(req, i, v, body)
        else:
            out.append(_arm(v.name, v, i, body, field=f"variants.{i}"))
    names = [a.name for a in out if a.trained]
    if len(set(names)) < len(names):
        raise SpecError("sweep", "two grid points give the same child name: use shorter values or names")
    return out


# ------------------------------------------------------------------------------------- what is stored


def variants_public(req: ComparisonCreate, trained: list[Arm] | None = None) -> list[dict[str, Any]]:
    """Per trained arm, the baseline first: `name`, `loss` (as JSON), the requested `variant`, its grid
    `point` (None unless swept) and the `overrides` of its variant (None when it has none)."""
    overrides = {v.name: v.overrides() for v in req.variants}
    return [
        {
            "name": a.name,
            "loss": a.body["loss"],
            "variant": a.variant,
            "point": a.point,
            "overrides": overrides.get(a.variant) or None,
        }
        for a in (trained if trained is not None else [a for a in arms(req) if a.trained])
    ]


def seed_of(job_spec: dict[str, Any] | None) -> int:
    """The training seed of a (stored) job spec: `training.seed`, 0 when there is none."""
    return int(((job_spec or {}).get("training") or {}).get("seed") or 0)


def seed_values(req: ComparisonCreate) -> list[int]:
    """The comparison's seeds: training.seed (random when None) and the next `seeds - 1` integers."""
    base = req.training.seed
    if base is None:
        base = secrets.randbelow(_MAX_SEED - MAX_SEEDS)
    base = min(base, _MAX_SEED - req.seeds + 1)
    return [base + i for i in range(req.seeds)]


def child_tracking(req: ComparisonCreate) -> TrackingSpec | None:
    """A child's `tracking`: the comparison's experiment, no run name (that one names the parent run)."""
    if req.tracking is None or req.tracking.mlflow is None:
        return None
    return TrackingSpec.model_validate({"mlflow": {"experiment": req.tracking.mlflow.experiment}})


def child_jobs(
    req: ComparisonCreate, seeds: list[int], trained: list[Arm] | None = None
) -> list[tuple[Arm, int, JobCreate]]:
    """One `JobCreate` per (trained arm, seed), ordered by seed then arm (baseline first)."""
    out = []
    tracking = child_tracking(req)
    for seed in seeds:
        for arm in trained if trained is not None else [a for a in arms(req) if a.trained]:
            job = arm.job.model_copy(
                update={
                    "training": arm.job.training.model_copy(update={"seed": seed}),
                    "metadata": {**(req.metadata or {}), "variant": arm.name, "seed": str(seed)},
                    "tracking": tracking,
                }
            )
            out.append((arm, seed, job))
    return out
