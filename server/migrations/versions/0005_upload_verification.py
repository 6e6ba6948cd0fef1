"""Uploads verified at first use: status, staging key, clean size, rejection reason.

Uploads stored before this revision were never verified: their raw file sits at their key. They
become ``pending`` with ``staging_key = key``, so that their next use (or the sweep, for those
already scanned) verifies them and replaces the file in place with the clean copy.

Revision ID: 0005_upload_verification
Revises: 0004_accounts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_upload_verification"
down_revision = "0004_accounts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(
            sa.Column("status", sa.String(16), nullable=False, server_default="pending")
        )
        batch.add_column(sa.Column("staging_key", sa.String(200)))
        batch.add_column(sa.Column("stored_size", sa.BigInteger))
        batch.add_column(sa.Column("verified_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("reject_message", sa.String(300)))
    op.execute("UPDATE uploads SET staging_key = key")
    op.create_index("ix_uploads_status_created_at", "uploads", ["status", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_uploads_status_created_at", table_name="uploads")
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("reject_message")
        batch.drop_column("verified_at")
        batch.drop_column("stored_size")
        batch.drop_column("staging_key")
        batch.drop_column("status")
