"""datasets of real size: status, source, error, preprocessing, dtype and the upload options' hash

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 20:00:00

`status` (ready | importing | failed), `source_uri` and `error` (code / message / field) are for datasets
whose data arrives after the row exists; `preprocessing` describes how images became the stored uint8
arrays; `dtype` is the stored `x`'s ("float32" for every dataset stored before). The same file uploaded
with other options (image size, resize, label column) is another dataset: `options_hash` joins the
tenant's unique (sha256) key.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status", sa.String(length=16), server_default="ready", nullable=False))
        batch_op.add_column(sa.Column("source_uri", sa.String(length=2000), nullable=True))
        batch_op.add_column(sa.Column("error", JSON, nullable=True))
        batch_op.add_column(sa.Column("preprocessing", JSON, nullable=True))
        batch_op.add_column(
            sa.Column("dtype", sa.String(length=16), server_default="float32", nullable=False)
        )
        batch_op.add_column(
            sa.Column("options_hash", sa.String(length=64), server_default=sa.text("''"), nullable=False)
        )
        batch_op.drop_constraint("uq_datasets_tenant_sha256", type_="unique")
        batch_op.create_unique_constraint(
            "uq_datasets_tenant_sha256_options", ["tenant_id", "sha256", "options_hash"]
        )


def downgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_constraint("uq_datasets_tenant_sha256_options", type_="unique")
        batch_op.create_unique_constraint("uq_datasets_tenant_sha256", ["tenant_id", "sha256"])
        batch_op.drop_column("options_hash")
        batch_op.drop_column("dtype")
        batch_op.drop_column("preprocessing")
        batch_op.drop_column("error")
        batch_op.drop_column("source_uri")
        batch_op.drop_column("status")
