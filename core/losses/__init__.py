"""Similarity-aware classification losses, each an `nn.Module` called as `loss(logits, targets)`.

    from core.losses import build_loss
    loss = build_loss({"kind": "simloss"}, similarity, classes)
    loss(logits, targets).backward()

Specs are in `core.losses.spec` (`LossSpec`), the builder in `core.losses.build`, one loss family per
module (formula and source in each docstring). All losses take logits (N, C) and integer targets (N,),
return the batch mean, and use O(N * C) memory; the ordinal-head losses `coral` / `corn`
(`HEAD_LOSS_KINDS`) take the C - 1 outputs of the head of the same name instead.
"""

from core.losses.base import ClassificationLoss, check_range, check_similarity
from core.losses.build import NEEDS_SIMILARITY, ORDERED, build_loss
from core.losses.cdw_ce import CDWCELoss
from core.losses.combined import CombinedLoss
from core.losses.coral import CoralLoss, CumulativeLoss
from core.losses.corn import CornLoss
from core.losses.cross_entropy import CrossEntropyLoss
from core.losses.emd import EMDLoss
from core.losses.expected_cost import ExpectedCostLoss
from core.losses.expected_value import ExpectedValueLoss
from core.losses.focal import FocalLoss
from core.losses.hierarchical import HierarchicalXELoss
from core.losses.pairwise import PairwiseLoss, log1m_softmax
from core.losses.partial_credit import PartialCreditLoss
from core.losses.simloss import SimLoss
from core.losses.slace import SLACELoss
from core.losses.soft_labels import SoftLabelLoss
from core.losses.spec import (
    HEAD_LOSS_KINDS,
    LOSS_KINDS,
    UNIMODAL_FAMILIES,
    BaseLossSpec,
    LossSpec,
    parse_loss_spec,
)
from core.losses.unimodal_soft_labels import UnimodalSoftLabelLoss
from core.losses.unimodal_targets import unimodal_table
from core.losses.weighted_kappa import WeightedKappaLoss

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
