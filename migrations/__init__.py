"""Alembic migrations of the simtrain database. Run with `simtrain migrate` or `alembic upgrade head`."""
