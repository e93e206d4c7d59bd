"""The schedule (docs/schedule.md): purchase_check keeps what the latest page said
(Apple's state or the carrier's status, Apple's estimate as its first and last day), and
its next_check_at may be NULL: never again

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("purchase_check", sa.Column("last_status", sa.Text()))
    op.add_column("purchase_check", sa.Column("estimate_from", sa.Date()))
    op.add_column("purchase_check", sa.Column("estimate_to", sa.Date()))
    op.alter_column("purchase_check", "next_check_at", nullable=True)


def downgrade() -> None:
    # "never" had no form before: such a purchase waits the longest back-off instead
    op.execute(
        "UPDATE purchase_check SET next_check_at = now() + interval '1 day' "
        "WHERE next_check_at IS NULL"
    )
    op.alter_column("purchase_check", "next_check_at", nullable=False)
    op.drop_column("purchase_check", "estimate_to")
    op.drop_column("purchase_check", "estimate_from")
    op.drop_column("purchase_check", "last_status")
