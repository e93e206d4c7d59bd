"""The quota between tasks: the refresh must not starve the tracking-number task.

While a task that seeks tracking numbers has a backlog (its last pass took all it could),
a task that does not (the Japan Post refresh) gets a pass only while its creations, the
one it would add counted, stay within ``REFRESH_MAX_SHARE`` of the creations of the
window (made, or planned ahead of now), and only once the publisher holds less than one
of its packs. So the tracking-number task keeps at least the rest, three quarters by
default; without its backlog the refresh may use every slot the quota has.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from shared.db.models import ApiCall
from shared.tasks import TaskConfig
from shared.webscraper.quota import CREATE


class Share:
    def __init__(self, sessions: sessionmaker[Session], window_s: float, max_share: float):
        self._sessions = sessions
        self._window_s = window_s
        self.max_share = max_share

    def creations(self, task: TaskConfig) -> tuple[int, int]:
        """(the task's creations, all creations) of the window ending now, with those
        planned ahead."""
        since = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, self._window_s)
        mine = ApiCall.custom_id.startswith(task.custom_id_prefix, autoescape=True)
        with self._sessions() as session:
            row = session.execute(
                select(func.count().filter(mine), func.count()).where(
                    ApiCall.kind == CREATE, ApiCall.at > since
                )
            ).one()
        return int(row[0]), int(row[1])

    def allows(self, task: TaskConfig, others_backlogged: bool) -> bool:
        """Whether ``task`` may have a pass now, as far as the share goes."""
        if task.seeks_number or not others_backlogged:
            return True
        mine, total = self.creations(task)
        return (mine + 1) <= self.max_share * (total + 1)
