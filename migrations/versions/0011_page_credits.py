"""Page credits (docs/credits.md): what each scraping job cost, and the account's
credits as read through the API

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "scraping_job_cost",
        sa.Column("scraping_job_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("task_name", sa.String(100), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("pages >= 0", name=op.f("ck_scraping_job_cost_pages_not_negative")),
        sa.PrimaryKeyConstraint("scraping_job_id", name=op.f("pk_scraping_job_cost")),
    )
    op.create_index("ix_scraping_job_cost_created_at", "scraping_job_cost", ["created_at"])
    op.create_table(
        "page_credit_reading",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "read_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("page_credits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_page_credit_reading")),
    )
    op.create_index("ix_page_credit_reading_read_at", "page_credit_reading", ["read_at"])


def downgrade() -> None:
    op.drop_table("page_credit_reading")
    op.drop_table("scraping_job_cost")
