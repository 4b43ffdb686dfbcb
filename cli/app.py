"""The `simtrain` command (typer + rich): the typer app and `main()`.

    simtrain --help
    simtrain dev | serve | migrate | worker | keys create/revoke           (cli.service)
    simtrain submit | status | download | cancel | pause | resume | jobs list | jobs delete  (cli.jobs)
    simtrain checkpoints list | download                                   (cli.checkpoints)
    simtrain datasets upload | add | show | list                           (cli.datasets)
    simtrain predict                                                       (cli.predict)
    simtrain compare | comparisons delete                                  (cli.compare)
    simtrain tune | tuning delete                                          (cli.tune)
    simtrain similarity preview                                            (cli.similarity)

Client commands take `--url` (env SIMTRAIN_URL, default `core.client.DEFAULT_URL`) and `--api-key` (env
SIMTRAIN_API_KEY). Any simtrain error (an error answer of the API, an unusable option) is one red line on
stderr naming the field, exit status 1; a usage error is exit status 2; Ctrl-C is 130. Shell completion:
`simtrain --install-completion`.
"""

from __future__ import annotations

import click
import typer
from typer.core import TyperGroup

from cli import checkpoints, compare, datasets, jobs, predict, service, similarity, tune
from cli.output import error_line
from core.errors import SimtrainError

__all__ = ["app", "main"]


class SimtrainGroup(TyperGroup):
    """Runs a command; turns a SimtrainError into the one error line (exit 1), Ctrl-C into exit 130."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SimtrainError as exc:
            error_line(exc)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None


app = typer.Typer(
    name="simtrain",
    cls=SimtrainGroup,
    help="Training as a service with similarity-aware losses.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals hold API keys
    context_settings={"help_option_names": ["-h", "--help"]},
)
for module in (service, jobs, checkpoints, datasets, predict, compare, tune, similarity):
    module.register(app)


def main(argv: list[str] | None = None) -> int:
    """Run `simtrain` with `argv` (default: the process's arguments); returns the exit status."""
    try:
        app(args=argv, prog_name="simtrain")
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        return 1
    return 0
