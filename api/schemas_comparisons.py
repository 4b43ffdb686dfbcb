"""Public (response) schemas of the comparison routes (`/v1/comparisons`).

What clients send is `core.compare.spec.ComparisonCreate`. The fields are what
`core.compare.service.summary` / `detail` return, validated here:

    ComparisonPublic(**service.detail(comp, kids), report_url=...)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from api.schemas import JobErrorPublic

__all__ = [
    "ComparisonChild",
    "ComparisonList",
    "ComparisonProgress",
    "ComparisonPublic",
    "ComparisonSummary",
    "SweepAxisPublic",
    "VariantPublic",
]


class ComparisonProgress(BaseModel):
    total: int
    queued: int = 0
    running: int = 0
    paused: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    fraction: float = Field(ge=0, le=1, description="epochs done over epochs planned, all children")


class ComparisonChild(BaseModel):
    job_id: str = Field(max_length=36)
    variant: str = Field(max_length=64)
    seed: int
    status: str = Field(max_length=16)
    epoch: int
    epochs: int
    metrics: dict[str, Any] | None = Field(default=None, description="headline final metrics once succeeded")
    error: JobErrorPublic | None = None


class VariantPublic(BaseModel):
    name: str = Field(max_length=64, description="the child jobs' variant: `simloss`, `simloss@r=0.2`")
    loss: dict[str, Any]
    variant: str | None = Field(default=None, max_length=64, description="the requested variant's name")
    point: dict[str, Any] | None = Field(default=None, description="its grid point (swept): {axis: value}")
    overrides: dict[str, Any] | None = Field(
        default=None, description="what the variant changes besides the loss: similarity, model, training"
    )


class SweepAxisPublic(BaseModel):
    name: str = Field(max_length=16)
    path: str = Field(max_length=200)
    values: list[Any]


class ComparisonSummary(BaseModel):
    id: str = Field(max_length=36)
    status: str = Field(max_length=16)
    dataset: str = Field(max_length=100)
    classes: list[str]
    variants: list[VariantPublic]
    seeds: list[int]
    sweep: list[SweepAxisPublic] | None = Field(default=None, description="the axes of a swept comparison")
    progress: ComparisonProgress
    metadata: dict[str, str] | None = None
    idempotency_key: str | None = Field(default=None, max_length=200)
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None


class ComparisonPublic(ComparisonSummary):
    spec: dict[str, Any] = Field(description="the request as validated (defaults filled in)")
    children: list[ComparisonChild]
    report: dict[str, Any] | None = Field(
        default=None, description="once every child has ended; see core.compare.report"
    )
    report_url: str | None = Field(default=None, description="the HTML report, once there is one")


class ComparisonList(BaseModel):
    items: list[ComparisonSummary]
    next_cursor: str | None = Field(default=None, max_length=200)
