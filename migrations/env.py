"""Alembic environment: runs migrations online against the URL given in the config or the settings."""

from __future__ import annotations

from alembic import context

from core.db.models import Base
from core.db.session import make_engine
from core.tuning.storage import OPTUNA_TABLES

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from core.settings import get_settings

    return get_settings().database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        _run(connectable)
        return
    engine = make_engine(_url(), pool_size=1)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Leave Optuna's own tables (the tuning studies' storage, created by Optuna) out of autogenerate."""
    return not (type_ == "table" and reflected and compare_to is None and name in OPTUNA_TABLES)


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
