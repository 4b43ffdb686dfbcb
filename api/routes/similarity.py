"""Similarity preview: the C x C matrix a similarity spec gives for a class list, as JSON or a PNG heatmap.

- `POST /v1/similarity/preview` `{"classes": [...], "similarity": {...}}` -> `{"classes", "matrix",
  "values", "cyclic_period", "groups"}`; `?format=png` answers the heatmap instead.
- `POST /v1/similarity/preview.png` (same body) and `GET /v1/similarity/preview.png?classes=a,b,c&similarity=<json>`
  (also `GET /v1/similarity/preview?...&format=png|json`): the heatmap, drawn with matplotlib's Agg backend.

The spec is checked exactly as a job's (`core.similarity.build_similarity`): a bad one is a 422 naming the
field (`similarity.values`).
"""

from __future__ import annotations

import io
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.deps import CurrentTenant
from api.routes import API_PREFIX
from core.errors import InvalidInput, SpecError
from core.jobspec import ClassName
from core.similarity import MAX_CLASSES, SimilaritySpec, build_similarity, class_groups, class_values

__all__ = ["SimilarityPreview", "SimilarityPreviewRequest", "heatmap_png", "router"]

router = APIRouter(prefix=f"{API_PREFIX}/similarity", tags=["similarity"])

MAX_QUERY_CHARS = 6000  # GET: classes and spec travel in the URL
PNG_RESPONSE = {200: {"content": {"image/png": {}}, "description": "the heatmap"}}


class SimilarityPreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    classes: list[ClassName] = Field(min_length=1, max_length=MAX_CLASSES)
    similarity: SimilaritySpec


class SimilarityPreview(BaseModel):
    classes: list[str]
    matrix: list[list[float]] = Field(description="S[i][j] in [0, 1], rows and columns in `classes` order")
    values: list[float] | None = Field(default=None, description="ordinal specs: the value of each class")
    cyclic_period: float | None = None
    groups: list[int] | None = Field(
        default=None, description="groups / hierarchy specs: group of each class"
    )


def _preview(req: SimilarityPreviewRequest) -> tuple[Any, SimilarityPreview]:
    classes = list(req.classes)
    if len(set(classes)) != len(classes):
        raise SpecError("classes", "contains duplicates")
    spec = req.similarity.model_dump(mode="json") if isinstance(req.similarity, BaseModel) else req.similarity
    sim = build_similarity(spec, classes).detach().cpu().numpy()
    values, period = class_values(spec, classes)
    groups = class_groups(spec, classes)
    return sim, SimilarityPreview(
        classes=classes,
        matrix=[[round(float(v), 6) for v in row] for row in sim],
        values=None if values is None else [float(v) for v in values.tolist()],
        cyclic_period=period,
        groups=groups,
    )


def heatmap_png(sim: Any, classes: list[str], title: str = "") -> bytes:
    """A PNG heatmap of the matrix (matplotlib Agg, no pyplot state: safe in threads)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(classes)
    side = min(max(3.0 + 0.28 * n, 4.0), 12.0) if n <= 40 else 8.0
    fig = Figure(figsize=(side + 1.2, side), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(sim, vmin=0.0, vmax=1.0, cmap="Blues", interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if n <= 40:
        labels = [c if len(c) <= 14 else c[:13] + "\u2026" for c in classes]
        ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(n), labels, fontsize=8)
        if n <= 12:
            for i in range(n):
                for j in range(n):
                    v = float(sim[i][j])
                    ax.text(
                        j,
                        i,
                        f"{v:.2f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if v > 0.6 else "black",
                    )
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_title(title or "similarity", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _png_response(req: SimilarityPreviewRequest) -> Response:
    sim, preview = _preview(req)
    kind = getattr(req.similarity, "kind", "")
    return Response(
        heatmap_png(sim, preview.classes, f"similarity: {kind}"),
        media_type="image/png",
        headers={"Cache-Control": "no-store"},
    )


def _from_query(classes: list[str], similarity: str) -> SimilarityPreviewRequest:
    if sum(len(c) for c in classes) + len(similarity) > MAX_QUERY_CHARS:
        raise InvalidInput(
            "similarity", f"too long for a query string (at most {MAX_QUERY_CHARS} characters); use POST"
        )
    names = [part for c in classes for part in c.split(",") if part != ""]
    try:
        spec = json.loads(similarity)
    except ValueError:
        raise InvalidInput("similarity", "must be a JSON object") from None
    try:
        return SimilarityPreviewRequest.model_validate({"classes": names, "similarity": spec})
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err.get("loc", ())) or "similarity"
        raise SpecError(field, err.get("msg", "invalid value")) from None


QueryClasses = Annotated[
    list[str], Query(min_length=1, description="class names: repeated or comma-separated")
]
QuerySpec = Annotated[
    str, Query(min_length=2, max_length=MAX_QUERY_CHARS, description="the similarity spec as JSON")
]


@router.post("/preview", response_model=SimilarityPreview, responses=PNG_RESPONSE)
def preview(
    body: SimilarityPreviewRequest,
    tenant: CurrentTenant,
    format: Annotated[Literal["json", "png"], Query()] = "json",
):
    if format == "png":
        return _png_response(body)
    return _preview(body)[1]


@router.get("/preview", response_model=SimilarityPreview, responses=PNG_RESPONSE)
def preview_get(
    tenant: CurrentTenant,
    classes: QueryClasses,
    similarity: QuerySpec,
    format: Annotated[Literal["json", "png"], Query()] = "json",
):
    req = _from_query(classes, similarity)
    if format == "png":
        return _png_response(req)
    return JSONResponse(_preview(req)[1].model_dump(mode="json"))


@router.post("/preview.png", response_class=Response, responses=PNG_RESPONSE)
def preview_png(body: SimilarityPreviewRequest, tenant: CurrentTenant) -> Response:
    return _png_response(body)


@router.get("/preview.png", response_class=Response, responses=PNG_RESPONSE)
def preview_png_get(tenant: CurrentTenant, classes: QueryClasses, similarity: QuerySpec) -> Response:
    return _png_response(_from_query(classes, similarity))
