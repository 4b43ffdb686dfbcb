"""Similarity between classes: specs (`SimilaritySpec`) and the C x C matrix S they describe.

    from core.similarity import build_similarity, SimilaritySpec
    S = build_similarity({"kind": "ordinal", "reduction_factor": 0.5}, ["0", "1", "2"])
    # tensor([[1.00, 0.50, 0.25], [0.50, 1.00, 0.50], [0.25, 0.50, 1.00]])

See `core.similarity.spec` for the kinds and their fields, `core.similarity.build` for how each
becomes a matrix (and `similarity_warnings(spec, classes)` for what a `matrix` spec had clipped).
"""

from core.lazy import lazy_exports
from core.similarity.spec import (
    MAX_CLASSES,
    SIMILARITY_KINDS,
    TOLERANCE,
    EmbeddingSimilarity,
    GroupsSimilarity,
    HierarchySimilarity,
    IdentitySimilarity,
    MatrixSimilarity,
    OrdinalSimilarity,
    PairsSimilarity,
    SimilaritySpec,
    parse_similarity_spec,
)

__all__ = [
    "MAX_CLASSES",
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
    "build_similarity",
    "check_classes",
    "class_groups",
    "class_values",
    "hierarchy_paths",
    "parse_similarity_spec",
    "similarity_warnings",
]

# `core.similarity.build` (torch) is imported on first use of one of its names, so that the specs (the API's
# schemas) import without torch.
_LAZY = {
    "build": (
        "build_similarity", "check_classes", "class_groups", "class_values", "hierarchy_paths",
        "similarity_warnings",
    ),
}  # fmt: skip
__getattr__ = lazy_exports(__name__, _LAZY)
