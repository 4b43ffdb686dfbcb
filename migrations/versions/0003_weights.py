"""weights: uploaded safetensors files that jobs warm-start from (`POST /v1/weights`, `model.init.weights`)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 10:00:00

One row per upload: name, SHA-256 and size of the stored file, how many tensors and values it holds, its
dtypes, the classes of its head when the upload named them, and its storage key. Applied with the others
by `simtrain migrate` (`migrations.upgrade_head`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import core.db.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "weights",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("num_tensors", sa.Integer(), nullable=False),
        sa.Column("num_parameters", sa.BigInteger(), nullable=False),
        sa.Column("dtypes", _json(), nullable=False),
        sa.Column("classes", _json(), nullable=True),
        sa.Column("storage_key", sa.String(length=300), nullable=False),
        sa.Column("created_at", core.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_weights_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_weights")),
    )
    with op.batch_alter_table("weights", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_weights_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("weights", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_weights_tenant_id"))
    op.drop_table("weights")
