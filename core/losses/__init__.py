"""Similarity-aware classification losses, each an `nn.Module` called as `loss(logits, targets)`.

    from core.losses import build_loss
    loss = build_loss({"kind": "simloss"}, similarity, classes)
    loss(logits, targets).backward()

Specs are in `core.losses.spec` (`LossSpec`), the builder in `core.losses.build`, one loss family per
module (formula and source in each docstring). All losses take logits (N, C) and integer targets (N,),
return the batch mean, and use O(N * C) memory; the ordinal-head losses `coral` / `corn`
(`HEAD_LOSS_KINDS`) take the C - 1 outputs of the head of the same name instead.
"""

from core.lazy import lazy_exports
from core.losses.spec import (
    HEAD_LOSS_KINDS,
    LOSS_KINDS,
    UNIMODAL_FAMILIES,
    BaseLossSpec,
    LossSpec,
    parse_loss_spec,
)

__all__ = [
    "HEAD_LOSS_KINDS",
    "LOSS_KINDS",
    "NEEDS_SIMILARITY",
    "ORDERED",
    "UNIMODAL_FAMILIES",
    "BaseLossSpec",
    "CDWCELoss",
    "ClassificationLoss",
    "CombinedLoss",
    "CoralLoss",
    "CornLoss",
    "CrossEntropyLoss",
    "CumulativeLoss",
    "EMDLoss",
    "ExpectedCostLoss",
    "ExpectedValueLoss",
    "FocalLoss",
    "HierarchicalXELoss",
    "LossSpec",
    "PairwiseLoss",
    "PartialCreditLoss",
    "SLACELoss",
    "SimLoss",
    "SoftLabelLoss",
    "UnimodalSoftLabelLoss",
    "WeightedKappaLoss",
    "build_loss",
    "check_range",
    "check_similarity",
    "log1m_softmax",
    "parse_loss_spec",
    "unimodal_table",
]

# The loss modules (torch) are imported on first use of one of their names, so that the specs (the API's
# schemas) import without torch: `from core.losses import build_loss` still works, and loads them then.
_LAZY = {
    "base": ("ClassificationLoss", "check_range", "check_similarity"),
    "build": ("NEEDS_SIMILARITY", "ORDERED", "build_loss"),
    "cdw_ce": ("CDWCELoss",),
    "combined": ("CombinedLoss",),
    "coral": ("CoralLoss", "CumulativeLoss"),
    "corn": ("CornLoss",),
    "cross_entropy": ("CrossEntropyLoss",),
    "emd": ("EMDLoss",),
    "expected_cost": ("ExpectedCostLoss",),
    "expected_value": ("ExpectedValueLoss",),
    "focal": ("FocalLoss",),
    "hierarchical": ("HierarchicalXELoss",),
    "pairwise": ("PairwiseLoss", "log1m_softmax"),
    "partial_credit": ("PartialCreditLoss",),
    "simloss": ("SimLoss",),
    "slace": ("SLACELoss",),
    "soft_labels": ("SoftLabelLoss",),
    "unimodal_soft_labels": ("UnimodalSoftLabelLoss",),
    "unimodal_targets": ("unimodal_table",),
    "weighted_kappa": ("WeightedKappaLoss",),
}
__getattr__ = lazy_exports(__name__, _LAZY)
