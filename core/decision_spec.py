"""A job's decision rule (`decision`, `decision_threshold`) and the checks that tie heads, losses and
decisions together; `ModelDecision`, the rule a trained model's predictions are made with.

    class JobCreate(BaseModel):
        decision: DecisionRule = "argmax"
        decision_threshold: DecisionThreshold = 0.5
    check_heads_and_decision(spec, classes)       # in validate_job, on the dumped spec; SpecError
    decision_of(spec)                             # {"rule": "median", "threshold": 0.6}: for model.json
    decide = ModelDecision.from_model_json(model_json)
    probs, pred = decide(outputs)                 # (N, C) class probabilities, (N,) class indices

`decision` is one of `core.metrics.DECISION_RULES` (argmax, min_expected_cost, expected_value, median;
see core/metrics/decisions.py), default argmax; `decision_threshold` in (0, 1) (default 0.5) is the
median rule's: the answer is the number of ranks k with P(y > k) > threshold. A rule must be one of
`core.metrics.applicable_rules` for the job's classes (`decision_rules`): expected_value and median need
ordered classes, an ordinal similarity spec that is not cyclic or an ordinal head (whose rank order is the
class order). Otherwise 422 naming `decision`.

Heads and losses (`model.head`, core/models/heads.py): an ordinal head trains with the loss of its own
kind, written out (`{"model": {"head": "coral"}, "loss": {"kind": "coral"}}`; nothing is implied, so a
spec always says what it trains with): another loss with an ordinal head, or a coral / corn loss with a
softmax head, is a 422 naming `loss.kind`. An ordinal head ranks the classes in class order, so the
similarity spec must be none, identity or ordinal (not cyclic) with values that do not fall along the
class order (422 naming `model.head`; reorder `classes` to fix it).

The decision is stored in model.json as `"decision": {"rule", "threshold"}` (`decision_of`), used by
predict (`ModelDecision`, argmax when model.json has none) and reported in the final metrics as
`final_metrics["decision"]` (`decision_summary`: the rule, its threshold and that rule's row of the
`decisions` table when the table has one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, Strict

from core.errors import SpecError
from core.losses.spec import HEAD_LOSS_KINDS

if TYPE_CHECKING:
    import torch

# torch and the modules built on it (heads, metrics, similarity matrices) are imported where they are used,
# so that importing the job spec (the API's schemas) does not load torch.

__all__ = [
    "DecisionRule",
    "DecisionThreshold",
    "ModelDecision",
    "check_heads_and_decision",
    "decision_of",
    "decision_rules",
    "decision_summary",
]

DecisionRule = Literal["argmax", "min_expected_cost", "expected_value", "median"]
DecisionThreshold = Annotated[float, Strict(), Field(gt=0.0, lt=1.0, allow_inf_nan=False)]


def decision_of(spec: dict[str, Any]) -> dict[str, Any]:
    """{"rule", "threshold"} of a job spec (the defaults for a spec from before decisions existed)."""
    return {"rule": spec.get("decision") or "argmax", "threshold": float(spec.get("decision_threshold", 0.5))}


def decision_rules(head: str, similarity_spec: Any, classes: list[str]) -> tuple[str, ...]:
    """The rules that apply: every one for ordered, non-cyclic classes (an ordinal spec, or an ordinal
    head: class order), argmax and min_expected_cost otherwise."""
    from core.metrics import applicable_rules

    values, period = _ranked_values(head, similarity_spec, classes)
    return applicable_rules(values, period)


def check_heads_and_decision(spec: dict[str, Any], classes: list[str]) -> None:
    """SpecError naming `loss.kind`, `model.head` or `decision` when the head, the loss, the classes and
    the decision rule of a (dumped) job spec do not go together; see the module docstring."""
    from core.losses.build import check_class_order
    from core.models.heads import ORDINAL_HEADS

    head = (spec.get("model") or {}).get("head", "softmax")
    kind = (spec.get("loss") or {}).get("kind", "cross_entropy")
    sim_spec = spec.get("similarity")
    if head in ORDINAL_HEADS and kind != head:
        raise SpecError("loss.kind", f"model.head {head!r} trains with loss kind {head!r}; got {kind!r}")
    if head not in ORDINAL_HEADS and kind in HEAD_LOSS_KINDS:
        raise SpecError(
            "loss.kind", f"{kind} trains the ordinal head {kind!r} (model.head); the head is {head!r}"
        )
    if head in ORDINAL_HEADS:
        check_class_order(
            f"model.head {head!r} ranks the classes in class order", classes, sim_spec, "model.head"
        )
    rule = decision_of(spec)["rule"]
    allowed = decision_rules(head, sim_spec, classes)
    if rule not in allowed:
        raise SpecError(
            "decision",
            f"{rule} needs ordered classes (an ordinal similarity spec that is not cyclic, or an ordinal "
            f"model.head); for these classes use one of {', '.join(allowed)}",
        )


def decision_summary(metrics: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any]:
    """`final_metrics["decision"]`: the rule and threshold, and that rule's row of `metrics["decisions"]`."""
    row = next((r for r in metrics.get("decisions") or [] if r.get("rule") == decision["rule"]), {})
    return {**row, "rule": decision["rule"], "threshold": decision["threshold"]}


def _ranked_values(head: str, similarity_spec: Any, classes: list[str]) -> tuple[Any, float | None]:
    import torch

    from core.models.heads import ORDINAL_HEADS
    from core.similarity import class_values

    values, period = class_values(similarity_spec, classes)
    if values is None and head in ORDINAL_HEADS:
        values = torch.arange(len(classes), dtype=torch.float64)
    return values, period


@dataclass(frozen=True)
class ModelDecision:
    """How a trained model answers: its head, rule and threshold, and what the rule needs (the
    similarity for min_expected_cost, the class values for expected_value and median)."""

    head: str = "softmax"
    rule: str = "argmax"
    threshold: float = 0.5
    similarity: torch.Tensor | None = None
    class_values: torch.Tensor | None = None

    @classmethod
    def from_model_json(cls, model_json: dict[str, Any]) -> ModelDecision:
        """The decision a model.json describes (argmax when it names none)."""
        from core.models.heads import head_of
        from core.similarity import build_similarity

        head = head_of(model_json)
        decision = model_json.get("decision") or {}
        rule, threshold = decision.get("rule", "argmax"), float(decision.get("threshold", 0.5))
        classes = [str(c) for c in model_json.get("classes") or []]
        sim_spec = model_json.get("similarity")
        similarity = None
        if rule == "min_expected_cost" and sim_spec is not None:
            similarity = build_similarity(sim_spec, classes)
        values = None
        if rule in ("expected_value", "median"):
            values = _ranked_values(head, sim_spec, classes)[0]
        return cls(head, rule, threshold, similarity, values)

    def __call__(self, outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """((N, C) float64 class probabilities, (N,) int64 class indices) of the model's outputs."""
        import torch

        from core.models.heads import decide_outputs, probabilities

        z = torch.as_tensor(outputs).detach().to(torch.float64).cpu()
        pred = decide_outputs(z, self.head, self.rule, self.similarity, self.class_values, self.threshold)
        return probabilities(z, self.head), pred
