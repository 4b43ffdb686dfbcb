"""jobs.pause_requested

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-11 10:00:00

`jobs.pause_requested`: a user asked to pause a running job; its worker checkpoints at the next epoch
boundary and the job becomes `paused` (`core.db.jobs.request_pause`, `pause`). A queued job is paused at
once and needs no flag.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("pause_requested", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("pause_requested")
