"""What the CLI prints: rich consoles (stdout, stderr), plain lines, plain JSON for scripts, and the one
red error line.

    out().print(table)                  # a rich renderable, fitted to the terminal width
    line(f"job {job_id}: queued")       # one plain line, never re-wrapped
    print_json(job)                     # `--json`: plain JSON, no colours
    error_line(exc)                     # "simtrain: 422 invalid_input: loss.kind: ..." in red, on stderr

Consoles are made per call, so they follow the stream in use (a test runner's) and `COLUMNS`. Markup and
highlighting are off: server text is printed as it is.
"""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

from core.client import ApiError
from core.errors import SimtrainError

__all__ = ["announce_created", "err", "error_line", "error_text", "line", "out", "print_json"]


def out() -> Console:
    return Console(highlight=False, markup=False, emoji=False)


def err() -> Console:
    return Console(stderr=True, highlight=False, markup=False, emoji=False)


def line(text: str, *, stderr: bool = False) -> None:
    """One line as it is (the terminal may wrap it; it is never split)."""
    (err() if stderr else out()).print(Text(text), soft_wrap=True)


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


def announce_created(created: dict[str, Any], *, no_wait: bool, json_: bool) -> bool:
    """Say what was created (its id, or with --no-wait --json the whole body); True when the command is
    done (--no-wait), False when it goes on to watch (with --json nothing is printed yet)."""
    if no_wait and json_:
        print_json(created)
    elif no_wait or not json_:
        typer.echo(created["id"])
    return no_wait


def error_text(exc: BaseException | str) -> str:
    """The error as one line naming the field: `simtrain: <status> <code>: <message> (field: <field>)`."""
    if isinstance(exc, str):
        text = exc
    else:
        text = str(exc)
        field = getattr(exc, "field", None) if isinstance(exc, (ApiError, SimtrainError)) else None
        if field and field not in text:
            text += f" (field: {field})"
    return "simtrain: " + " ".join(text.split())


def error_line(exc: BaseException | str) -> None:
    err().print(Text(error_text(exc), style="bold red"), soft_wrap=True)
