"""Selection at scale: 1,000,000 purchases, 1% of them candidates.

Prints the median time of the selection query (the first SELECTOR_MAX_RECORDS matches,
as the selector runs it: a statement prepared once per connection) with the partial
index and with index scans disabled (a forced sequential scan), their ratio, the plan,
and the median of a whole pass (query, batch rows, commit, 20 confirmed
publishes). Goals (issue 3): a pass under 20 ms, ratio over 50.

    .venv/bin/python bench/selector.py [--purchases 1000000] [--runs 30]

It creates and drops its own database and RabbitMQ vhost on the local services.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from bench.scratch import scratch_services  # noqa: E402
from selector.selection import choose, iter_matches  # noqa: E402
from selector.service import Selector  # noqa: E402
from shared.db.session import make_engine, make_session_factory  # noqa: E402
from shared.messaging.publishing import MessagePublisher, connect  # noqa: E402
from shared.settings import load_settings  # noqa: E402

FILL = """
INSERT INTO official_account (id, email)
SELECT g, 'buyer' || g || '@example.com' FROM generate_series(1, 1000) g;
INSERT INTO purchasing (order_number, official_account_id, tracking_number,
                        latest_delivery_status, created_at)
SELECT 'W' || lpad(g::text, 10, '0'),
       1 + g % 1000,
       CASE WHEN g % 100 = 0 THEN NULL ELSE '4' || lpad(g::text, 11, '0') END,
       CASE WHEN g % 100 = 0 AND g % 300 = 0 THEN '配達完了' WHEN g % 7 = 0 THEN '輸送中' END,
       now() - make_interval(secs => (:n - g) * 10)
FROM generate_series(1, :n) g;
ANALYZE;
"""


def median_ms(action, runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--purchases", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    with scratch_services() as (url, amqp_url):
        engine = make_engine(url)
        started = time.perf_counter()
        with engine.begin() as connection:
            connection.execute(text(FILL), {"n": args.purchases})
        print(
            f"filled {args.purchases:,} purchases ({args.purchases // 100:,} without a "
            f"tracking number) in {time.perf_counter() - started:.1f}s"
        )
        run(engine, url, amqp_url, args.runs)
        engine.dispose()
    return 0


EXPIRE_S = "2592000"  # RECHECK_EXPIRE_S's default, the selection's parameter 3


def _server_ms(connection, compiled, seq_scan: bool, runs: int) -> float:
    """Median server-side execution time, without the client's share."""
    samples = []
    for _ in range(runs):
        with connection.begin():
            if seq_scan:
                connection.exec_driver_sql("SET LOCAL enable_indexscan = off")
                connection.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
            plan = connection.exec_driver_sql(
                f"EXPLAIN (ANALYZE, FORMAT JSON) {str(compiled).replace('$3', EXPIRE_S)}",
                compiled.params,
            ).scalar()
        samples.append(plan[0]["Execution Time"])
    return statistics.median(samples)


FINISH = """
WITH done AS (
    UPDATE tracking_job SET status = 'completed', completed_at = now()
    WHERE status IN ('queued', 'publishing', 'pending') RETURNING purchasing_id
)
UPDATE purchasing SET tracking_number = '444413758703'
WHERE id IN (SELECT purchasing_id FROM done)
"""


def finish_lookups(engine) -> None:
    """Every job in flight ends with a tracking number (the ingestor's part, untimed)."""
    with engine.begin() as connection:
        connection.execute(text(FINISH))


def run(engine, url: str, amqp_url: str, runs: int) -> None:
    settings = load_settings({"DATABASE_URL": url, "AMQP_URL": amqp_url})
    sessions = make_session_factory(engine)

    # the query is prepared once per connection: the forced sequential scan needs
    # connections that plan without index scans from the start
    no_index = make_engine(
        url, connect_args={"options": "-c enable_indexscan=off -c enable_bitmapscan=off"}
    )

    def query(sessions) -> None:
        with sessions() as session, session.begin():
            candidates, _ = choose(
                iter_matches(session, settings.recheck_expire_s), settings.selector_max_records
            )
            assert len(candidates) == settings.selector_max_records

    seq_sessions = make_session_factory(no_index)
    for _ in range(6):  # prepared on each pool's connection; PostgreSQL settles on one
        query(sessions), query(seq_sessions)  # plan after five executions
    with_index = median_ms(lambda: query(sessions), runs)
    without = median_ms(lambda: query(seq_sessions), max(5, runs // 3))
    no_index.dispose()
    with engine.connect() as connection:
        from selector.selection import matching_page, matching_query

        compiled = (
            matching_query().limit(20).compile(engine, compile_kwargs={"render_postcompile": True})
        )
        page = matching_page(50)
        page.execute(connection, "-infinity", 0, float(EXPIRE_S))
        plan = (
            connection.exec_driver_sql(
                # the plan the selector runs
                f"EXPLAIN EXECUTE {page.name}('-infinity', 0, {EXPIRE_S})"
            )
            .scalars()
            .all()
        )
        connection.rollback()
        server_index = _server_ms(connection, compiled, seq_scan=False, runs=runs)
        server_seq = _server_ms(connection, compiled, seq_scan=True, runs=max(5, runs // 3))
    uses = next(
        (line.strip() for line in plan if "ix_purchasing_needs_tracking" in line),
        "the partial index is NOT used",
    )
    with connect(amqp_url) as connection:
        selector = Selector(settings, sessions, MessagePublisher(connection))
        selector.run_pass("bench")  # warm up: connection, topology
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            selector.run_pass("bench")
            samples.append((time.perf_counter() - started) * 1000)
            finish_lookups(engine)  # untimed: the steady state, where lookups end
        full_pass = statistics.median(samples)
    print(f"plan: {uses}")
    print(f"selection query, partial index : {with_index:8.2f} ms (median of {runs})")
    print(f"selection query, seq scan      : {without:8.2f} ms (median of {max(5, runs // 3)})")
    print(f"ratio seq scan / index         : {without / with_index:8.1f}x  (goal > 50)")
    print(
        f"server execution (EXPLAIN ANALYZE), index: {server_index:.3f} ms, seq scan: "
        f"{server_seq:.2f} ms, ratio {server_seq / server_index:.0f}x"
    )
    print(
        f"whole pass (query, batch, commit, {settings.selector_max_records} confirmed "
        f"publishes): {full_pass:.2f} ms (median of {runs}; goal < 20 ms)"
    )


if __name__ == "__main__":
    sys.exit(main())
