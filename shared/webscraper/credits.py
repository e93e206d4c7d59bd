"""Reading the account's page credits (``GET account``) at most every ``read_every_s``,
whichever replica asks: each read is an API call, taken from the quota like any other."""

from __future__ import annotations

import logging

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from shared.db.credits import Reading, latest_reading
from shared.db.models import PageCreditReading
from shared.db.session import transaction
from shared.logs import TAG
from shared.webscraper.client import ApiError, QuotaWait, WebScraperClient

log = logging.getLogger("trackfill.credits")

#: held (without waiting) by the one replica reading the account; the others keep the
#: last reading
CREDITS_LOCK = 0x7472_6B66_696C_6C03


class CreditReader:
    def __init__(
        self, sessions: sessionmaker[Session], client: WebScraperClient, read_every_s: float
    ):
        self._sessions = sessions
        self._client = client
        self._read_every_s = read_every_s

    def current(self) -> Reading | None:
        """The latest reading, read afresh first if it is older than ``read_every_s``
        (None: never read, and the API did not answer now)."""
        with transaction(self._sessions) as session:
            latest = latest_reading(session)
            if latest is not None and self._young(session, latest):
                return latest
            if not session.execute(select(func.pg_try_advisory_xact_lock(CREDITS_LOCK))).scalar():
                return latest  # another replica is reading it
            latest = latest_reading(session)  # read committed: one it just read
            if latest is not None and self._young(session, latest):
                return latest
            try:
                credits = self._client.page_credits()
            except (QuotaWait, ApiError) as error:
                log.warning("%s page credits not read: %s", TAG, error)
                return latest
            read_at = session.execute(
                insert(PageCreditReading)
                .values(page_credits=credits)
                .returning(PageCreditReading.read_at)
            ).scalar_one()
            return Reading(credits, read_at)

    def _young(self, session: Session, reading: Reading) -> bool:
        age_s = session.execute(
            select(func.extract("epoch", func.clock_timestamp() - reading.read_at))
        ).scalar_one()
        return float(age_s) < self._read_every_s
