"""The quota ledger: every call to the scraper's API is reserved here before it is made.

It lives in PostgreSQL (table ``api_call``), changed only under an advisory lock and on
the database's clock, so every process and replica shares one view that survives
restarts. The rule: no window of ``window_s`` (plus a margin for the time from
reservation to arrival) holds more than ``calls`` reservations. A creation that cannot
happen now is planned on the earliest slot that keeps it, ``min_interval_s`` after the
previous one, in increasing order (parked messages expire only from a queue's head).
Creations take only their share of a window, the rest being the room for the follow-up
calls their jobs need later (see :meth:`QuotaLedger._caps`); follow-ups may use the whole
window. What the API says (see :mod:`shared.quota.answers`) only tightens the ledger.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from shared.db.models import ApiCall
from shared.db.session import autocommit, transaction
from shared.quota import fast_path
from shared.quota.answers import Answers
from shared.quota.slots import SlotFinder
from shared.quota.store import blocked_until, count_in_window, lock
from shared.quota.values import CREATE, MARGIN, QuotaPolicy, Reservation
from shared.quota.windows import in_window

log = logging.getLogger("trackfill.quota")
#: a creation slot reserved and not yet used
_PLANNED_CREATE = (ApiCall.kind == CREATE) & ApiCall.used_at.is_(None)


def creations_by_prefix(db: Any, when: Any) -> dict[str, int]:
    """Creations whose time meets ``when`` (a condition on ``ApiCall.at``: a window, or
    since a moment, planned ones included), by custom-id prefix (``owryt-``, ``jpt10-``:
    the task of each, see :mod:`shared.tasks`)."""
    prefix = func.split_part(ApiCall.custom_id, "-", 1) + "-"
    rows = db.execute(
        select(prefix, func.count()).where(ApiCall.kind == CREATE, when).group_by(prefix)
    ).all()
    return {str(p): int(n) for p, n in rows if p}


class QuotaLedger:
    """Reservations of calls (reserve, plan, claim, mark used), the API's answers
    (:attr:`answers`) and the counts of the window that ends now."""

    def __init__(self, sessions: sessionmaker[Session], policy: QuotaPolicy):
        self._sessions = sessions
        self.policy = policy
        self.answers = Answers(sessions, policy)
        self._finder = SlotFinder(policy)

    # -- reservations ------------------------------------------------------------------
    def reserve(
        self,
        kind: str,
        custom_id: str | None = None,
        use: bool = False,
        scraping_job_id: int | None = None,
    ) -> Reservation:
        """Reserve one call of ``kind`` for now, if it can be made now; else nothing is
        reserved and the answer (``id`` None) says when to ask again. With ``use`` it is
        also marked used (the caller makes it at once, as after :meth:`mark_used`).
        ``scraping_job_id``: the scraping job a follow-up call is about (``trackfill job``)."""
        if kind != CREATE:
            with autocommit(self._sessions) as connection:
                made = fast_path.reserve_now(
                    connection, kind, custom_id, use, self.policy.span, self.policy.calls,
                    scraping_job_id,
                )  # fmt: skip
            if made is not None:
                return Reservation(made[0], made[1], 0.0)
        return self._reserve(
            kind,
            custom_id,
            0.0,
            ordered=True,
            within_s=0.0,
            use=use,
            scraping_job_id=scraping_job_id,
        )

    def plan(self, kind: str, custom_id: str | None = None, not_before_s: float = 0.0):
        """Reserve the earliest slot that keeps the rule, no earlier than ``not_before_s``
        from now, possibly in the future. Creations are planned in order: each slot comes
        after every planned one, so parked messages expire in the order they were parked."""
        return self._reserve(kind, custom_id, not_before_s, ordered=True, within_s=None)

    def plan_near(self, custom_id: str, within_s: float, not_before_s: float = 0.0):
        """A creation slot no more than ``within_s`` ahead, out of order (it may fall
        between planned slots, so it is waited for in place, not parked); if there is
        none, nothing is reserved and the answer says when the earliest would be."""
        return self._reserve(CREATE, custom_id, not_before_s, ordered=False, within_s=within_s)

    def _reserve(
        self,
        kind: str,
        custom_id: str | None,
        not_before_s: float,
        ordered: bool,
        within_s: float | None,
        use: bool = False,
        scraping_job_id: int | None = None,
    ) -> Reservation:
        with transaction(self._sessions) as session:
            now = lock(session)
            earliest = now + dt.timedelta(seconds=not_before_s)
            slot = self._finder.earliest_slot(session, kind, now, earliest, ordered)
            wait_s = (slot - now).total_seconds()
            if within_s is not None and wait_s > within_s:
                return Reservation(None, slot, wait_s)
            used_at = now if use and wait_s <= 0 else None
            reservation_id = session.execute(
                insert(ApiCall)
                .values(
                    kind=kind,
                    at=slot,
                    custom_id=custom_id,
                    used_at=used_at,
                    scraping_job_id=scraping_job_id,
                )
                .returning(ApiCall.id)
            ).scalar_one()
            return Reservation(reservation_id, slot, wait_s)

    def claim(self, custom_id: str) -> Reservation | None:
        """The unused planned creation slot of ``custom_id``: ready if its time has come
        (late or not: :meth:`mark_used` has the last word), not ready if it is still
        ahead. One the API has since blocked is dropped and None returned."""
        with transaction(self._sessions) as session:
            now = lock(session)
            row = session.execute(
                select(ApiCall.id, ApiCall.at)
                .where(_PLANNED_CREATE, ApiCall.custom_id == custom_id)
                .order_by(ApiCall.at.desc())
                .limit(1)
            ).first()
            if row is None:
                return None
            wait_s = (row.at - now).total_seconds()
            blocked = blocked_until(session)
            if blocked and blocked > now:
                session.execute(delete(ApiCall).where(ApiCall.id == row.id))
                return None
            tolerance = self.policy.window_s * MARGIN
            return Reservation(row.id, row.at, wait_s if wait_s > tolerance else 0.0)

    def release(self, custom_id: str) -> None:
        """Give back the creation slots planned for ``custom_id`` and not used (a later
        one replaces them, or its job was found without a create), so they hold no room
        in their windows."""
        with transaction(self._sessions) as session:
            session.execute(delete(ApiCall).where(_PLANNED_CREATE, ApiCall.custom_id == custom_id))

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
                .where(_PLANNED_CREATE)
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
                now = lock(session)
                wait_s = self._spacing_wait(session, now) if kind == CREATE else 0.0
                if wait_s <= 0:
                    wait_s = self._room_wait(session, kind, now, reservation.id)
                    room_deadline = room_deadline or now + dt.timedelta(seconds=self.use_wait_s)
                    unused = session.execute(
                        select(ApiCall.id).where(
                            ApiCall.id == reservation.id, ApiCall.used_at.is_(None)
                        )
                    ).scalar_one_or_none()
                    blocked = blocked_until(session)
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
        wait_s = 0.0
        for of_kind, cap in self._finder.caps(session, kind, now):
            query = (
                select(ApiCall.at)
                .where(
                    in_window(ApiCall.at, now, self.policy.span),
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
                wait_s = max(wait_s, (leaving + self.policy.span - now).total_seconds())
        return wait_s

    def _spacing_wait(self, session: Session, now: dt.datetime) -> float:
        last = session.execute(
            select(func.max(ApiCall.used_at)).where(
                ApiCall.kind == CREATE, self._finder.recent(now)
            )
        ).scalar_one()
        if last is None:
            return 0.0
        return self.policy.min_interval_s - (now - last).total_seconds()

    def creations_by_prefix(self) -> dict[str, int]:
        """Creations in the last window up to now, by custom-id prefix (see
        :func:`creations_by_prefix`)."""
        now = select(func.clock_timestamp()).scalar_subquery()
        with self._sessions() as session:
            return creations_by_prefix(session, in_window(ApiCall.at, now, self.policy.span))

    def used_in_window(self) -> int:
        """Calls reserved in the last window up to now (for figures and status)."""
        with self._sessions() as session:
            return count_in_window(session, self.policy.span)
