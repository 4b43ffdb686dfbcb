"""The console's new-job, comparisons and tuning pages (`api/routes/console_pages.py` serves them).

    html = render_new_job_page()                     # /ui/new: the form, with the spec catalogue
    html = render_comparison_page(comparison_id)     # /ui/comparisons/{id}
    headers = report_page_headers()                  # the pages that frame an offline report

Every page extends `base.html` through `api.ui.render_console_page`; its scripts read the `#config`
JSON. The new-job form is drawn from `form_catalog()`: the kinds and fields of the similarity and loss
specs and the model and training fields the form offers, taken from the specs' own pydantic JSON schemas
(types, bounds, defaults, descriptions), so the form follows the API without a copy of its rules.

The comparison and tuning pages show the API's offline HTML report in an `<iframe>` loaded from a Blob
(the report needs the API key, which a frame's own request cannot send). A Blob document inherits the
page's Content-Security-Policy, so those two pages allow the report's inline scripts by their sha256
(`report_script_hashes`) and inline styles; everything else in their policy is the console's.
"""

from __future__ import annotations

import base64
import hashlib
import re
import typing
from functools import cache
from typing import Any

from pydantic import BaseModel

from api.ui.render import PAGE_HEADERS, render_console_page, render_report_page
from core.losses import LossSpec
from core.models import ModelSpec
from core.similarity import SimilaritySpec
from core.training import TrainingSpec

__all__ = [
    "form_catalog",
    "render_comparison_page",
    "render_comparisons_page",
    "render_new_job_page",
    "render_tuning_list_page",
    "render_tuning_study_page",
    "report_page_headers",
    "report_script_hashes",
]

SCALAR_TYPES = ("number", "integer", "boolean", "string")
MODEL_FIELDS = ("kind", "hidden", "channels", "dropout", "architecture", "head")
MODEL_FIELDS_BY_KIND = {
    "auto": ("hidden", "channels", "dropout"),
    "linear": (),
    "mlp": ("hidden", "dropout"),
    "cnn": ("channels", "hidden", "dropout"),
    "timm": ("architecture",),
}
TRAINING_FIELDS = ("epochs", "learning_rate", "batch_size", "optimizer", "seed")


def _widget(prop: dict[str, Any]) -> dict[str, Any]:
    """How the form edits one JSON-schema property: a scalar input, a select, a list of integers, or
    JSON text (anything nested). `nullable`: empty means the field is left out."""
    options = [p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"]
    nullable = len(options) < len(prop.get("anyOf", [prop]))
    if len(options) == 1:
        only = options[0]
        if "enum" in only or "const" in only:
            choices = only.get("enum", [only.get("const")])
            return {"widget": "select", "choices": choices, "nullable": nullable}
        if only.get("type") == "array" and only.get("items", {}).get("type") == "integer":
            return {"widget": "int_list", "nullable": nullable, **_bounds(only["items"])}
        if only.get("type") in SCALAR_TYPES:
            return {"widget": only["type"], "nullable": nullable, **_bounds(only)}
    return {"widget": "json", "nullable": nullable}


def _bounds(prop: dict[str, Any]) -> dict[str, Any]:
    keys = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "maxLength")
    return {k: prop[k] for k in keys if k in prop}


def _fields(cls: type[BaseModel], names: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """The form fields of a spec model (all but `kind`, or `names` in that order)."""
    schema = cls.model_json_schema()
    props = schema["properties"]
    required = set(schema.get("required", []))
    out = []
    for name in names or tuple(p for p in props if p != "kind"):
        prop = props[name]
        info = cls.model_fields[name]
        default = prop.get("default")
        if default is None and not info.is_required():
            default = info.get_default(call_default_factory=True)
        out.append(
            {
                "name": name,
                "label": prop.get("title", name).lower(),
                "description": prop.get("description") or "",
                "required": name in required,
                "default": default if isinstance(default, (int, float, str, bool, list)) else None,
                **_widget(prop),
            }
        )
    return out


def _kinds(union: Any) -> list[dict[str, Any]]:
    """The kinds of a discriminated union of spec models, in its order, each with its fields."""
    out = []
    for cls in _members(typing.get_args(union)[0]):
        kind = cls.model_json_schema()["properties"]["kind"]
        name = kind.get("const") or kind["enum"][0]
        doc = (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        out.append({"kind": name, "description": doc, "fields": _fields(cls)})
    return out


def _members(union: Any) -> list[type[BaseModel]]:
    """The models of a (nested) union type, in order."""
    if isinstance(union, type) and issubclass(union, BaseModel):
        return [union]
    return [cls for arg in typing.get_args(union) for cls in _members(arg)]


@cache
def form_catalog() -> dict[str, Any]:
    """What the new-job form offers, from the specs' JSON schemas (computed once)."""
    return {
        "similarity": _kinds(SimilaritySpec),
        "loss": _kinds(LossSpec),
        "model": _fields(ModelSpec, MODEL_FIELDS),
        "model_fields_by_kind": {k: list(v) for k, v in MODEL_FIELDS_BY_KIND.items()},
        "training": _fields(TrainingSpec, TRAINING_FIELDS),
    }


def render_new_job_page() -> str:
    return render_console_page("new_job.html", title="New job · simtrain", config={"catalog": form_catalog()})


def render_comparisons_page() -> str:
    return render_console_page("comparisons.html", title="Comparisons · simtrain")


def render_comparison_page(comparison_id: str) -> str:
    return render_console_page(
        "comparison.html",
        title=f"Comparison {comparison_id} · simtrain",
        config={"comparison_id": comparison_id},
    )


def render_tuning_list_page() -> str:
    return render_console_page("tuning_list.html", title="Tuning · simtrain")


def render_tuning_study_page(study_id: str) -> str:
    return render_console_page(
        "tuning_study.html", title=f"Tuning study {study_id} · simtrain", config={"study_id": study_id}
    )


_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


@cache
def report_script_hashes() -> tuple[str, ...]:
    """CSP sources ('sha256-...') of the comparison report's inline scripts: they do not depend on the
    report (its data travels in JSON blocks, which are no scripts), so an empty report shows them."""
    html = render_report_page({}, {"id": ""})
    hashes = []
    for body in _INLINE_SCRIPT.findall(html):
        digest = base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode("ascii")
        hashes.append(f"'sha256-{digest}'")
    return tuple(hashes)


def _with_directives(policy: str, **directives: str) -> str:
    """`policy` with some directives replaced (`script_src="..."` is `script-src ...`)."""
    parts = [p.strip() for p in policy.split(";") if p.strip()]
    wanted = {k.replace("_", "-"): v for k, v in directives.items()}
    kept = [p for p in parts if p.split()[0] not in wanted]
    return "; ".join(kept + [f"{k} {v}" for k, v in wanted.items()])


@cache
def report_page_headers() -> dict[str, str]:
    """The console's page headers, with the report's inline scripts (by hash) and styles allowed."""
    policy = _with_directives(
        PAGE_HEADERS["Content-Security-Policy"],
        script_src="'self' " + " ".join(report_script_hashes()),
        style_src="'self' 'unsafe-inline'",
    )
    return {**PAGE_HEADERS, "Content-Security-Policy": policy}
