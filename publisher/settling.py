"""A create call of unknown effect (no answer, a 5xx, a death right after the answer),
settled for its pack before anything is created again.

The search starts no sooner than twice the call's HTTP timeout after it was made (a
request still being served may yet create its job: the timeout bounds each wait for a
byte, not the server's work) and pages through the whole of ``scraping-jobs`` for the
leader's custom_id, in whatever order the service lists them, each page through the
ledger; stopped by the quota, it goes on from that page, and an outage of the API is
waited out, however long, without counting as an attempt (the last attempt's create is
settled like any other before the pack fails). Only a complete search that does not
find the job means "not created"; a list too long to search fails the pack for an
operator instead.
"""

from __future__ import annotations

import logging

from publisher.outcomes import InHand
from publisher.parts import PackParts
from shared.db.jobs import TrackingJobRow
from shared.logs import TAG
from shared.messaging.consuming import Delivery
from shared.quota import CreateMade
from shared.tasks import TaskConfig
from shared.webscraper.client import ApiError, QuotaWait, Retryable

log = logging.getLogger("trackfill.publisher")
#: a longer job list is not searched (each page is a call): the pack fails for an operator
SEARCH_MAX_PAGES = 20
#: where a search stopped by the quota goes on: "<create call id>:<page>"
SEARCH_AT = "x-trackfill-search-at"
#: how many outages the search for a create call has met: "<create call id>:<count>"
SEARCH_OUTAGES = "x-trackfill-search-outages"
#: the longest back-off between searches during an outage
SEARCH_OUTAGE_MAX_S = 300.0
#: why the last create attempt failed, kept while its effect is settled
LAST_FAILURE = "x-trackfill-last-failure"


class LostCreates:
    """Settles the create call of unknown effect a pack comes back with."""

    def __init__(self, parts: PackParts):
        self._parts = parts

    def adopt_existing(self, leader: TrackingJobRow, members: list[InHand]) -> bool:
        """If an earlier create call for this pack may have worked, settle it first: take
        the id the ledger kept, or look for the job in the job list. True if the pack
        is dealt with (adopted, parked or failed); False: create."""
        made = self._parts.ledger.answers.create_made(leader.custom_id)
        if made is None:
            return False
        found = made.scraping_job_id
        if found is None:
            try:
                found = self._look_for(leader, made, members)
            except _Parked:  # until the search can (go on and) end
                return True
            if found is None:
                return False
            self._parts.ledger.release(leader.custom_id)  # the slot it was parked for is not needed
            log.warning(
                "%s %s: the job created before its answer was lost is %s; adopting it",
                TAG,
                leader.custom_id,
                found,
            )
        stored = self._parts.packs.store(leader, found)
        self._parts.outcomes.announce(stored, members[0].task, members[0].delivery)
        return True

    def _look_for(
        self, leader: TrackingJobRow, made: CreateMade, members: list[InHand]
    ) -> int | None:
        """The id of the job the lost create made; None: not made. Raises
        :class:`_Parked` when the members were parked until the search can go on."""
        if made.age_s < self._parts.config.settle_after_s:
            # the call may still be served: look once its answer could no longer come
            self._park(members, leader, self._parts.config.settle_after_s - made.age_s)
            raise _Parked
        try:
            found = self._search(members[0].delivery, members[0].task, leader, made)
        except _Paused as paused:
            self._park(
                members, leader, paused.wait_s, **{SEARCH_AT: f"{made.call.id}:{paused.page}"}
            )
            raise _Parked from None
        except Retryable as error:  # an outage: not an attempt, the search goes on
            self._search_later(leader, made, members, str(error))
            raise _Parked from None
        except ApiError as error:
            self._parts.outcomes.fail(leader, f"looking for the job failed: {error}")
        if found is None and (
            meanwhile := self._parts.ledger.answers.create_made(leader.custom_id)
        ):
            found = meanwhile.scraping_job_id  # its webhook named it during the search
        self._parts.ledger.answers.record_outcome(
            made.call, None, f"settled: {found or 'not created'}"
        )
        return found

    def _park(
        self, members: list[InHand], leader: TrackingJobRow, not_before_s: float, **notes
    ) -> None:
        """Park the members on the pack's own slot, no sooner than ``not_before_s``."""
        wait_s = self._parts.slots.parking(leader, not_before_s).wait_s
        self._parts.outcomes.park(members, wait_s, **notes)

    def _search_later(
        self, leader: TrackingJobRow, made: CreateMade, members: list[InHand], reason: str
    ) -> None:
        """The API did not answer the search: look again after a back-off (doubling up
        to :data:`SEARCH_OUTAGE_MAX_S`) for as long as the outage lasts, on a slot of the
        pack's own, never counted as a create attempt."""
        call, _, seen = str(members[0].delivery.headers.get(SEARCH_OUTAGES) or "").partition(":")
        outages = (int(seen) if call == str(made.call.id) and seen.isdigit() else 0) + 1
        backoff = min(self._parts.config.retry_base_s * 2 ** (outages - 1), SEARCH_OUTAGE_MAX_S)
        log.warning(
            "%s %s: looking for the job: %s (outage %d, not an attempt); again in at least %.1fs",
            TAG,
            leader.custom_id,
            reason,
            outages,
            backoff,
        )
        self._park(members, leader, backoff, **{SEARCH_OUTAGES: f"{made.call.id}:{outages}"})

    def _search(
        self, delivery: Delivery, task: TaskConfig, leader: TrackingJobRow, made: CreateMade
    ) -> int | None:
        """The id of the job listed under the leader's custom_id, or None when every page
        was read without it. Raises :class:`_Paused` when the quota stops it (it goes on
        from that page), :class:`Reject` (after failing the pack) when the list is too
        long to read whole."""
        call, _, at = str(delivery.headers.get(SEARCH_AT) or "").partition(":")
        page = int(at) if call == str(made.call.id) and at.isdigit() else 1
        last = page
        while page <= last:
            try:
                listing = self._parts.client.list_jobs(
                    page, self._parts.config.sitemaps.get(task.name)
                )
            except QuotaWait as wait:
                raise _Paused(page, wait.wait_s) from None
            for scraping_job in listing.data:
                if scraping_job.get("custom_id") == leader.custom_id:
                    return int(scraping_job["id"])
            last = listing.last_page
            if last > SEARCH_MAX_PAGES:
                reason = (
                    f"create of unknown effect: scraping-jobs has {last} pages, more than "
                    f"the {SEARCH_MAX_PAGES} searched; an operator must look for "
                    f"{leader.custom_id}"
                )
                self._parts.outcomes.fail(leader, reason)
            page += 1
        return None


class _Paused(Exception):
    """A search stopped by the quota at ``page``: go on in ``wait_s``."""

    def __init__(self, page: int, wait_s: float):
        super().__init__(page, wait_s)
        self.page, self.wait_s = page, wait_s


class _Parked(Exception):
    """The members were parked: the settling goes on when they come back."""
