"""What the publisher does with the candidates of a group once it has decided: park them
for a slot, announce their scraping job, or fail their pack with the reason."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from publisher.packs import Packs
from shared.contracts import JobPublished
from shared.db.jobs import TrackingJobRow
from shared.faults import crash_point
from shared.logs import TAG
from shared.messaging.consuming import Delivery, Reject
from shared.messaging.envelope import new_envelope
from shared.messaging.publishing import Outgoing
from shared.messaging.topology import JOB_PUBLISHED, PUBLISHER_WAIT
from shared.quota import QuotaLedger
from shared.tasks import TaskConfig

log = logging.getLogger("trackfill.publisher")


@dataclass
class InHand:
    """A delivery of the publisher's group, its job, and its outcome once decided."""

    index: int
    delivery: Delivery
    task: TaskConfig
    job: TrackingJobRow
    #: None: acked (handled, or parked); else what the consumer loop does with it
    outcome: BaseException | None = None


class Outcomes:
    def __init__(self, packs: Packs, ledger: QuotaLedger, max_parkings_logged: int):
        self._packs = packs
        self._ledger = ledger
        self._max_parkings_logged = max_parkings_logged

    @staticmethod
    def park(members: list[InHand], wait_s: float, **notes) -> None:
        """Park each member in the wait queue for ``wait_s``, with ``notes`` as headers."""
        for member in members:
            member.delivery.park(wait_s, **notes)

    def log_parkings(self, item: InHand) -> None:
        parkings = item.delivery.deaths(PUBLISHER_WAIT)
        if parkings > self._max_parkings_logged:
            log.warning("%s %s has been parked %d times", TAG, item.job.custom_id, parkings)

    def fail(self, leader: TrackingJobRow, reason: str):
        """Fail the pack with ``reason``, give back its unused slots, and refuse the
        message with the reason."""
        self._packs.fail(leader, reason)
        self._ledger.release(leader.custom_id)
        raise Reject(f"{leader.custom_id}: {reason}")

    def give_up(self, leader: TrackingJobRow, attempts: int, reason: str):
        self.fail(leader, f"create failed after {attempts} attempts: {reason}")

    @staticmethod
    def announce(jobs: list[TrackingJobRow], task: TaskConfig, delivery: Delivery) -> None:
        """``job.published`` for each job, confirmed together."""
        outgoing = [
            Outgoing.of(
                JOB_PUBLISHED,
                task.name,
                new_envelope(JOB_PUBLISHED, _published(job, task).to_payload()),
                mandatory=False,
            )
            for job in jobs
        ]
        delivery.publisher.publish_many(outgoing)
        crash_point("publisher:before-ack")


def _published(job: TrackingJobRow, task: TaskConfig) -> JobPublished:
    return JobPublished(
        task=task.name,
        custom_id=job.custom_id,
        scraping_job_id=job.scraping_job_id,
        batch_uuid=job.batch_uuid,
        target_url=job.target_url,
        purchasing_id=job.purchasing_id,
    )
