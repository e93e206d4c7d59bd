"""packing: the pack a tracking_job is published in

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 16:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tracking_job", sa.Column("pack_of", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_tracking_job_pack_of_tracking_job"),
        "tracking_job",
        "tracking_job",
        ["pack_of"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(op.f("ix_tracking_job_pack_of"), "tracking_job", ["pack_of"])
    # jobs whose create may be under way, or made, are packs of one (as they were)
    op.execute("UPDATE tracking_job SET pack_of = id WHERE status IN ('publishing', 'pending')")


def downgrade() -> None:
    op.drop_index(op.f("ix_tracking_job_pack_of"), table_name="tracking_job")
    op.drop_constraint(
        op.f("fk_tracking_job_pack_of_tracking_job"), "tracking_job", type_="foreignkey"
    )
    op.drop_column("tracking_job", "pack_of")
