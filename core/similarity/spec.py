"""Pydantic models for similarity specs: the JSON a user sends to say how alike the classes are.

`SimilaritySpec` is a discriminated union on `kind`; the REST API embeds it unchanged. Everything that
can be checked without knowing the dataset's classes is checked here and fails as a pydantic
`ValidationError` whose `loc` names the field (e.g. `("matrix", "values")`). Checks that need the class
list (unknown class names, matrix size vs number of classes) happen in `core.similarity.build`.

    from core.similarity.spec import parse_similarity_spec
    spec = parse_similarity_spec({"kind": "ordinal", "reduction_factor": 0.5})

Kinds and fields (all floats strict: numbers only, finite):

- `identity`: no fields. S = I.
- `matrix`: `values` (C x C list of lists in `classes` order, each in [0, 1], diagonal 1; within
  TOLERANCE = 1e-6 of that is accepted and clipped, see `core.similarity.build.similarity_warnings`).
- `ordinal`: `reduction_factor` r in [0, 1] (default 0.5), optional `values` ({class: number}; a map,
  so the same spec works for any subset of the classes), `cyclic` (default false), optional `period`
  (only with `cyclic`; must exceed max - min of the values; see `OrdinalSimilarity`).
- `groups`: `groups` (list of lists of class names, each class at most once), `within` in [0, 1],
  `between` in [0, within] (default 0).
- `pairs`: `pairs` (list of `[a, b, value]`, value in [0, 1], no self pairs), `symmetric` (default true).
- `hierarchy`: `parents` ({child: parent}; acyclic, depth <= MAX_HIERARCHY_DEPTH), `decay` in [0, 1]
  (default 0.5), `distance` "longest_path" | "lca_height" (default "longest_path").
- `embedding`: exactly one of `vectors` ({class: [floats]}, equal lengths, non-zero) or
  `model` ("all-MiniLM-L6-v2"); `template` (model only, default "a photo of a {}"), `threshold` in
  [0, 1) (default 0), `rescale` "none" | "lower_bound" (default "none"), `power` in (0, 100] (default
  1), `reduction_factor` in (0, 1] (default 1).

Every list and map carries a `max_length`, so an oversized payload (say a 10^4 x 10^4 matrix) is
rejected by pydantic before anything is allocated for it. Outer models that embed `SimilaritySpec`
should set `hide_input_in_errors=True`: formatting a huge rejected input into the error text is what
costs time, not the rejection.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    TypeAdapter,
    field_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_core.core_schema import ValidationInfo

__all__ = [
    "DEFAULT_TEMPLATE",
    "EMBEDDING_MODELS",
    "MAX_CLASSES",
    "MAX_HIERARCHY_DEPTH",
    "MAX_HIERARCHY_NODES",
    "MAX_NAME_LENGTH",
    "MAX_PAIRS",
    "MAX_VECTOR_DIM",
    "SIMILARITY_KINDS",
    "TOLERANCE",
    "EmbeddingSimilarity",
    "GroupsSimilarity",
    "HierarchySimilarity",
    "IdentitySimilarity",
    "MatrixSimilarity",
    "OrdinalSimilarity",
    "PairsSimilarity",
    "SimilaritySpec",
    "parse_similarity_spec",
]

MAX_CLASSES = 1000
MAX_NAME_LENGTH = 200
MAX_PAIRS = MAX_CLASSES * (MAX_CLASSES - 1)
MAX_HIERARCHY_NODES = 10 * MAX_CLASSES
MAX_HIERARCHY_DEPTH = 64
MAX_VECTOR_DIM = 4096
EMBEDDING_MODELS = ("all-MiniLM-L6-v2",)
DEFAULT_TEMPLATE = "a photo of a {}"
TOLERANCE = 1e-6  # how far a matrix entry may lie outside [0, 1], or its diagonal from 1, to be clipped
DIAGONAL_TOLERANCE = TOLERANCE

ClassName = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH)]
Finite = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Unit = Annotated[float, Strict(), Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Flag = Annotated[bool, Strict()]


def _fail(message: str, **ctx: Any) -> PydanticCustomError:
    return PydanticCustomError("invalid_similarity", message, ctx or None)


# an entry of a `matrix` spec: in [0, 1], or at most TOLERANCE outside (rounding in computed matrices);
# checked by pydantic's own bounds (a 1000 x 1000 matrix in 0.1 s; a Python validator takes 3 times that)
NearlyUnit = Annotated[float, Strict(), Field(ge=-TOLERANCE, le=1.0 + TOLERANCE, allow_inf_nan=False)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class IdentitySimilarity(_Spec):
    """S = I: every class is only like itself (plain classification)."""

    kind: Literal["identity"]


class MatrixSimilarity(_Spec):
    """S given in full: `values[i][j]` for `classes[i]`, `classes[j]`; not necessarily symmetric.

    Entries at most TOLERANCE (1e-6) outside [0, 1] and a diagonal within TOLERANCE of 1 (what rounding
    leaves in a matrix computed from cosine similarities, say 1 + 2e-16) are accepted and clipped to
    [0, 1] with the diagonal set to 1 (`core.similarity.build.similarity_warnings` says so); anything
    farther is refused."""

    kind: Literal["matrix"]
    values: Annotated[
        list[Annotated[list[NearlyUnit], Field(min_length=1, max_length=MAX_CLASSES)]],
        Field(min_length=1, max_length=MAX_CLASSES),
    ]

    @field_validator("values")
    @classmethod
    def _square_unit_diagonal(cls, v: list[list[float]]) -> list[list[float]]:
        n = len(v)
        for i, row in enumerate(v):
            if len(row) != n:
                raise _fail("must be square: {n} rows but row {i} has {m} values", n=n, i=i, m=len(row))
        for i in range(n):
            if abs(v[i][i] - 1.0) > DIAGONAL_TOLERANCE:
                raise _fail(
                    "the diagonal must be 1 (a class is fully like itself); values[{i}][{i}] is {x}",
                    i=i,
                    x=v[i][i],
                )
        return v


class OrdinalSimilarity(_Spec):
    """Ordered classes: S[i, j] = reduction_factor ** d(i, j) (Kobs et al., SimLoss, 2020).

    d(i, j) = |v_i - v_j| with v the per-class `values` ({class: number}) or, without them, the class
    index in the dataset's class order. With `cyclic: true`, d is the shorter way round a circle of
    length `period`: d = min(|v_i - v_j| mod P, P - |v_i - v_j| mod P). Default period: the number of
    classes without `values`; with `values`, max - min + the smallest positive gap between sorted
    distinct values (hours 0..23 -> 24, compass 0, 45, ..., 315 -> 360). An explicit `period` must
    exceed max - min (otherwise the two ends would coincide).
    """

    kind: Literal["ordinal"]
    reduction_factor: Annotated[float, Strict(), Field(ge=0.0, le=1.0, allow_inf_nan=False)] = 0.5
    values: Annotated[dict[ClassName, Finite], Field(min_length=1, max_length=MAX_CLASSES)] | None = None
    cyclic: Flag = False
    period: Annotated[float, Strict(), Field(gt=0.0, allow_inf_nan=False)] | None = Field(
        default=None, validate_default=True
    )

    @field_validator("period")
    @classmethod
    def _period(cls, v: float | None, info: ValidationInfo) -> float | None:
        values = info.data.get("values")
        if v is None:
            if info.data.get("cyclic", False) and values and len(set(values.values())) < 2:
                raise _fail("all values are equal, so there is no default period; give it explicitly")
            return v
        if not info.data.get("cyclic", False):
            raise _fail("period is only used with cyclic: true")
        if values:
            span = max(values.values()) - min(values.values())
            if v <= span:
                raise _fail("must exceed max - min of values ({span})", span=span)
        return v

    def default_period(self, num_classes: int) -> float | None:
        """The period used when `cyclic` and none is given (None when not cyclic)."""
        if not self.cyclic:
            return None
        if self.period is not None:
            return float(self.period)
        if not self.values:
            return float(num_classes)
        distinct = sorted(set(self.values.values()))
        if len(distinct) < 2:
            return None
        step = min(b - a for a, b in itertools.pairwise(distinct))
        return float(distinct[-1] - distinct[0] + step)


class GroupsSimilarity(_Spec):
    """Groups of alike classes: S = `within` inside a group, `between` across groups, 1 on the diagonal.

    A class in no group is a group of its own (similarity `between` to every other class).
    """

    kind: Literal["groups"]
    groups: Annotated[
        list[Annotated[list[ClassName], Field(min_length=1, max_length=MAX_CLASSES)]],
        Field(min_length=1, max_length=MAX_CLASSES),
    ]
    within: Unit
    between: Unit = 0.0

    @field_validator("groups")
    @classmethod
    def _disjoint(cls, v: list[list[str]]) -> list[list[str]]:
        seen: dict[str, int] = {}
        for g, names in enumerate(v):
            for name in names:
                if name in seen:
                    raise _fail(
                        "class '{name}' is listed twice (groups {a} and {b})", name=name, a=seen[name], b=g
                    )
                seen[name] = g
        if len(seen) > MAX_CLASSES:
            raise _fail("at most {n} classes in all", n=MAX_CLASSES)
        return v

    @field_validator("between")
    @classmethod
    def _between_le_within(cls, v: float, info: ValidationInfo) -> float:
        within = info.data.get("within")
        if within is not None and v > within:
            raise _fail("must not exceed within ({w})", w=within)
        return v


class PairsSimilarity(_Spec):
    """Sparse similarities `[a, b, value]`; mirrored to `[b, a]` unless `symmetric: false`; the rest 0."""

    kind: Literal["pairs"]
    symmetric: Flag = True
    pairs: Annotated[list[tuple[ClassName, ClassName, Unit]], Field(max_length=MAX_PAIRS)]

    @field_validator("pairs")
    @classmethod
    def _consistent(
        cls, v: list[tuple[str, str, float]], info: ValidationInfo
    ) -> list[tuple[str, str, float]]:
        symmetric = info.data.get("symmetric", True)
        seen: dict[tuple[str, str], tuple[int, float]] = {}
        for k, (a, b, value) in enumerate(v):
            if a == b:
                raise _fail("pairs[{k}] pairs '{a}' with itself; the diagonal is always 1", k=k, a=a)
            keys = [(a, b), (b, a)] if symmetric else [(a, b)]
            for key in keys:
                if key in seen and seen[key][1] != value:
                    raise _fail(
                        "pairs[{k}] gives '{a}', '{b}' the value {x} but pairs[{j}] gave {y}",
                        k=k,
                        a=a,
                        b=b,
                        x=value,
                        j=seen[key][0],
                        y=seen[key][1],
                    )
                seen[key] = (k, value)
        return v


class HierarchySimilarity(_Spec):
    """A class tree (Bertinetto et al., "Making Better Mistakes", CVPR 2020).

    `parents` maps each node to its parent; nodes without a parent are roots; the classes must be
    leaves (the map may hold more leaves than the dataset uses). With the lowest common ancestor
    A = LCA(i, j), S[i, j] = decay ** h(i, j), so siblings get `decay`, cousins `decay**2`, and classes in
    different trees (no common ancestor) 0. The distance h is, by `distance`:

    - "longest_path" (the default): max(edges from i up to A, edges from j up to A), the longer of the
      two paths to the common ancestor;
    - "lca_height": the height of A in the tree of `parents` (the most edges from A down to any leaf
      below it, classes or not), the distance of the making-better-mistakes code's soft labels and the
      ILSVRC hierarchical cost. The same as "longest_path" in a balanced tree.
    """

    kind: Literal["hierarchy"]
    parents: Annotated[dict[ClassName, ClassName], Field(min_length=1, max_length=MAX_HIERARCHY_NODES)]
    decay: Annotated[float, Strict(), Field(ge=0.0, le=1.0, allow_inf_nan=False)] = 0.5
    distance: Literal["longest_path", "lca_height"] = "longest_path"

    @field_validator("parents")
    @classmethod
    def _acyclic(cls, v: dict[str, str]) -> dict[str, str]:
        depth: dict[str, int] = {}
        for start in v:
            path: list[str] = []
            node = start
            on_path: set[str] = set()
            while node in v and node not in depth:
                if node in on_path:
                    raise _fail("has a cycle through '{node}'", node=node)
                on_path.add(node)
                path.append(node)
                node = v[node]
            base = depth.get(node, 0)
            for k, n in enumerate(reversed(path)):
                depth[n] = base + k + 1
                if depth[n] > MAX_HIERARCHY_DEPTH:
                    raise _fail("is deeper than {d} levels", d=MAX_HIERARCHY_DEPTH)
        return v


class EmbeddingSimilarity(_Spec):
    """Similarity of class-name embeddings (as SimLoss does with word vectors for CIFAR-100).

    cos = cosine similarity of the class vectors; with `rescale: "none"` (the default) S =
    reduction_factor * (cos if cos >= threshold else 0) ** power, negatives set to 0; with
    `rescale: "lower_bound"` the threshold is SimLoss's lower bound lb and S = reduction_factor *
    max(0, (cos - lb) / (1 - lb)) ** power (Kobs et al.'s CIFAR-100 matrix, konstantinkobs/SimLoss,
    image_classification/simloss/run.py, for power = reduction_factor = 1). The diagonal is forced to
    1 and S clipped to [0, 1]. The vectors are
    given (`vectors`: {class: [floats]}, may hold more classes than used) or computed offline by a
    packaged sentence-embedding `model` from `template.format(name)` with underscores in the class
    name read as spaces ("a photo of a sweet pepper").
    """

    kind: Literal["embedding"]
    vectors: (
        Annotated[
            dict[ClassName, Annotated[list[Finite], Field(min_length=1, max_length=MAX_VECTOR_DIM)]],
            Field(min_length=1, max_length=MAX_CLASSES),
        ]
        | None
    ) = None
    model: Literal["all-MiniLM-L6-v2"] | None = Field(default=None, validate_default=True)
    template: Annotated[str, Strict(), StringConstraints(min_length=2, max_length=MAX_NAME_LENGTH)] | None = (
        None
    )
    threshold: Annotated[float, Strict(), Field(ge=0.0, lt=1.0, allow_inf_nan=False)] = 0.0
    rescale: Literal["none", "lower_bound"] = "none"
    power: Annotated[float, Strict(), Field(gt=0.0, le=100.0, allow_inf_nan=False)] = 1.0
    reduction_factor: Annotated[float, Strict(), Field(gt=0.0, le=1.0, allow_inf_nan=False)] = 1.0

    @field_validator("vectors")
    @classmethod
    def _vectors(cls, v: dict[str, list[float]] | None) -> dict[str, list[float]] | None:
        if v is None:
            return v
        dims = {len(x) for x in v.values()}
        if len(dims) != 1:
            raise _fail("all vectors must have the same length; got lengths {d}", d=sorted(dims))
        for name, x in v.items():
            if not any(x):
                raise _fail("the vector for '{name}' is all zeros (no direction to compare)", name=name)
        return v

    @field_validator("model")
    @classmethod
    def _one_source(cls, v: str | None, info: ValidationInfo) -> str | None:
        has_vectors = info.data.get("vectors") is not None
        if v is None and not has_vectors and "vectors" in info.data:
            raise _fail('give either vectors or model (e.g. "all-MiniLM-L6-v2")')
        if v is not None and has_vectors:
            raise _fail("give either vectors or model, not both")
        return v

    @field_validator("template")
    @classmethod
    def _template(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return v
        if info.data.get("model") is None:
            raise _fail("template is only used with model")
        if v.count("{}") != 1 or v.replace("{}", "").count("{") or v.replace("{}", "").count("}"):
            raise _fail("must contain exactly one '{}' (where the class name goes) and no other braces")
        return v

    @property
    def text_template(self) -> str:
        return self.template or DEFAULT_TEMPLATE


SimilaritySpec = Annotated[
    (
        IdentitySimilarity
        | MatrixSimilarity
        | OrdinalSimilarity
        | GroupsSimilarity
        | PairsSimilarity
        | HierarchySimilarity
        | EmbeddingSimilarity
    ),
    Field(discriminator="kind"),
]
SIMILARITY_KINDS = ("identity", "matrix", "ordinal", "groups", "pairs", "hierarchy", "embedding")

_ADAPTER: TypeAdapter[Any] = TypeAdapter(SimilaritySpec, config=ConfigDict(hide_input_in_errors=True))
_MODELS = (
    IdentitySimilarity,
    MatrixSimilarity,
    OrdinalSimilarity,
    GroupsSimilarity,
    PairsSimilarity,
    HierarchySimilarity,
    EmbeddingSimilarity,
)


def parse_similarity_spec(spec: Any) -> Any:
    """Validate a dict (or pass through a parsed model); raises pydantic `ValidationError`."""
    if isinstance(spec, _MODELS):
        return spec
    return _ADAPTER.validate_python(spec)
