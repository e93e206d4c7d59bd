"""the delivery-status refresh task: purchasing.delivery_status_checked_at, when a carrier
page last gave the purchase's status, and a partial index of the purchases it may select
(a number, a status code that is not done) in its order

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
    op.create_index(
        "ix_purchasing_may_need_refresh",
        "purchasing",
        [sa.text("delivery_status_checked_at ASC NULLS FIRST"), "id"],
        unique=False,
        postgresql_where=sa.text(
            "tracking_number IS NOT NULL AND tracking_number <> '' AND "
            "(delivery_status_code IS NULL OR "
            "delivery_status_code NOT IN ('cancelled', 'delivered', 'returned'))"
        ),
    )


def downgrade() -> None:
    op.drop_index("ix_purchasing_may_need_refresh", table_name="purchasing")
    op.drop_column("purchasing", "delivery_status_checked_at")
