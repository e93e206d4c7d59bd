"""The one place where trackfill reads its environment.

Every service calls :func:`load_settings` once in its composition root and passes the
frozen :class:`Settings` down. A missing required value or a malformed one raises
:class:`SettingsError` whose message names the variable, so a service can stop at start
with one clear line.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


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
    reconcile_after_s: float
    #: the refresh task's sitemap (docs/refresh.md); None: the task is off
    japan_post_sitemap_id: int | None
    refresh_interval_s: float
    #: while tracking-number candidates wait, the refresh task's most share of creations
    refresh_max_share: float
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
    "RECONCILE_AFTER_S": "1800",
    "REFRESH_INTERVAL_S": "21600",
    # the tracking-number task keeps at least three quarters of the creations (issue 17)
    "REFRESH_MAX_SHARE": "0.25",
    # a late duplicate webhook (the scraper retries for hours) must still hit its key
    "PROCESSED_KEEP_S": "604800",
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
    env = _Env(os.environ if environ is None else environ)
    for name in require:
        if name not in SECRETS:
            raise SettingsError(f"{name} is not a variable that can be required")
        env.required(name)
    settings = Settings(**_connections(env), **_pacing(env), **_workers(env))
    if settings.recheck_max_s < settings.recheck_base_s:
        raise SettingsError("RECHECK_MAX_S must not be smaller than RECHECK_BASE_S")
    return settings


def _connections(env: _Env) -> dict[str, Any]:
    """The settings of where the services connect, and their secrets."""
    return dict(
        database_url=env.database_url("DATABASE_URL"),
        amqp_url=env.url("AMQP_URL", ("amqp", "amqps")),
        webscraper_api_url=env.url("WEBSCRAPER_API_URL", ("http", "https")),
        webscraper_api_token=env.optional("WEBSCRAPER_API_TOKEN"),
        webhook_token=env.optional("WEBHOOK_TOKEN"),
        gateway_bind=env.bind("GATEWAY_BIND"),
        gateway_threads=env.count("GATEWAY_THREADS"),
    )


def _pacing(env: _Env) -> dict[str, Any]:
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
        reconcile_after_s=env.duration("RECONCILE_AFTER_S"),
        japan_post_sitemap_id=env.optional_id("JAPAN_POST_SITEMAP_ID"),
        refresh_interval_s=env.duration("REFRESH_INTERVAL_S"),
        refresh_max_share=env.fraction("REFRESH_MAX_SHARE"),
    )


def _workers(env: _Env) -> dict[str, Any]:
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


class _Env:
    """Typed reads of one variable each; every error names the variable."""

    def __init__(self, environ: Mapping[str, str]):
        self._environ = environ

    def raw(self, name: str) -> str:
        value = self._environ.get(name)
        if value is None or value.strip() == "":
            return DEFAULTS[name]
        return value.strip()

    def optional(self, name: str) -> str | None:
        value = self._environ.get(name, "").strip()
        return value or None

    def required(self, name: str) -> str:
        value = self.optional(name)
        if value is None:
            raise SettingsError(f"{name} is required but not set")
        return value

    def count(self, name: str, minimum: int = 1, maximum: int | None = None) -> int:
        text = self.raw(name)
        if not re.fullmatch(r"[0-9]+", text) or int(text) < minimum:
            raise SettingsError(
                f"{name} must be a whole number of at least {minimum}, got {text!r}"
            )
        if maximum is not None and int(text) > maximum:
            raise SettingsError(f"{name} must be at most {maximum}, got {text!r}")
        return int(text)

    def optional_id(self, name: str) -> int | None:
        """A positive whole number, or None when the variable is unset."""
        text = self.optional(name)
        if text is None:
            return None
        if not re.fullmatch(r"[0-9]{1,18}", text) or int(text) == 0:
            raise SettingsError(f"{name} must be a positive whole number (an id), got {text!r}")
        return int(text)

    def fraction(self, name: str) -> float:
        """A share: a number from 0 to 1."""
        text = self.raw(name)
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not 0 <= value <= 1:  # NaN fails too
            raise SettingsError(f"{name} must be a number from 0 to 1, got {text!r}")
        return value

    def duration(self, name: str, allow_zero: bool = False) -> float:
        text = self.raw(name)
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            least = "0 or more" if allow_zero else "more than 0"
            raise SettingsError(f"{name} must be a number of seconds, {least}, got {text!r}")
        return value

    def url(self, name: str, schemes: tuple[str, ...]) -> str:
        text = self.raw(name)
        parts = urlsplit(text)
        if parts.scheme not in schemes or not parts.hostname:
            raise SettingsError(
                f"{name} must be a {'/'.join(schemes)} URL with a host, got {_redact(text)!r}"
            )
        return text

    def database_url(self, name: str) -> str:
        text = self.raw(name)
        try:
            url = make_url(text)
        except ArgumentError:
            raise SettingsError(f"{name} is not a database URL: {_redact(text)!r}") from None
        if url.get_backend_name() != "postgresql":
            raise SettingsError(f"{name} must point at PostgreSQL, got {url.get_backend_name()!r}")
        return text

    def choice(self, name: str, allowed: tuple[str, ...]) -> str:
        text = self.raw(name).lower()
        if text not in allowed:
            raise SettingsError(f"{name} must be one of {', '.join(allowed)}, got {text!r}")
        return text

    def bind(self, name: str) -> str:
        text = self.raw(name)
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError(f"{name} must be HOST:PORT, got {text!r}")
        return text


def _redact(url: str) -> str:
    """Hide a password in a URL before it goes into an error message."""
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)
