"""Pydantic models for loss specs; `LossSpec` is a discriminated union on `kind` (extra fields forbidden).

    from core.losses.spec import parse_loss_spec
    spec = parse_loss_spec({"kind": "soft_labels", "temperature": 0.5})

Kinds and fields (numbers strict and finite):

- `cross_entropy`: `label_smoothing` in [0, 1) (default 0).
- `simloss`: no fields (needs a similarity).
- `soft_labels`: `temperature` in (0, 100] (default 1), `divergence` "cross_entropy" | "kl" (default
  "cross_entropy") (needs a similarity).
- `expected_value`: `scale` (default true: divide by the value range) (ordered classes).
- `expected_cost`: no fields (needs a similarity).
- `pairwise`: no fields (needs a similarity).
- `partial_credit`: `min_similarity` in [0, 1] (default 0, i.e. any similarity > 0) (needs a similarity).
- `hierarchical_xe`: `alpha` in (0, 10] (default 0.1) (needs a `hierarchy` similarity spec).
- `emd`: `mean_over_classes` (default false) (linearly ordered classes).
- `combined`: `components`: 1..8 of `{"weight": w in (0, 1000], "loss": <any kind but combined>}`.

Structural problems raise pydantic `ValidationError` (loc names the field, e.g.
`("soft_labels", "temperature")`); what depends on the classes or the similarity is checked by
`core.losses.build.build_loss` and raises `core.errors.SpecError`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, TypeAdapter

__all__ = [
    "LOSS_KINDS",
    "BaseLossSpec",
    "CombinedSpec",
    "ComponentSpec",
    "CrossEntropySpec",
    "EMDSpec",
    "ExpectedCostSpec",
    "ExpectedValueSpec",
    "HierarchicalXESpec",
    "LossSpec",
    "PairwiseSpec",
    "PartialCreditSpec",
    "SimLossSpec",
    "SoftLabelsSpec",
    "parse_loss_spec",
]

Flag = Annotated[bool, Strict()]


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


class EMDSpec(_Loss):
    kind: Literal["emd"]
    mean_over_classes: Flag = False


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
    ),
    Field(discriminator="kind"),
]


class ComponentSpec(_Loss):
    weight: _num(gt=0.0, le=1000.0)
    loss: BaseLossSpec


class CombinedSpec(_Loss):
    kind: Literal["combined"]
    components: Annotated[list[ComponentSpec], Field(min_length=1, max_length=8)]


LossSpec = Annotated[BaseLossSpec | CombinedSpec, Field(discriminator="kind")]
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
    "combined",
)

_ADAPTER: TypeAdapter[Any] = TypeAdapter(LossSpec, config=ConfigDict(hide_input_in_errors=True))


def parse_loss_spec(spec: Any) -> Any:
    """Validate a dict (or pass through a parsed model); raises pydantic `ValidationError`."""
    if isinstance(spec, _Loss) and not isinstance(spec, ComponentSpec):
        return spec
    return _ADAPTER.validate_python(spec)
