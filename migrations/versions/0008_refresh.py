"""the delivery-status refresh task: purchasing.delivery_status_checked_at, when a carrier
page last gave the purchase's status

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NULL for every existing row: a purchase never checked is due at once
    op.add_column(
        "purchasing",
        sa.Column("delivery_status_checked_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("purchasing", "delivery_status_checked_at")
