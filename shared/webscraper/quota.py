"""The quota ledger: every call to the scraper's API is reserved here before it is made.

The ledger lives in PostgreSQL (table ``api_call``) and is changed only under an
advisory lock, on the database's clock, so every process and replica shares one view
that survives restarts. The rule: no window of ``window_s`` (plus a 1% margin for the
time between reservation and arrival) holds more than ``calls`` reservations.

Reservations can be planned in the future: a job creation that cannot happen now gets
the earliest slot that keeps the rule, ``min_interval_s`` after the previous creation,
and the candidate waits for it parked in RabbitMQ. Slots for creations are handed out
in increasing order, so the parked messages' expirations never decrease (RabbitMQ
expires only from a queue's head). Creations also leave room in every window for the
follow-up calls (status check, download) of the jobs still owed them, their own
included, so the ingestor is never starved: with ``followups_per_job`` F, at most
``calls / (1 + F)`` jobs can be in flight at once. What the API itself says
(``X-RateLimit-Remaining``, 429 ``Retry-After``) only ever tightens the ledger.
"""

from __future__ import annotations

import bisect
import datetime as dt
import time
from dataclasses import dataclass

from sqlalchemy import delete, exists, func, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from shared.db.models import ApiCall, QuotaState, TrackingJob
from shared.db.session import transaction

LEDGER_LOCK = 0x7472_6B66_696C_6C02
CREATE = "create"
MARGIN = 0.01  # of the window: calls arrive a little after they are reserved


@dataclass(frozen=True)
class Reservation:
    """A reserved call: ``at`` is when it may be made; ``wait_s`` how long from now."""

    id: int | None
    at: dt.datetime
    wait_s: float

    @property
    def ready(self) -> bool:
        return self.wait_s <= 0


@dataclass(frozen=True)
class CreateMade:
    """A create call that may have made a job: its reservation, and the job if known."""

    call: Reservation
    job_id: int | None


@dataclass(frozen=True)
class QuotaPolicy:
    calls: int
    window_s: float
    min_interval_s: float
    followups_per_job: int

    @property
    def span_s(self) -> float:
        """The window the ledger enforces: the API's, plus the margin."""
        return self.window_s * (1 + MARGIN)

    @property
    def horizon_s(self) -> float:
        """How long a job created but not followed up is still owed room (then it is
        presumed lost; the reconciler's business, not the quota's)."""
        return max(4 * self.window_s, 60.0)


class QuotaLedger:
    def __init__(self, sessions: sessionmaker[Session], policy: QuotaPolicy):
        self._sessions = sessions
        self.policy = policy

    # -- reservations ------------------------------------------------------------------
    def reserve(
        self,
        kind: str,
        custom_id: str | None = None,
        not_before_s: float = 0.0,
        plan: bool = False,
    ) -> Reservation:
        """Reserve one call of ``kind``. Without ``plan``, a call that cannot be made now
        is not reserved: the answer (``id`` None) says when to ask again. With ``plan``,
        the earliest allowed slot is reserved, possibly in the future."""
        with transaction(self._sessions) as session:
            now = self._lock(session)
            earliest = now + dt.timedelta(seconds=not_before_s)
            slot = self._earliest_slot(session, kind, now, earliest)
            wait_s = (slot - now).total_seconds()
            if wait_s > 0 and not plan:
                return Reservation(None, slot, wait_s)
            reservation_id = session.execute(
                insert(ApiCall)
                .values(kind=kind, at=slot, custom_id=custom_id)
                .returning(ApiCall.id)
            ).scalar_one()
            return Reservation(reservation_id, slot, wait_s)

    def claim(self, custom_id: str) -> Reservation | None:
        """The unused planned creation slot of ``custom_id``: ready if its time has come,
        not ready (wait again) if it is still ahead. A slot long past (a late call would
        break the windows it was planned in) or one the API has since blocked is dropped
        and None returned: reserve again."""
        with transaction(self._sessions) as session:
            now = self._lock(session)
            row = session.execute(
                select(ApiCall.id, ApiCall.at)
                .where(
                    ApiCall.custom_id == custom_id,
                    ApiCall.kind == CREATE,
                    ApiCall.used_at.is_(None),
                )
                .order_by(ApiCall.at.desc())
                .limit(1)
            ).first()
            if row is None:
                return None
            wait_s = (row.at - now).total_seconds()
            blocked = self._blocked_until(session)
            tolerance = self.policy.window_s * MARGIN
            if wait_s < -tolerance or (blocked and blocked > row.at):
                session.execute(delete(ApiCall).where(ApiCall.id == row.id))
                return None
            return Reservation(row.id, row.at, wait_s if wait_s > tolerance else 0.0)

    def mark_used(self, reservation: Reservation, kind: str = "") -> None:
        """Committed just before the call is made: a crash after this line means the
        call may have happened. A creation also keeps ``min_interval_s`` after the
        previous one as made (a slot can be taken a little late), waiting that long."""
        while True:
            with transaction(self._sessions) as session:
                now = self._lock(session)
                wait_s = self._spacing_wait(session, now) if kind == CREATE else 0.0
                if wait_s <= 0:
                    session.execute(
                        update(ApiCall).where(ApiCall.id == reservation.id).values(used_at=now)
                    )
                    return
            time.sleep(wait_s)

    def _spacing_wait(self, session: Session, now: dt.datetime) -> float:
        last = session.execute(
            select(func.max(ApiCall.used_at)).where(ApiCall.kind == CREATE)
        ).scalar_one()
        if last is None:
            return 0.0
        return self.policy.min_interval_s - (now - last).total_seconds()

    def record_outcome(self, reservation: Reservation, status: int | None, outcome: str) -> None:
        with transaction(self._sessions) as session:
            session.execute(
                update(ApiCall)
                .where(ApiCall.id == reservation.id)
                .values(status=status, outcome=outcome[:500])
            )

    def record_job(self, reservation: Reservation, job_id: int) -> None:
        """A create was answered with ``job_id``: kept with the call at once."""
        with transaction(self._sessions) as session:
            session.execute(
                update(ApiCall).where(ApiCall.id == reservation.id).values(job_id=job_id)
            )

    def create_made(self, custom_id: str) -> CreateMade | None:
        """What the latest create call made for ``custom_id`` is known to have done, if
        it may have created a job: ``job_id`` when answered, else None with ``at`` (no
        answer, a 5xx, or a death right after the answer). Settled calls are left out."""
        with self._sessions() as session:
            row = session.execute(
                select(ApiCall.id, ApiCall.used_at, ApiCall.job_id)
                .where(
                    ApiCall.custom_id == custom_id,
                    ApiCall.kind == CREATE,
                    ApiCall.used_at.is_not(None),
                    or_(
                        ApiCall.job_id.is_not(None),
                        ApiCall.status.is_(None),
                        ApiCall.status >= 500,
                        ApiCall.status < 300,
                    ),
                    or_(ApiCall.outcome.is_(None), ~ApiCall.outcome.startswith("settled")),
                )
                .order_by(ApiCall.used_at.desc())
                .limit(1)
            ).first()
        return CreateMade(Reservation(row.id, row.used_at, 0.0), row.job_id) if row else None

    # -- what the API says ----------------------------------------------------------------
    def observe(self, remaining: int | None, retry_after_s: float | None = None) -> None:
        """Tighten the ledger: the API has fewer calls left than we think (another client
        shares the account), or it told us to wait."""
        with transaction(self._sessions) as session:
            now = self._lock(session)
            if retry_after_s is not None:
                until = now + dt.timedelta(seconds=retry_after_s)
                session.execute(
                    update(QuotaState)
                    .where(QuotaState.id == 1)
                    .values(blocked_until=func.greatest(QuotaState.blocked_until, until))
                )
            if remaining is None:
                return
            used = self._count_since(session, now - self._span(), now)
            phantom = (self.policy.calls - used) - remaining
            if phantom > 0:
                session.execute(
                    insert(ApiCall),
                    [{"kind": "external", "at": now, "used_at": now}] * phantom,
                )

    def used_in_window(self) -> int:
        """Calls reserved in the last window up to now (for figures and status)."""
        with self._sessions() as session:
            now = session.execute(select(func.clock_timestamp())).scalar_one()
            return self._count_since(session, now - self._span(), now)

    # -- internals -----------------------------------------------------------------------
    def _lock(self, session: Session) -> dt.datetime:
        session.execute(select(func.pg_advisory_xact_lock(LEDGER_LOCK)))
        return session.execute(select(func.clock_timestamp())).scalar_one()

    def _span(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.policy.span_s)

    def _count_since(self, session: Session, start: dt.datetime, end: dt.datetime) -> int:
        return session.execute(
            select(func.count()).where(ApiCall.at > start, ApiCall.at <= end)
        ).scalar_one()

    def _blocked_until(self, session: Session) -> dt.datetime | None:
        return session.execute(
            select(QuotaState.blocked_until).where(QuotaState.id == 1)
        ).scalar_one_or_none()

    def _earliest_slot(
        self, session: Session, kind: str, now: dt.datetime, earliest: dt.datetime
    ) -> dt.datetime:
        span = self._span()
        times = sorted(session.execute(select(ApiCall.at).where(ApiCall.at > now - span)).scalars())
        blocked = self._blocked_until(session)
        if blocked and blocked > earliest:
            earliest = blocked
        cap = self.policy.calls
        if kind == CREATE:
            earliest = max(earliest, self._next_create_time(session))
            # this creation's own follow-ups, and those of every job still owed them
            cap -= self.policy.followups_per_job * (self._owed_jobs(session, now) + 1)
            if cap <= 0:  # every call left is owed to follow-ups: look again later
                return max(earliest, now) + dt.timedelta(seconds=self.policy.window_s / 10)
        return _first_valid(times, max(earliest, now), span, cap)

    def _next_create_time(self, session: Session) -> dt.datetime:
        last = session.execute(
            select(func.max(ApiCall.at)).where(ApiCall.kind == CREATE)
        ).scalar_one()
        if last is None:
            return dt.datetime.min.replace(tzinfo=dt.UTC)
        return last + dt.timedelta(seconds=self.policy.min_interval_s)

    def _owed_jobs(self, session: Session, now: dt.datetime) -> int:
        """Creations (planned, made or answered) whose job has not ended yet: each will
        still need its follow-up calls. Older than the horizon, a job is presumed lost."""
        horizon = now - dt.timedelta(seconds=self.policy.horizon_s)
        ended = exists().where(
            TrackingJob.custom_id == ApiCall.custom_id,
            TrackingJob.status.in_(("completed", "failed")),
        )
        return session.execute(
            select(func.count()).where(
                ApiCall.kind == CREATE,
                ApiCall.at > horizon,
                or_(ApiCall.status.is_(None), ApiCall.status < 300),
                ~ended,
            )
        ).scalar_one()


def _first_valid(
    times: list[dt.datetime], earliest: dt.datetime, span: dt.timedelta, cap: int
) -> dt.datetime:
    """The earliest t >= ``earliest`` such that every window of length ``span`` holding t
    holds fewer than ``cap`` of ``times`` (sorted). A slot can only open when a reserved
    call leaves a window, so the candidates are ``earliest`` and each time + span."""
    candidates = [earliest] + [t + span for t in times if t + span > earliest]
    for slot in sorted(candidates):
        if _fits(times, slot, span, cap):
            return slot
    return max(times[-1] + span if times else earliest, earliest)


def _fits(times: list[dt.datetime], slot: dt.datetime, span: dt.timedelta, cap: int) -> bool:
    """Every window (e - span, e] holding ``slot`` keeps fewer than ``cap`` calls; such
    windows end at ``slot`` or at a reserved time less than ``span`` after it."""
    later = times[bisect.bisect_right(times, slot) : bisect.bisect_left(times, slot + span)]
    for end in [slot, *later]:
        inside = bisect.bisect_right(times, end) - bisect.bisect_right(times, end - span)
        if inside + 1 > cap:
            return False
    return True
