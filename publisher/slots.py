"""The creation slot a pack waits for, taken from the quota ledger.

RabbitMQ expires messages from the head of the wait queue only, so no pack may park
for a slot earlier than the one planned last: expirations then never decrease."""

from __future__ import annotations

from shared.db.jobs import TrackingJobRow
from shared.quota import CREATE, QuotaLedger, Reservation


class Slots:
    def __init__(self, ledger: QuotaLedger, sleep_max_s: float):
        self._ledger = ledger
        self._sleep_max_s = sleep_max_s

    def for_pack(self, leader: TrackingJobRow) -> Reservation:
        """The pack's creation slot: the one planned for it; else a free one close
        enough to wait for in place (it may fall between planned slots); else the next
        slot in order."""
        planned = self._ledger.claim(leader.custom_id)
        if planned is not None:
            return planned
        near = self.near(leader)
        if near.id is not None:
            return near
        return self._ledger.plan(CREATE, leader.custom_id)

    def near(self, leader: TrackingJobRow) -> Reservation:
        """A slot free within the time a wait is slept in place (its ``id`` None if none)."""
        return self._ledger.plan_near(leader.custom_id, within_s=self._sleep_max_s)

    def parking(self, leader: TrackingJobRow, not_before_s: float = 0.0) -> Reservation:
        """The slot a pack parks for: the one planned for it if it is no earlier than
        ``not_before_s`` and no earlier than the slot planned last; else the next slot
        in order (after every planned one), the old one given back (a pack has one slot
        at a time)."""
        planned = self._ledger.claim(leader.custom_id)
        if planned is not None:
            if planned.wait_s >= max(not_before_s, self.last_planned_wait_s()):
                return planned
            self._ledger.release(leader.custom_id)
        return self._ledger.plan(CREATE, leader.custom_id, not_before_s=not_before_s)

    def wait_for(self, leader: TrackingJobRow) -> float:
        """How long a member of ``leader``'s pack waits, parked, for its scraping job:
        until the pack's slot and the slot planned last, whichever is later (a pack being
        created has none)."""
        planned = self._ledger.claim(leader.custom_id)
        latest_s = self.last_planned_wait_s()
        if planned is None and not latest_s:
            return self._sleep_max_s
        return max(planned.wait_s if planned else 0.0, latest_s)

    def last_planned_wait_s(self) -> float:
        """How far ahead the slot planned last is (0: none is ahead)."""
        latest = self._ledger.latest_planned()
        return latest[1].wait_s if latest else 0.0

    def latest_planned(self) -> tuple[str, Reservation] | None:
        """The custom_id and slot of the pack planned last, if one is ahead."""
        return self._ledger.latest_planned()
