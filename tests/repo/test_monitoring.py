"""monitoring/: the alert rules pass promtool (syntax and their unit tests), the queue
names the rules and the dashboard match are the topology's, and the dashboard is the
one Grafana's provisioning loads. (That every metric they name exists: see
tests/integration/test_monitoring.py.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from shared.messaging.topology import ROUTES, all_queues

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
RULES = yaml.safe_load((MONITORING / "alerts.yml").read_text())
DASHBOARD = json.loads((MONITORING / "grafana/dashboards/trackfill.json").read_text())
QUEUES = {q.name for q in all_queues()}
CONSUMED = {name for route in ROUTES.values() for name in route.consumed}
DEAD = {route.dead_letter_queue for route in ROUTES.values()}


def rules() -> dict[str, dict]:
    return {r["alert"]: r for group in RULES["groups"] for r in group["rules"]}


def expressions() -> list[str]:
    panels = [t["expr"] for p in DASHBOARD["panels"] for t in p["targets"]]
    return [r["expr"] for r in rules().values()] + panels


def promtool() -> str:
    found = shutil.which("promtool") or str(Path(sys.executable).parent / "promtool")
    if not Path(found).exists():
        pytest.skip("promtool is not installed (./run install unpacks it from Debian's package)")
    return found


def test_the_rules_pass_promtool_check(tmp_path):
    done = subprocess.run([promtool(), "check", "rules", str(MONITORING / "alerts.yml")],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout


def test_every_alert_fires_on_its_series_and_not_before_in_promtool_tests():
    test_file = MONITORING / "alerts_test.yml"
    done = subprocess.run([promtool(), "test", "rules", str(test_file)],
                          capture_output=True, text=True, timeout=60, cwd=MONITORING)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    tested = {t["alertname"] for test in yaml.safe_load(test_file.read_text())["tests"]
              for t in test["alert_rule_test"] if t["exp_alerts"]}  # fmt: skip
    assert tested == set(rules())  # each alert is seen firing at least once


def test_the_prometheus_config_passes_promtool_with_the_rules_where_compose_mounts_them(
    tmp_path,
):
    config = (MONITORING / "prometheus.yml").read_text()
    assert "/etc/prometheus/alerts.yml" in config
    local = tmp_path / "prometheus.yml"
    local.write_text(config.replace("/etc/prometheus/alerts.yml", str(MONITORING / "alerts.yml")))
    done = subprocess.run([promtool(), "check", "config", str(local)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def queue_regexes(expr: str) -> list[re.Pattern]:
    return [re.compile(m.encode().decode("unicode_escape"))
            for m in re.findall(r'queue=~"((?:[^"\\]|\\.)*)"', expr)]  # fmt: skip


def test_the_dead_letter_matchers_match_the_dead_letter_queues_and_no_other():
    found = [p for e in expressions() if "dead-letter" in e for p in queue_regexes(e)]
    assert len(found) == 2  # the alert and the dashboard's panel
    for pattern in found:
        assert {q for q in QUEUES if pattern.fullmatch(q)} == DEAD


def test_the_no_consumer_alert_watches_exactly_the_queues_a_service_consumes():
    (pattern,) = queue_regexes(rules()["TrackfillQueueWithoutConsumer"]["expr"])
    assert {q for q in QUEUES if pattern.fullmatch(q)} == CONSUMED


def test_the_dashboard_is_provisioned_from_where_compose_mounts_it():
    provider = yaml.safe_load(
        (MONITORING / "grafana/provisioning/dashboards/trackfill.yml").read_text()
    )["providers"][0]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./monitoring/grafana/dashboards:{provider['options']['path']}:ro" in mounts
    (source,) = yaml.safe_load(
        (MONITORING / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"]
    panels = DASHBOARD["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["datasource"]["uid"] == source["uid"]
        assert all(t["datasource"]["uid"] == source["uid"] for t in panel["targets"])


def test_the_dashboard_shows_what_an_operator_asks_first():
    titles = " / ".join(p["title"] for p in DASHBOARD["panels"]).lower()
    for subject in ("quota", "calls by kind and outcome", "429", "jobs by status",
                    "fill latency", "webhooks by outcome", "validation failures by rule",
                    "dead letters", "queue depths"):  # fmt: skip
        assert subject in titles, subject
