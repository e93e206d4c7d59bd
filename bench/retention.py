"""The quota ledger after a year at the full quota: with retention, and without.

A scratch database gets a year of ``api_call`` rows at 200 calls per 15 minutes (about
19,200 a day, 7 million in all), as if nothing had ever pruned them. Then, for the
ledger as it is and for the ledger after retention (shared.db.retention, as the selector
daemon runs it), the script prints the rows, the table's size with its indexes, and the
median time of what the API's callers do on it: a follow-up call's reservation (one
round trip), the count of the window (status, metrics), a creation's plan and mark.
Ratios are against the pruned ledger, measured in the same run.

    .venv/bin/python bench/retention.py [--days 365]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from bench.scratch import scratch_services  # noqa: E402
from bench.selector import median_ms  # noqa: E402
from shared.db.retention import Kept, prune  # noqa: E402
from shared.db.session import make_engine, make_session_factory  # noqa: E402
from shared.quota import CREATE, QuotaLedger, QuotaPolicy  # noqa: E402
from shared.tasks import OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO as TASK  # noqa: E402

PER_DAY = 200 * 96  # the full quota: 200 calls a window, 96 windows a day
#: no spacing between creations: the bench makes them back to back
POLICY = QuotaPolicy(calls=200, window_s=900.0, min_interval_s=0.0, followups_per_job=2)

YEAR_OF_CALLS = """
INSERT INTO api_call (kind, at, used_at, status, outcome)
SELECT (ARRAY['create', 'get', 'json'])[1 + i % 3], t, t, 200, 'OK'
FROM generate_series(1, :rows) AS i,
     LATERAL (SELECT now() - make_interval(secs => 1000 + i * 4.5)) AS at_(t)
"""
#: the bench's own calls, in the current window (the year ends before it)
OWN_CALLS = "DELETE FROM api_call WHERE at > now() - make_interval(secs => 990)"


def figures(engine, ledger: QuotaLedger, runs: int) -> dict[str, float]:
    """Sizes, then the median of ``runs`` follow-up reservations, window counts and
    (fewer: they have a share of their own) creations, each reserved and marked used."""
    with engine.connect() as db:
        rows = db.execute(text("SELECT count(*) FROM api_call")).scalar_one()
        size = db.execute(text("SELECT pg_total_relation_size('api_call')")).scalar_one()

    def create() -> None:
        slot = ledger.plan(CREATE, TASK.custom_id("be0c0000", 0))
        assert slot.ready and ledger.mark_used(slot, CREATE)

    measured = {
        "rows": rows,
        "MiB": size / 2**20,
        "follow-up ms": median_ms(lambda: ledger.reserve("get", use=True), runs),
        "window count ms": median_ms(ledger.used_in_window, runs),
        "create ms": median_ms(create, 20),
    }
    with engine.begin() as db:
        db.execute(text(OWN_CALLS))
    return measured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    with scratch_services() as (database_url, _):
        engine = make_engine(database_url)
        sessions = make_session_factory(engine)
        ledger = QuotaLedger(sessions, POLICY)
        started = time.monotonic()
        with engine.begin() as db:
            db.execute(text(YEAR_OF_CALLS), {"rows": PER_DAY * args.days})
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as db:
            db.execute(text("VACUUM ANALYZE api_call"))
        print(f"{args.days} days at the full quota written in {time.monotonic() - started:.0f} s")
        unpruned = figures(engine, ledger, args.runs)
        kept = Kept(
            api_calls=2 * POLICY.span_s, processed=7 * 86400, sync_logs=90 * 86400, outbox=7 * 86400
        )
        started, deleted = time.monotonic(), 0
        while True:  # the first runs of a daemon on a table never pruned
            done = prune(sessions, kept).api_calls
            deleted += done
            if not done:
                break
        first_s = time.monotonic() - started
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as db:
            db.execute(text("VACUUM FULL ANALYZE api_call"))
        pruned = figures(engine, ledger, args.runs)
        steady_ms = median_ms(lambda: prune(sessions, kept), 20)
        engine.dispose()
    print(f"pruned {deleted} rows in {first_s:.1f} s (the first runs, in chunks)")
    print(f"{'':18} {'no retention':>14} {'retention':>12} {'ratio':>7}")
    for key in ("rows", "MiB", "follow-up ms", "window count ms", "create ms"):
        before, after = unpruned[key], pruned[key]
        ratio = before / after if after else float("inf")
        print(f"{key:18} {before:14.2f} {after:12.2f} {ratio:7.1f}x")
    print(f"a run of retention on the pruned ledger: {steady_ms:.2f} ms (median of 20)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
