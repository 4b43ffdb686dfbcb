"""The similarity preview of `SimtrainClient`: the C x C matrix a similarity spec gives for a class list,
as JSON or as a PNG heatmap. Checked exactly as a job's spec: a bad one is a ValidationError naming the
field (`similarity.values`).

    client.similarity_preview(["low", "mid", "high"], {"kind": "ordinal"})["matrix"]
    Path("sim.png").write_bytes(client.similarity_preview_png(classes, spec))

It stores nothing, so it is retried like a GET.
"""

from __future__ import annotations

from typing import Any

from core.client.base import BaseClient
from core.client.types import SimilarityPreview

__all__ = ["SimilarityMixin"]


class SimilarityMixin(BaseClient):
    def similarity_preview(self, classes: list[str], similarity: dict[str, Any]) -> SimilarityPreview:
        body = {"classes": list(classes), "similarity": similarity}
        return self._json("POST", "/v1/similarity/preview", json=body, idempotent=True)

    def similarity_preview_png(self, classes: list[str], similarity: dict[str, Any]) -> bytes:
        body = {"classes": list(classes), "similarity": similarity}
        return self._send("POST", "/v1/similarity/preview.png", json=body, idempotent=True).content
