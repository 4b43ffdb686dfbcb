"""The `delete` commands, made by one factory: ask (unless --yes), delete through the client, say so.

    jobs_app.command("delete")(delete_command(
        "job", "JOB", "its checkpoints and artifacts", SimtrainClient.delete_job,
        "Delete an ended job with its checkpoints and artifacts (cancel a running one first)."))

The question goes to stderr, so `--json` output stays one JSON object: `{"id": ..., "deleted": true}`.
(No `from __future__ import annotations` here: typer reads the command's annotations, which name the
factory's arguments.)
"""

from collections.abc import Callable
from typing import Annotated, Any

import typer

from cli.connect import DEFAULT_URL, ApiKeyOption, JsonOption, UrlOption, connect
from cli.output import line, print_json

__all__ = ["YesOption", "delete_command"]

YesOption = Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")]


def delete_command(
    what: str, metavar: str, holds: str, delete: Callable[[Any, str], Any], doc: str
) -> Callable[..., None]:
    """A typer command deleting one `what` (its id argument shown as `metavar`) with `delete(client, id)`,
    after asking "Delete <what> <id> with <holds>?"; `doc` is its help."""

    def command(
        ctx: typer.Context,
        object_id: Annotated[str, typer.Argument(metavar=metavar, help=f"the {what}'s id")],
        yes: YesOption = False,
        json_: JsonOption = False,
        url: UrlOption = DEFAULT_URL,
        api_key: ApiKeyOption = None,
    ) -> None:
        if not yes:
            typer.confirm(f"Delete {what} {object_id} with {holds}?", abort=True, err=True)
        with connect(ctx, url, api_key) as client:
            delete(client, object_id)
        if json_:
            print_json({"id": object_id, "deleted": True})
        else:
            line(f"{what} {object_id}: deleted")

    command.__doc__ = doc
    command.__name__ = f"delete_{what.replace(' ', '_')}"
    return command
