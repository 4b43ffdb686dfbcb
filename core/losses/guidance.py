"""Loss guidance for the similarity preview: what a loss trains each class towards, and what to watch for.

    from core.losses.guidance import loss_guidance
    g = loss_guidance({"kind": "soft_labels", "temperature": 0.5}, S, classes, similarity_spec)
    g["targets"][y]          # the row class y is trained towards (or None), see `targets_kind`
    g["warnings"]            # [{"code": "slow_alone" | "equals_cross_entropy" | "similarity_clipped", ...}]

The loss is built exactly as a job builds it (`core.losses.build_loss`: a bad spec raises the same
`SpecError` / pydantic `ValidationError` naming `loss.<field>`), and everything is read off the built
module, never re-derived from the spec:

- `targets`, `targets_kind`: "distribution" when the loss is a cross-entropy (or KL) to fixed target rows
  q (`module.target_distribution()`: cross_entropy, label-smoothed or one-hot; soft_labels;
  unimodal_soft_labels; a combined loss all of whose components are such, as the weighted mixture): the
  loss is minimised at softmax(z) = q. "weights" when the loss weighs the classes without being
  minimised there (`module.target_weights()`: simloss and expected_cost credit S[y] / sum S[y]; slace
  weighs its log-terms by softmax(-alpha d); a combined loss with other components: the weighted
  mixture of its components' rows). None for the losses with no such rows (focal, emd, expected_value,
  cdw_ce, weighted_kappa, pairwise, partial_credit, hierarchical_xe and the ordinal-head losses coral and
  corn): they are all minimised by the one-hot label, which would say nothing.
- `equivalent_to_cross_entropy`: for a "distribution" loss, its targets are one-hot within 1e-6;
  otherwise a numerical probe: in float64, on random logits with every class as the truth, the loss is
  a constant multiple k > 0 of cross-entropy to 1e-6 relative (simloss or partial_credit at S = I, focal
  with gamma 0, a flat hierarchy). Then a warning `equals_cross_entropy` (with k when it is not 1: the
  same training up to the learning rate).
- `slow_alone`: the loss has no log-likelihood term (`module.bounded`: emd, expected_value,
  expected_cost, weighted_kappa, or a combined loss of only such components): a bounded function of
  softmax whose gradient vanishes where the model is confidently wrong (`saturates` checks it
  numerically: below 1e-4 with a wrong class 20 logits ahead, where cross-entropy's is about 1.4).
  docs/losses.md has the measurement: alone they train slowly; a cross_entropy component removes it.
- `similarity_clipped`: what `core.similarity.similarity_warnings` says a `matrix` spec had clipped.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from core.losses.base import ClassificationLoss
from core.losses.build import build_loss
from core.losses.combined import CombinedLoss
from core.losses.coral import CumulativeLoss
from core.losses.spec import parse_loss_spec
from core.similarity import similarity_warnings

__all__ = ["ONE_HOT_ATOL", "equivalence_scale", "loss_guidance", "loss_targets", "saturates"]

ONE_HOT_ATOL = 1e-6  # targets this close to one-hot: the loss is cross-entropy
PROBE_RTOL = 1e-6  # loss = k * cross-entropy to this relative tolerance
SATURATION_GRAD = 1e-4  # gradient norm below this at a confidently wrong prediction: no log-likelihood
WRONG_MARGIN = 20.0  # how far ahead the wrong class's logit is in that probe
PROBE_CLASSES = 16  # the saturation probe's true and wrong classes, at most this many each


def loss_targets(module: ClassificationLoss) -> tuple[torch.Tensor | None, str | None]:
    """(rows (C, C) float64, "distribution" | "weights") or (None, None): see the module docstring."""
    rows = module.target_distribution()
    if rows is not None:
        return rows, "distribution"
    rows = module.target_weights()
    return (rows, "weights") if rows is not None else (None, None)


def _probe_logits(c: int, rows: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(rows, c, generator=gen, dtype=torch.float64) * 2.0


def equivalence_scale(module: ClassificationLoss) -> float | None:
    """k when the loss equals k * cross-entropy (k > 0) on random float64 logits, every class the truth
    three times (once beyond 100 classes); else None (also for the ordinal-head losses: C - 1 outputs)."""
    if isinstance(module, CumulativeLoss):
        return None
    c = module.num_classes
    targets = torch.arange(c).repeat(3 if c <= 100 else 1)
    logits = _probe_logits(c, targets.numel())
    with torch.no_grad():
        loss = module.per_sample(logits, targets)
        ce = F.cross_entropy(logits, targets, reduction="none")
    k = float((loss * ce).sum() / (ce * ce).sum())
    if not k > 0 or not torch.isfinite(loss).all():
        return None
    close = float((loss - k * ce).abs().max()) <= PROBE_RTOL * float(ce.abs().max())
    return k if close else None


def saturates(module: ClassificationLoss) -> bool:
    """True when the loss's gradient vanishes at every confidently wrong prediction probed (each of up
    to 16 true classes against each of up to 16 wrong ones, the wrong logit `WRONG_MARGIN` ahead)."""
    if isinstance(module, CumulativeLoss):
        return False
    c = module.num_classes
    wrong = range(min(c, PROBE_CLASSES + 1))
    pairs = [(y, w) for y in range(min(c, PROBE_CLASSES)) for w in wrong if w != y]
    targets = torch.tensor([y for y, _ in pairs])
    logits = torch.zeros(len(pairs), c, dtype=torch.float64)
    logits[torch.arange(len(pairs)), torch.tensor([w for _, w in pairs])] = WRONG_MARGIN
    logits.requires_grad_(True)
    (module(logits, targets) * len(pairs)).backward()
    return float(logits.grad.norm(dim=1).max()) < SATURATION_GRAD


def _equivalent(module: ClassificationLoss, rows: torch.Tensor | None, kind: str | None) -> float | None:
    """The k of loss = k * cross-entropy, or None: from the targets of a cross-entropy-to-targets loss
    ("distribution"), else by the numerical probe."""
    if kind == "distribution":
        one_hot = torch.eye(rows.shape[0], dtype=rows.dtype)
        if not torch.allclose(rows, one_hot, rtol=0.0, atol=ONE_HOT_ATOL):
            return None
        if isinstance(module, CombinedLoss):
            return float(module.component_weights.double().sum())
        return 1.0
    return equivalence_scale(module)


def _warning(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


def _loss_warnings(kind: str, module: ClassificationLoss, scale: float | None) -> list[dict[str, str]]:
    out = []
    if scale is not None:
        times = ""
        if abs(scale - 1.0) > 1e-6:
            times = f" times {scale:.6g} (the same training up to the learning rate)"
        out.append(
            _warning(
                "equals_cross_entropy",
                f"with this spec and similarity the {kind} loss is plain cross-entropy{times}; "
                "its similarity has no effect",
            )
        )
    if module.bounded:
        if kind.startswith("combined"):
            fix = 'add a component {"weight": 0.7, "loss": {"kind": "cross_entropy"}}'
        else:
            fix = (
                'combine it with cross_entropy, e.g. {"kind": "combined", "components": [{"weight": 0.7, '
                f'"loss": {{"kind": "cross_entropy"}}}}, {{"weight": 0.3, "loss": {{"kind": "{kind}"}}}}]}}'
            )
        out.append(
            _warning(
                "slow_alone",
                f"{kind} has no cross-entropy term: its gradient vanishes where the model is confidently "
                f"wrong, so alone it trains slowly (docs/losses.md); {fix}",
            )
        )
    return out


def _component_kind(spec: Any) -> str:
    if spec.kind != "combined":
        return spec.kind
    return "combined(" + " + ".join(comp.loss.kind for comp in spec.components) + ")"


def loss_guidance(
    loss_spec: Any, similarity: torch.Tensor | None, classes: list[str], similarity_spec: Any = None
) -> dict[str, Any]:
    """{"loss", "targets", "targets_kind", "warnings", "equivalent_to_cross_entropy"} for `loss_spec`
    (see the module docstring); raises what `build_loss` raises for a bad spec."""
    parsed = parse_loss_spec(loss_spec)
    module = build_loss(parsed, similarity, classes, similarity_spec=similarity_spec)
    rows, kind = loss_targets(module)
    scale = _equivalent(module, rows, kind)
    warnings = _loss_warnings(_component_kind(parsed), module, scale)
    if similarity_spec is not None:
        warnings += [_warning("similarity_clipped", m) for m in similarity_warnings(similarity_spec, classes)]
    return {
        "loss": parsed.kind,
        "targets": None if rows is None else [[round(float(v), 6) for v in row] for row in rows.tolist()],
        "targets_kind": kind,
        "warnings": warnings,
        "equivalent_to_cross_entropy": scale is not None,
    }
