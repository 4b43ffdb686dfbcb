"""The similarity command: `similarity preview`, the matrix a spec gives and, with a loss, its guidance.

    simtrain similarity preview --classes low,mid,high --similarity '{"kind":"ordinal"}'
    simtrain similarity preview --classes low,mid,high --similarity '{"kind":"ordinal"}' \
        --loss '{"kind":"emd"}'
    simtrain similarity preview ... --loss @loss.json --json          # the API's answer as plain JSON
    simtrain similarity preview ... --png sim.png                     # the heatmap, written to a file

Prints the matrix, then (with `--loss`) the rows the loss trains each true class towards (targets
kind `distribution` or `weights`; none for losses without such rows) and each warning in yellow
(`slow_alone`, `equals_cross_entropy`, `similarity_clipped`). A bad spec is the API's 422, one red
line naming the field (`loss.temperature`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from cli.connect import DEFAULT_URL, ApiKeyOption, JsonOption, UrlOption, connect
from cli.jobfields import OptionError, json_option
from cli.output import line, out, print_json

__all__ = ["guidance_lines", "matrix_table", "register"]

similarity_app = typer.Typer(
    help="Preview similarity specs and what a loss makes of them.", no_args_is_help=True
)
MAX_SHOWN = 20  # classes shown in a table; more: use --json


def matrix_table(classes: list[str], rows: list[list[float]], title: str) -> Table:
    """A C x C table (up to MAX_SHOWN classes) with the class names on both axes."""
    shown = classes[:MAX_SHOWN]
    table = Table(title=title, title_justify="left", highlight=False, show_edge=False)
    table.add_column("", no_wrap=True, max_width=14, overflow="ellipsis")
    for name in shown:
        table.add_column(name, justify="right", no_wrap=True, max_width=8, overflow="ellipsis")
    for name, row in zip(shown, rows):
        table.add_row(name, *(f"{v:.3f}" for v in row[: len(shown)]))
    return table


def guidance_lines(guidance: dict[str, Any]) -> list[Text]:
    """The summary line and one yellow line per warning."""
    kind = guidance.get("targets_kind") or "none"
    head = f"loss {guidance['loss']}: targets {kind}"
    if guidance.get("equivalent_to_cross_entropy"):
        head += ", equivalent to cross-entropy"
    lines = [Text(head)]
    for w in guidance.get("warnings") or []:
        lines.append(Text(f"warning {w['code']}: {w['message']}", style="yellow"))
    return lines


@similarity_app.command("preview")
def preview(
    ctx: typer.Context,
    classes: Annotated[str, typer.Option(help="comma-separated class names")],
    similarity: Annotated[str, typer.Option(help="similarity spec as JSON (or @file.json)")],
    loss: Annotated[
        str | None, typer.Option(help="a job's loss spec as JSON (or @file.json): guidance")
    ] = None,
    png: Annotated[Path | None, typer.Option(help="write the heatmap PNG to this file instead")] = None,
    json_: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """The similarity matrix of a spec for some classes, and what a loss trains each class towards."""
    names = [c.strip() for c in classes.split(",") if c.strip()]
    if not names:
        raise OptionError("--classes", "--classes names no class")
    spec, loss_spec = json_option(similarity, "similarity"), json_option(loss, "loss")
    with connect(ctx, url, api_key) as client:
        if png is not None:
            png.write_bytes(client.similarity_preview_png(names, spec, loss_spec))
            line(f"wrote {png}", stderr=True)
            return
        result = client.similarity_preview(names, spec, loss_spec)
    if json_:
        print_json(result)
        return
    _show(result)


def _show(result: dict[str, Any]) -> None:
    console = out()
    console.print(matrix_table(result["classes"], result["matrix"], "similarity S[true][other]"))
    if len(result["classes"]) > MAX_SHOWN:
        line(f"(first {MAX_SHOWN} of {len(result['classes'])} classes; --json for all)")
    guidance = result.get("guidance")
    if not guidance:
        return
    if guidance.get("targets"):
        title = f"{guidance['targets_kind']} targets[true][class]"
        console.print(matrix_table(result["classes"], guidance["targets"], title))
    for text in guidance_lines(guidance):
        console.print(text, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(similarity_app, name="similarity")
