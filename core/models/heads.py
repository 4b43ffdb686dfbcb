"""Output heads: softmax (C logits) and the ordinal heads CORAL and CORN (C - 1 outputs), the conversion
of their outputs into per-class probabilities, and the decision rules applied to them.

    from core.models.heads import class_logits, probabilities, cumulative_probabilities, decide_outputs
    z = model(x)                               # (N, C) for softmax, (N, C - 1) for coral / corn
    log_p = class_logits(z, "coral")           # (N, C) per-class log-probabilities (softmax(log_p) = p)
    p = probabilities(z, "coral")              # (N, C), rows sum to 1, entries >= 0
    q = cumulative_probabilities(z, "corn")    # (N, C - 1): P(y > k) for k = 0..C-2, non-increasing in k
    pred = decide_outputs(z, "coral", "median", threshold=0.6)   # (N,) class indices

Heads (`model.head`; ordinal heads rank the classes in class order, see core/decision_spec.py):

- `softmax`: C logits, p = softmax(z); `class_logits` returns z unchanged.
- `coral` (Cao, Mirjalili and Raschka, "Rank consistent ordinal regression for neural networks with
  application to age estimation", Pattern Recognition Letters 2020; coral-pytorch's `CoralLayer`): one
  weight vector shared by the C - 1 binary tasks and one bias per task, z_k = w . h + b_k (`CoralHead`,
  biases initialised to (C-1-k)/(C-1) as coral-pytorch's `preinit_bias`). P(y > k) = sigmoid(z_k). The
  paper proves the trained biases are non-increasing, so these are monotone in k; to make every p_k >= 0
  for any weights the logits are first made non-increasing, z'_k = min_{j <= k} z_j (a no-op when the
  biases are ordered, which keeps the median rule identical to coral-pytorch's `proba_to_label`), then
  p_0 = 1 - sigmoid(z'_0), p_k = sigmoid(z'_{k-1}) - sigmoid(z'_k), p_{C-1} = sigmoid(z'_{C-2}), computed
  in log space as log sigmoid(a) + log sigmoid(-b) + log(1 - exp(b - a)) for a = z'_{k-1} >= b = z'_k
  (accurate for logits of any size; the last term without expm1, which ONNX lacks). coral-pytorch itself has no per-class conversion.
- `corn` (Shi, Cao and Raschka, "Deep neural networks for rank-consistent ordinal regression based on
  conditional probabilities", Pattern Analysis and Applications 2023; coral-pytorch's `corn_loss`): C - 1
  independent outputs, z_k the logit of P(y > k | y > k - 1); P(y > k) = prod_{j <= k} sigmoid(z_j)
  (a cumulative sum of log sigmoids), p_k = P(y > k - 1) * sigmoid(-z_k), p_{C-1} = P(y > C - 2).

Probabilities under the dtype's smallest normal number are raised to it (a floor on the log-probabilities:
log 2^-126 in float32, log 2^-1022 in float64), so every log-probability and the NLL stay finite; an exact
zero only arises where two CORAL logits tie. Work in float64 for metrics (the engine does).

Decisions: `decide_outputs` converts the outputs and applies `core.metrics.decide`; the median rule of an
ordinal head is taken on its P(y > k) directly (`cumulative=True`: #{k : P(y > k) > threshold}).
`with_class_logits(model, head)` wraps a model so that it returns `class_logits` (`ClassLogits`; the model
itself for softmax): what the ONNX export carries, output "logits" (N, C) whose softmax is the class
probabilities for every head (for coral / corn they are the log-probabilities).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.errors import SpecError
from core.metrics import decide

__all__ = [
    "HEADS",
    "ORDINAL_HEADS",
    "ClassLogits",
    "CoralHead",
    "attach_head",
    "attach_timm_head",
    "class_logits",
    "cumulative_probabilities",
    "decide_outputs",
    "head_of",
    "head_parameters",
    "num_outputs",
    "probabilities",
    "with_class_logits",
]

HEADS = ("softmax", "coral", "corn")
ORDINAL_HEADS = ("coral", "corn")


def num_outputs(head: str, num_classes: int) -> int:
    """How many outputs the network has for `num_classes` classes: C (softmax) or C - 1 (ordinal)."""
    _check_head(head)
    return int(num_classes) - 1 if head in ORDINAL_HEADS else int(num_classes)


def head_of(description: dict[str, Any] | None) -> str:
    """The head of an architecture dict, or of a model.json (its "architecture"); "softmax" if unsaid."""
    arch = (description or {}).get("architecture", description or {})
    return str(arch.get("head", "softmax"))


def head_parameters(head: str, width: int, num_classes: int) -> int:
    """Parameters of the output layer on `width` features: C * (width + 1), coral width + C - 1,
    corn (C - 1) * (width + 1)."""
    if head == "coral":
        return width + num_classes - 1
    return num_outputs(head, num_classes) * (width + 1)


class CoralHead(nn.Linear):
    """CORAL's output layer: z_k = w . h + b_k, one weight vector (`weight`, (1, in_features)) shared by
    the C - 1 tasks and the rank biases `coral_bias` (C - 1,). An `nn.Linear` (without its own bias) so
    that warm starts find it as the classifier head; `reset_parameters` re-initialises both."""

    def __init__(self, in_features: int, num_classes: int, device: Any = None, dtype: Any = None) -> None:
        if num_classes < 2:
            raise SpecError("model.head", f"coral needs at least 2 classes, got {num_classes}")
        super().__init__(in_features, 1, bias=False, device=device, dtype=dtype)
        self.num_classes = int(num_classes)
        self.coral_bias = nn.Parameter(torch.empty(num_classes - 1, device=device, dtype=dtype))
        self._init_bias()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if hasattr(self, "coral_bias"):  # nn.Linear.__init__ calls this before the biases exist
            self._init_bias()

    def _init_bias(self) -> None:
        k = self.num_classes - 1
        with torch.no_grad():
            self.coral_bias.copy_(torch.arange(k, 0, -1, dtype=torch.float64) / k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight) + self.coral_bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, num_classes={self.num_classes}"


def attach_head(body: nn.Sequential, head: str, num_classes: int) -> nn.Sequential:
    """A dense body (its last module an `nn.Linear` with C - 1 outputs for ordinal heads) with its output
    layer made the head's: a `CoralHead` for coral, unchanged otherwise."""
    if head == "coral":
        last = body[-1]
        body[-1] = CoralHead(last.in_features, num_classes)
    return body


def attach_timm_head(net: nn.Module, head: str, num_classes: int) -> nn.Module:
    """In place on a timm network created with `num_outputs` outputs: for coral its classifier becomes a
    `CoralHead`; for both ordinal heads `net.reset_classifier(C)` (what a warm start calls on a change of
    classes) keeps the head's kind and C - 1 outputs."""
    if head not in ORDINAL_HEADS:
        return net
    if head == "coral":
        _swap_coral(net, num_classes)
    net.reset_classifier = functools.partial(_reset_ordinal_classifier, net, head)
    return net


def _swap_coral(net: nn.Module, num_classes: int) -> None:
    classifier = net.get_classifier()
    if not isinstance(classifier, nn.Linear) or isinstance(classifier, CoralHead):
        got = type(classifier).__name__
        raise SpecError(
            "model.head", f"coral needs one linear classifier; {type(net).__name__} has {got}: use corn"
        )
    name = next(n for n, m in net.named_modules() if m is classifier)
    parent, _, attr = name.rpartition(".")
    w = classifier.weight
    setattr(
        net.get_submodule(parent),
        attr,
        CoralHead(classifier.in_features, num_classes, device=w.device, dtype=w.dtype),
    )


def _reset_ordinal_classifier(net: nn.Module, head: str, num_classes: int, *args: Any, **kwargs: Any) -> None:
    type(net).reset_classifier(net, num_outputs(head, num_classes), *args, **kwargs)
    if head == "coral":
        _swap_coral(net, num_classes)


# ---------------------------------------------------------------------------------------------------------
# outputs -> probabilities


def class_logits(outputs: torch.Tensor, head: str) -> torch.Tensor:
    """(N, C) per-class logits whose softmax is the class probabilities: the outputs themselves for
    softmax, the log-probabilities (floored, see the module docstring) for coral and corn."""
    _check_head(head)
    if head == "softmax":
        return outputs
    z = _ordinal_outputs(outputs)
    log_p = _coral_log_probs(z) if head == "coral" else _corn_log_probs(z)
    return log_p.clamp_min(math.log(torch.finfo(log_p.dtype).tiny))


def probabilities(outputs: torch.Tensor, head: str) -> torch.Tensor:
    """(N, C) class probabilities of the outputs of a `head` network (rows sum to 1, entries >= 0)."""
    if head == "softmax":
        return torch.softmax(outputs, dim=1)
    return class_logits(outputs, head).exp()


def cumulative_probabilities(outputs: torch.Tensor, head: str) -> torch.Tensor:
    """(N, C - 1) P(y > k) of an ordinal head's outputs, non-increasing in k."""
    if head not in ORDINAL_HEADS:
        raise ValueError(f"cumulative probabilities come from an ordinal head (coral, corn), not {head!r}")
    z = _ordinal_outputs(outputs)
    if head == "coral":
        return torch.sigmoid(_running_min(z))
    return F.logsigmoid(z).cumsum(dim=1).exp()


def _coral_log_probs(z: torch.Tensor) -> torch.Tensor:
    zc = _running_min(z)
    first = F.logsigmoid(-zc[:, :1])
    last = F.logsigmoid(zc[:, -1:])
    a, b = zc[:, :-1], zc[:, 1:]
    middle = F.logsigmoid(a) + F.logsigmoid(-b) + _log1mexp(b - a)
    return torch.cat([first, middle, last], dim=1)


def _log1mexp(d: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(d)) for d <= 0 as log tanh(-d / 2) + softplus(d) (1 - e^d = tanh(-d/2) (1 + e^d)):
    no cancellation near 0 where 1 - e^d would lose the digits, -inf at d = 0, and only ops ONNX has
    (it lacks expm1)."""
    return torch.log(torch.tanh(-0.5 * d)) + F.softplus(d)


def _corn_log_probs(z: torch.Tensor) -> torch.Tensor:
    log_greater = F.logsigmoid(z).cumsum(dim=1)  # log P(y > k)
    before = torch.cat([torch.zeros_like(z[:, :1]), log_greater[:, :-1]], dim=1)  # log P(y > k - 1)
    return torch.cat([before + F.logsigmoid(-z), log_greater[:, -1:]], dim=1)


def _running_min(z: torch.Tensor) -> torch.Tensor:
    """min_{j <= k} z_j along dim 1 (a loop of minimums when traced: ONNX has no cumulative minimum)."""
    if not torch.jit.is_tracing():
        return torch.cummin(z, dim=1).values
    columns = [z[:, :1]]
    for k in range(1, z.shape[1]):
        columns.append(torch.minimum(columns[-1], z[:, k : k + 1]))
    return torch.cat(columns, dim=1)


def _ordinal_outputs(outputs: torch.Tensor) -> torch.Tensor:
    if outputs.dim() != 2 or outputs.shape[1] < 1:
        raise ValueError(f"an ordinal head's outputs are (N, C - 1) with C >= 2, got {tuple(outputs.shape)}")
    return outputs


def _check_head(head: str) -> None:
    if head not in HEADS:
        raise SpecError("model.head", f"must be one of {', '.join(HEADS)}; got {head!r}")


class ClassLogits(nn.Module):
    """`model` followed by `class_logits(., head)`: (N, C) logits whose softmax is the class probabilities
    (the network's own logits for softmax, log-probabilities for coral / corn); what ONNX exports."""

    def __init__(self, model: nn.Module, head: str) -> None:
        super().__init__()
        _check_head(head)
        self.model = model
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return class_logits(self.model(x), self.head)


def with_class_logits(model: nn.Module, head: str) -> nn.Module:
    """`model` returning (N, C) class logits: the model itself for softmax, `ClassLogits` otherwise."""
    _check_head(head)
    return model if head == "softmax" else ClassLogits(model, head)


# ---------------------------------------------------------------------------------------------------------
# decisions


def decide_outputs(
    outputs: torch.Tensor,
    head: str,
    rule: str = "argmax",
    similarity: Any = None,
    class_values: Any = None,
    threshold: float = 0.5,
) -> torch.Tensor:
    """(N,) int64 class indices that `rule` picks from a `head` network's outputs (`core.metrics.decide`
    on the class probabilities; an ordinal head's median rule on its P(y > k) directly)."""
    z = torch.as_tensor(outputs).detach().to(torch.float64).cpu()
    if rule == "median" and head in ORDINAL_HEADS:
        q = cumulative_probabilities(z, head)
        return decide(q, "median", class_values=class_values, threshold=threshold, cumulative=True)
    return decide(probabilities(z, head), rule, similarity, class_values, threshold)
