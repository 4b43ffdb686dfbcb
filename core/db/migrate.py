"""Run the Alembic migrations programmatically (what `simtrain migrate` and `simtrain dev` call).

    from core.db.migrate import upgrade_head
    upgrade_head("sqlite:////tmp/x.db")
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

import migrations

__all__ = ["alembic_config", "upgrade_head"]


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade_head(url: str) -> None:
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "head")
