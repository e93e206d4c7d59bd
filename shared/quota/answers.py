"""What the API's answers say, written to the ledger: each call's outcome, the job a
create call made, and the quota as the API counts it (``X-RateLimit-Remaining``, a
429's ``Retry-After``), which only ever tightens the ledger."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from shared.db.models import ApiCall, QuotaState
from shared.db.session import autocommit, transaction
from shared.quota import fast_path
from shared.quota.store import count_in_window, lock
from shared.quota.values import CREATE, EXTERNAL, CreateMade, QuotaPolicy, Reservation

log = logging.getLogger("trackfill.quota")
#: (call id, HTTP status, outcome, remaining as the API said)
Answer = tuple[int | None, int | None, str, int | None]


class Answers:
    """What the API answered, kept in the ledger (``QuotaLedger.answers``)."""

    def __init__(self, sessions: sessionmaker[Session], policy: QuotaPolicy):
        self._sessions = sessions
        self.policy = policy
        self._held = threading.local()

    def record_outcome(
        self,
        reservation: Reservation,
        status: int | None,
        outcome: str,
        remaining: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        """What the call got, and what the API said about the quota (see :meth:`observe`),
        in one transaction (or with the others at the end of :meth:`outcomes_together`)."""
        answer = (reservation.id, status, outcome[:500], remaining)
        held = getattr(self._held, "outcomes", None)
        if held is not None and retry_after_s is None and reservation.id is not None:
            held.append(answer)
            return
        if retry_after_s is None:
            self._record_answers([answer])
            return
        with transaction(self._sessions) as session:
            session.execute(
                update(ApiCall)
                .where(ApiCall.id == reservation.id)
                .values(status=status, outcome=outcome[:500])
            )
            self._observe(session, remaining, retry_after_s)

    @contextmanager
    def outcomes_together(self) -> Iterator[None]:
        """Within it (in this thread), the answers of calls that carry no Retry-After are
        written together when it ends, in one round trip instead of one each. The calls
        themselves are in the ledger already (reserved and marked used before they were
        made), so the count is never behind; only their answers wait, and what those
        said about the quota (the lowest remaining) is compared with the ledger then.
        If the database cannot take them, the answers are lost and the calls stay
        counted: a warning, not an error, so the work they fetched is not lost too."""
        held: list[Answer] = []
        self._held.outcomes = held
        try:
            yield
        finally:
            self._held.outcomes = None
            if held:
                self._record_held(held)

    def _record_held(self, held: list[Answer]) -> None:
        try:
            self._record_answers(held)
        except (OperationalError, InterfaceError) as error:
            log.warning("the answers of %d API calls were not recorded: %s", len(held), error)

    def _record_answers(self, answers: list[Answer]) -> None:
        """Write the answers in one round trip; then, if the API has fewer calls left
        (the lowest remaining) than the ledger thinks, tighten it."""
        with autocommit(self._sessions) as connection:
            used = fast_path.record_outcomes(
                connection, [answer[:3] for answer in answers], self.policy.span
            )
        remaining = min((r for *_, r in answers if r is not None), default=None)
        if remaining is not None and self.policy.calls - used > remaining:
            self.observe(remaining)

    def record_job(self, reservation: Reservation, scraping_job_id: int) -> None:
        """A create was answered with ``scraping_job_id``: kept with the call at once."""
        with transaction(self._sessions) as session:
            session.execute(
                update(ApiCall)
                .where(ApiCall.id == reservation.id)
                .values(scraping_job_id=scraping_job_id)
            )

    def adopt(self, custom_id: str, scraping_job_id: int) -> bool:
        """The service says scraping job ``scraping_job_id`` carries ``custom_id`` (its webhook):
        that is the job the latest create of unknown effect for ``custom_id`` made (a
        pack's custom_id is its leader's own, and a create is settled before the next),
        kept with that call as if it had been answered. False if no such call waits."""
        made = self.create_made(custom_id)
        if made is None or made.scraping_job_id is not None:
            return False
        self.record_job(made.call, scraping_job_id)
        return True

    def create_made(self, custom_id: str) -> CreateMade | None:
        """What the latest create call made for ``custom_id`` is known to have done, if
        it may have created a job: ``scraping_job_id`` when answered, else None with ``at`` (no
        answer, a 5xx, or a death right after the answer). Settled calls are left out."""
        with self._sessions() as session:
            row = session.execute(
                select(
                    ApiCall.id,
                    ApiCall.used_at,
                    ApiCall.scraping_job_id,
                    func.extract("epoch", func.clock_timestamp() - ApiCall.used_at).label("age"),
                )
                .where(
                    ApiCall.custom_id == custom_id,
                    ApiCall.kind == CREATE,
                    ApiCall.used_at.is_not(None),
                    or_(
                        ApiCall.scraping_job_id.is_not(None),
                        ApiCall.status.is_(None),
                        ApiCall.status >= 500,
                        ApiCall.status < 300,
                    ),
                    or_(ApiCall.outcome.is_(None), ~ApiCall.outcome.startswith("settled")),
                )
                .order_by(ApiCall.used_at.desc())
                .limit(1)
            ).first()
        if row is None:
            return None
        return CreateMade(
            Reservation(row.id, row.used_at, 0.0), row.scraping_job_id, float(row.age)
        )

    def observe(self, remaining: int | None, retry_after_s: float | None = None) -> None:
        """Tighten the ledger: the API has fewer calls left than we think (another client
        shares the account), or it told us to wait."""
        with transaction(self._sessions) as session:
            self._observe(session, remaining, retry_after_s)

    def _observe(self, session: Session, remaining: int | None, retry_after_s: float | None):
        if retry_after_s is None and (remaining is None or not self._phantoms(session, remaining)):
            return  # the API agrees with the ledger: no lock taken (the common case)
        now = lock(session)
        if retry_after_s is not None:
            until = now + dt.timedelta(seconds=retry_after_s)
            session.execute(
                update(QuotaState)
                .where(QuotaState.id == 1)
                .values(blocked_until=func.greatest(QuotaState.blocked_until, until))
            )
        # a 429's remaining (0) is not counted: its Retry-After says when the API has
        # room again, and calls it counts until then would hold the ledger a whole window
        counted = remaining is not None and retry_after_s is None
        phantom = self._phantoms(session, remaining) if counted else 0
        if phantom > 0:
            session.execute(
                insert(ApiCall), [{"kind": EXTERNAL, "at": now, "used_at": now}] * phantom
            )

    def _phantoms(self, session: Session, remaining: int) -> int:
        """Calls the API counts that the ledger does not (made by another client)."""
        return max(0, (self.policy.calls - count_in_window(session, self.policy.span)) - remaining)
