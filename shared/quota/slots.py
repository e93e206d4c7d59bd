"""Where the next call of a kind can go: the earliest moment that keeps every cap of
every window holding it (the arithmetic is :func:`shared.quota.windows.first_valid`),
read under the ledger's lock."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.db.models import ApiCall
from shared.quota.store import blocked_until
from shared.quota.values import CREATE, EXTERNAL, QuotaPolicy
from shared.quota.windows import around, first_valid, in_window


class SlotFinder:
    """The ledger's reading of the calls around a moment, for ``policy``."""

    def __init__(self, policy: QuotaPolicy):
        self.policy = policy

    def limits(
        self, session: Session, kind: str, now: dt.datetime
    ) -> list[tuple[list[dt.datetime], int]]:
        """(sorted reserved times, cap) for every limit a call of ``kind`` must keep."""
        rows = session.execute(
            select(ApiCall.at, ApiCall.kind).where(ApiCall.at > now - self.policy.span)
        ).all()
        return [
            (sorted(at for at, k in rows if of_kind in (None, k)), cap)
            for of_kind, cap in self.caps(session, kind, now)
        ]

    def caps(self, session: Session, kind: str, now: dt.datetime) -> list[tuple[str | None, int]]:
        """The policy's caps, the creations' share sized by what jobs have cost: follow-up
        calls per creation in the window ending now, once it holds enough creations to
        say (a pack with problem pages costs a call or more per page of them, so the
        share the settings give may be too large to leave room for every follow-up)."""
        if kind != CREATE:
            return self.policy.caps(kind)
        creates, followups = session.execute(
            select(
                func.count().filter(ApiCall.kind == CREATE),
                func.count().filter(ApiCall.kind.not_in((CREATE, EXTERNAL))),
            ).where(in_window(ApiCall.at, now, self.policy.span), ApiCall.used_at.is_not(None))
        ).one()
        enough = creates >= max(2, self.policy.creations_per_window // 4)
        return self.policy.caps(kind, followups / creates if enough else 0.0)

    def earliest_slot(
        self,
        session: Session,
        kind: str,
        now: dt.datetime,
        earliest: dt.datetime,
        ordered: bool = True,
    ) -> dt.datetime:
        blocked = blocked_until(session)
        earliest = max(earliest, now, blocked or earliest)
        if kind != CREATE and self.far_from_cap(session, earliest):
            return earliest
        if kind == CREATE and ordered:
            earliest = max(earliest, self.next_create_time(session, now))
        return first_valid(self.limits(session, kind, now), earliest, self.policy.span)

    def far_from_cap(self, session: Session, slot: dt.datetime) -> bool:
        """Every window holding ``slot`` has room (see :func:`around`)."""
        count = select(func.count()).where(around(ApiCall.at, slot, self.policy.span))
        return session.execute(count).scalar_one() + 1 <= self.policy.calls

    def recent(self, now: dt.datetime):
        """Calls that can bear on the spacing of creations (found by the index on ``at``;
        a made call's ``at`` is its ``used_at``)."""
        back = max(self.policy.span_s, self.policy.min_interval_s)
        return ApiCall.at > now - dt.timedelta(seconds=back)

    def next_create_time(self, session: Session, now: dt.datetime) -> dt.datetime:
        last = session.execute(
            select(func.max(ApiCall.at)).where(ApiCall.kind == CREATE, self.recent(now))
        ).scalar_one()
        if last is None:
            return dt.datetime.min.replace(tzinfo=dt.UTC)
        return last + dt.timedelta(seconds=self.policy.min_interval_s)
