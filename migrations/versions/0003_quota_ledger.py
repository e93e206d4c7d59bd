"""quota ledger

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 04:14:00.133887
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_call",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("custom_id", sa.String(length=100), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_call")),
    )
    op.create_index(op.f("ix_api_call_at"), "api_call", ["at"], unique=False)
    op.create_index(op.f("ix_api_call_custom_id"), "api_call", ["custom_id"], unique=False)
    op.create_table(
        "api_quota_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("id = 1", name=op.f("ck_api_quota_state_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_quota_state")),
    )
    op.execute("INSERT INTO api_quota_state (id) VALUES (1)")
    op.add_column(
        "tracking_job",
        sa.Column("publish_attempts", sa.Integer(), server_default="0", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("tracking_job", "publish_attempts")
    op.drop_table("api_quota_state")
    op.drop_index(op.f("ix_api_call_custom_id"), table_name="api_call")
    op.drop_index(op.f("ix_api_call_at"), table_name="api_call")
    op.drop_table("api_call")
