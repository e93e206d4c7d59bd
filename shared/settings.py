"""The one place where trackfill reads its environment.

Every service calls :func:`load_settings` once in its composition root and passes the
frozen :class:`Settings` down. A missing required value or a malformed one raises
:class:`SettingsError` whose message names the variable, so a service can stop at start
with one clear line.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from shared.domain.schedule import Schedule
from shared.environment import Env, SettingsError

__all__ = ["DEFAULTS", "SECRETS", "Settings", "SettingsError", "load_settings"]


@dataclass(frozen=True)
class Settings:
    database_url: str
    amqp_url: str
    webscraper_api_url: str
    webscraper_api_token: str | None
    webhook_token: str | None
    gateway_bind: str
    gateway_threads: int
    api_quota_calls: int
    api_quota_window_s: float
    publish_min_interval_s: float
    selector_max_records: int
    selector_interval_s: float
    recheck_base_s: float
    recheck_max_s: float
    selector_republish_grace_s: float
    recheck_expire_s: float
    #: the schedule's knobs (docs/schedule.md)
    schedule_min_s: float
    schedule_far_s: float
    schedule_likely_s: float
    schedule_preparing_s: float
    schedule_transit_s: float
    schedule_late_s: float
    reconcile_after_s: float
    #: the refresh task's sitemap (docs/refresh.md); None: the task is off
    japan_post_sitemap_id: int | None
    refresh_interval_s: float
    #: while tracking-number candidates wait, the refresh task's most share of creations
    refresh_max_share: float
    #: page credits (docs/credits.md): how often the account's are read, and the reserve
    #: at or below which only manual candidates are scraped
    page_credits_read_s: float
    page_credits_reserve: int
    processed_keep_s: float
    sync_log_keep_s: float
    api_followup_calls_per_job: int
    publish_max_attempts: int
    publish_max_urls_per_job: int
    publish_retry_base_s: float
    amqp_heartbeat_s: float
    http_timeout_s: float
    ingest_retry_s: float
    ingest_max_retries: int
    ingest_group_size: int
    log_format: str
    metrics_port: int

    def __repr__(self) -> str:  # never print the tokens, not even in a traceback
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        for secret in ("webscraper_api_token", "webhook_token"):
            shown[secret] = "***" if shown[secret] else None
        return f"Settings({shown})"

    @property
    def schedule(self) -> Schedule:
        """When a purchase is looked at next: the schedule these settings give."""
        return Schedule(
            min_s=self.schedule_min_s,
            far_s=self.schedule_far_s,
            likely_s=self.schedule_likely_s,
            preparing_s=self.schedule_preparing_s,
            transit_s=self.schedule_transit_s,
            late_s=self.schedule_late_s,
            base_s=self.recheck_base_s,
            max_s=self.recheck_max_s,
            expire_s=self.recheck_expire_s,
            refresh_s=self.refresh_interval_s,
        )

    @property
    def gateway_host_port(self) -> tuple[str, int]:
        host, _, port = self.gateway_bind.rpartition(":")
        return host, int(port)


DEFAULTS: dict[str, str] = {
    "DATABASE_URL": "postgresql+psycopg2://postgres@127.0.0.1:5432/trackfill",
    "AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/%2F",
    "WEBSCRAPER_API_URL": "https://api.webscraper.io/api/v1/",
    "GATEWAY_BIND": "0.0.0.0:8000",
    "GATEWAY_THREADS": "8",
    "API_QUOTA_CALLS": "200",
    "API_QUOTA_WINDOW_S": "900",
    "PUBLISH_MIN_INTERVAL_S": "6",
    "SELECTOR_MAX_RECORDS": "20",
    "SELECTOR_INTERVAL_S": "900",
    "RECHECK_BASE_S": "1800",
    "RECHECK_MAX_S": "86400",
    "SELECTOR_REPUBLISH_GRACE_S": "120",
    "RECHECK_EXPIRE_S": "2592000",
    # the schedule (docs/schedule.md): at least 15 minutes between two looks; at most 10
    # days while Apple's estimate is far; daily once shipping is likely; every 4.5 hours
    # while Apple prepares the parcel; Apple hands over about 2 days before the estimate's
    # first day, and up to 3 days after its last
    "SCHEDULE_MIN_S": "900",
    "SCHEDULE_FAR_S": "864000",
    "SCHEDULE_LIKELY_S": "86400",
    "SCHEDULE_PREPARING_S": "16200",
    "SCHEDULE_TRANSIT_S": "172800",
    "SCHEDULE_LATE_S": "259200",
    "RECONCILE_AFTER_S": "1800",
    "REFRESH_INTERVAL_S": "21600",
    # the tracking-number task keeps at least three quarters of the creations (issue 17)
    "REFRESH_MAX_SHARE": "0.25",
    # a late duplicate webhook (the scraper retries for hours) must still hit its key
    "PROCESSED_KEEP_S": "604800",
    # reading the account's credits is one API call: four a window of the 200
    "PAGE_CREDITS_READ_S": "900",
    "PAGE_CREDITS_RESERVE": "0",
    "SYNC_LOG_KEEP_S": "7776000",
    "API_FOLLOWUP_CALLS_PER_JOB": "2",
    # a pack carries up to PUBLISH_MAX_URLS_PER_JOB purchases: an API outage of a few
    # minutes (2 s doubling, about 4 minutes over 8 attempts) must not fail them all
    "PUBLISH_MAX_ATTEMPTS": "8",
    "PUBLISH_RETRY_BASE_S": "2",
    "PUBLISH_MAX_URLS_PER_JOB": "20",
    "AMQP_HEARTBEAT_S": "30",
    "HTTP_TIMEOUT_S": "30",
    "INGEST_RETRY_S": "30",
    "INGEST_MAX_RETRIES": "4",
    "INGEST_GROUP_SIZE": "10",
    "LOG_FORMAT": "text",
    "METRICS_PORT": "0",
}

SECRETS = ("WEBSCRAPER_API_TOKEN", "WEBHOOK_TOKEN")
#: the ingestor's prefetch and one transaction's jobs: a bound on what a failed group redoes
MAX_GROUP_SIZE = 100
#: the service's documented limit of start URLs in one scraping job
MAX_START_URLS = 20_000


def load_settings(
    environ: Mapping[str, str] | None = None, require: Iterable[str] = ()
) -> Settings:
    """Read every trackfill variable from ``environ`` (default ``os.environ``).

    ``require`` names the optional variables this service cannot run without, e.g.
    ``("WEBSCRAPER_API_TOKEN",)`` for the publisher.
    """
    env = Env(os.environ if environ is None else environ, DEFAULTS)
    for name in require:
        if name not in SECRETS:
            raise SettingsError(f"{name} is not a variable that can be required")
        env.required(name)
    settings = Settings(**_connections(env), **_pacing(env), **_workers(env))
    if settings.recheck_max_s < settings.recheck_base_s:
        raise SettingsError("RECHECK_MAX_S must not be smaller than RECHECK_BASE_S")
    return settings


def _connections(env: Env) -> dict[str, Any]:
    """The settings of where the services connect, and their secrets."""
    return dict(
        database_url=env.database_url("DATABASE_URL"),
        amqp_url=env.urls("AMQP_URL", ("amqp", "amqps")),
        webscraper_api_url=env.url("WEBSCRAPER_API_URL", ("http", "https")),
        webscraper_api_token=env.optional("WEBSCRAPER_API_TOKEN"),
        webhook_token=env.optional("WEBHOOK_TOKEN"),
        gateway_bind=env.bind("GATEWAY_BIND"),
        gateway_threads=env.count("GATEWAY_THREADS"),
    )


def _pacing(env: Env) -> dict[str, Any]:
    """The settings of the quota, the selection and its re-checks."""
    return dict(
        api_quota_calls=env.count("API_QUOTA_CALLS"),
        api_quota_window_s=env.duration("API_QUOTA_WINDOW_S"),
        publish_min_interval_s=env.duration("PUBLISH_MIN_INTERVAL_S", allow_zero=True),
        selector_max_records=env.count("SELECTOR_MAX_RECORDS"),
        selector_interval_s=env.duration("SELECTOR_INTERVAL_S"),
        recheck_base_s=env.duration("RECHECK_BASE_S", allow_zero=True),
        recheck_max_s=env.duration("RECHECK_MAX_S", allow_zero=True),
        selector_republish_grace_s=env.duration("SELECTOR_REPUBLISH_GRACE_S", allow_zero=True),
        recheck_expire_s=env.duration("RECHECK_EXPIRE_S"),
        **_schedule(env),
        reconcile_after_s=env.duration("RECONCILE_AFTER_S"),
        japan_post_sitemap_id=env.optional_id("JAPAN_POST_SITEMAP_ID"),
        refresh_interval_s=env.duration("REFRESH_INTERVAL_S"),
        refresh_max_share=env.fraction("REFRESH_MAX_SHARE"),
        page_credits_read_s=env.duration("PAGE_CREDITS_READ_S"),
        page_credits_reserve=env.count("PAGE_CREDITS_RESERVE", minimum=0),
    )


def _schedule(env: Env) -> dict[str, Any]:
    """The schedule's knobs (docs/schedule.md): its waits at least its minimum; the
    transit and the lateness are spans of the calendar, which may be 0."""
    values = dict(
        schedule_min_s=env.duration("SCHEDULE_MIN_S"),
        schedule_far_s=env.duration("SCHEDULE_FAR_S"),
        schedule_likely_s=env.duration("SCHEDULE_LIKELY_S"),
        schedule_preparing_s=env.duration("SCHEDULE_PREPARING_S"),
        schedule_transit_s=env.duration("SCHEDULE_TRANSIT_S", allow_zero=True),
        schedule_late_s=env.duration("SCHEDULE_LATE_S", allow_zero=True),
    )
    for wait in ("far", "likely", "preparing"):
        if values[f"schedule_{wait}_s"] < values["schedule_min_s"]:
            raise SettingsError(
                f"SCHEDULE_{wait.upper()}_S must not be smaller than SCHEDULE_MIN_S"
            )
    return values


def _workers(env: Env) -> dict[str, Any]:
    """The settings of the publisher, the ingestor, logs and metrics."""
    return dict(
        processed_keep_s=env.duration("PROCESSED_KEEP_S"),
        sync_log_keep_s=env.duration("SYNC_LOG_KEEP_S"),
        api_followup_calls_per_job=env.count("API_FOLLOWUP_CALLS_PER_JOB", minimum=0),
        publish_max_attempts=env.count("PUBLISH_MAX_ATTEMPTS"),
        publish_max_urls_per_job=env.count(
            "PUBLISH_MAX_URLS_PER_JOB", minimum=1, maximum=MAX_START_URLS
        ),
        publish_retry_base_s=env.duration("PUBLISH_RETRY_BASE_S", allow_zero=True),
        amqp_heartbeat_s=env.duration("AMQP_HEARTBEAT_S", allow_zero=True),
        http_timeout_s=env.duration("HTTP_TIMEOUT_S"),
        ingest_retry_s=env.duration("INGEST_RETRY_S"),
        ingest_max_retries=env.count("INGEST_MAX_RETRIES", minimum=0),
        ingest_group_size=env.count("INGEST_GROUP_SIZE", minimum=1, maximum=MAX_GROUP_SIZE),
        log_format=env.choice("LOG_FORMAT", ("text", "json")),
        metrics_port=env.count("METRICS_PORT", minimum=0),
    )
