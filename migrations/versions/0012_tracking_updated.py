"""Yamato refresh and tracking.updated (docs/events.md): the first day of Apple's
estimate beside its last, and the outbox of tracking.updated events

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("purchasing", sa.Column("estimated_delivery_from", sa.Date(), nullable=True))
    op.create_table(
        "tracking_update_outbox",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(32), nullable=False),
        sa.Column("routing_key", sa.String(100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("relayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_update_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_tracking_update_outbox_event_id")),
    )
    op.create_index(
        "ix_tracking_update_outbox_waiting",
        "tracking_update_outbox",
        ["id"],
        postgresql_where=sa.text("relayed_at IS NULL"),
    )
    op.create_index(
        "ix_tracking_update_outbox_relayed_at", "tracking_update_outbox", ["relayed_at"]
    )


def downgrade() -> None:
    op.drop_table("tracking_update_outbox")
    op.drop_column("purchasing", "estimated_delivery_from")
