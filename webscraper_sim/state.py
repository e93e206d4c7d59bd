"""The simulator's memory: configuration, jobs with their lifecycle, quota, faults, calls."""

from __future__ import annotations

import datetime as dt
import math
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from webscraper_sim.orders import OrderModel, page_at, story_of
from webscraper_sim.scenarios import (
    JAPAN_POST_SEARCH,
    PageResult,
    job_end_status,
    order_number_of,
    page_for,
)

#: a page left unloaded because the account had no credit left: reported as a failed
#: page (docs/simulator.md: the simulator's assumption; the real service's is unknown)
NOT_LOADED = PageResult((), "failed")

#: the tracking-number task's sitemap, and one for the refresh task (the demo's
#: JAPAN_POST_SITEMAP_ID: the real one is the operator's to set)
JAPAN_POST_SITEMAP = 1424310
DEFAULT_SITEMAPS = {1421177: "apple-order-to-carrier", JAPAN_POST_SITEMAP: "japan-post-tracking-10"}


@dataclass(frozen=True)
class Living:
    """Orders living in time (webscraper_sim/orders.py): an Apple page shows where its
    order's story stands on a clock that started at ``origin`` and runs ``speed`` times
    faster than the wall clock."""

    model: OrderModel = OrderModel()
    origin: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    speed: float = 1.0

    def clock(self, wall: dt.datetime) -> dt.datetime:
        return self.origin + (wall - self.origin) * self.speed

    def describe(self) -> str:
        origin = f"{self.origin:%Y-%m-%dT%H:%M:%S%z}"
        return f"living orders: {self.model.describe()}, origin={origin}, speed={self.speed:g}"


@dataclass
class SimConfig:
    """Everything the simulator can be told at start (all durations in seconds)."""

    api_token: str = "sim-token"
    quota_calls: int = 200
    quota_window_s: float = 900.0
    schedule_delay_s: float = 0.2
    start_delay_s: float = 0.2
    run_s: float = 0.5
    webhook_url: str | None = None
    webhook_timeout_s: float = 10.0
    webhook_retry_delays_s: tuple[float, ...] = (5.0, 10.0)
    per_page: int = 100
    #: the job list's order; the API promises none (docs/webscraper-api.md)
    list_newest_first: bool = True
    #: scraping time of each start URL, on top of ``run_s`` (pages go one after another)
    per_page_s: float = 0.0
    #: jobs that run at once (the plan's parallel tasks); the rest wait, as
    #: ``waiting-to-be-scheduled``, in the order they were created; 0: no limit
    parallel_tasks: int = 0
    #: every API call's answer takes this long (a network and a server; 0: at once)
    latency_s: float = 0.0
    #: records come back in no promised order: shuffled with this seed (None: in order)
    shuffle_seed: int | None = 0
    sitemaps: dict[int, str] = field(default_factory=lambda: dict(DEFAULT_SITEMAPS))
    account_email: str = "ops@example.com"
    #: the account's page credits at start (and after a reset): each page loaded costs one
    page_credits: int = 50_000
    #: orders living in time (None: the fixed scenarios of webscraper_sim/scenarios.py)
    living: Living | None = None


@dataclass
class Faults:
    """Fault switches; counts go down as the faults fire. Set through ``POST /__sim/faults``."""

    error_burst: int = 0  # the next N API calls answer ``error_status``
    error_status: int = 500
    error_kinds: list[str] = field(default_factory=list)  # the burst hits these kinds only
    slow: int = 0  # the next N API calls wait ``slow_s`` before answering
    slow_s: float = 0.0
    lose_create_answer: int = 0  # the next N creates create, then drop the connection
    rate_limit_storm: int = 0  # the next N API calls answer 429 whatever the quota says
    storm_retry_after_s: int = 1
    webhook_duplicates: int = 1  # every notification is sent this many times
    webhook_drop: int = 0  # the next N ended jobs are never notified
    webhook_out_of_order: bool = False  # notifications are held, then sent newest first
    webhook_hold_s: float = 1.0
    data_delay_s: float = 0.0  # data appears this long after the job ends (and its webhook)

    def update(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            if name not in self.__dataclass_fields__:
                raise ValueError(f"unknown fault {name!r}")
            kind = type(getattr(self, name))
            if kind is list and isinstance(value, str):
                value = [value]  # one kind of call
            setattr(self, name, kind(value))


@dataclass
class ScrapingJob:
    id: int
    sitemap_id: int
    sitemap_name: str
    custom_id: str | None
    start_urls: list[str]
    driver: str
    request_interval: int
    page_load_delay: int
    created_mono: float
    created_unix: int
    end_status: str
    #: when it starts running and when it ends (fixed at creation: FIFO, parallel limit)
    start_mono: float = 0.0
    end_mono: float = 0.0
    ended: bool = False
    ended_mono: float = 0.0
    pages: list[tuple[str, PageResult]] = field(default_factory=list)
    #: the pages loaded, each billed one credit (a page left for want of credits is not)
    billed: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)


class SimState:
    """All mutable state, behind one lock."""

    def __init__(self, config: SimConfig):
        self.config = config
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            # notifications still pending from before a reset are never sent
            self.generation = getattr(self, "generation", 0) + 1
            self.jobs: dict[int, ScrapingJob] = {}
            self.next_id = 500
            self.calls: list[dict[str, Any]] = []
            self.webhooks: list[dict[str, Any]] = []
            self.faults = Faults()
            self.window_start: float | None = None
            self.window_count = 0
            self.page_credits = self.config.page_credits
            #: every credit billed since the reset (a deleted job's too)
            self.billed = 0

    # -- quota: a fixed window that starts at the first call (docs/webscraper-api.md) --
    def take_quota(self, now: float) -> tuple[bool, dict[str, str]]:
        """Count one call; (allowed, rate headers)."""
        with self.lock:
            limit, window = self.config.quota_calls, self.config.quota_window_s
            if self.window_start is None or now >= self.window_start + window:
                self.window_start, self.window_count = now, 0
            allowed = self.window_count < limit
            if allowed:
                self.window_count += 1
            headers = {
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": str(limit - self.window_count),
            }
            if not allowed:
                retry = max(1, math.ceil(self.window_start + window - now))
                headers.update(self._retry_headers(retry))
            return allowed, headers

    @staticmethod
    def _retry_headers(retry_after: int) -> dict[str, str]:
        return {
            "Retry-After": str(retry_after),
            "X-RateLimit-Reset": str(int(time.time()) + retry_after),
            "X-RateLimit-Remaining": "0",
        }

    def record_call(self, **entry: Any) -> None:
        with self.lock:
            self.calls.append({"t": time.time(), **entry})

    # -- jobs --
    def create_job(self, body: dict[str, Any]) -> ScrapingJob:
        with self.lock:
            scraping_job_id, self.next_id = self.next_id, self.next_id + 1
            urls = list(body.get("start_urls") or [])
            sitemap_id = int(body["sitemap_id"])
            now = time.monotonic()
            start = self._start_time(now + self.config.schedule_delay_s)
            run = self.config.start_delay_s + self.config.run_s + self.config.per_page_s * len(urls)
            job = ScrapingJob(
                id=scraping_job_id,
                sitemap_id=sitemap_id,
                sitemap_name=self.config.sitemaps[sitemap_id],
                custom_id=body.get("custom_id"),
                start_urls=urls,
                driver=body.get("driver", "fast"),
                request_interval=int(body.get("request_interval", 2000)),
                page_load_delay=int(body.get("page_load_delay", 2000)),
                created_mono=now,
                created_unix=int(time.time()),
                end_status=job_end_status(urls),
                start_mono=start,
                end_mono=start + run,
            )
            self.jobs[scraping_job_id] = job
            return job

    def _start_time(self, ready: float) -> float:
        """When a job ready at ``ready`` starts: every job before it starts first, so it
        waits until fewer than ``parallel_tasks`` of them are still running."""
        limit = self.config.parallel_tasks
        ends = sorted((j.end_mono for j in self.jobs.values() if not j.ended), reverse=True)
        if limit <= 0 or len(ends) < limit:
            return ready
        return max(ready, ends[limit - 1])

    def status_of(self, job: ScrapingJob, now: float) -> str:
        if job.ended:
            return job.end_status
        if now < job.start_mono:
            return "waiting-to-be-scheduled"
        if now < job.start_mono + self.config.start_delay_s:
            return "scheduled"
        return "started"

    def due_to_end(self, job: ScrapingJob, now: float) -> bool:
        return not job.ended and now >= job.end_mono

    def end_job(self, job: ScrapingJob, now: float) -> None:
        """Finish ``job``: scrape its pages (unless it failed or was stopped)."""
        job.ended, job.ended_mono = True, now
        if job.end_status != "finished":
            # a one-URL job stopped by its user or failed as a whole: its page was loaded
            # (and billed) but nothing was kept
            job.billed = self._bill(len(job.start_urls))
            return
        scraped_at = dt.datetime.now(dt.UTC)
        job.billed = self._bill(len(job.start_urls))
        job.pages = [
            (url, self._page(url, scraped_at) if n < job.billed else NOT_LOADED)
            for n, url in enumerate(job.start_urls)
        ]
        if sum(page.problem == "failed" for _, page in job.pages) * 2 > len(job.pages):
            job.end_status = "failed"  # more than half of its pages failed
        stamp = int(time.time())
        scraped = [(url, record) for url, page in job.pages for record in page.records]
        for n, (url, record) in enumerate(scraped, start=1):
            job.records.append(
                {"web-scraper-order": f"{stamp}-{n}", "web-scraper-start-url": url, **record}
            )
        if self.config.shuffle_seed is not None:
            random.Random(self.config.shuffle_seed + job.id).shuffle(job.records)

    def _page(self, url: str, scraped_at: dt.datetime) -> PageResult:
        living = self.config.living
        if living is None or url.startswith(JAPAN_POST_SEARCH):
            return page_for(url, scraped_at)
        story = story_of(order_number_of(url), living.model, living.origin)
        return page_at(story, living.clock(scraped_at))

    def _bill(self, pages: int) -> int:
        """Take a credit for each of ``pages`` while any is left; how many were taken."""
        billed = min(pages, max(self.page_credits, 0))
        self.page_credits -= billed
        self.billed += billed
        return billed

    def data_ready(self, job: ScrapingJob, now: float) -> bool:
        return job.ended and now >= job.ended_mono + self.faults.data_delay_s

    def job_object(self, job: ScrapingJob, now: float) -> dict[str, Any]:
        """The 18 keys of docs/webscraper-api.md's job object."""
        status = self.status_of(job, now)
        scheduled = status != "waiting-to-be-scheduled"
        executed = [p for _, p in job.pages if p is not NOT_LOADED]
        return {
            "id": job.id,
            "custom_id": job.custom_id,
            "sitemap_name": job.sitemap_name,
            "status": status,
            "sitemap_id": job.sitemap_id,
            "test_run": 0,
            "jobs_scheduled": len(job.start_urls) if scheduled else 0,
            "jobs_executed": len(executed),
            "jobs_failed": sum(p.problem == "failed" for _, p in job.pages),
            "jobs_empty": sum(p.problem == "empty" for p in executed),
            "jobs_no_value": sum(
                any(v in (None, "") for r in p.records for v in r.values()) for p in executed
            ),
            "stored_record_count": len(job.records),
            "request_interval": job.request_interval,
            "page_load_delay": job.page_load_delay,
            "driver": job.driver,
            "scheduled": 1 if scheduled else 0,
            "time_created": job.created_unix,
            "scraping_duration": round(job.ended_mono - job.created_mono) if job.ended else 0,
        }

    def problematic_urls(self, job: ScrapingJob) -> list[dict[str, str]]:
        return [{"url": url, "type": p.problem} for url, p in job.pages if p.problem]

    def snapshot(self) -> dict[str, Any]:
        """Everything a test may want to inspect, as JSON-ready data."""
        with self.lock:
            now = time.monotonic()
            return {
                "page_credits": self.page_credits,
                "billed": self.billed,
                "calls": list(self.calls),
                "webhooks": list(self.webhooks),
                "faults": asdict(self.faults),
                "jobs": [
                    {**self.job_object(j, now), "start_urls": j.start_urls, "billed": j.billed}
                    for j in self.jobs.values()
                ],
            }
