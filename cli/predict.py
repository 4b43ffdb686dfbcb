"""The `predict` command: predictions of a succeeded job's model, from image files or feature rows.

    simtrain predict JOB cat.png dog.jpg [--batch-size 32] [--json]     # PNG / JPEG files
    simtrain predict JOB --inputs '[[0.5, 0.1, ...], ...]' [--json]     # rows (or --inputs @rows.json)

Image files are preprocessed by the API exactly as the job's training images were (the model's size,
resize mode and channels); they go in batches of `--batch-size` files (the API takes at most
`SIMTRAIN_MAX_PREDICT_IMAGES` per request). Prints one line per input: `<file or row>: <class> (<its
probability>)`; `--json` prints the API's answer (`classes`, `probabilities`, `predictions`, one per input,
in order; with images also `inputs`, the file names).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli.connect import DEFAULT_URL, ApiKeyOption, JsonOption, UrlOption, connect
from cli.jobfields import OptionError, json_option
from cli.output import line, print_json
from core.client import SimtrainClient

__all__ = ["register"]


def _predict_images(client: SimtrainClient, job: str, images: list[Path], batch_size: int) -> dict[str, Any]:
    """Every file's prediction, batch by batch, as one answer."""
    merged: dict[str, Any] = {"classes": [], "probabilities": [], "predictions": [], "inputs": []}
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        answer = client.predict_images(job, batch)
        merged["classes"] = answer["classes"]
        merged["probabilities"] += answer["probabilities"]
        merged["predictions"] += answer["predictions"]
        merged["inputs"] += [str(p) for p in batch]
    return merged


def _rows(inputs: str) -> list[Any]:
    rows = json_option(inputs, "inputs")
    if not isinstance(rows, list) or not rows:
        raise OptionError("--inputs", "--inputs: give a JSON list of rows, e.g. [[0.5, 0.1], [0.2, 0.9]]")
    return rows


def predict(
    ctx: typer.Context,
    job: Annotated[str, typer.Argument(metavar="JOB", help="a succeeded job's id")],
    images: Annotated[
        list[Path] | None,
        typer.Argument(metavar="IMAGE", exists=True, dir_okay=False, readable=True, help="PNG / JPEG files"),
    ] = None,
    inputs: Annotated[
        str | None,
        typer.Option(help="feature rows as JSON ([[...], ...]) or @file.json, instead of image files"),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=1024, help="image files per request")] = 32,
    json_: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Predict with a succeeded job's model: image files, or feature rows with --inputs."""
    images = images or []
    if bool(images) == (inputs is not None):
        raise OptionError("IMAGE", "give image files or --inputs (one of the two)")
    rows = _rows(inputs) if inputs is not None else None
    with connect(ctx, url, api_key) as client:
        if rows is not None:
            answer: dict[str, Any] = dict(client.predict(job, rows))
        else:
            answer = _predict_images(client, job, images, batch_size)
    if json_:
        print_json(answer)
        return
    names = answer.get("inputs") or [f"row {i}" for i in range(len(answer["predictions"]))]
    classes = answer["classes"]
    for name, predicted, probs in zip(names, answer["predictions"], answer["probabilities"], strict=True):
        line(f"{name}: {predicted} ({probs[classes.index(predicted)]:.3f})")


def register(app: typer.Typer) -> None:
    app.command()(predict)
