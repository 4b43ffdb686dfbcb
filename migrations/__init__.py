"""Alembic migrations of the simtrain database, and the call that applies them.

    from migrations import upgrade_head
    upgrade_head("sqlite:////tmp/x.db")      # what `simtrain migrate` and `simtrain dev` run

Also `alembic upgrade head` with alembic.ini. The migrations import `core.db.models` (the schema they
create); `core/` never imports this package, so the arrows run one way: entry points -> migrations -> core.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

__all__ = ["alembic_config", "upgrade_head"]

SCRIPT_LOCATION = Path(__file__).resolve().parent


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade_head(url: str) -> None:
    """Bring the database at `url` to the newest schema (idempotent); creates a SQLite file's folder."""
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "head")
