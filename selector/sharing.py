"""The quota between tasks: the refresh must not starve the tracking-number task.

While a task that seeks tracking numbers has a backlog (its last pass took all it could),
a task that does not (the Japan Post refresh) gets a pass only while its creations, the
one it would add counted, stay within ``REFRESH_MAX_SHARE`` of the creations of the
window (made, or planned ahead of now), only once every job of it has its creation slot
planned, and then a pass of one pack (see ``selector.__main__.Feed``). So the
tracking-number task keeps at least the rest, three quarters by default; without its
backlog the refresh may use every slot the quota has.
"""

from __future__ import annotations

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session, aliased, sessionmaker

from shared.db.jobs import count_unpublished
from shared.db.models import ApiCall, TrackingJob
from shared.quota import CREATE, QuotaPolicy, creations_by_prefix, in_window_or_ahead
from shared.tasks import TaskConfig


class Share:
    def __init__(self, sessions: sessionmaker[Session], policy: QuotaPolicy, max_share: float):
        self._sessions = sessions
        self._span = policy.span  # the ledger's window, margin included
        self.max_share = max_share

    def creations(self, task: TaskConfig) -> tuple[int, int]:
        """(the task's creations, all creations) of the window ending now, with those
        planned ahead."""
        now = select(func.clock_timestamp()).scalar_subquery()
        with self._sessions() as session:
            made = creations_by_prefix(session, in_window_or_ahead(ApiCall.at, now, self._span))
        return made.get(task.custom_id_prefix, 0), sum(made.values())

    def unplanned(self, task: TaskConfig) -> int:
        """Jobs of ``task`` not given a scraping job whose pack has no creation slot yet
        (the publisher has not packed them, or not planned their pack): until it has,
        the share does not count them."""
        leader = aliased(TrackingJob)
        planned = (
            exists()
            .where(leader.id == TrackingJob.pack_of)
            .where(ApiCall.kind == CREATE, ApiCall.custom_id == leader.custom_id)
        )
        with self._sessions() as session:
            return count_unpublished(session, task.name, ~planned)

    def allows(self, task: TaskConfig) -> bool:
        """Whether ``task``, held to its share, may have a pass (of one pack) now."""
        if self.unplanned(task):
            return False
        mine, total = self.creations(task)
        return (mine + 1) <= self.max_share * (total + 1)
