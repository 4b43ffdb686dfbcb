"""tuning studies

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-10 10:00:00

`tuning_studies`: one row per tuning study (`core.tuning`): the request, the status, the trials table and
best trial as of the last driver step, the step lease and the reconciler's send token. The study itself
lives in Optuna's own tables of the same database, which Optuna's RDB storage creates on first use
(`core.tuning.storage`); they are not part of this schema (`migrations/env.py` leaves them out of
autogenerate).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import core.db.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
UTC = core.db.types.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "tuning_studies",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("trials", JSON, nullable=False),
        sa.Column("best", JSON, nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("step_owner", sa.String(length=64), nullable=True),
        sa.Column("step_expires_at", UTC(), nullable=True),
        sa.Column("step_again", sa.Boolean(), nullable=False),
        sa.Column("stepped_at", UTC(), nullable=True),
        sa.Column("dispatched_at", UTC(), nullable=True),
        sa.Column("created_at", UTC(), nullable=False),
        sa.Column("updated_at", UTC(), nullable=False),
        sa.Column("finished_at", UTC(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_tuning_studies_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tuning_studies")),
        sa.UniqueConstraint("tenant_id", "idempotency_key", name="uq_tuning_studies_tenant_idempotency_key"),
    )
    op.create_index("ix_tuning_studies_tenant_created", "tuning_studies", ["tenant_id", "created_at", "id"])
    op.create_index("ix_tuning_studies_status", "tuning_studies", ["status"])


def downgrade() -> None:
    op.drop_index("ix_tuning_studies_status", table_name="tuning_studies")
    op.drop_index("ix_tuning_studies_tenant_created", table_name="tuning_studies")
    op.drop_table("tuning_studies")
