"""The create call of a frozen pack, and what follows its answer.

Order of effects, so the process can die anywhere without a second scraping job:
1. the pack is frozen (every member ``publishing``, committed) and the ledger marks the
   call used;
2. the API call;
3. the job id is stored on every member (``pending``), then ``job.published`` is
   announced for each, then the messages are acked.
"""

from __future__ import annotations

import logging

from publisher.outcomes import InHand
from publisher.packs import Frozen
from publisher.parts import PackParts
from publisher.settling import LAST_FAILURE
from shared.db.jobs import TrackingJobRow
from shared.faults import crash_point
from shared.logs import TAG
from shared.quota import Reservation
from shared.webscraper.client import ApiError, QuotaWait, RateLimited, Retryable

log = logging.getLogger("trackfill.publisher")


class Creation:
    def __init__(self, parts: PackParts):
        self._parts = parts

    def create(
        self, leader: TrackingJobRow, reservation: Reservation, members: list[InHand]
    ) -> None:
        """Create the pack's scraping job on ``reservation`` and announce it; a wait, an
        outage or a refusal parks, retries or fails the pack instead."""
        frozen = self._parts.packs.freeze(leader)
        if frozen is None:
            log.info("%s %s changed meanwhile; nothing to publish", TAG, leader.custom_id)
            return
        crash_point("publisher:before-create-call")
        created = self._call(leader, reservation, members, frozen)
        if created is None:
            return
        crash_point("publisher:after-create-call")
        stored = self._parts.packs.store(leader, created)
        crash_point("publisher:after-store")
        log.info(
            "%s Successfully published: %s with %d jobs (job_id=%s)",
            TAG,
            leader.custom_id,
            len(stored),
            created,
        )
        self._parts.outcomes.announce(stored, members[0].task, members[0].delivery)

    def _call(
        self,
        leader: TrackingJobRow,
        reservation: Reservation,
        members: list[InHand],
        frozen: Frozen,
    ) -> int | None:
        """The new scraping job's id; None when the members were parked instead."""
        task = members[0].task
        log.info(
            "%s Publishing %d URLs: task=%s, custom_id=%s",
            TAG,
            len(frozen.start_urls),
            task.name,
            leader.custom_id,
        )
        try:
            payload = _payload(self._parts.config.sitemaps[task.name], leader, frozen)
            return int(self._parts.client.create_job(payload, reservation)["id"])
        except QuotaWait as wait:  # too late for its slot, or a 429: a new slot (after it)
            if isinstance(wait, RateLimited):
                log.warning("%s %s: %s", TAG, leader.custom_id, wait)
            self._parts.outcomes.park(members, self._parts.slots.parking(leader).wait_s)
        except Retryable as error:
            self._retry_or_fail(leader, frozen.attempt, str(error), members)
        except ApiError as error:  # refused: the same payload would be refused again
            self._parts.outcomes.fail(leader, f"create refused: {error}")
        return None

    def _retry_or_fail(
        self, leader: TrackingJobRow, attempt: int, reason: str, members: list[InHand]
    ):
        if attempt >= self._parts.config.max_attempts:
            self._settle_last(leader, attempt, reason, members)
            return
        backoff = self._parts.config.retry_base_s * 2 ** (attempt - 1)
        log.warning(
            "%s %s: attempt %d failed (%s); again in at least %.1fs",
            TAG,
            leader.custom_id,
            attempt,
            reason,
            backoff,
        )
        self._parts.outcomes.park(
            members, self._parts.slots.parking(leader, not_before_s=backoff).wait_s
        )

    def _settle_last(
        self, leader: TrackingJobRow, attempt: int, reason: str, members: list[InHand]
    ):
        """The last attempt failed: give up unless its create may have made the job,
        which is settled first (the members come back after the settling delay)."""
        if self._parts.ledger.answers.create_made(leader.custom_id) is None:
            self._parts.outcomes.give_up(leader, attempt, reason)
        log.warning(
            "%s %s: the last attempt failed (%s) and may have made the job; settling it",
            TAG,
            leader.custom_id,
            reason,
        )
        wait_s = self._parts.slots.parking(leader, self._parts.config.settle_after_s).wait_s
        self._parts.outcomes.park(members, wait_s, **{LAST_FAILURE: reason[:500]})


def _payload(sitemap_id: int, leader: TrackingJobRow, frozen: Frozen) -> dict:
    """The seed's create-job body, with the pack's URLs and its leader's custom_id."""
    return {
        "sitemap_id": sitemap_id,
        "driver": "fulljs",
        "page_load_delay": 2000,
        "request_interval": 2000,
        "start_urls": frozen.start_urls,
        "custom_id": leader.custom_id,
    }
