"""selection state: purchase_check, published_at, one job in flight per purchase

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 03:54:42.823402
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "purchase_check",
        sa.Column("purchasing_id", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_reason", sa.Text(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["purchasing_id"],
            ["purchasing.id"],
            name=op.f("fk_purchase_check_purchasing_id_purchasing"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("purchasing_id", name=op.f("pk_purchase_check")),
    )
    op.add_column(
        "tracking_job", sa.Column("published_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "uq_tracking_job_in_flight_purchase",
        "tracking_job",
        ["purchasing_id"],
        unique=True,
        postgresql_where=sa.text("status IN ('queued', 'publishing', 'pending')"),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_tracking_job_in_flight_purchase",
        table_name="tracking_job",
        postgresql_where=sa.text("status IN ('queued', 'publishing', 'pending')"),
    )
    op.drop_column("tracking_job", "published_at")
    op.drop_table("purchase_check")
