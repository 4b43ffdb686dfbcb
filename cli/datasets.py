"""The dataset commands: `datasets upload` (a bar of the bytes sent), `datasets add` (a dataset by URI, imported
by the worker), `datasets show` and `datasets list`.

    simtrain datasets upload flowers.zip [--name flowers] [--image-size 32 | 24x32]
                             [--resize stretch|shorter_side|pad] [--label-column label] [--labels y.npy] [--json]
    simtrain datasets add s3://bucket/flowers.parquet [--name N] [--sha256 HEX] [--format parquet]
                          [--image-size 32] [--resize pad] [--label-column label] [--wait [--timeout S]] [--json]
    simtrain datasets show ID [--json]
    simtrain datasets list [--limit N] [--cursor C] [--builtin] [--json]

`upload` and `add` print the dataset's id (the same bytes or reference again: that dataset's id). `add
--wait` polls until the import ends: exit 0 when the dataset is ready, 1 with the one red error line naming
the field (`sha256`, `uri`, ...) when it failed or did not end within `--timeout`.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.connect import DEFAULT_URL, ApiKeyOption, JsonOption, UrlOption, connect
from cli.jobfields import OptionError
from cli.output import error_line, line, out, print_json
from cli.progress import bytes_progress
from cli.tables import builtin_table, datasets_table

__all__ = ["register"]

datasets_app = typer.Typer(help="Upload, import, show and list datasets.", no_args_is_help=True)


class Resize(StrEnum):
    stretch = "stretch"
    shorter_side = "shorter_side"
    pad = "pad"


class Format(StrEnum):
    npz = "npz"
    csv = "csv"
    parquet = "parquet"
    zip = "zip"


NameOption = Annotated[str | None, typer.Option(help="a name for the dataset (default: the file's)")]
LabelColumnOption = Annotated[str | None, typer.Option(help="the label column of a .csv / .parquet")]
ImageSizeOption = Annotated[
    str | None,
    typer.Option(
        "--image-size",
        metavar="N|HxW",
        help="images: the stored size, one side (32) or HxW (24x32), each side 8..512 "
        "(default 28 for image files; arrays of images keep theirs)",
    ),
]
ResizeOption = Annotated[
    Resize | None,
    typer.Option(
        help="images: stretch to the size (default), resize the shorter side and cut the centre, "
        "or fit inside and pad"
    ),
]


def _image_size(value: str | None) -> str | None:
    """The --image-size text, checked here before any byte is sent (the API's own rule)."""
    if value is None:
        return None
    from core.data.images import parse_image_size
    from core.errors import InvalidInput

    try:
        parse_image_size(value)
    except InvalidInput as e:
        raise OptionError("--image-size", f"--image-size: {e.reason}") from None
    return value.strip()


def _summary(ds: dict[str, Any]) -> str:
    if ds.get("status", "ready") != "ready":
        source = f" from {ds['source_uri']}" if ds.get("source_uri") else ""
        return f"dataset {ds['name']}: {ds['status']}{source}"
    shape = "x".join(str(d) for d in ds.get("feature_shape") or [])
    dtype = ds.get("dtype") or "float32"
    return (
        f"dataset {ds['name']}: {ds['num_samples']} samples, {ds['num_classes']} classes ({ds['format']}); "
        f"stored as {shape} {dtype}"
    )


def failure_text(ds: dict[str, Any]) -> str:
    """`dataset ID failed: <code>: <field>: <message>`, from a failed dataset's `error` (as the API's
    422 lines name their field)."""
    error = ds.get("error") or {}
    field = f"{error['field']}: " if error.get("field") else ""
    return f"dataset {ds['id']} failed: {error.get('code', 'failed')}: {field}{error.get('message', '')}".rstrip()


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
            help="a .zip (image folders), .parquet (tabular, or image bytes + label), .csv, .npz or .npy",
        ),
    ],
    name: NameOption = None,
    label_column: LabelColumnOption = None,
    image_size: ImageSizeOption = None,
    resize: ResizeOption = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, readable=True, help="an .npy upload's labels (.npy or .txt)"
        ),
    ] = None,
    json_: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Upload a dataset file."""
    size = _image_size(image_size)
    with connect(ctx, url, api_key) as client, bytes_progress(f"uploading {file.name}") as callback:
        ds = client.upload_dataset(
            file, name=name, label_column=label_column, image_size=size,
            resize=resize.value if resize else None, labels=labels, progress=callback,
        )  # fmt: skip
    if json_:
        print_json(ds)
        return
    line(_summary(ds), stderr=True)
    typer.echo(ds["id"])


@datasets_app.command("add")
def add(
    ctx: typer.Context,
    uri: Annotated[str, typer.Argument(metavar="URI", help="https://..., http://... or s3://bucket/key")],
    name: NameOption = None,
    sha256: Annotated[
        str | None, typer.Option(help="the file's SHA-256 (a mismatch fails the import)")
    ] = None,
    format_: Annotated[
        Format | None, typer.Option("--format", help="how to read the file (default: the URI's extension)")
    ] = None,
    label_column: LabelColumnOption = None,
    image_size: ImageSizeOption = None,
    resize: ResizeOption = None,
    wait: Annotated[bool, typer.Option("--wait", help="wait until the import is ready or failed")] = False,
    timeout: Annotated[
        float | None, typer.Option(min=0, help="with --wait: give up after this many seconds")
    ] = None,
    json_: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Register a dataset by URI; the worker downloads and converts it like an upload."""
    with connect(ctx, url, api_key) as client:
        ds = client.register_uri(
            uri, name=name, sha256=sha256, format=format_.value if format_ else None,
            label_column=label_column, image_size=_image_size(image_size),
            resize=resize.value if resize else None,
        )  # fmt: skip
        if wait and ds["status"] == "importing":
            line(f"dataset {ds['id']}: importing {ds.get('source_uri') or uri}", stderr=True)
            try:
                ds = client.wait_dataset(ds["id"], timeout=timeout)
            except TimeoutError as e:
                error_line(str(e))
                raise typer.Exit(1) from None
    if json_:
        print_json(ds)
    else:
        line(_summary(ds), stderr=True)
        typer.echo(ds["id"])
    if wait and ds["status"] == "failed":
        error_line(failure_text(ds))
        raise typer.Exit(1)


@datasets_app.command("show")
def show(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(metavar="ID", help="the dataset's id")],
    json_: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Show a dataset: status, classes and counts, stored shape, preprocessing, source, error."""
    with connect(ctx, url, api_key) as client:
        ds = client.get_dataset(dataset)
    if json_:
        print_json(ds)
        return
    for text in _show_lines(ds):
        line(text)


def _show_lines(ds: dict[str, Any]) -> list[str]:
    lines = [f"dataset {ds['id']}: {ds['name']} ({ds['format']}) {ds.get('status', 'ready')}"]
    if ds.get("source_uri"):
        lines.append(f"  source: {ds['source_uri']}")
    if ds.get("status", "ready") == "ready":
        counts = ", ".join(f"{c}: {n}" for c, n in zip(ds["classes"], ds["class_counts"], strict=False))
        lines.append(f"  samples: {ds['num_samples']}, classes: {ds['num_classes']} ({counts})")
        shape = "x".join(str(d) for d in ds.get("feature_shape") or [])
        lines.append(f"  stored: {shape} {ds.get('dtype') or 'float32'}, {ds['stored_bytes']} bytes")
    pre = ds.get("preprocessing") or {}
    if pre.get("kind") == "image":
        height, width = pre["size"]
        lines.append(f"  images: {height}x{width}, resize {pre['resize']}, {pre['channels']} channel(s)")
    if ds.get("error"):
        lines.append("  error: " + failure_text(ds).split(" failed: ", 1)[1])
    lines.append(f"  sha256: {ds.get('sha256') or '-'}")
    return lines


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
