"""Evaluation metrics for a classifier, similarity-aware, as one JSON-ready dict; and decision rules.

    from core.metrics import evaluate, decide
    m = evaluate(logits, targets, similarity, classes, similarity_spec)
    m["accuracy"], m["mistake_severity"], m["amae"], m["confusion_matrix"]
    m["decisions"]   # [{"rule": "argmax", "accuracy": ...}, {"rule": "min_expected_cost", ...}, ...]
    pred = decide(probs, "min_expected_cost", similarity)

Keys of `evaluate` (python floats / ints / None / lists / dicts; "pred" = argmax of the logits):

- `count`: N.
- `accuracy`; `top2_accuracy` only when C > 2, `top5_accuracy` only when C > 5.
- `macro_f1`: unweighted mean of per-class F1 over the classes that occur in the targets or the
  predictions (a class with neither is left out; F1 = 0 where precision + recall = 0), as
  scikit-learn's `f1_score(average="macro")`.
- `nll`: mean -log softmax(logits)[y].
- `ece`: expected calibration error with 15 equal-width confidence bins (lo, hi]:
  sum_b |B_b| / N * |accuracy(B_b) - mean confidence(B_b)| (Guo et al. 2017).
- `mean_similarity`: mean S[y, pred] (S = I when `similarity` is None, which makes it the accuracy).
- `mistake_severity`: mean (1 - S[y, pred]) over the mistakes only; None when there are none.
- only for ordinal similarity specs (`core.metrics.ordinal`), with the class distance d = |v_y - v_pred|
  from the spec's class values (class index without), the shorter way round for cyclic specs:
  `mean_class_distance` (mean d), `amae` / `mmae` (mean / largest per-true-class mean d),
  `off_by_one_accuracy` (at most one rank away), `quadratic_weighted_kappa` (weights d^2), and for
  non-cyclic specs `ranked_probability_score` and `gmsec` (geometric mean of the first and the last
  class's recall).
- `group_accuracy`: only for groups / hierarchy specs: fraction with group(pred) == group(y)
  (`core.similarity.class_groups`: the group, or the parent in the hierarchy).
- `per_class_recall`: C entries, TP / support, None for a class that is never true;
  `minimum_sensitivity`: the smallest of the defined ones (`core.metrics.classification`).
- only for hierarchy specs (`core.metrics.hierarchical`, making-better-mistakes' definitions, distance =
  height of the lowest common ancestor): `hierarchical_distance_at_k` and `mistake_severity_at_k`, each
  {"1": ..., "5": ...} ("5" only when C > 5).
- `decisions`: one row per decision rule that applies (`core.metrics.decisions`: argmax,
  min_expected_cost, and for non-cyclic ordinal specs expected_value and median), each {"rule", and
  `accuracy`, `mean_similarity`, `mistake_severity`, ordinal: `mean_class_distance`, `amae`, groups /
  hierarchy: `group_accuracy`} of that rule's predictions, so the cost-aware decision can be read next
  to the argmax of the same model. The argmax row repeats the top-level values.
- `confusion_matrix`: C x C list of lists of ints, rows = true class, columns = predicted class.

Keys that do not apply to the classes or spec are absent; values that the data leave undefined are
None. With N = 0 every rate is None and the confusion matrix is all zeros (no exception). Where a peer
library's definition has a quirk (dlordinal's AMAE, off-by-one accuracy, minimum sensitivity, GMSEC on
absent classes) the textbook definition is used; each module's docstring says where they differ.
"""

from core.metrics.classification import ECE_BINS
from core.metrics.decisions import DECISION_RULES, applicable_rules, decide
from core.metrics.evaluation import evaluate

__all__ = ["DECISION_RULES", "ECE_BINS", "applicable_rules", "decide", "evaluate"]
