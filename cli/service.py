"""The service commands: `dev`, `serve`, `migrate`, `worker`, `keys create` / `keys revoke`.

    simtrain dev [--port 8000] [--home DIR]     everything on this machine: SQLite, embedded broker, a worker
    simtrain migrate                            create / upgrade the database schema (Alembic)
    simtrain serve [--host H] [--port P]        migrate, then run the API (uvicorn)
    simtrain worker [--concurrency N] [--device auto|cpu|gpu]
                                                run a Celery worker on the configured queue and the
                                                queue of its device kind (`core.routing`)
    simtrain keys create --tenant NAME          print a new API key for the tenant (created if new)
    simtrain keys revoke KEY

The API and the worker run by module name (`api.main:create_app`, `worker.app:celery_app`).
"""

from __future__ import annotations

import os
import subprocess
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from cli.output import error_line, line
from cli.processes import (
    api_command,
    die_with_parent,
    terminate,
    wait_forwarding_signals,
    wait_ready,
    worker_command,
)

__all__ = ["register"]

HostOption = Annotated[str, typer.Option(help="the address to listen on")]
PortOption = Annotated[int, typer.Option(help="the port to listen on")]


def _settings():
    from core.settings import get_settings

    get_settings.cache_clear()
    return get_settings()


def _session_factory(settings):
    from core.db import make_engine, make_sessionmaker

    return make_sessionmaker(make_engine(settings.database_url))


def _migrate(settings) -> None:
    from migrations import upgrade_head

    if settings.is_sqlite:
        settings.ensure_home()
    upgrade_head(settings.database_url)


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def migrate() -> None:
    """Create or upgrade the database schema."""
    settings = _settings()
    _migrate(settings)
    line(f"database at head: {_redacted(settings.database_url)}")


def serve(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
) -> None:
    """Migrate, then run the API."""
    _migrate(_settings())
    import uvicorn

    uvicorn.run("api.main:create_app", factory=True, host=host, port=port, workers=workers)


class WorkerDevice(str, Enum):
    auto = "auto"
    cpu = "cpu"
    gpu = "gpu"


def worker(
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", help="worker processes")] = 1,
    device: Annotated[
        WorkerDevice | None,
        typer.Option(
            help="the worker's kind: which device queue it takes jobs from (default: $SIMTRAIN_WORKER_DEVICE, "
            "else auto: gpu when CUDA is available); a cpu worker never takes a gpu job",
            show_default=False,
        ),
    ] = None,
    grace: Annotated[
        float,
        typer.Option(
            help="seconds a stopping worker gets to finish its epoch and hand the job back (then KILL)"
        ),
    ] = 100.0,
) -> None:
    """Run a training worker (Celery)."""
    env = dict(os.environ)
    if device is not None:
        env["SIMTRAIN_WORKER_DEVICE"] = device.value
    proc = subprocess.Popen(worker_command(_settings().queue, concurrency), env=env, start_new_session=True)
    raise typer.Exit(wait_forwarding_signals([proc], grace=grace))


def _dev_key(settings) -> str:
    """The dev key kept in the home folder, made (again) when missing or no longer valid."""
    from core.auth import create_api_key, resolve_api_key

    key_file = settings.home / "dev-api-key"
    key = key_file.read_text().strip() if key_file.exists() else ""
    with _session_factory(settings)() as session:
        if not key or resolve_api_key(session, key) is None:
            key = create_api_key(session, "dev", "simtrain dev")
            key_file.write_text(key + "\n")
            key_file.chmod(0o600)
    return key


def dev(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    home: Annotated[
        str | None,
        typer.Option(
            help="where the database, broker and artifacts live (default: $SIMTRAIN_HOME or ~/.simtrain)"
        ),
    ] = None,
    concurrency: Annotated[int, typer.Option(help="worker processes")] = 1,
    ready_timeout: Annotated[float, typer.Option(hidden=True)] = 120.0,
) -> None:
    """Everything on this machine: database, broker, worker and API."""
    if home:
        os.environ["SIMTRAIN_HOME"] = str(Path(home).expanduser().resolve())
    settings = _settings()
    settings.ensure_home()
    os.environ["SIMTRAIN_HOME"] = str(settings.home)
    _migrate(settings)
    key = _dev_key(settings)
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    # own sessions: a Ctrl-C in the terminal reaches only this process, which stops each child once
    # and each dies with this one (die_with_parent), even when it is killed without a chance to stop them
    started = {"env": env, "start_new_session": True, "preexec_fn": die_with_parent}
    procs = [
        subprocess.Popen(worker_command(settings.queue, concurrency), **started),
        subprocess.Popen(api_command(host, port), **started),
    ]
    url = f"http://{host}:{port}"
    try:
        if not wait_ready(url, procs, timeout=ready_timeout):
            error_line(f"the API did not become ready at {url}/readyz")
            terminate(procs, 10.0)
            raise typer.Exit(1)
    except KeyboardInterrupt:
        terminate(procs, 10.0)
        raise typer.Exit(130) from None
    typer.echo(f"simtrain is running at {url}")
    typer.echo(f"API key: {key}")
    typer.echo(f"(home: {settings.home}; Ctrl-C stops the API and the worker)")
    raise typer.Exit(wait_forwarding_signals(procs, grace=60.0))


keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="the tenant (created if new)")],
    name: Annotated[str, typer.Option(help="a label for the key")] = "",
) -> None:
    """Print a new API key (the tenant is created if new)."""
    from core.auth import create_api_key

    with _session_factory(_settings())() as session:
        typer.echo(create_api_key(session, tenant, name or ""))


@keys_app.command("revoke")
def keys_revoke(key: Annotated[str, typer.Argument(metavar="KEY", help="the API key")]) -> None:
    """Revoke an API key."""
    from core.auth import revoke_api_key

    with _session_factory(_settings())() as session:
        ok = revoke_api_key(session, key)
    if not ok:
        error_line("no such key")
        raise typer.Exit(1)
    typer.echo("revoked")


def register(app: typer.Typer) -> None:
    app.command()(dev)
    app.command()(serve)
    app.command()(migrate)
    app.command()(worker)
    app.add_typer(keys_app, name="keys")
