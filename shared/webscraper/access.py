"""What every caller of the API is built from: database sessions, the shared quota
ledger (whose figures the metrics report) and the client."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from shared import metrics
from shared.db.session import make_engine, make_session_factory
from shared.settings import Settings
from shared.webscraper.client import WebScraperClient
from shared.webscraper.quota import QuotaLedger, QuotaPolicy


@dataclass(frozen=True)
class ApiAccess:
    sessions: sessionmaker[Session]
    ledger: QuotaLedger
    client: WebScraperClient


def api_access(settings: Settings) -> ApiAccess:
    """The parts for ``settings``; nothing connects until first used."""
    engine = make_engine(settings.database_url, connect_args={"connect_timeout": 5})
    sessions = make_session_factory(engine)
    ledger = QuotaLedger(sessions, QuotaPolicy.of(settings))
    metrics.register_database(sessions, ledger, settings.reconcile_after_s)
    client = WebScraperClient(
        settings.webscraper_api_url,
        settings.webscraper_api_token or "",
        ledger,
        settings.http_timeout_s,
    )
    return ApiAccess(sessions, ledger, client)
