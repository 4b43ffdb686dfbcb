"""How a client command reaches the API: the `--url` and `--api-key` options, the one API-key check, and
the client it talks through (`core.client.SimtrainClient`, the only HTTP the CLI does).

    def status(ctx: typer.Context, job: str, url: UrlOption = DEFAULT_URL, api_key: ApiKeyOption = None):
        with connect(ctx, url, api_key) as client:
            ...

Tests hand the commands an httpx.Client (a TestClient) through the click context:
`CliRunner().invoke(app, [...], obj=Overrides(http=client))`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import typer

from cli.jobfields import OptionError
from core.client import DEFAULT_URL, SimtrainClient

__all__ = [
    "DEFAULT_URL",
    "ApiKeyOption",
    "JsonOption",
    "Overrides",
    "UrlOption",
    "connect",
    "require_api_key",
]

UrlOption = Annotated[str, typer.Option("--url", envvar="SIMTRAIN_URL", help="the API's address")]
ApiKeyOption = Annotated[
    str | None,
    typer.Option("--api-key", envvar="SIMTRAIN_API_KEY", help="the API key", show_default=False),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print plain JSON (for scripts)")]


@dataclass
class Overrides:
    """What tests put in the click context's `obj`: an httpx.Client every command sends through."""

    http: Any = None


def require_api_key(api_key: str | None) -> str:
    if not api_key:
        raise OptionError("--api-key", "no API key: pass --api-key or set SIMTRAIN_API_KEY")
    return api_key


def connect(ctx: typer.Context | None, url: str, api_key: str | None) -> SimtrainClient:
    """The client of a command (checks the API key first)."""
    key = require_api_key(api_key)
    overrides = ctx.find_object(Overrides) if ctx is not None else None
    return SimtrainClient(url, key, http=overrides.http if overrides else None)
