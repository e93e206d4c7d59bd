"""normalised delivery status: purchasing.delivery_status_code beside the raw text,
filled for the rows that already have a status

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 11:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.domain.statuses import code_of

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("purchasing", sa.Column("delivery_status_code", sa.String(32), nullable=True))
    # Statuses are a few distinct labels: one UPDATE per label, by the same table as the
    # ingestor's (shared/domain/statuses.py) as it stands when the migration runs.
    connection = op.get_bind()
    labels = connection.execute(
        sa.text(
            "SELECT DISTINCT latest_delivery_status FROM purchasing "
            "WHERE latest_delivery_status IS NOT NULL"
        )
    ).scalars()
    update = sa.text(
        "UPDATE purchasing SET delivery_status_code = :code WHERE latest_delivery_status = :label"
    )
    for label in list(labels):
        code = code_of(label)
        if code is not None:
            connection.execute(update, {"code": code.value, "label": label})


def downgrade() -> None:
    op.drop_column("purchasing", "delivery_status_code")
