"""One fault of each kind from bench/faults.py, in the normal suite: a service killed
with kill -9 and restarted, the scraper's faults, two publishers. Nothing lost, no second
scraping job, no 429 and no secret in any log line. (The broker and database restarts
run in bench/faults.py only: they would pull the services from under the rest of the
suite's fixtures.)"""

from __future__ import annotations

import random
import time

import pytest

from bench.faults import PURCHASES, one_run

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "scenario",
    [
        "kill-publisher",
        "kill-ingestor",
        "create-answer-lost",
        "api-5xx-burst",
        "api-outage-after-end",  # the scrape ended: read once the API is back, not redone
        "webhooks-x3",
        "webhook-never-arrives",  # the reconciler imports it
        "two-publishers",
    ],
)
def test_a_fault_loses_duplicates_and_leaks_nothing(
    scenario, postgres_admin_url, rabbitmq, tmp_path
):
    seed = time.time_ns()  # a moment of its own each run; said on failure
    outcome = one_run(scenario, random.Random(seed), tmp_path)
    context = f"seed {seed}: {outcome.notes}"
    assert (outcome.candidates, outcome.filled, outcome.lost) == (PURCHASES, PURCHASES, 0), context
    assert (outcome.duplicates, outcome.urls_twice) == (0, 0), context
    assert (outcome.rate_limited, outcome.leaks) == (0, 0), context
    assert outcome.dead_letters == 0, context
    assert outcome.fired, f"the fault showed no effect ({context})"
    if scenario in ("kill-publisher", "two-publishers"):  # a busy phase of most of a second
        assert outcome.busy_kills == outcome.kills == 1, context
