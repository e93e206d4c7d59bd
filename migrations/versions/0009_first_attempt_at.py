"""purchase_check.first_attempt_at has one meaning, the creation of the purchase's first
tracking job: rows made since 0006 held the end of that first attempt instead, so each
takes the earliest of the two (its jobs may since have been pruned)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 17:50:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "UPDATE purchase_check AS c SET first_attempt_at = j.first "
        "FROM (SELECT purchasing_id, min(created_at) AS first FROM tracking_job "
        "GROUP BY purchasing_id) AS j "
        "WHERE j.purchasing_id = c.purchasing_id AND j.first < c.first_attempt_at"
    )


def downgrade() -> None:
    pass  # the earlier moments stay: they meant the same under 0008's code, give or take
