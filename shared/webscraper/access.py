"""What every caller of the API is built from: database sessions, the shared quota
ledger (whose figures the metrics report) and the client."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from shared import metrics
from shared.db.credits import CreditFigures
from shared.db.figures import JobFigures
from shared.db.session import make_engine, make_session_factory
from shared.quota import QuotaLedger, QuotaPolicy
from shared.quota.figures import QuotaFigures
from shared.settings import Settings
from shared.webscraper.client import WebScraperClient


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
    metrics.register(JobFigures(sessions, settings.reconcile_after_s))
    metrics.register(QuotaFigures(ledger))
    metrics.register(CreditFigures(sessions, settings.page_credits_reserve))
    client = WebScraperClient(
        settings.webscraper_api_url,
        settings.webscraper_api_token or "",
        ledger,
        settings.http_timeout_s,
    )
    return ApiAccess(sessions, ledger, client)
