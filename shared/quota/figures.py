"""The quota's figures, read from the ledger when Prometheus scrapes."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shared.quota.ledger import QuotaLedger
from shared.tasks import TRACKING_TASK_CONFIGS


class QuotaFigures(Collector):
    """Calls used and left in the window that ends now, and creations by task."""

    def __init__(self, ledger: QuotaLedger):
        self._ledger = ledger

    def collect(self) -> Iterator[GaugeMetricFamily]:
        used = self._ledger.used_in_window()
        yield GaugeMetricFamily(
            "trackfill_quota_used_calls", "API calls in the current quota window", value=used
        )
        yield GaugeMetricFamily(
            "trackfill_quota_left_calls",
            "API calls left in the current quota window",
            value=max(0, self._ledger.policy.calls - used),
        )
        made = self._ledger.creations_by_prefix()
        creations = GaugeMetricFamily(
            "trackfill_task_creations_in_window",
            "Scraping jobs created in the current quota window, by task (the refresh "
            "keeps to REFRESH_MAX_SHARE of them under a tracking-number backlog)",
            labels=["task"],
        )
        for task in TRACKING_TASK_CONFIGS.values():
            creations.add_metric([task.name], made.get(task.custom_id_prefix, 0))
        yield creations
