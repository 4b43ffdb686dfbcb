"""jobs.checkpoint_bytes

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-12 10:00:00

`jobs.checkpoint_bytes`: what the job's kept checkpoints occupy in storage (the sum of their sizes), set
by its worker after every checkpoint save and collection (`core.db.jobs.record_checkpoint_bytes`). The
tenant's stored-bytes quota counts it with the job's artifacts (`core.storage_quota`). Jobs stored before
start at 0.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("checkpoint_bytes", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("checkpoint_bytes")
