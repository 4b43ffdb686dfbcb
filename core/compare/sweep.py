"""Sweeps of a comparison: one or two axes, each a dotted job path and the values it takes, whose grid
(the product of the axes) every swept variant is trained at.

    axis = SweepAxis(name="r", path="similarity.reduction_factor", values=[0, 0.5, 0.9])
    grid([axis])                          # [{"r": 0}, {"r": 0.5}, {"r": 0.9}]
    point_label("simloss", {"r": 0.5})    # "simloss@r=0.5": the child jobs' variant name
    with_point(job_body, [axis], {"r": 0.5})   # a copy of the job body with the path set

A path names fields of the job schema (`core.jobspec.JobCreate`) and list indices
(`loss.components.1.weight`). It must start at a field a variant may override (`similarity`, `loss`,
`model`, `training`) and exist in the schema for some kind (`similarity.reduction_factor` exists for the
ordinal similarity); whether it exists for a given variant's job, and whether each value makes a valid
job, `core.compare.spec` checks when it expands the grid. The paths every variant of a seed must share
(its seed and its split: `SHARED_PATHS`) cannot be swept.
"""

from __future__ import annotations

import copy
import itertools
import json
from functools import cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints, field_validator

__all__ = [
    "MAX_AXES",
    "MAX_CHILDREN",
    "MAX_VALUES",
    "OVERRIDABLE",
    "SHARED_PATHS",
    "SweepAxis",
    "grid",
    "point_label",
    "schema_has_path",
    "value_text",
    "with_point",
]

MAX_AXES = 2
MAX_VALUES = 100
MAX_CHILDREN = 200
"""The most child jobs one comparison makes: (1 baseline + variants x grid points) x seeds."""
OVERRIDABLE = ("similarity", "loss", "model", "training")
"""The job fields a variant may override and a sweep may set."""
SHARED_PATHS = ("training.seed", "training.val_fraction", "training.split")
"""What every variant of a seed shares (its seed, its split), so that the seeds pair on the same samples."""

AxisName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,15}$")]
DottedPath = Annotated[
    str, StringConstraints(max_length=200, pattern=r"^[a-z_][a-z0-9_]*(\.([A-Za-z0-9_-]+))*$")
]


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = defs[node["$ref"].rsplit("/", 1)[-1]]
    return node


def _children(node: dict[str, Any], defs: dict[str, Any], part: str) -> list[dict[str, Any]]:
    """The schemas `part` (a property name or a list index) may lead to from `node`, over its unions."""
    node = _resolve(node, defs)
    out: list[dict[str, Any]] = []
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in node.get(key) or []:
            out += _children(sub, defs, part)
    props = node.get("properties") or {}
    if part in props:
        out.append(props[part])
    elif isinstance(node.get("additionalProperties"), dict):
        out.append(node["additionalProperties"])
    if part.isdigit():
        prefix = node.get("prefixItems") or []
        if int(part) < len(prefix):
            out.append(prefix[int(part)])
        elif isinstance(node.get("items"), dict):
            out.append(node["items"])
    return out


@cache
def _job_schema() -> dict[str, Any]:
    from core.jobspec import JobCreate

    return JobCreate.model_json_schema()


def schema_has_path(path: str) -> bool:
    """Whether `path` names a field of the job schema (for some kind of each union on the way)."""
    schema = _job_schema()
    defs = schema.get("$defs") or {}
    nodes = [schema]
    for part in path.split("."):
        nodes = [child for node in nodes for child in _children(node, defs, part)]
        if not nodes:
            return False
    return True


def value_text(value: Any) -> str:
    """A value as a label shows it: strings as they are, anything else as compact JSON."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


class SweepAxis(BaseModel):
    """One axis of a sweep: its short `name` (the grid's labels and the report's columns), the dotted job
    `path` it sets and the `values` it takes (distinct)."""

    model_config = ConfigDict(extra="forbid")

    name: AxisName
    path: DottedPath
    values: list[JsonValue] = Field(min_length=1, max_length=MAX_VALUES)

    @field_validator("path")
    @classmethod
    def _sweepable(cls, path: str) -> str:
        root = path.split(".")[0]
        if root not in OVERRIDABLE:
            raise ValueError(f"a sweep sets a field under {', '.join(OVERRIDABLE)}, not {root!r}")
        if any(path == p or path.startswith(p + ".") for p in SHARED_PATHS):
            raise ValueError(f"{path!r} is shared by every variant of a seed (seed and split): not sweepable")
        if "." not in path or not schema_has_path(path):
            raise ValueError(f"{path!r} is not a field of the job schema")
        return path

    @field_validator("values")
    @classmethod
    def _distinct(cls, values: list[Any]) -> list[Any]:
        seen: set[str] = set()
        for i, v in enumerate(values):
            key = json.dumps(v, sort_keys=True)
            if key in seen:
                raise ValueError(f"value {i} ({value_text(v)}) repeats an earlier one")
            seen.add(key)
        return values


def grid(axes: list[SweepAxis]) -> list[dict[str, Any]]:
    """Every point of the axes' product, the first axis varying slowest: [{axis name: value}, ...]."""
    names = [a.name for a in axes]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(a.values for a in axes))]


def point_label(variant: str, point: dict[str, Any]) -> str:
    """`simloss@r=0.5,lb=0` for the variant at that grid point."""
    return variant + "@" + ",".join(f"{k}={value_text(v)}" for k, v in point.items())


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    """Set `path` in `doc` in place; missing or null dicts on the way are created. LookupError when a list
    index is out of range or the way is blocked by a value that is no dict or list."""
    parts = path.split(".")
    node: Any = doc
    for i, part in enumerate(parts):
        is_last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise LookupError(f"{path!r}: the list has no element {part}")
            key: Any = int(part)
        elif isinstance(node, dict):
            key = part
            if not is_last and node.get(part) is None:
                node[part] = {}
        else:
            raise LookupError(f"{path!r}: {part!r} is under a value that has no fields")  # noqa: TRY004
        if is_last:
            node[key] = copy.deepcopy(value)
        else:
            node = node[key]


def with_point(body: dict[str, Any], axes: list[SweepAxis], point: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of the job body with every axis's path set to its value at `point`."""
    out = copy.deepcopy(body)
    for axis in axes:
        if axis.name in point:
            _set(out, axis.path, point[axis.name])
    return out
