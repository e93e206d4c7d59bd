"""The seed's audit trail: one ``sync_log`` row per notable operation."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from shared.db.models import SyncLog
from shared.tasks import OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO

#: the tracking-number task's operation types (each task has its own: TaskConfig)
TRIGGERED = OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO.triggered
COMPLETED = OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO.completed


def record(
    session: Session, operation_type: str, success: bool, message: str, details: dict[str, Any]
) -> None:
    """Add a sync_log row to the session's transaction."""
    session.execute(
        insert(SyncLog).values(
            operation_type=operation_type, success=success, message=message, details=details
        )
    )
