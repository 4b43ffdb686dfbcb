"""Pydantic models for loss specs; `LossSpec` is a discriminated union on `kind` (extra fields forbidden).

    from core.losses.spec import parse_loss_spec
    spec = parse_loss_spec({"kind": "soft_labels", "temperature": 0.5})

Kinds and fields (numbers strict and finite):

- `cross_entropy`: `label_smoothing` in [0, 1) (default 0).
- `simloss`: no fields (needs a similarity).
- `soft_labels`: `temperature` in (0, 100] (default 1), `divergence` "cross_entropy" | "kl" (default
  "cross_entropy"), `normalise` "power" | "softmax" (default "power": S[y] ** (1/T) / sum; "softmax":
  Ludwig's softmax(S[y] / T)) (needs a similarity).
- `expected_value`: `scale` (default true: divide by the value range) (ordered classes).
- `expected_cost`: no fields (needs a similarity).
- `pairwise`: no fields (needs a similarity).
- `partial_credit`: `min_similarity` in [0, 1] (default 0, i.e. any similarity > 0) (needs a similarity).
- `hierarchical_xe`: `alpha` in (0, 10] (default 0.1), `weighting` "paper" | "mbm_code" (default "paper")
  (needs a `hierarchy` similarity spec).
- `emd`: `mean_over_classes` (default false) (linearly ordered classes).
- `cdw_ce`: `alpha` in (0, 10] (default 0.5) (linearly ordered classes).
- `weighted_kappa`: `weighting` "linear" | "quadratic" (default "quadratic") (linearly ordered classes).
- `slace`: `alpha` in (0, 100] (default 1) (linearly ordered classes).
- `unimodal_soft_labels`: `family` "beta" | "binomial" | "poisson" | "exponential" | "triangular"
  (required), `eta` in [0, 1] (default 1: the unimodal target alone), `p` in (0, 10] and `tau` in
  (0, 100] (exponential only; null or absent: 1), `alpha2` in [0, 0.2] (triangular only; null or
  absent: 0.05) (linearly ordered classes).
- `focal`: `gamma` in [0, 10] (default 2), `alpha` (optional: a number in (0, 1] for every class, or
  {class: weight in [0, 1]} naming every class).
- `combined`: `components`: 1..8 of `{"weight": w in [1e-6, 1000], "loss": <any kind but combined>}`.
- `coral`, `corn`: no fields; the losses of the ordinal heads of the same name (`model.head`, C - 1
  outputs), so they are refused inside `combined` (no other loss takes those outputs). `LOSS_KINDS`
  lists the kinds for a softmax head, `HEAD_LOSS_KINDS` these two.

Structural problems raise pydantic `ValidationError` (loc names the field, e.g.
`("soft_labels", "temperature")`); what depends on the classes or the similarity is checked by
`core.losses.build.build_loss` and raises `core.errors.SpecError`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, StringConstraints, TypeAdapter, field_validator
from pydantic_core import PydanticCustomError
from pydantic_core.core_schema import ValidationInfo

__all__ = [
    "HEAD_LOSS_KINDS",
    "LOSS_KINDS",
    "UNIMODAL_FAMILIES",
    "BaseLossSpec",
    "CDWCESpec",
    "CombinedSpec",
    "ComponentSpec",
    "CoralSpec",
    "CornSpec",
    "CrossEntropySpec",
    "EMDSpec",
    "ExpectedCostSpec",
    "ExpectedValueSpec",
    "FocalSpec",
    "HierarchicalXESpec",
    "LossSpec",
    "PairwiseSpec",
    "PartialCreditSpec",
    "SLACESpec",
    "SimLossSpec",
    "SoftLabelsSpec",
    "UnimodalSoftLabelsSpec",
    "WeightedKappaSpec",
    "parse_loss_spec",
]

Flag = Annotated[bool, Strict()]
ClassName = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=200)]
UNIMODAL_FAMILIES = ("beta", "binomial", "poisson", "exponential", "triangular")
_FAMILY_FIELDS = {"p": ("exponential",), "tau": ("exponential",), "alpha2": ("triangular",)}


def _num(**bounds: float) -> Any:
    return Annotated[float, Strict(), Field(allow_inf_nan=False, **bounds)]


class _Loss(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class CrossEntropySpec(_Loss):
    kind: Literal["cross_entropy"]
    label_smoothing: _num(ge=0.0, lt=1.0) = 0.0


class SimLossSpec(_Loss):
    kind: Literal["simloss"]


class SoftLabelsSpec(_Loss):
    kind: Literal["soft_labels"]
    temperature: _num(gt=0.0, le=100.0) = 1.0
    divergence: Literal["cross_entropy", "kl"] = "cross_entropy"
    normalise: Literal["power", "softmax"] = "power"


class ExpectedValueSpec(_Loss):
    kind: Literal["expected_value"]
    scale: Flag = True


class ExpectedCostSpec(_Loss):
    kind: Literal["expected_cost"]


class PairwiseSpec(_Loss):
    kind: Literal["pairwise"]


class PartialCreditSpec(_Loss):
    kind: Literal["partial_credit"]
    min_similarity: _num(ge=0.0, le=1.0) = 0.0


class HierarchicalXESpec(_Loss):
    kind: Literal["hierarchical_xe"]
    alpha: _num(gt=0.0, le=10.0) = 0.1
    weighting: Literal["paper", "mbm_code"] = "paper"


class EMDSpec(_Loss):
    kind: Literal["emd"]
    mean_over_classes: Flag = False


class CDWCESpec(_Loss):
    kind: Literal["cdw_ce"]
    alpha: _num(gt=0.0, le=10.0) = 0.5


class WeightedKappaSpec(_Loss):
    kind: Literal["weighted_kappa"]
    weighting: Literal["linear", "quadratic"] = "quadratic"


class SLACESpec(_Loss):
    kind: Literal["slace"]
    alpha: _num(gt=0.0, le=100.0) = 1.0


class UnimodalSoftLabelsSpec(_Loss):
    kind: Literal["unimodal_soft_labels"]
    family: Literal["beta", "binomial", "poisson", "exponential", "triangular"]
    eta: _num(ge=0.0, le=1.0) = 1.0
    p: _num(gt=0.0, le=10.0) | None = None  # exponential: default 1
    tau: _num(gt=0.0, le=100.0) | None = None  # exponential: default 1
    alpha2: _num(ge=0.0, le=0.2) | None = None  # triangular: default 0.05

    @field_validator("p", "tau", "alpha2")
    @classmethod
    def _only_for_its_family(cls, v: float | None, info: ValidationInfo) -> float | None:
        family, families = info.data.get("family"), _FAMILY_FIELDS[info.field_name]
        if v is not None and family is not None and family not in families:
            raise PydanticCustomError(
                "invalid_loss",
                "{name} is only used with family {families}, not {family}",
                {"name": info.field_name, "families": " or ".join(families), "family": family},
            )
        return v


ClassWeights = Annotated[dict[ClassName, _num(ge=0.0, le=1.0)], Field(min_length=1, max_length=1000)]


class FocalSpec(_Loss):
    kind: Literal["focal"]
    gamma: _num(ge=0.0, le=10.0) = 2.0
    alpha: _num(gt=0.0, le=1.0) | ClassWeights | None = None


BaseLossSpec = Annotated[
    (
        CrossEntropySpec
        | SimLossSpec
        | SoftLabelsSpec
        | ExpectedValueSpec
        | ExpectedCostSpec
        | PairwiseSpec
        | PartialCreditSpec
        | HierarchicalXESpec
        | EMDSpec
        | CDWCESpec
        | WeightedKappaSpec
        | SLACESpec
        | UnimodalSoftLabelsSpec
        | FocalSpec
    ),
    Field(discriminator="kind"),
]


class ComponentSpec(_Loss):
    weight: _num(ge=1e-6, le=1000.0)  # a smaller weight underflows float32 to 0
    loss: BaseLossSpec


class CombinedSpec(_Loss):
    kind: Literal["combined"]
    components: Annotated[list[ComponentSpec], Field(min_length=1, max_length=8)]


class CoralSpec(_Loss):
    kind: Literal["coral"]


class CornSpec(_Loss):
    kind: Literal["corn"]


LossSpec = Annotated[BaseLossSpec | CombinedSpec | CoralSpec | CornSpec, Field(discriminator="kind")]
LOSS_KINDS = (
    "cross_entropy",
    "simloss",
    "soft_labels",
    "expected_value",
    "expected_cost",
    "pairwise",
    "partial_credit",
    "hierarchical_xe",
    "emd",
    "cdw_ce",
    "weighted_kappa",
    "slace",
    "unimodal_soft_labels",
    "focal",
    "combined",
)
HEAD_LOSS_KINDS = ("coral", "corn")  # the losses of the ordinal heads (C - 1 outputs)

_ADAPTER: TypeAdapter[Any] = TypeAdapter(LossSpec, config=ConfigDict(hide_input_in_errors=True))


def parse_loss_spec(spec: Any) -> Any:
    """Validate a dict (or pass through a parsed model); raises pydantic `ValidationError`."""
    if isinstance(spec, _Loss) and not isinstance(spec, ComponentSpec):
        return spec
    return _ADAPTER.validate_python(spec)
