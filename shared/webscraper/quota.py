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
follow-up calls (status check, download) each job needs later: with
``followups_per_job`` F they take at most ``calls // (1 + F)`` of any window, so the
ingestor is never starved (follow-ups may use the whole window). What the API itself says
(``X-RateLimit-Remaining``, 429 ``Retry-After``) only ever tightens the ledger.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from shared.db.models import ApiCall, QuotaState
from shared.db.session import autocommit, transaction
from shared.webscraper import fast_path
from shared.webscraper.fast_path import LEDGER_LOCK
from shared.webscraper.windows import first_valid, in_window

if TYPE_CHECKING:
    from shared.settings import Settings

CREATE = "create"
MARGIN = 0.01  # of the window: calls arrive a little after they are reserved
#: ...and at least this long: the time from reservation to arrival is a network's, not a
#: share of the window (it matters when tests and benchmarks compress time 100x)
MIN_MARGIN_S = 0.1
log = logging.getLogger("trackfill.quota")


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
    #: seconds since the call was made, on the database's clock
    age_s: float = 0.0


@dataclass(frozen=True)
class QuotaPolicy:
    calls: int
    window_s: float
    min_interval_s: float
    followups_per_job: int

    @classmethod
    def of(cls, settings: Settings) -> QuotaPolicy:
        """The policy the settings describe (every caller of the API uses the same)."""
        return cls(
            settings.api_quota_calls,
            settings.api_quota_window_s,
            settings.publish_min_interval_s,
            settings.api_followup_calls_per_job,
        )

    @property
    def span_s(self) -> float:
        """The window the ledger enforces: the API's, plus the margin."""
        return self.window_s + max(self.window_s * MARGIN, MIN_MARGIN_S)

    @property
    def creations_per_window(self) -> int:
        """Each job costs its creation and ``followups_per_job`` calls after it, so
        creations may take 1 / (1 + F) of a window: the rest is the follow-ups' room."""
        return max(1, self.calls // (1 + self.followups_per_job))


class QuotaLedger:
    def __init__(self, sessions: sessionmaker[Session], policy: QuotaPolicy):
        self._sessions = sessions
        self.policy = policy
        self._held = threading.local()

    # -- reservations ------------------------------------------------------------------
    def reserve(
        self,
        kind: str,
        custom_id: str | None = None,
        not_before_s: float = 0.0,
        plan: bool = False,
        within_s: float | None = None,
        ordered: bool = True,
        use: bool = False,
    ) -> Reservation:
        """Reserve one call of ``kind``. Without ``plan``, a call that cannot be made now
        is not reserved: the answer (``id`` None) says when to ask again. With ``plan``,
        the earliest allowed slot is reserved, possibly in the future (only if no more
        than ``within_s`` ahead, when given). Creations are ``ordered``: each slot comes
        after every planned one, so parked messages expire in the order they were parked;
        an unordered slot may fall between them and must be waited for in place.
        With ``use``, a call that can be made now is also marked used (one transaction
        instead of two: the caller makes it at once, as after :meth:`mark_used`)."""
        if kind != CREATE and not plan and not_before_s <= 0:
            with autocommit(self._sessions) as connection:
                made = fast_path.reserve_now(
                    connection, kind, custom_id, use, self.policy.span_s, self.policy.calls
                )
            if made is not None:
                return Reservation(made[0], made[1], 0.0)
        with transaction(self._sessions) as session:
            now = self._lock(session)
            earliest = now + dt.timedelta(seconds=not_before_s)
            slot = self._earliest_slot(session, kind, now, earliest, ordered)
            wait_s = (slot - now).total_seconds()
            limit = 0.0 if not plan else within_s
            if limit is not None and wait_s > limit:
                return Reservation(None, slot, wait_s)
            used_at = now if use and wait_s <= 0 else None
            reservation_id = session.execute(
                insert(ApiCall)
                .values(kind=kind, at=slot, custom_id=custom_id, used_at=used_at)
                .returning(ApiCall.id)
            ).scalar_one()
            return Reservation(reservation_id, slot, wait_s)

    def claim(self, custom_id: str) -> Reservation | None:
        """The unused planned creation slot of ``custom_id``: ready if its time has come
        (late or not: :meth:`mark_used` has the last word), not ready if it is still
        ahead. One the API has since blocked is dropped and None returned."""
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
            if blocked and blocked > now:
                session.execute(delete(ApiCall).where(ApiCall.id == row.id))
                return None
            tolerance = self.policy.window_s * MARGIN
            return Reservation(row.id, row.at, wait_s if wait_s > tolerance else 0.0)

    def latest_planned(self) -> tuple[str, Reservation] | None:
        """The creation slot planned last, while it is still ahead: (its custom_id, the
        reservation). Candidates that join its pack wait for it, and their expirations
        are then no earlier than any parked before them."""
        with self._sessions() as session:
            row = session.execute(
                select(
                    ApiCall.id,
                    ApiCall.at,
                    ApiCall.custom_id,
                    func.extract("epoch", ApiCall.at - func.clock_timestamp()).label("wait"),
                )
                .where(ApiCall.kind == CREATE, ApiCall.used_at.is_(None))
                .order_by(ApiCall.at.desc())
                .limit(1)
            ).first()
        if row is None or row.custom_id is None or float(row.wait) <= 0:
            return None
        return row.custom_id, Reservation(row.id, row.at, float(row.wait))

    def mark_used(self, reservation: Reservation, kind: str = "") -> bool:
        """Committed just before the call is made: a crash after this line means the
        call may have happened. A creation keeps ``min_interval_s`` after the previous
        one as made, waiting that long. A reservation is used once, and never while the
        API's block (a 429's Retry-After) is in force. The rule is kept at the moment of
        use, against the calls actually made up to now: planned slots are a schedule, and
        a schedule slips when calls are made late. If the last window has no room now but will
        within :attr:`use_wait_s` (an earlier call of the window was made late), that is
        waited for; else the reservation is dropped and False returned: do not make
        the call."""
        room_deadline = None
        while True:
            with transaction(self._sessions) as session:
                now = self._lock(session)
                wait_s = self._spacing_wait(session, now) if kind == CREATE else 0.0
                if wait_s <= 0:
                    wait_s = self._room_wait(session, kind, now, reservation.id)
                    room_deadline = room_deadline or now + dt.timedelta(seconds=self.use_wait_s)
                    unused = session.execute(
                        select(ApiCall.id).where(
                            ApiCall.id == reservation.id, ApiCall.used_at.is_(None)
                        )
                    ).scalar_one_or_none()
                    blocked = self._blocked_until(session)
                    # other callers may take the room meanwhile: the wait is bounded in all
                    late = now + dt.timedelta(seconds=wait_s) > room_deadline
                    if unused is None or late or (blocked is not None and blocked > now):
                        log.debug("%s call refused at use (used, blocked or no room)", kind)
                        if unused is not None:
                            session.execute(delete(ApiCall).where(ApiCall.id == reservation.id))
                        return False
                    if wait_s <= 0:
                        session.execute(
                            update(ApiCall)
                            .where(ApiCall.id == reservation.id)
                            .values(at=now, used_at=now)
                        )
                        return True
            time.sleep(wait_s)

    @property
    def use_wait_s(self) -> float:
        """How long a call may wait at use for a late call to leave the window."""
        return min(1.0, 2 * MARGIN * self.policy.window_s)

    def _room_wait(self, session: Session, kind: str, now: dt.datetime, reservation_id) -> float:
        """Seconds until a call of ``kind`` keeps every limit against the calls made up
        to now (0: it does now). Of the windows holding ``now``, the one ending at
        ``now`` holds the most past calls, so that one window decides."""
        limits = [(None, self.policy.calls)]
        if kind == CREATE:
            limits.append((CREATE, self.policy.creations_per_window))
        wait_s = 0.0
        for of_kind, cap in limits:
            query = (
                select(ApiCall.at)
                .where(
                    in_window(ApiCall.at, now, self._span()),
                    # made, not merely planned: a planned slot whose message is late has
                    # not been used, and is checked here itself when it is
                    ApiCall.used_at.is_not(None),
                    ApiCall.id != reservation_id,
                )
                .order_by(ApiCall.at)
            )
            if of_kind is not None:
                query = query.where(ApiCall.kind == of_kind)
            count = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
            if count + 1 > cap:
                # the call that must leave the window first for there to be room
                leaving = session.execute(query.offset(count - cap).limit(1)).scalar_one()
                wait_s = max(wait_s, (leaving + self._span() - now).total_seconds())
        return wait_s

    def _spacing_wait(self, session: Session, now: dt.datetime) -> float:
        last = session.execute(
            select(func.max(ApiCall.used_at)).where(ApiCall.kind == CREATE)
        ).scalar_one()
        if last is None:
            return 0.0
        return self.policy.min_interval_s - (now - last).total_seconds()

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
        held = getattr(self._held, "outcomes", None)
        if held is not None and retry_after_s is None and reservation.id is not None:
            held.append((reservation.id, status, outcome[:500], remaining))
            return
        if retry_after_s is None:
            self._record_answers([(reservation.id, status, outcome[:500], remaining)])
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
        held: list[tuple[int | None, int | None, str, int | None]] = []
        self._held.outcomes = held
        try:
            yield
        finally:
            self._held.outcomes = None
            if held:
                self._record_held(held)

    def _record_held(self, held: list[tuple[int | None, int | None, str, int | None]]) -> None:
        try:
            self._record_answers(held)
        except (OperationalError, InterfaceError) as error:
            log.warning("the answers of %d API calls were not recorded: %s", len(held), error)

    def _record_answers(self, answers: list[tuple[int | None, int | None, str, int | None]]):
        """Write (call id, status, outcome, remaining) in one round trip; then, if the API
        has fewer calls left (the lowest remaining) than the ledger thinks, tighten it."""
        with autocommit(self._sessions) as connection:
            used = fast_path.record_outcomes(
                connection, [answer[:3] for answer in answers], self.policy.span_s
            )
        remaining = min((r for *_, r in answers if r is not None), default=None)
        if remaining is not None and self.policy.calls - used > remaining:
            self.observe(remaining)

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
                select(
                    ApiCall.id,
                    ApiCall.used_at,
                    ApiCall.job_id,
                    func.extract("epoch", func.clock_timestamp() - ApiCall.used_at).label("age"),
                )
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
        if row is None:
            return None
        return CreateMade(Reservation(row.id, row.used_at, 0.0), row.job_id, float(row.age))

    # -- what the API says ----------------------------------------------------------------
    def observe(self, remaining: int | None, retry_after_s: float | None = None) -> None:
        """Tighten the ledger: the API has fewer calls left than we think (another client
        shares the account), or it told us to wait."""
        with transaction(self._sessions) as session:
            self._observe(session, remaining, retry_after_s)

    def _observe(self, session: Session, remaining: int | None, retry_after_s: float | None):
        if retry_after_s is None and (remaining is None or not self._phantoms(session, remaining)):
            return  # the API agrees with the ledger: no lock taken (the common case)
        now = self._lock(session)
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
                insert(ApiCall), [{"kind": "external", "at": now, "used_at": now}] * phantom
            )

    def _phantoms(self, session: Session, remaining: int) -> int:
        """Calls the API counts that the ledger does not (made by another client)."""
        return max(0, (self.policy.calls - self._count_in_window(session)) - remaining)

    def used_in_window(self) -> int:
        """Calls reserved in the last window up to now (for figures and status)."""
        with self._sessions() as session:
            return self._count_in_window(session)

    # -- internals -----------------------------------------------------------------------
    def _lock(self, session: Session) -> dt.datetime:
        session.execute(select(func.pg_advisory_xact_lock(LEDGER_LOCK)))
        return session.execute(select(func.clock_timestamp())).scalar_one()

    def _span(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.policy.span_s)

    def _count_in_window(self, session: Session) -> int:
        """Calls in the window that ends now (the database's clock)."""
        return session.execute(
            select(func.count()).where(in_window(ApiCall.at, func.clock_timestamp(), self._span()))
        ).scalar_one()

    def _blocked_until(self, session: Session) -> dt.datetime | None:
        return session.execute(
            select(QuotaState.blocked_until).where(QuotaState.id == 1)
        ).scalar_one_or_none()

    def _limits(
        self, session: Session, kind: str, now: dt.datetime
    ) -> list[tuple[list[dt.datetime], int]]:
        """(sorted reserved times, cap) for every limit a call of ``kind`` must keep."""
        rows = session.execute(
            select(ApiCall.at, ApiCall.kind).where(ApiCall.at > now - self._span())
        ).all()
        limits = [(sorted(at for at, _ in rows), self.policy.calls)]
        if kind == CREATE:
            creations = sorted(at for at, k in rows if k == CREATE)
            limits.append((creations, self.policy.creations_per_window))
        return limits

    def _earliest_slot(
        self,
        session: Session,
        kind: str,
        now: dt.datetime,
        earliest: dt.datetime,
        ordered: bool = True,
    ) -> dt.datetime:
        blocked = self._blocked_until(session)
        earliest = max(earliest, now, blocked or earliest)
        if kind != CREATE and self._far_from_cap(session, earliest):
            return earliest
        if kind == CREATE and ordered:
            earliest = max(earliest, self._next_create_time(session))
        return first_valid(self._limits(session, kind, now), earliest, self._span())

    def _far_from_cap(self, session: Session, slot: dt.datetime) -> bool:
        """Fewer than ``calls - 1`` calls reserved within a window either side of ``slot``:
        then every window holding ``slot`` has room, without looking at each (the common
        case, counted by the index on ``at`` instead of loading every call)."""
        span = self._span()
        around = session.execute(
            select(func.count()).where(ApiCall.at > slot - span, ApiCall.at < slot + span)
        ).scalar_one()
        return around + 1 <= self.policy.calls

    def _next_create_time(self, session: Session) -> dt.datetime:
        last = session.execute(
            select(func.max(ApiCall.at)).where(ApiCall.kind == CREATE)
        ).scalar_one()
        if last is None:
            return dt.datetime.min.replace(tzinfo=dt.UTC)
        return last + dt.timedelta(seconds=self.policy.min_interval_s)
