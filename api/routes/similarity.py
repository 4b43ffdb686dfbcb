"""Similarity preview: the C x C matrix a similarity spec gives for a class list, as JSON or a PNG heatmap.

- `POST /v1/similarity/preview` `{"classes": [...], "similarity": {...}, "loss": {...}?}` -> `{"classes",
  "matrix", "values", "cyclic_period", "groups", "guidance"}`; `?format=png` answers the heatmap instead.
  With a `loss` (the spec a job takes), `guidance` says what it trains each class towards and warns
  (`core.losses.guidance.loss_guidance`: `{"loss", "targets", "targets_kind", "warnings",
  "equivalent_to_cross_entropy"}`); without one it is null.
- `GET /v1/similarity/preview?classes=a,b,c&similarity=<json>&loss=<json>` (`format=json|png`): the same
  answer from the query string, `loss` optional as in the POST.
- `POST /v1/similarity/preview.png` (same body) and `GET /v1/similarity/preview.png?classes=a,b,c&similarity=<json>`
  (also `GET /v1/similarity/preview?...&format=png`): the heatmap (`core.figures.matrix_heatmap` on a
  fixed 0..1 scale, values written up to 12 classes).

The specs are checked exactly as a job's (`core.similarity.build_similarity`, `core.losses.build_loss`): a
bad one is a 422 naming the field (`similarity.values`, `loss.temperature`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.deps import CurrentTenant
from api.errors import validation_details
from api.routes import API_PREFIX
from api.session_route import SessionReleasingRoute
from core.errors import InvalidInput, SpecError
from core.figures import matrix_heatmap, png_bytes
from core.jobspec import ClassName
from core.losses import LossSpec
from core.similarity import MAX_CLASSES, SimilaritySpec

__all__ = ["SimilarityPreview", "SimilarityPreviewRequest", "router"]

router = APIRouter(prefix=f"{API_PREFIX}/similarity", tags=["similarity"], route_class=SessionReleasingRoute)

MAX_QUERY_CHARS = 6000  # GET: classes and spec travel in the URL
PNG_RESPONSE = {200: {"content": {"image/png": {}}, "description": "the heatmap"}}


class SimilarityPreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    classes: list[ClassName] = Field(min_length=1, max_length=MAX_CLASSES)
    similarity: SimilaritySpec
    loss: LossSpec | None = Field(default=None, description="a job's loss spec: adds `guidance`")


class GuidanceWarning(BaseModel):
    code: str = Field(description="slow_alone | equals_cross_entropy | similarity_clipped")
    message: str


class LossGuidance(BaseModel):
    loss: str = Field(description="the loss kind")
    targets: list[list[float]] | None = Field(
        default=None, description="row y: what the loss trains true class y towards (see targets_kind)"
    )
    targets_kind: Literal["distribution", "weights"] | None = Field(
        default=None,
        description="distribution: the loss is a cross-entropy to these rows (minimised there); weights: "
        "how much it credits each class; null: no such rows (minimised by the one-hot label)",
    )
    warnings: list[GuidanceWarning] = Field(default_factory=list)
    equivalent_to_cross_entropy: bool = False


class SimilarityPreview(BaseModel):
    classes: list[str]
    matrix: list[list[float]] = Field(description="S[i][j] in [0, 1], rows and columns in `classes` order")
    values: list[float] | None = Field(default=None, description="ordinal specs: the value of each class")
    cyclic_period: float | None = None
    groups: list[int] | None = Field(
        default=None, description="groups / hierarchy specs: group of each class"
    )
    guidance: LossGuidance | None = Field(default=None, description="with a `loss` in the request")


def _preview(req: SimilarityPreviewRequest) -> tuple[Any, SimilarityPreview]:
    from core.losses.guidance import loss_guidance  # torch: loaded by the first preview
    from core.similarity import build_similarity, class_groups, class_values

    classes = list(req.classes)
    if len(set(classes)) != len(classes):
        raise SpecError("classes", "contains duplicates")
    spec = req.similarity.model_dump(mode="json") if isinstance(req.similarity, BaseModel) else req.similarity
    matrix = build_similarity(spec, classes)
    sim = matrix.detach().cpu().numpy()
    values, period = class_values(spec, classes)
    groups = class_groups(spec, classes)
    guidance = None if req.loss is None else loss_guidance(req.loss, matrix, classes, spec)
    return sim, SimilarityPreview(
        classes=classes,
        matrix=[[round(float(v), 6) for v in row] for row in sim],
        values=None if values is None else [float(v) for v in values.tolist()],
        cyclic_period=period,
        groups=groups,
        guidance=guidance,
    )


def _heatmap_png(sim: Any, classes: list[str], kind: str) -> bytes:
    """S as a heatmap: the colour scale fixed to [0, 1], values written up to 12 classes."""
    fig = matrix_heatmap(
        sim,
        classes,
        title=f"similarity: {kind}",
        vmin=0.0,
        vmax=1.0,
        value_format="{:.2f}",
        annotate_max=12,
        white_above=0.6,
        label_chars=14,
        dpi=100,
    )
    return png_bytes(fig)


def _png_response(req: SimilarityPreviewRequest) -> Response:
    sim, preview = _preview(req)
    kind = getattr(req.similarity, "kind", "")
    png = _heatmap_png(sim, preview.classes, kind)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


def _json_param(name: str, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise InvalidInput(name, "must be a JSON object") from None


def _from_query(classes: list[str], similarity: str, loss: str | None = None) -> SimilarityPreviewRequest:
    if sum(len(c) for c in classes) + len(similarity) + len(loss or "") > MAX_QUERY_CHARS:
        raise InvalidInput(
            "similarity", f"too long for a query string (at most {MAX_QUERY_CHARS} characters); use POST"
        )
    names = [part for c in classes for part in c.split(",") if part != ""]
    body: dict[str, Any] = {"classes": names, "similarity": _json_param("similarity", similarity)}
    if loss is not None:
        body["loss"] = _json_param("loss", loss)
    try:
        return SimilarityPreviewRequest.model_validate(body)
    except ValidationError as e:
        errors = [{**err, "loc": ("body", *err["loc"])} for err in e.errors(include_input=False)]
        first = validation_details(errors, body)[0]  # named as the POST's: the tags of unions dropped
        raise SpecError(first["field"], first["msg"]) from None


QueryClasses = Annotated[
    list[str], Query(min_length=1, description="class names: repeated or comma-separated")
]
QuerySpec = Annotated[
    str, Query(min_length=2, max_length=MAX_QUERY_CHARS, description="the similarity spec as JSON")
]
QueryLoss = Annotated[
    str | None,
    Query(min_length=2, max_length=MAX_QUERY_CHARS, description="a job's loss spec as JSON: adds `guidance`"),
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
    loss: QueryLoss = None,
    format: Annotated[Literal["json", "png"], Query()] = "json",
):
    req = _from_query(classes, similarity, loss)
    if format == "png":
        return _png_response(req)
    return JSONResponse(_preview(req)[1].model_dump(mode="json"))


@router.post("/preview.png", response_class=Response, responses=PNG_RESPONSE)
def preview_png(body: SimilarityPreviewRequest, tenant: CurrentTenant) -> Response:
    return _png_response(body)


@router.get("/preview.png", response_class=Response, responses=PNG_RESPONSE)
def preview_png_get(tenant: CurrentTenant, classes: QueryClasses, similarity: QuerySpec) -> Response:
    return _png_response(_from_query(classes, similarity))
