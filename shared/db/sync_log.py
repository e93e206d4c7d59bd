"""The seed's audit trail: one ``sync_log`` row per notable operation."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from shared.db.models import SyncLog

TRIGGERED = "tracking_number_empty_triggered"
COMPLETED = "tracking_number_empty_completed"


def record(
    session: Session, operation_type: str, success: bool, message: str, details: dict[str, Any]
) -> None:
    """Add a sync_log row to the session's transaction."""
    session.execute(
        insert(SyncLog).values(
            operation_type=operation_type, success=success, message=message, details=details
        )
    )
