"""`ComparisonCreate`: one base job spec, the loss variants to compare and how many seeds.

The request the REST API (`POST /v1/comparisons`) accepts unchanged. `child_jobs` expands it into one
`JobCreate` per (variant, seed), each validated by the normal job path: every variant of seed i trains
with `training.seed = seed_values[i]`, so all variants of a seed share the data split and the init seed.
The cross-entropy `baseline` is always one of the variants (added first when the request leaves it out).

    req = ComparisonCreate.model_validate({"dataset": "builtin:digits", "variants": [
        {"name": "simloss", "loss": {"kind": "simloss"}}], "seeds": 2, "similarity": {...}})
    for variant, seed, job in child_jobs(req, seed_values(req)):
        ...
    seed_of(job_spec)          # the training seed a stored child job spec trains with
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from core.jobspec import DATASET_REF_PATTERN, ClassName, JobCreate
from core.losses import LossSpec
from core.models import ModelSpec
from core.similarity import MAX_CLASSES, SimilaritySpec
from core.training import TrainingSpec

__all__ = [
    "BASELINE",
    "BASELINE_LOSS",
    "MAX_SEEDS",
    "MAX_VARIANTS",
    "ComparisonCreate",
    "VariantSpec",
    "child_jobs",
    "seed_of",
    "seed_values",
    "variants_public",
    "variants_with_baseline",
]

BASELINE = "baseline"
BASELINE_LOSS: dict[str, Any] = {"kind": "cross_entropy"}
MAX_VARIANTS = 8
MAX_SEEDS = 10
_MAX_SEED = 2**31 - 1

VariantName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$")]
MetaKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
MetaValue = Annotated[str, StringConstraints(max_length=512)]


class VariantSpec(BaseModel):
    """One loss to compare, named (lowercase letters, digits, '_' and '-')."""

    model_config = ConfigDict(extra="forbid")

    name: VariantName
    loss: LossSpec


class ComparisonCreate(BaseModel):
    """Train the same job with several losses over several seeds and compare them to cross-entropy."""

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

    @field_validator("variants")
    @classmethod
    def _unique_names(cls, variants: list[VariantSpec]) -> list[VariantSpec]:
        seen: set[str] = set()
        for i, v in enumerate(variants):
            if v.name in seen:
                raise ValueError(f"duplicate variant name {v.name!r} (entry {i})")
            seen.add(v.name)
            if v.name == BASELINE and not _is_plain_cross_entropy(v.loss):
                raise ValueError(
                    f"the name {BASELINE!r} (entry {i}) is reserved for the plain cross-entropy baseline, "
                    "which every comparison includes"
                )
        return variants


def _loss_dict(loss: Any) -> dict[str, Any]:
    return loss.model_dump(mode="json") if isinstance(loss, BaseModel) else dict(loss)


def _is_plain_cross_entropy(loss: Any) -> bool:
    d = _loss_dict(loss)
    return d.get("kind") == "cross_entropy" and not d.get("label_smoothing")


def variants_with_baseline(req: ComparisonCreate) -> list[tuple[str, Any]]:
    """(name, loss) for every variant, the cross-entropy baseline first."""
    out: list[tuple[str, Any]] = [(BASELINE, BASELINE_LOSS)]
    out += [(v.name, v.loss) for v in req.variants if v.name != BASELINE]
    return out


def variants_public(req: ComparisonCreate) -> list[dict[str, Any]]:
    """`{"name", "loss"}` (the loss as JSON) for every variant, the cross-entropy baseline first."""
    return [{"name": name, "loss": _loss_dict(loss)} for name, loss in variants_with_baseline(req)]


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


def child_jobs(req: ComparisonCreate, seeds: list[int]) -> list[tuple[str, int, JobCreate]]:
    """One `JobCreate` per (variant, seed), ordered by seed then variant (baseline first)."""
    out = []
    base = req.model_dump(mode="json", exclude={"variants", "seeds", "metadata"}, exclude_none=True)
    for seed in seeds:
        for name, loss in variants_with_baseline(req):
            body = dict(base)
            body["training"] = {**base.get("training", {}), "seed": seed}
            body["loss"] = _loss_dict(loss)
            body["metadata"] = {**(req.metadata or {}), "variant": name, "seed": str(seed)}
            out.append((name, seed, JobCreate.model_validate(body)))
    return out
