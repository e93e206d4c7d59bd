# ruff: noqa: F811 - the fixtures imported from test_ingestor are used by name
"""The ingestor under faults: a scrape the service has done is read, never thrown away
for our trouble reading it (late data beside a problem page, an API outage after the
job ended, a stopped job). Real PostgreSQL, RabbitMQ and the simulator, as in
test_ingestor.py, whose fixtures these tests share."""

from __future__ import annotations

import pytest

from ingestor.__main__ import completion_handler
from shared.contracts import JobCompleted
from shared.messaging.consuming import Delivery
from shared.messaging.envelope import new_envelope
from shared.messaging.publishing import MessagePublisher, connect
from shared.messaging.topology import (
    INGESTOR_COMPLETIONS,
    INGESTOR_WAIT,
    JOB_COMPLETED,
    declare_topology,
)
from shared.settings import load_settings
from shared.tasks import OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO as TASK
from tests.integration.test_ingestor import (  # noqa: F401
    env,
    ingestor,
    notify,
    published,
    running_ingestor,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def scraping_job_ended(sim) -> bool:
    jobs = sim.state.snapshot()["jobs"]
    return bool(jobs) and all(j["status"] in ("finished", "stopped", "failed") for j in jobs)


def reconcile_hint(env, job) -> None:
    """What the reconciler sends for a scraping job without an ending."""
    event = JobCompleted(
        task=TASK.name,
        scraping_job_id=job.scraping_job_id,
        status="reconcile",
        custom_id=job.custom_id,
        reconcile=True,
    )
    with connect(env["AMQP_URL"]) as connection:
        MessagePublisher(connection).publish(
            JOB_COMPLETED, TASK.name, new_envelope(JOB_COMPLETED, event.to_payload())
        )


@pytest.mark.parametrize("second_look", ["parked-retry", "duplicate-webhook"])
def test_late_data_beside_an_empty_page_is_waited_for_not_failed_as_empty(
    env, published, sim, second_look
):
    """The job's counts say one empty page; once the empty one has ended, the one URL
    still open is not that page, whatever the counts say. The data comes 0.7 s after the
    job ends: later than the first retry (0.2 s), well within the retries' 3 s."""
    sim.state.faults.update({"data_delay_s": 0.7})
    empty, fine = published.make(7, 0, packed=True)
    assert wait_until(lambda: scraping_job_ended(sim), timeout=5)
    with running_ingestor(dict(env, INGEST_MAX_RETRIES="15")):
        notify(env, published.job(empty))
        assert wait_until(lambda: published.ended(empty), timeout=5)
        if second_look == "duplicate-webhook":
            notify(env, published.job(empty))
        assert wait_until(lambda: published.ended(fine), timeout=15)
    assert published.job(empty).error == "no data: empty page"
    assert published.job(fine).status == "completed", published.job(fine).error
    assert published.purchase(fine).tracking_number is not None


def test_an_api_outage_after_the_job_ended_leaves_it_open_until_the_api_answers(
    env, published, ingestor, sim
):
    ids = published.make(0, 1, packed=True)
    assert wait_until(lambda: scraping_job_ended(sim), timeout=5)
    sim.state.faults.update({"error_burst": 1000, "error_status": 503})
    notify(env, published.job(ids[0]))
    assert wait_until(lambda: published.job(ids[0]).reconcile_count == 1, timeout=10)
    assert [published.job(pid).status for pid in ids] == ["pending", "pending"]
    assert len(published.calls("get")) == 4  # the first look and three quick retries
    reconcile_hint(env, published.job(ids[0]))  # still out: left open at once, one call
    assert wait_until(lambda: published.job(ids[0]).reconcile_count == 2, timeout=10)
    assert len(published.calls("get")) == 5
    first, second = (published.job(pid).reconcile_at for pid in ids)
    assert first == second and first is not None  # the pack is looked at as one
    sim.state.faults.update({"error_burst": 0})
    reconcile_hint(env, published.job(ids[1]))  # the API answers: the scrape is read
    assert wait_until(lambda: published.ended(*ids), timeout=10)
    assert all(published.job(pid).status == "completed" for pid in ids)
    assert all(published.purchase(pid).tracking_number for pid in ids)


def test_a_stopped_jobs_unscraped_urls_end_at_once_with_two_calls(env, published, ingestor, sim):
    ids = published.make(0, 1, 2, packed=True)
    assert wait_until(lambda: scraping_job_ended(sim), timeout=5)
    (job,) = sim.state.jobs.values()
    with sim.state.lock:  # its user stopped it after its first page
        job.end_status = "stopped"
        scraped_url = job.pages[0][0]
        job.pages = job.pages[:1]
        job.records = [r for r in job.records if r["web-scraper-start-url"] == scraped_url]
    notify(env, published.job(ids[0]), status="stopped")
    assert wait_until(lambda: published.ended(*ids), timeout=5)
    ended = {published.job(pid).target_url: published.job(pid) for pid in ids}
    assert ended.pop(scraped_url).status == "completed"
    assert {(j.status, j.error) for j in ended.values()} == {("failed", "scraping job stopped")}
    kinds = [c["kind"] for c in sim.state.snapshot()["calls"]]
    assert kinds == ["create", "get", "json"]


def test_a_quota_wait_parks_for_the_wait_queues_constant_delay(env, published, sim, vhost):
    """A wait longer than the retry delay must not sit in front of shorter ones: the
    message comes back after the constant delay and looks at the ledger again."""
    (pid,) = published.make(0)
    assert wait_until(lambda: scraping_job_ended(sim), timeout=5)
    sim.state.faults.update({"rate_limit_storm": 1, "storm_retry_after_s": 30})
    job = published.job(pid)
    event = JobCompleted(
        task=TASK.name,
        scraping_job_id=job.scraping_job_id,
        status="finished",
        custom_id=job.custom_id,
    )
    with connect(env["AMQP_URL"]) as connection:
        declare_topology(connection)
        delivery = Delivery(
            new_envelope(JOB_COMPLETED, event.to_payload()),
            event,
            {},
            INGESTOR_COMPLETIONS,
            False,
            MessagePublisher(connection),
            wait_queue=INGESTOR_WAIT,
        )
        handler = completion_handler(load_settings(env))
        assert handler([delivery]) == [None]  # parked
        assert handler([delivery]) == [None]  # again: the ledger says wait, no call
    parked = vhost.management.wait_for_messages(vhost.name, INGESTOR_WAIT, 2)
    assert [m["properties"]["expiration"] for m in parked] == ["200", "200"]
    assert [c["status"] for c in sim.state.snapshot()["calls"][1:]] == [429]


def test_a_webhook_and_a_reconcile_hint_for_one_pack_in_one_group_cost_one_look(
    env, published, sim
):
    ids = published.make(0, 1, packed=True)
    assert wait_until(lambda: scraping_job_ended(sim), timeout=5)
    leader, member = (published.job(pid) for pid in ids)
    events = [
        JobCompleted(
            task=TASK.name,
            scraping_job_id=leader.scraping_job_id,
            status="finished",
            custom_id=leader.custom_id,
        ),
        JobCompleted(
            task=TASK.name,
            scraping_job_id=member.scraping_job_id,
            status="reconcile",
            custom_id=member.custom_id,
            reconcile=True,
        ),
    ]
    with connect(env["AMQP_URL"]) as connection:
        deliveries = [
            Delivery(
                new_envelope(JOB_COMPLETED, e.to_payload()),
                e,
                {},
                INGESTOR_COMPLETIONS,
                False,
                MessagePublisher(connection),
            )
            for e in events
        ]
        assert completion_handler(load_settings(env))(deliveries) == [None, None]
    assert published.ended(*ids)
    kinds = [c["kind"] for c in sim.state.snapshot()["calls"]]
    assert kinds == ["create", "get", "json"]
