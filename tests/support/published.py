"""Purchases with tracking jobs whose scraping jobs exist in the simulator, made the way
the publisher makes them (for tests of what comes after the publisher)."""

from __future__ import annotations

import requests
from sqlalchemy import func, select, update

from shared.db.batches import NewJob, create_batch
from shared.db.models import Purchasing, TrackingBatch, TrackingJob
from shared.db.session import make_session_factory
from shared.domain.urls import order_status_url
from shared.tasks import OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO as TASK
from tests.conftest import SIM_TOKEN
from tests.support import rows


class Published:
    """Purchases with tracking jobs whose scraping jobs exist in the simulator."""

    def __init__(self, db, sim):
        self.db, self.sim = db, sim
        self.sessions = make_session_factory(db)

    def make(self, *digits: int | str, packed: bool = False, **purchase_columns) -> list[int]:
        """One purchase per order-number ending (0-9, or "97"/"98"), one batch for all;
        each job created in the simulator and stored ``pending`` (``packed``: all in one
        scraping job, custom_id of the first, as the publisher packs them); purchasing
        ids."""
        account = rows.account(self.db, "buyer+1@example.com")
        ids, new_jobs = [], []
        for digit in digits:
            order = rows.order_number(0)[:-2] + f"{digit:0>2}"
            pid = rows.purchase(self.db, account, order, **purchase_columns)
            ids.append(pid)
            new_jobs.append(NewJob(pid, order, order_status_url(order, "buyer+1@example.com")))
        with self.sessions() as session, session.begin():
            refs = create_batch(session, TASK, new_jobs)
        groups = [list(zip(refs, new_jobs, strict=True))]
        if not packed:
            groups = [[pair] for pair in groups[0]]
        for group in groups:
            body = {
                "sitemap_id": TASK.sitemap_id,
                "driver": "fulljs",
                "page_load_delay": 2000,
                "request_interval": 2000,
                "start_urls": [new.url for _, new in group],
                "custom_id": group[0][0].custom_id,
            }
            answer = requests.post(
                f"{self.sim.api_url}scraping-job", params={"api_token": SIM_TOKEN}, json=body
            )
            with self.sessions() as session, session.begin():
                session.execute(
                    update(TrackingJob)
                    .where(TrackingJob.id.in_([ref.id for ref, _ in group]))
                    .values(scraping_job_id=answer.json()["data"]["id"], status="pending")
                )
        return ids

    def job(self, purchasing_id: int) -> TrackingJob:
        with self.sessions() as session:
            return session.execute(
                select(TrackingJob).where(TrackingJob.purchasing_id == purchasing_id)
            ).scalar_one()

    def purchase(self, purchasing_id: int) -> Purchasing:
        with self.sessions() as session:
            return session.get(Purchasing, purchasing_id)

    def batch(self) -> TrackingBatch:
        with self.sessions() as session:
            return session.execute(select(TrackingBatch)).scalar_one()

    def ended(self, *ids: int) -> bool:
        return all(self.job(pid).status in ("completed", "failed") for pid in ids)

    def count(self, model) -> int:
        with self.sessions() as session:
            return session.execute(select(func.count()).select_from(model)).scalar_one()

    def calls(self, kind: str) -> list[dict]:
        return [c for c in self.sim.state.snapshot()["calls"] if c["kind"] == kind]
