"""nothing waits forever: when an in-flight job is looked at again, and when a purchase's
attempts began

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 20:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    timestamp = sa.DateTime(timezone=True)
    op.add_column("tracking_job", sa.Column("reconcile_at", timestamp, nullable=True))
    op.add_column(
        "tracking_job",
        sa.Column("reconcile_count", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column(
        "purchase_check",
        sa.Column("first_attempt_at", timestamp, nullable=False, server_default=sa.func.now()),
    )
    # a purchase's attempts began with its first job
    op.execute(
        "UPDATE purchase_check AS c SET first_attempt_at = j.first "
        "FROM (SELECT purchasing_id, min(created_at) AS first FROM tracking_job "
        "GROUP BY purchasing_id) AS j WHERE j.purchasing_id = c.purchasing_id"
    )
    op.create_index(
        op.f("ix_tracking_job_reconcile_at"),
        "tracking_job",
        ["reconcile_at"],
        postgresql_where=sa.text("status IN ('queued', 'publishing', 'pending')"),
    )
    op.create_index(
        op.f("ix_processed_notification_processed_at"), "processed_notification", ["processed_at"]
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_processed_notification_processed_at"), table_name="processed_notification"
    )
    op.drop_index(op.f("ix_tracking_job_reconcile_at"), table_name="tracking_job")
    op.drop_column("purchase_check", "first_attempt_at")
    op.drop_column("tracking_job", "reconcile_count")
    op.drop_column("tracking_job", "reconcile_at")
