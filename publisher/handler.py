"""Candidates, in the groups that arrive together: pack them, get a creation slot, create.

When a creation slot comes, every candidate then waiting goes into one scraping job, up
to ``PUBLISH_MAX_URLS_PER_JOB`` (CONTRACT.md, Packing): the candidates that arrived
together (the consumer's prefetch is a pack's size), and those that were parked for
that slot and come back with it. A candidate is never held back for company: with a
slot free now it goes at once; without one it joins the pack planned last, if it has
room (its slot is the latest, so the wait queue's expirations never decrease), or leads
a new one on the next slot, and waits for it parked.

Order of effects, so the process can die anywhere without a second scraping job:
1. the pack is frozen (every member ``publishing``, committed) and the ledger marks the
   call used;
2. the API call;
3. the job id is stored on every member (``pending``), then ``job.published`` is
   announced for each, then the messages are acked.
A pack that comes back with a create call of unknown effect (no answer, a 5xx) settles
it before creating again, the last attempt's too: no sooner than twice the call's HTTP
timeout after it was made (a request still being served may yet create its job), it
pages through the whole of ``scraping-jobs`` for the leader's custom_id, in whatever
order the service lists them; an outage meanwhile is waited out, not counted. Only a
complete search that does not find it means "not created"; a list too long to search
fails the pack for an operator instead. The handling holds the locks of its jobs and of
their packs, so a handler that outlived its message (a lost connection, the stop grace)
and the replica that got the message again never work on one at once.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from publisher.jobs import JobLocks, Jobs
from publisher.packs import Frozen, Packs
from publisher.settling import LAST_FAILURE, InHand, LostCreates
from shared.contracts import CandidateFound, JobPublished
from shared.db.jobs import Job
from shared.db.statuses import UNPUBLISHED
from shared.faults import crash_point
from shared.messaging.consuming import Delivery, Reject, Transient
from shared.messaging.envelope import new_envelope
from shared.messaging.publishing import Outgoing
from shared.messaging.topology import JOB_PUBLISHED, PUBLISHER_WAIT
from shared.tasks import TRACKING_TASK_CONFIGS, TaskConfig, task_for_custom_id
from shared.webscraper.client import (
    ApiError,
    QuotaWait,
    RateLimited,
    Retryable,
    WebScraperClient,
)
from shared.webscraper.quota import CREATE, QuotaLedger, Reservation

log = logging.getLogger("trackfill.publisher")
TAG = "[tracking_number_empty_worker]"


@dataclass(frozen=True)
class PublisherConfig:
    max_attempts: int
    retry_base_s: float
    #: a create without an answer is looked for no sooner than this after it was made
    #: (``python -m publisher``: twice ``HTTP_TIMEOUT_S``)
    settle_after_s: float = 60.0
    max_parkings_logged: int = 3
    #: waits up to this long are slept in place, longer ones parked in RabbitMQ
    sleep_max_s: float = 1.0
    #: the sitemap of each task this publisher creates jobs for (the others are refused)
    sitemaps: Mapping[str, int] = field(
        default_factory=lambda: {
            t.name: t.sitemap_id for t in TRACKING_TASK_CONFIGS.values() if t.sitemap_id
        }
    )


class CandidateHandler(LostCreates):
    def __init__(
        self,
        jobs: Jobs,
        packs: Packs,
        ledger: QuotaLedger,
        client: WebScraperClient,
        config: PublisherConfig,
    ):
        self._jobs = jobs
        self._packs = packs
        self._ledger = ledger
        self._client = client
        self._config = config

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
            self._log_parkings(item)
            if item.job.job_id is not None:
                self._announce([item.job], item.task, item.delivery)  # again: it may have died here
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
        if self._adopt_existing(leader, members):
            return
        if leader.publish_attempts >= self._config.max_attempts:  # settled: not created
            reason = str(members[0].delivery.headers.get(LAST_FAILURE) or "no job was made")
            self._give_up(leader, leader.publish_attempts, reason)
        reservation = self._slot(leader)
        if not reservation.ready and reservation.wait_s <= self._config.sleep_max_s:
            time.sleep(reservation.wait_s)  # heartbeats are served meanwhile
            reservation = self._slot(leader)
        if not reservation.ready:
            self._park(members, self._parking_slot(leader).wait_s)
            return
        self._create(leader, reservation, members)

    def _orphans(self, members: list[InHand]) -> None:
        """Candidates whose pack went on without them, or that a pack could not take
        (they changed meanwhile; under the leader's row lock this is only a guard):
        each is looked at again as it is now, once; one still unplaced is retried."""
        for member in members:
            member.job = self._jobs.by_id(member.job.id) or member.job
            job = member.job
            if job.job_id is not None:
                self._announce([job], member.task, member.delivery)
            elif job.status not in UNPUBLISHED:
                continue
            elif job.pack_of not in (None, job.id) and (other := self._unpublished(job.pack_of)):
                self._park([member], self._wait_for(other))  # it joined another pack
            else:  # handled again, alone, after the back-off
                member.outcome = Transient(f"{job.custom_id} changed while it was being packed")

    def _unpublished(self, leader_id: int) -> Job | None:
        """The pack's leader while the pack has no scraping job and has not ended."""
        leader = self._jobs.by_id(leader_id)
        if leader is None or leader.job_id is not None or leader.status not in UNPUBLISHED:
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
            near = self._ledger.plan_near(leader.custom_id, within_s=self._config.sleep_max_s)
            if near.id is not None:
                chunk, fresh = self._lead(fresh)
                if not chunk or chunk[0].job.id != leader.id:
                    continue  # the first changed meanwhile: its slot is left to pass
                if not near.ready:
                    time.sleep(near.wait_s)  # a slot this close is waited for in place
                    near = self._slot(leader)
                if near.ready:
                    self._create(leader, near, chunk)
                else:
                    self._park(chunk, self._parking_slot(leader).wait_s)
                continue
            planned = self._ledger.latest_planned()
            taken = self._join(planned, fresh) if planned is not None else []
            if taken:
                joined = {item.job.id for item in taken}
                fresh = [item for item in fresh if item.job.id not in joined]
                continue
            chunk, fresh = self._lead(fresh)
            if chunk:
                self._park(chunk, self._parking_slot(chunk[0].job).wait_s)

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
            if job.job_id is not None:
                self._announce([job], item.task, item.delivery)
            elif leader := self._unpublished(job.pack_of):
                self._park([item], self._wait_for(leader))
            else:  # the pack got its scraping job (or ended) since
                self._orphans([item])
        return [item for item in fresh if item.job.id not in attached]

    def _wait_for(self, leader: Job) -> float:
        """How long a member of ``leader``'s pack waits, parked, for its scraping job:
        until the pack's slot and the slot planned last, whichever is later (a pack being
        created has none), so that no expiration in the wait queue is earlier than the
        ones parked before it."""
        planned = self._ledger.claim(leader.custom_id)
        latest_s = self._last_planned_wait_s()
        if planned is None and not latest_s:
            return self._config.sleep_max_s
        return max(planned.wait_s if planned else 0.0, latest_s)

    def _last_planned_wait_s(self) -> float:
        """How far ahead the slot planned last is (0: none is ahead): no park may end
        before it."""
        latest = self._ledger.latest_planned()
        return latest[1].wait_s if latest else 0.0

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
        self._park(taken, slot.wait_s)
        return taken

    # -- the create call ------------------------------------------------------------------
    def _slot(self, leader: Job) -> Reservation:
        """The pack's creation slot: the one planned for it; else a free one close
        enough to wait for in place (it may fall between planned slots); else the next
        slot in order."""
        planned = self._ledger.claim(leader.custom_id)
        if planned is not None:
            return planned
        near = self._ledger.plan_near(leader.custom_id, within_s=self._config.sleep_max_s)
        if near.id is not None:
            return near
        return self._ledger.plan(CREATE, leader.custom_id)

    def _parking_slot(self, leader: Job, not_before_s: float = 0.0) -> Reservation:
        """The slot a pack parks for: the one planned for it if it is no earlier than
        ``not_before_s`` and no earlier than the slot planned last; else the next slot
        in order (after every planned one), the old one given back (a pack has one slot
        at a time). Expirations in the wait queue then never decrease: RabbitMQ expires
        messages from the head only."""
        planned = self._ledger.claim(leader.custom_id)
        if planned is not None:
            if planned.wait_s >= max(not_before_s, self._last_planned_wait_s()):
                return planned
            self._ledger.release(leader.custom_id)
        return self._ledger.plan(CREATE, leader.custom_id, not_before_s=not_before_s)

    def _create(self, leader: Job, reservation: Reservation, members: list[InHand]):
        frozen = self._packs.freeze(leader)
        if frozen is None:
            log.info("%s %s changed meanwhile; nothing to publish", TAG, leader.custom_id)
            return
        task = members[0].task
        crash_point("publisher:before-create-call")
        log.info(
            "%s Publishing %d URLs: task=%s, custom_id=%s",
            TAG,
            len(frozen.start_urls),
            task.name,
            leader.custom_id,
        )
        try:
            payload = _payload(self._config.sitemaps[task.name], leader, frozen)
            created = self._client.create_job(payload, reservation)
        except QuotaWait as wait:  # too late for its slot, or a 429: a new slot (after it)
            if isinstance(wait, RateLimited):
                log.warning("%s %s: %s", TAG, leader.custom_id, wait)
            self._park(members, self._parking_slot(leader).wait_s)
            return
        except Retryable as error:
            self._retry_or_fail(leader, frozen.attempt, str(error), members)
            return
        except ApiError as error:  # refused: the same payload would be refused again
            self._fail(leader, f"create refused: {error}")
        crash_point("publisher:after-create-call")
        stored = self._packs.store(leader, int(created["id"]))
        crash_point("publisher:after-store")
        log.info(
            "%s Successfully published: %s with %d jobs (job_id=%s)",
            TAG,
            leader.custom_id,
            len(stored),
            created["id"],
        )
        self._announce(stored, task, members[0].delivery)

    def _retry_or_fail(self, leader: Job, attempt: int, reason: str, members: list[InHand]):
        if attempt >= self._config.max_attempts:
            if self._ledger.create_made(leader.custom_id) is None:
                self._give_up(leader, attempt, reason)
            log.warning(
                "%s %s: the last attempt failed (%s) and may have made the job; settling it",
                TAG,
                leader.custom_id,
                reason,
            )
            wait_s = self._parking_slot(leader, self._config.settle_after_s).wait_s
            self._park(members, wait_s, **{LAST_FAILURE: reason[:500]})
            return
        backoff = self._config.retry_base_s * 2 ** (attempt - 1)
        log.warning(
            "%s %s: attempt %d failed (%s); again in at least %.1fs",
            TAG,
            leader.custom_id,
            attempt,
            reason,
            backoff,
        )
        self._park(members, self._parking_slot(leader, not_before_s=backoff).wait_s)

    def _give_up(self, leader: Job, attempts: int, reason: str):
        self._fail(leader, f"create failed after {attempts} attempts: {reason}")

    def _fail(self, leader: Job, reason: str):
        """Fail the pack with ``reason``, give back its unused slots, and refuse the
        message with the reason."""
        self._packs.fail(leader, reason)
        self._ledger.release(leader.custom_id)
        raise Reject(f"{leader.custom_id}: {reason}")

    # -- messages -------------------------------------------------------------------------
    def _park(self, members: list[InHand], wait_s: float, **notes) -> None:
        for member in members:
            member.delivery.park(wait_s, **notes)

    def _log_parkings(self, item: InHand) -> None:
        parkings = item.delivery.deaths(PUBLISHER_WAIT)
        if parkings > self._config.max_parkings_logged:
            log.warning("%s %s has been parked %d times", TAG, item.job.custom_id, parkings)

    def _announce(self, jobs: list[Job], task: TaskConfig, delivery: Delivery) -> None:
        """``job.published`` for each job, confirmed together."""
        events = [
            JobPublished(
                task=task.name,
                custom_id=job.custom_id,
                job_id=job.job_id,
                batch_uuid=job.batch_uuid,
                target_url=job.target_url,
                purchasing_id=job.purchasing_id,
            )
            for job in jobs
        ]
        delivery.publisher.publish_many(
            [
                Outgoing.of(
                    JOB_PUBLISHED,
                    task.name,
                    new_envelope(JOB_PUBLISHED, event.to_payload()),
                    mandatory=False,
                )
                for event in events
            ]
        )
        crash_point("publisher:before-ack")


def _same_task(job: Job, task: TaskConfig) -> None:
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


def _payload(sitemap_id: int, leader: Job, frozen: Frozen) -> dict:
    """The seed's create-job body, with the pack's URLs and its leader's custom_id."""
    return {
        "sitemap_id": sitemap_id,
        "driver": "fulljs",
        "page_load_delay": 2000,
        "request_interval": 2000,
        "start_urls": frozen.start_urls,
        "custom_id": leader.custom_id,
    }
