"""Candidates, in the groups that arrive together: pack them, get a creation slot, create.

When a creation slot comes, every candidate then waiting goes into one scraping job, up
to ``PUBLISH_MAX_URLS_PER_JOB`` (docs/packing.md): the candidates that arrived
together (the consumer's prefetch is a pack's size), and those that were parked for
that slot and come back with it. A candidate is never held back for company: with a
slot free now it goes at once; without one it joins the pack planned last, if it has
room (its slot is the latest, so the wait queue's expirations never decrease), or leads
a new one on the next slot, and waits for it parked.

The create call and its order of effects are :mod:`publisher.creating`; a pack that
comes back with a create of unknown effect settles it first (:mod:`publisher.settling`).
The handling holds the locks of its jobs and of
their packs, so a handler that outlived its message (a lost connection, the stop grace)
and the replica that got the message again never work on one at once.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict

from publisher.config import PublisherConfig
from publisher.creating import Creation
from publisher.jobs import CandidateJobs, JobLocks
from publisher.outcomes import InHand, Outcomes
from publisher.packs import Packs
from publisher.parts import PackParts
from publisher.settling import LAST_FAILURE, LostCreates
from publisher.slots import Slots
from shared.contracts import CandidateFound
from shared.db.jobs import TrackingJobRow
from shared.db.statuses import UNPUBLISHED
from shared.logs import TAG
from shared.messaging.consuming import Delivery, Reject, Transient
from shared.quota import QuotaLedger, Reservation
from shared.tasks import TRACKING_TASK_CONFIGS, TaskConfig, task_for_custom_id
from shared.webscraper.client import WebScraperClient

log = logging.getLogger("trackfill.publisher")
__all__ = ["CandidateHandler", "PublisherConfig"]


class CandidateHandler:
    """The publisher's handler of a group of candidates: it sorts them by pack and hands
    each pack to its parts (slots, creation, settling, outcomes), built here."""

    def __init__(
        self,
        jobs: CandidateJobs,
        packs: Packs,
        ledger: QuotaLedger,
        client: WebScraperClient,
        config: PublisherConfig,
    ):
        self._jobs = jobs
        self._packs = packs
        self._config = config
        self._slots = Slots(ledger, config.sleep_max_s)
        self._outcomes = Outcomes(packs, ledger, config.max_parkings_logged)
        parts = PackParts(packs, ledger, client, config, self._slots, self._outcomes)
        self._creation = Creation(parts)
        self._lost_creates = LostCreates(parts)

    def __call__(self, deliveries: list[Delivery]) -> list[BaseException | None]:
        """One outcome per delivery (see :data:`shared.messaging.consuming.GroupHandler`)."""
        outcomes: list[BaseException | None] = [None] * len(deliveries)
        in_hand: list[InHand] = []
        known = self._jobs.by_custom_ids(
            [d.message.custom_id for d in deliveries if d.message.custom_id]
        )
        for i, delivery in enumerate(deliveries):
            try:
                message: CandidateFound = delivery.message
                task = TRACKING_TASK_CONFIGS[message.task]
                if task.name not in self._config.sitemaps:
                    raise Reject(
                        f"task {task.name} is off in this publisher "
                        f"({task.sitemap_setting or 'its sitemap'} is not set)"
                    )
                job = known.get(message.custom_id or "") or self._jobs.resolve(
                    message, task, delivery.envelope.id
                )
                _same_task(job, task)
                in_hand.append(InHand(i, delivery, task, job))
            except Exception as error:  # noqa: BLE001 - each delivery's own outcome
                outcomes[i] = error
        with self._jobs.locks() as locks:
            fresh, packs = self._sort(in_hand, locks)
            for leader_id, members in packs.items():
                self._settle(lambda m=members, lid=leader_id: self._pack(lid, m), members)
            for of_task in _by_task(fresh):  # a pack is of one task (one sitemap)
                self._settle(lambda f=of_task: self._fresh(f), of_task)
        for item in in_hand:
            outcomes[item.index] = item.outcome
        return outcomes

    @staticmethod
    def _settle(work, members: list[InHand]) -> None:
        """Run ``work`` for ``members``; an error is the outcome of each of them not
        settled otherwise (a refusal only of the first: the others' jobs have failed
        with its reason)."""
        try:
            work()
        except Reject as refused:
            members[0].outcome = refused
        except Exception as error:  # noqa: BLE001 - the outcome of each
            for member in members:
                member.outcome = member.outcome or error

    def _sort(
        self, in_hand: list[InHand], locks: JobLocks
    ) -> tuple[list[InHand], dict[int, list[InHand]]]:
        """Lock each job (and its pack); the fresh ones, and the others by pack. A job
        that another handler holds waits (a transient outcome: retried in place)."""
        fresh: list[InHand] = []
        packs: dict[int, list[InHand]] = defaultdict(list)
        held = locks.take(sorted({item.job.id for item in in_hand}))
        current = self._jobs.by_ids(sorted(held))  # as the locks' previous holders left them
        held |= locks.take(sorted({job.pack_of for job in current.values() if job.pack_of}))
        for item in in_hand:
            job = current.get(item.job.id, item.job)
            if job.id not in held or (job.pack_of and job.pack_of not in held):
                item.outcome = Transient(f"{job.custom_id} is in another publisher's hands")
                continue
            item.job = job
            self._outcomes.log_parkings(item)
            if item.job.scraping_job_id is not None:
                # again: the process may have died after storing the job id
                self._outcomes.announce([item.job], item.task, item.delivery)
            elif item.job.status not in UNPUBLISHED:
                log.info("%s %s already ended (%s)", TAG, item.job.custom_id, item.job.status)
            elif item.job.pack_of is None:
                fresh.append(item)
            else:
                packs[item.job.pack_of].append(item)
        return fresh, packs

    # -- a pack whose members come back ---------------------------------------------------
    def _pack(self, leader_id: int, members: list[InHand]) -> None:
        leader = self._unpublished(leader_id)
        if leader is None:
            self._orphans(members)  # the pack went on without them, or ended
            return
        if self._lost_creates.adopt_existing(leader, members):
            return
        if leader.publish_attempts >= self._config.max_attempts:  # settled: not created
            reason = str(members[0].delivery.headers.get(LAST_FAILURE) or "no job was made")
            self._outcomes.give_up(leader, leader.publish_attempts, reason)
        reservation = self._slots.for_pack(leader)
        if not reservation.ready and reservation.wait_s <= self._config.sleep_max_s:
            time.sleep(reservation.wait_s)  # heartbeats are served meanwhile
            reservation = self._slots.for_pack(leader)
        if not reservation.ready:
            self._outcomes.park(members, self._slots.parking(leader).wait_s)
            return
        self._creation.create(leader, reservation, members)

    def _orphans(self, members: list[InHand]) -> None:
        """Candidates whose pack went on without them, or that a pack could not take
        (they changed meanwhile; under the leader's row lock this is only a guard):
        each is looked at again as it is now, once; one still unplaced is retried."""
        for member in members:
            member.job = self._jobs.by_id(member.job.id) or member.job
            job = member.job
            if job.scraping_job_id is not None:
                self._outcomes.announce([job], member.task, member.delivery)
            elif job.status not in UNPUBLISHED:
                continue
            elif job.pack_of not in (None, job.id) and (other := self._unpublished(job.pack_of)):
                self._outcomes.park([member], self._slots.wait_for(other))  # it joined another pack
            else:  # handled again, alone, after the back-off
                member.outcome = Transient(f"{job.custom_id} changed while it was being packed")

    def _unpublished(self, leader_id: int) -> TrackingJobRow | None:
        """The pack's leader while the pack has no scraping job and has not ended."""
        leader = self._jobs.by_id(leader_id)
        if leader is None or leader.scraping_job_id is not None or leader.status not in UNPUBLISHED:
            return None
        return leader

    # -- candidates without a pack ----------------------------------------------------------
    def _fresh(self, fresh: list[InHand]) -> None:
        """Pack the fresh candidates: all at once on a slot free now; else into the
        pack planned last while it has room, the rest into new packs on the next slots.
        One whose URL is already in a pack in flight joins that one."""
        fresh = self._attach(fresh)
        while fresh:
            leader = fresh[0].job
            near = self._slots.near(leader)
            if near.id is not None:
                chunk, fresh = self._lead(fresh)
                if not chunk or chunk[0].job.id != leader.id:
                    continue  # the first changed meanwhile: its slot is left to pass
                if not near.ready:
                    time.sleep(near.wait_s)  # a slot this close is waited for in place
                    near = self._slots.for_pack(leader)
                if near.ready:
                    self._creation.create(leader, near, chunk)
                else:
                    self._outcomes.park(chunk, self._slots.parking(leader).wait_s)
                continue
            planned = self._slots.latest_planned()
            taken = self._join(planned, fresh) if planned is not None else []
            if taken:
                joined = {item.job.id for item in taken}
                fresh = [item for item in fresh if item.job.id not in joined]
                continue
            chunk, fresh = self._lead(fresh)
            if chunk:
                self._outcomes.park(chunk, self._slots.parking(chunk[0].job).wait_s)

    def _attach(self, fresh: list[InHand]) -> list[InHand]:
        """Those of ``fresh`` whose URL is in a pack in flight join it (see
        :meth:`Packs.attach`): announced at once if it has its scraping job, else parked
        until its slot; the others, to be packed."""
        if not fresh:
            return fresh
        prefix = fresh[0].task.custom_id_prefix
        attached = {job.id: job for job in self._packs.attach([i.job for i in fresh], prefix)}
        for item in fresh:
            job = attached.get(item.job.id)
            if job is None:
                continue
            item.job = job
            if job.scraping_job_id is not None:
                self._outcomes.announce([job], item.task, item.delivery)
            elif leader := self._unpublished(job.pack_of):
                self._outcomes.park([item], self._slots.wait_for(leader))
            else:  # the pack got its scraping job (or ended) since
                self._orphans([item])
        return [item for item in fresh if item.job.id not in attached]

    def _lead(self, fresh: list[InHand]) -> tuple[list[InHand], list[InHand]]:
        """A new pack of the first candidates (as many as a job takes), led by the
        first; (its members in hand, the rest). One the pack could not take is looked
        at again (see :meth:`_orphans`)."""
        fits = {job.id for job in self._packs.fitting([item.job for item in fresh])}
        chunk = [item for item in fresh if item.job.id in fits]
        rest = [item for item in fresh if item.job.id not in fits]
        led = {job.id: job for job in self._packs.lead([item.job for item in chunk])}
        for item in chunk:
            item.job = led.get(item.job.id, item.job)
        self._orphans([item for item in chunk if item.job.id not in led])
        return [item for item in chunk if item.job.id in led], rest

    def _join(self, planned: tuple[str, Reservation], fresh: list[InHand]) -> list[InHand]:
        """Join the pack of the slot planned last; those of ``fresh`` that joined (they
        are parked until that slot)."""
        custom_id, slot = planned
        if task_for_custom_id(custom_id) != fresh[0].task:
            return []  # another task's pack: these lead their own
        leader = self._jobs.by_custom_id(custom_id)
        if leader is None or leader.pack_of != leader.id:
            return []
        joined = {job.id for job in self._packs.join(leader.id, [item.job for item in fresh])}
        taken = [item for item in fresh if item.job.id in joined]
        self._outcomes.park(taken, slot.wait_s)
        return taken


def _same_task(job: TrackingJobRow, task: TaskConfig) -> None:
    """A job is only ever handled as its own task's (its sitemap, its pack): a candidate
    of another task for it (a manual request for a purchase whose refresh is in
    flight, say) is refused with the reason."""
    own = task_for_custom_id(job.custom_id)
    if own is not task:
        raise Reject(
            f"{job.custom_id} is a job of {own.name if own else 'an unknown task'} in flight, "
            f"not of {task.name}; a request of {task.name} waits for it to end"
        )


def _by_task(items: list[InHand]) -> list[list[InHand]]:
    """``items`` by task, each task's in their order."""
    groups: dict[str, list[InHand]] = defaultdict(list)
    for item in items:
        groups[item.task.name].append(item)
    return list(groups.values())
