"""The `delete` commands' one shape: ask (unless --yes), delete through the client, say so.

    def delete_job(ctx, job: JobArgument, yes: YesOption = False, json_: JsonOption = False, ...):
        delete_after_confirm(ctx, url, api_key, yes=yes, json_=json_, what="job", object_id=job,
                             holds="its checkpoints and artifacts", delete=SimtrainClient.delete_job)

The question goes to stderr, so `--json` output stays one JSON object: `{"id": ..., "deleted": true}`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from cli.connect import connect
from cli.output import line, print_json

__all__ = ["YesOption", "delete_after_confirm"]

YesOption = Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")]


def delete_after_confirm(
    ctx: typer.Context,
    url: str,
    api_key: str | None,
    *,
    yes: bool,
    json_: bool,
    what: str,
    object_id: str,
    holds: str,
    delete: Callable[[Any, str], Any],
) -> None:
    """Ask "Delete <what> <id> with <holds>?" unless `yes`, then `delete(client, id)` and print the result."""
    if not yes:
        typer.confirm(f"Delete {what} {object_id} with {holds}?", abort=True, err=True)
    with connect(ctx, url, api_key) as client:
        delete(client, object_id)
    if json_:
        print_json({"id": object_id, "deleted": True})
    else:
        line(f"{what} {object_id}: deleted")
