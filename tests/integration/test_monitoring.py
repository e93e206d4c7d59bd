"""Every metric the dashboard and the alert rules name exists, with the labels they use:
trackfill's as the code exposes them (the counters, and the database's gauges read from
real rows), RabbitMQ's as the broker's rabbitmq_prometheus plugin serves them."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, update

from shared import metrics
from shared.db.credits import CreditFigures
from shared.db.figures import JobFigures
from shared.db.models import PageCreditReading, ScrapingJobCost, TrackingJob
from shared.db.session import make_session_factory
from shared.messaging.publishing import connect
from shared.messaging.topology import declare_topology
from shared.quota import QuotaLedger, QuotaPolicy
from shared.quota.figures import QuotaFigures
from tests.conftest import missing
from tests.support.published import Published

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
RULES = yaml.safe_load((ROOT / "monitoring/alerts.yml").read_text())
DASHBOARD = json.loads((ROOT / "monitoring/grafana/dashboards/trackfill.json").read_text())
EXPRESSIONS = [r["expr"] for g in RULES["groups"] for r in g["rules"]] + [
    t["expr"] for p in DASHBOARD["panels"] for t in p["targets"]
]
TASK = "official_website_redirect_to_yamato_tracking"
_KEYWORDS = {"by", "without", "on", "ignoring", "le"}


def named(prefix: str) -> dict[str, set[str]]:
    """{metric: labels used with it} over every expression, for metrics of ``prefix``;
    an expression's ``by (...)`` labels count for each of its metrics."""
    used: dict[str, set[str]] = {}
    for expr in EXPRESSIONS:
        grouped = {x.strip() for g in re.findall(r"\bby \(([^)]*)\)", expr) for x in g.split(",")}
        for name, matchers in re.findall(rf"\b({prefix}_[a-z_]+)(\{{[^}}]*\}})?", expr):
            labels = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers)) | grouped
            used.setdefault(name, set()).update(labels - _KEYWORDS - {""})
    return used


def exposed(text: str) -> dict[str, set[str]]:
    """{sample name: label names} of a Prometheus text page; a family with no sample yet
    (a counter never incremented) is given its type's sample names and no labels."""
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
        for suffix in suffixes.get(family.type, ("",)):
            found.setdefault(family.name + suffix, set())
        for sample in family.samples:
            found.setdefault(sample.name, set()).update(sample.labels)
    return found


def code_labels() -> dict[str, set[str]]:
    """Label names of the metrics shared/metrics.py defines (used or not yet)."""
    labels = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            base = value._name
            for suffix in ("", "_total", "_bucket", "_sum", "_count"):
                labels[base + suffix] = set(value._labelnames)
    return labels


def test_every_trackfill_metric_named_exists_with_its_labels(db, sim):
    published = Published(db, sim)
    (old,) = published.make(0)  # one job in flight, ten minutes old
    with published.sessions() as session, session.begin():
        session.execute(
            update(TrackingJob)
            .where(TrackingJob.purchasing_id == old)
            .values(created_at=func.now() - dt.timedelta(minutes=10))
        )
    sessions = make_session_factory(db)
    with sessions() as session, session.begin():  # a reading, and a job's cost
        session.add(PageCreditReading(page_credits=700))
        session.add(ScrapingJobCost(scraping_job_id=1, task_name=TASK, pages=140))
    policy = QuotaPolicy(calls=200, window_s=900, min_interval_s=6, followups_per_job=2)
    registry = CollectorRegistry()
    metrics.register(JobFigures(sessions, 1800), registry=registry)
    metrics.register(CreditFigures(sessions, 50), registry=registry)
    metrics.register(QuotaFigures(QuotaLedger(sessions, policy)), registry=registry)
    database = exposed(generate_latest(registry).decode())
    code = exposed(generate_latest().decode())  # the counters, histograms (default registry)
    known = {name: labels | code_labels().get(name, set()) for name, labels in code.items()}
    known.update(database)
    wanted = named("trackfill")
    assert len(wanted) >= 12
    for name, labels in wanted.items():
        assert name in known, f"{name} is named by monitoring/ but no code exposes it"
        assert labels <= known[name], (name, labels - known[name])
    page = {s.name: s.value for f in text_string_to_metric_families(
        generate_latest(registry).decode()) for s in f.samples}  # fmt: skip
    assert page["trackfill_reconcile_after_seconds"] == 1800
    assert page["trackfill_page_credits_remaining"] == 700
    assert page["trackfill_page_credits_reserve"] == 50
    assert page["trackfill_page_credits_days_left"] == 35  # 700 left at 140 / 7 a day
    by_task = {
        (s.labels["task"], s.labels.get("status")): s.value
        for f in text_string_to_metric_families(generate_latest(registry).decode())
        for s in f.samples
        if s.name.startswith("trackfill_task_")
    }
    assert by_task[("official_website_redirect_to_yamato_tracking", "pending")] == 1
    assert by_task[("japan_post_tracking_10_tracking_number", "pending")] == 0
    assert by_task[("japan_post_tracking_10_tracking_number", None)] == 0  # creations
    spent = {
        s.labels["task"]: s.value
        for f in text_string_to_metric_families(generate_latest(registry).decode())
        for s in f.samples
        if s.name == "trackfill_page_credits_spent_total"
    }
    assert spent == {
        TASK: 140,
        "japan_post_tracking_10_tracking_number": 0,
        "official_website_yamato_status_refresh": 0,
    }
    assert 600 <= page["trackfill_oldest_in_flight_job_age_seconds"] < 700


def test_every_rabbitmq_metric_named_is_served_by_the_brokers_prometheus_plugin(vhost):
    with connect(vhost.amqp_url) as connection:
        declare_topology(connection)  # queues to report
    host = urlsplit(vhost.amqp_url).hostname
    try:
        page = requests.get(f"http://{host}:15692/metrics/per-object", timeout=10)
    except requests.ConnectionError:
        missing("RabbitMQ's Prometheus plugin (rabbitmq-plugins enable rabbitmq_prometheus)")
    served = exposed(page.text)
    wanted = named("rabbitmq")
    assert wanted, "the rules and the dashboard name RabbitMQ's queue metrics"
    for name, labels in wanted.items():
        assert name in served, f"{name} is not served by rabbitmq_prometheus"
        assert labels <= served[name], (name, labels - served[name])
