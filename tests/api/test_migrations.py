"""The Alembic migrations build the schema on an empty database, and it matches the models exactly."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from core.db import make_engine
from migrations import upgrade_head
from core.db.models import Base


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sub' / 'empty.db'}"
    return request.getfixturevalue("pg_database")


def test_upgrade_head_then_no_autogenerate_difference(empty_database):
    upgrade_head(empty_database)
    upgrade_head(empty_database)  # idempotent
    engine = make_engine(empty_database)
    try:
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            assert set(Base.metadata.tables) <= tables
            assert "alembic_version" in tables
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            diff = compare_metadata(context, Base.metadata)
        assert diff == [], diff
    finally:
        engine.dispose()
