"""ingestion: processed notifications and rejected values

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "processed_notification",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("scrapingjob_id", sa.BigInteger(), nullable=False),
        sa.Column("custom_id", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=50), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False, server_default=""),
        sa.Column(
            "processed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_processed_notification")),
        sa.UniqueConstraint(
            "scrapingjob_id",
            "custom_id",
            name=op.f("uq_processed_notification_scrapingjob_id_custom_id"),
        ),
    )
    op.add_column(
        "tracking_job",
        sa.Column("rejected", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("tracking_job", "rejected")
    op.drop_table("processed_notification")
