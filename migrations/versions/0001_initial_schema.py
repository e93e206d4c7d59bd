"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-29 03:38:40.580148
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "official_account",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_official_account")),
    )
    op.create_table(
        "sync_log",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("operation_type", sa.String(length=100), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("message", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "timestamp", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column(
            "details", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_log")),
    )
    op.create_index(
        op.f("ix_sync_log_operation_type"), "sync_log", ["operation_type"], unique=False
    )
    op.create_index(op.f("ix_sync_log_timestamp"), "sync_log", ["timestamp"], unique=False)
    op.create_table(
        "tracking_batch",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("batch_uuid", sa.Uuid(), nullable=False),
        sa.Column("file_path", sa.String(length=255), nullable=False),
        sa.Column("task_name", sa.String(length=100), nullable=False),
        sa.Column("total_jobs", sa.Integer(), server_default="0", nullable=False),
        sa.Column("completed_jobs", sa.Integer(), server_default="0", nullable=False),
        sa.Column("failed_jobs", sa.Integer(), server_default="0", nullable=False),
        sa.Column("status", sa.String(length=20), server_default="pending", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'processing', 'completed', 'failed', 'partial')",
            name=op.f("ck_tracking_batch_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_batch")),
        sa.UniqueConstraint("batch_uuid", name=op.f("uq_tracking_batch_batch_uuid")),
    )
    op.create_table(
        "purchasing",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("order_number", sa.String(length=64), nullable=True),
        sa.Column("official_account_id", sa.BigInteger(), nullable=True),
        sa.Column("tracking_number", sa.String(length=64), nullable=True),
        sa.Column("latest_delivery_status", sa.String(length=200), nullable=True),
        sa.Column("shipping_method", sa.String(length=200), nullable=True),
        sa.Column("estimated_delivery_date", sa.Date(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["official_account_id"],
            ["official_account.id"],
            name=op.f("fk_purchasing_official_account_id_official_account"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchasing")),
    )
    op.create_index(
        "ix_purchasing_needs_tracking",
        "purchasing",
        ["created_at", "id"],
        unique=False,
        postgresql_where=sa.text("tracking_number IS NULL OR tracking_number = ''"),
    )
    op.create_index(
        op.f("ix_purchasing_official_account_id"),
        "purchasing",
        ["official_account_id"],
        unique=False,
    )
    op.create_table(
        "tracking_job",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("batch_id", sa.BigInteger(), nullable=False),
        sa.Column("purchasing_id", sa.BigInteger(), nullable=True),
        sa.Column("custom_id", sa.String(length=100), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("target_url", sa.Text(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="queued", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'publishing', 'pending', 'completed', 'failed')",
            name=op.f("ck_tracking_job_status"),
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["tracking_batch.id"],
            name=op.f("fk_tracking_job_batch_id_tracking_batch"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["purchasing_id"],
            ["purchasing.id"],
            name=op.f("fk_tracking_job_purchasing_id_purchasing"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_job")),
        sa.UniqueConstraint("custom_id", name=op.f("uq_tracking_job_custom_id")),
    )
    op.create_index(op.f("ix_tracking_job_batch_id"), "tracking_job", ["batch_id"], unique=False)
    op.create_index(op.f("ix_tracking_job_job_id"), "tracking_job", ["job_id"], unique=False)
    op.create_index(
        op.f("ix_tracking_job_purchasing_id"), "tracking_job", ["purchasing_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_tracking_job_purchasing_id"), table_name="tracking_job")
    op.drop_index(op.f("ix_tracking_job_job_id"), table_name="tracking_job")
    op.drop_index(op.f("ix_tracking_job_batch_id"), table_name="tracking_job")
    op.drop_table("tracking_job")
    op.drop_index(op.f("ix_purchasing_official_account_id"), table_name="purchasing")
    op.drop_index(
        "ix_purchasing_needs_tracking",
        table_name="purchasing",
        postgresql_where=sa.text("tracking_number IS NULL OR tracking_number = ''"),
    )
    op.drop_table("purchasing")
    op.drop_table("tracking_batch")
    op.drop_index(op.f("ix_sync_log_timestamp"), table_name="sync_log")
    op.drop_index(op.f("ix_sync_log_operation_type"), table_name="sync_log")
    op.drop_table("sync_log")
    op.drop_table("official_account")
