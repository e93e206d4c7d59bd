"""The quota's values: its policy, a reserved call, and what a create call made."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.settings import Settings

CREATE = "create"
#: calls the API counted that the ledger had not (another client of the account)
EXTERNAL = "external"
MARGIN = 0.01  # of the window: calls arrive a little after they are reserved
#: ...and at least this long: the time from reservation to arrival is a network's (and a
#: busy or just-started process's), not a share of the window. It matters only when tests
#: and benchmarks compress time 100x: 0.1 s let a create arrive inside the simulator's
#: window once, from a publisher just taking over on a loaded machine.
MIN_MARGIN_S = 0.25


@dataclass(frozen=True)
class Reservation:
    """A reserved call: ``at`` is when it may be made; ``wait_s`` how long from now.
    ``id`` None: nothing was reserved, and ``at`` says when to ask again."""

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
    scraping_job_id: int | None
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
    def span(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.span_s)

    @property
    def creations_per_window(self) -> int:
        """Each job costs its creation and ``followups_per_job`` calls after it, so
        creations may take 1 / (1 + F) of a window: the rest is the follow-ups' room."""
        return self.creations_with(self.followups_per_job)

    def creations_with(self, followups_per_job: float) -> int:
        """Creations per window when each job costs ``followups_per_job`` follow-ups
        (never fewer than the settings say)."""
        per_job = 1 + max(float(self.followups_per_job), followups_per_job)
        return max(1, int(self.calls / per_job))

    def caps(self, kind: str, followups_per_job: float = 0.0) -> list[tuple[str | None, int]]:
        """Every (kind counted, or None for all calls; cap per window) a call of ``kind``
        must keep; creations with jobs costing ``followups_per_job`` (see
        :meth:`creations_with`)."""
        if kind == CREATE:
            return [(None, self.calls), (CREATE, self.creations_with(followups_per_job))]
        return [(None, self.calls)]
