"""Users, uploads and scans.

Revision ID: 0001_initial
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("display_name", sa.String(100)),
        sa.Column("is_guest", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
    )
    op.create_table(
        "uploads",
        sa.Column("key", sa.String(200)),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("content_type", sa.String(40), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_uploads"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_uploads_user_id_users", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_uploads_user_id", "uploads", ["user_id"])
    op.create_table(
        "scans",
        sa.Column("id", sa.String(32)),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("locale", sa.String(8), nullable=False),
        sa.Column("image_kind", sa.String(8), nullable=False),
        sa.Column("upload_key", sa.String(200)),
        sa.Column("lat", sa.Float),
        sa.Column("lon", sa.Float),
        sa.Column("classification", sa.JSON),
        sa.Column("coaching_text", sa.Text),
        sa.Column("rule_ids", sa.JSON),
        sa.Column("coach_backend", sa.String(40)),
        sa.Column("bins", sa.JSON),
        sa.Column("timings_ms", sa.JSON),
        sa.Column("error", sa.JSON),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_scans"),
        sa.UniqueConstraint("session_id", "request_id", name="uq_scans_session_id"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_scans_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["upload_key"], ["uploads.key"], name="fk_scans_upload_key_uploads",
            ondelete="SET NULL",
        ),
    )
    op.create_index("ix_scans_user_id", "scans", ["user_id"])


def downgrade() -> None:
    op.drop_table("scans")
    op.drop_table("uploads")
    op.drop_table("users")
