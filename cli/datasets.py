"""The dataset commands: `datasets upload` (a bar of the bytes sent) and `datasets list`.

    simtrain datasets upload flowers.zip [--name flowers] [--label-column label] [--json]
    simtrain datasets list [--limit N] [--cursor C] [--builtin] [--json]

`upload` prints the dataset's id (the same bytes uploaded before: that dataset's id).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.connect import DEFAULT_URL, ApiKeyOption, JsonOption, UrlOption, connect
from cli.output import line, out, print_json
from cli.progress import bytes_progress
from cli.tables import builtin_table, datasets_table

__all__ = ["register"]

datasets_app = typer.Typer(help="Upload and list datasets.", no_args_is_help=True)


@datasets_app.command("upload")
def upload(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            exists=True,
            dir_okay=False,
            readable=True,
            help="a .npz, .csv, .parquet or .zip (image folders)",
        ),
    ],
    name: Annotated[str | None, typer.Option(help="a name for the dataset (default: the file's)")] = None,
    label_column: Annotated[str | None, typer.Option(help="the label column of a .csv / .parquet")] = None,
    json_: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Upload a dataset file."""
    with connect(ctx, url, api_key) as client, bytes_progress(f"uploading {file.name}") as callback:
        ds = client.upload_dataset(file, name=name, label_column=label_column, progress=callback)
    if json_:
        print_json(ds)
        return
    line(
        f"dataset {ds['name']}: {ds['num_samples']} samples, {ds['num_classes']} classes ({ds['format']})",
        stderr=True,
    )
    typer.echo(ds["id"])


@datasets_app.command("list")
def list_datasets(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=100, help="datasets per page")] = 50,
    cursor: Annotated[str | None, typer.Option(help="the next_cursor of the page before")] = None,
    builtin: Annotated[bool, typer.Option("--builtin", help="the built-in datasets instead")] = False,
    json_: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Your uploaded datasets, newest first (one page), or the built-in ones."""
    with connect(ctx, url, api_key) as client:
        if builtin:
            page = {"items": client.builtin_datasets()}
        else:
            page = client.datasets_page(limit=limit, cursor=cursor)
    if json_:
        print_json(page)
        return
    console = out()
    console.print(builtin_table(page["items"]) if builtin else datasets_table(page["items"], console.width))
    if page.get("next_cursor"):
        line(f"more: --cursor {page['next_cursor']}", stderr=True)


def register(app: typer.Typer) -> None:
    app.add_typer(datasets_app, name="datasets")
