"""The checkpoint commands: `checkpoints list` and `checkpoints download`.

    simtrain checkpoints list JOB [--json]          # newest epoch first: step, val loss / accuracy, kept as
    simtrain checkpoints download JOB EPOCH -o DIR  # DIR/model.safetensors + DIR/model.json

A job keeps the checkpoints its `training.keep_checkpoints` says (default: the last two); a downloaded
one rebuilds like the job's final model (`core.artifacts.load_model_from_artifacts(DIR)`), and
`model.init: {"from_job": JOB, "checkpoint": EPOCH}` warm-starts a new job from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.filesize import decimal
from rich.table import Table

from cli.connect import DEFAULT_URL, ApiKeyOption, JsonOption, UrlOption, connect
from cli.output import line, out, print_json

__all__ = ["checkpoints_table", "register"]

checkpoints_app = typer.Typer(help="List and download a job's kept checkpoints.", no_args_is_help=True)

JobArgument = Annotated[str, typer.Argument(metavar="JOB", help="the job's id")]


def _metric(metrics: dict[str, Any], name: str) -> str:
    value = metrics.get(name)
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def checkpoints_table(items: list[dict[str, Any]]) -> Table:
    """One row per checkpoint: epoch, step, val loss, val accuracy, size, created, kept as."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, highlight=False)
    for header in ("epoch", "step", "val_loss", "val_accuracy", "size"):
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("created", no_wrap=True)
    table.add_column("kept as", no_wrap=True)
    for item in items:
        metrics = item.get("metrics") or {}
        size = item.get("size_bytes")
        table.add_row(
            str(item["epoch"]), str(item.get("step") if item.get("step") is not None else "-"),
            _metric(metrics, "val_loss"), _metric(metrics, "val_accuracy"),
            decimal(size) if isinstance(size, int) else "-",
            (item.get("created_at") or "")[:16].replace("T", " "), ", ".join(item.get("kept_as") or []),
        )  # fmt: skip
    return table


@checkpoints_app.command("list")
def list_checkpoints(
    ctx: typer.Context,
    job: JobArgument,
    json_: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """The job's kept checkpoints, newest epoch first."""
    with connect(ctx, url, api_key) as client:
        items = client.list_checkpoints(job)
    if json_:
        print_json({"items": items})
        return
    if not items:
        line(f"job {job} keeps no checkpoints", stderr=True)
        return
    out().print(checkpoints_table(items))


@checkpoints_app.command("download")
def download(
    ctx: typer.Context,
    job: JobArgument,
    epoch: Annotated[int, typer.Argument(metavar="EPOCH", min=0, help="the checkpoint's epoch")],
    output: Annotated[
        Path, typer.Option("--output", "-o", file_okay=False, help="the directory to write the files into")
    ],
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Download one checkpoint as model.safetensors and model.json (printed: their paths)."""
    with connect(ctx, url, api_key) as client:
        paths = client.download_checkpoint(job, epoch, output)
    for path in paths:
        typer.echo(str(path))


def register(app: typer.Typer) -> None:
    app.add_typer(checkpoints_app, name="checkpoints")
