"""Build a loss module from a loss spec, the class list and the similarity (matrix and/or spec).

    from core.losses import build_loss
    loss = build_loss({"kind": "simloss"}, S, classes)                       # S: C x C tensor
    loss = build_loss({"kind": "expected_value"}, None, classes, {"kind": "ordinal"})
    loss = build_loss({"kind": "hierarchical_xe", "alpha": 0.2}, None, classes, hierarchy_spec)
    value = loss(logits, targets)                                            # batch mean

`similarity` may be None when `similarity_spec` is given (it is then built from the spec). Losses
that need a similarity (simloss, soft_labels, expected_cost, pairwise, partial_credit) refuse to be
built without one (SpecError on `loss.kind`); an identity similarity is fine. The ordinal losses
(expected_value, emd, cdw_ce, weighted_kappa, slace, unimodal_soft_labels) use the values of an ordinal
similarity spec, or the class order when there is none (or identity); all but expected_value need a
linear order (not cyclic). hierarchical_xe needs a `hierarchy` similarity spec. cross_entropy and focal
need nothing. coral / corn (the losses of the ordinal heads, C - 1 outputs) rank the classes in class
order: they take no similarity spec, identity, or an ordinal one (not cyclic) whose values do not fall
along the class order (SpecError on `loss.kind` otherwise). Errors inside a combined loss name the component, e.g. `loss.components.1.loss.kind`.
"""

from __future__ import annotations

from typing import Any

import torch

from core.errors import SpecError
from core.losses.base import ClassificationLoss, check_similarity
from core.losses.cdw_ce import CDWCELoss
from core.losses.combined import CombinedLoss
from core.losses.coral import CoralLoss
from core.losses.corn import CornLoss
from core.losses.cross_entropy import CrossEntropyLoss
from core.losses.emd import EMDLoss
from core.losses.expected_cost import ExpectedCostLoss
from core.losses.expected_value import ExpectedValueLoss
from core.losses.focal import FocalLoss
from core.losses.hierarchical import HierarchicalXELoss
from core.losses.pairwise import PairwiseLoss
from core.losses.partial_credit import PartialCreditLoss
from core.losses.simloss import SimLoss
from core.losses.slace import SLACELoss
from core.losses.soft_labels import SoftLabelLoss
from core.losses.spec import HEAD_LOSS_KINDS, CombinedSpec, parse_loss_spec
from core.losses.unimodal_soft_labels import UnimodalSoftLabelLoss
from core.losses.weighted_kappa import WeightedKappaLoss
from core.similarity import (
    HierarchySimilarity,
    build_similarity,
    check_classes,
    class_values,
    hierarchy_paths,
    parse_similarity_spec,
)

__all__ = ["NEEDS_SIMILARITY", "ORDERED", "build_loss", "check_class_order"]

NEEDS_SIMILARITY = ("simloss", "soft_labels", "expected_cost", "pairwise", "partial_credit")
ORDERED = ("expected_value", "emd", "cdw_ce", "weighted_kappa", "slace", "unimodal_soft_labels")


def build_loss(
    spec: Any, similarity: torch.Tensor | None, classes: list[str], similarity_spec: Any = None
) -> ClassificationLoss:
    """The `nn.Module` for `spec`; call it as `loss(logits (N, C), targets (N,))` -> batch mean."""
    parsed = parse_loss_spec(spec)
    classes = check_classes(classes)
    if len(classes) < 2:
        raise SpecError("classes", "a classification loss needs at least 2 classes")
    sim_spec = None if similarity_spec is None else parse_similarity_spec(similarity_spec)
    if similarity is None and sim_spec is not None:
        similarity = build_similarity(sim_spec, classes)
    if similarity is not None:
        similarity = check_similarity(similarity)
        if similarity.shape[0] != len(classes):
            raise SpecError(
                "similarity",
                f"is {similarity.shape[0]} x {similarity.shape[0]} but there are {len(classes)} classes",
            )
    if isinstance(parsed, CombinedSpec):
        parts = []
        for k, component in enumerate(parsed.components):
            try:
                parts.append(_build_one(component.loss, similarity, classes, sim_spec))
            except SpecError as exc:
                field = exc.field
                if field.startswith("loss."):
                    field = f"loss.components.{k}.loss." + field[len("loss.") :]
                raise SpecError(field, exc.reason) from exc
        return CombinedLoss(parts, [c.weight for c in parsed.components])
    return _build_one(parsed, similarity, classes, sim_spec)


def _build_one(
    spec: Any, similarity: torch.Tensor | None, classes: list[str], sim_spec: Any
) -> ClassificationLoss:
    kind = spec.kind
    if kind in NEEDS_SIMILARITY and similarity is None:
        raise SpecError("loss.kind", f"{kind} needs a similarity spec; got none")
    if kind in ORDERED:
        return _build_ordered(spec, classes, sim_spec)
    if kind in HEAD_LOSS_KINDS:
        check_class_order(f"{kind} ranks the classes in class order", classes, sim_spec, "loss.kind")
        return CoralLoss(len(classes)) if kind == "coral" else CornLoss(len(classes))
    if kind == "cross_entropy":
        return CrossEntropyLoss(len(classes), label_smoothing=spec.label_smoothing)
    if kind == "focal":
        return FocalLoss(len(classes), gamma=spec.gamma, alpha=_class_weights(spec.alpha, classes))
    if kind == "simloss":
        return SimLoss(similarity)
    if kind == "soft_labels":
        return SoftLabelLoss(
            similarity, temperature=spec.temperature, divergence=spec.divergence, normalise=spec.normalise
        )
    if kind == "expected_cost":
        return ExpectedCostLoss(similarity)
    if kind == "pairwise":
        return PairwiseLoss(similarity)
    if kind == "partial_credit":
        return PartialCreditLoss(similarity, min_similarity=spec.min_similarity)
    if kind == "hierarchical_xe":
        if not isinstance(sim_spec, HierarchySimilarity):
            got = "none" if sim_spec is None else f"kind {sim_spec.kind!r}"
            raise SpecError("loss.kind", f"hierarchical_xe needs a hierarchy similarity spec; got {got}")
        return HierarchicalXELoss(
            hierarchy_paths(sim_spec, classes), alpha=spec.alpha, weighting=spec.weighting
        )
    raise SpecError("loss.kind", f"unknown loss kind {kind!r}")  # pragma: no cover - the union rejects it


def _build_ordered(spec: Any, classes: list[str], sim_spec: Any) -> ClassificationLoss:
    """The ordinal losses: class values from an ordinal spec (or the class order)."""
    kind, c = spec.kind, len(classes)
    if sim_spec is not None and sim_spec.kind not in ("identity", "ordinal"):
        raise SpecError(
            "loss.kind",
            f"{kind} needs ordered classes: an ordinal similarity spec or none "
            f"(class order); got kind {sim_spec.kind!r}",
        )
    values, period = class_values(sim_spec, classes)
    if values is None:
        values = torch.arange(c, dtype=torch.float32)
    if kind == "expected_value":
        return ExpectedValueLoss(values, period=period, scale=spec.scale)
    if period is not None:
        raise SpecError("loss.kind", f"{kind} needs linearly ordered classes; the similarity spec is cyclic")
    order = torch.argsort(values.to(torch.float64), stable=True)
    if kind == "emd":
        return EMDLoss(c, order=order, mean_over_classes=spec.mean_over_classes)
    if kind == "cdw_ce":
        return CDWCELoss(c, alpha=spec.alpha, order=order)
    if kind == "weighted_kappa":
        return WeightedKappaLoss(c, weighting=spec.weighting, order=order)
    if kind == "slace":
        return SLACELoss(c, alpha=spec.alpha, order=order)
    return UnimodalSoftLabelLoss(
        c,
        spec.family,
        eta=spec.eta,
        p=1.0 if spec.p is None else spec.p,
        tau=1.0 if spec.tau is None else spec.tau,
        alpha2=0.05 if spec.alpha2 is None else spec.alpha2,
        order=order,
    )


def check_class_order(what: str, classes: list[str], sim_spec: Any, field: str) -> None:
    """SpecError(`field`) unless the class order is a rank order: no similarity spec, identity, or an
    ordinal spec, not cyclic, whose values do not decrease along `classes`."""
    if sim_spec is None:
        return
    sim_spec = parse_similarity_spec(sim_spec)
    if sim_spec.kind not in ("identity", "ordinal"):
        raise SpecError(field, f"{what}: it needs an ordinal similarity spec or none; got {sim_spec.kind!r}")
    values, period = class_values(sim_spec, classes)
    if period is not None:
        raise SpecError(field, f"{what}: it needs linearly ordered classes; the similarity spec is cyclic")
    if values is not None and bool((values[1:] < values[:-1]).any()):
        ranked = [classes[i] for i in torch.argsort(values.to(torch.float64), stable=True).tolist()]
        raise SpecError(
            field,
            f"{what}, but the similarity values do not rise along it; list the classes as {ranked[:20]}",
        )


def _class_weights(alpha: Any, classes: list[str]) -> float | torch.Tensor | None:
    """focal's alpha: None, one number, or a {class: weight} map looked up per class (it may name more)."""
    if not isinstance(alpha, dict):
        return alpha
    missing = [c for c in classes if c not in alpha]
    if missing:
        raise SpecError("loss.alpha", f"no weight for class {missing[0]!r} ({len(missing)} classes missing)")
    return torch.tensor([alpha[c] for c in classes], dtype=torch.float64)
