"""The similarity preview of `SimtrainClient`: the C x C matrix a similarity spec gives for a class list,
as JSON or as a PNG heatmap, and with a loss spec the loss's guidance (what it trains each class
towards, and warnings: `slow_alone`, `equals_cross_entropy`, `similarity_clipped`). Checked exactly as a
job's specs: a bad one is a ValidationError naming the field (`similarity.values`, `loss.temperature`).

    client.similarity_preview(["low", "mid", "high"], {"kind": "ordinal"})["matrix"]
    client.similarity_preview(classes, {"kind": "ordinal"}, loss={"kind": "emd"})["guidance"]["warnings"]
    Path("sim.png").write_bytes(client.similarity_preview_png(classes, spec))

It stores nothing, so it is retried like a GET.
"""

from __future__ import annotations

from typing import Any

from core.client.base import BaseClient
from core.client.types import SimilarityPreview

__all__ = ["SimilarityMixin"]


def _body(classes: list[str], similarity: dict[str, Any], loss: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"classes": list(classes), "similarity": similarity}
    if loss is not None:
        body["loss"] = loss
    return body


class SimilarityMixin(BaseClient):
    def similarity_preview(
        self, classes: list[str], similarity: dict[str, Any], loss: dict[str, Any] | None = None
    ) -> SimilarityPreview:
        """The matrix; with `loss` (a job's loss spec) also `guidance` (else it is None)."""
        body = _body(classes, similarity, loss)
        return self._json("POST", "/v1/similarity/preview", json=body, idempotent=True)

    def similarity_preview_png(
        self, classes: list[str], similarity: dict[str, Any], loss: dict[str, Any] | None = None
    ) -> bytes:
        body = _body(classes, similarity, loss)
        return self._send("POST", "/v1/similarity/preview.png", json=body, idempotent=True).content
