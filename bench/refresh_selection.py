"""The refresh task's selection at scale: 1,000,000 purchases with a tracking number, most
of them delivered long ago.

Prints the median time of the refresh selection (the first 200 due purchases, ten to a
search page, as a pass takes them) with the partial index ``ix_purchasing_may_need_refresh``
(a number, a status code that is not done, oldest check first) and with index scans
disabled, their ratio and the plan's top. The population: a third shipped with JP
Logistics, 2% of all still in transit (the rest delivered), last checks spread over the
past 16 hours.

    .venv/bin/python bench/refresh_selection.py [--purchases 1000000] [--runs 15]

It creates and drops its own database and RabbitMQ vhost on the local services.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from bench.scratch import scratch_services  # noqa: E402
from bench.selector import median_ms  # noqa: E402
from selector.refresh import choose_due, due_query  # noqa: E402
from shared.db.session import make_engine, make_session_factory  # noqa: E402
from shared.domain.schedule import Schedule  # noqa: E402

INTERVAL_S = 21600
SCHEDULE = Schedule(refresh_s=INTERVAL_S)
FILL = """
INSERT INTO purchasing (order_number, tracking_number, shipping_method, latest_delivery_status,
                        delivery_status_code, delivery_status_checked_at, created_at)
SELECT 'W' || lpad(g::text, 10, '0'),
       n || (n::bigint % 7)::text,
       CASE WHEN g % 3 = 0 THEN 'JP LOGISTICS GROUP CO., LTD.' ELSE 'YAMATO TRANSPORT CO.,LTD.' END,
       CASE WHEN g % 50 = 0 THEN '通過'
            WHEN g % 3 = 0 THEN 'お届け先にお届け済み' ELSE '配達完了' END,
       CASE WHEN g % 50 = 0 THEN 'in_transit' ELSE 'delivered' END,
       now() - make_interval(secs => (g % 1000) * 60),
       now() - make_interval(secs => (:n - g) * 10)
FROM generate_series(1, :n) g, LATERAL (SELECT '5' || lpad(g::text, 10, '0') AS n) number;
ANALYZE;
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--purchases", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with scratch_services() as (url, _amqp):
        engine = make_engine(url)
        with engine.begin() as connection:
            connection.execute(text(FILL), {"n": args.purchases})
        sessions = make_session_factory(engine)

        def select_due(seq_scan: bool) -> None:
            with sessions() as session, session.begin():
                if seq_scan:
                    session.execute(text("SET LOCAL enable_indexscan = off"))
                    session.execute(text("SET LOCAL enable_bitmapscan = off"))
                candidates, _ = choose_due(session, SCHEDULE, 200)
                assert len(candidates) == 200

        with_index = median_ms(lambda: select_due(False), args.runs)
        without = median_ms(lambda: select_due(True), max(3, args.runs // 3))
        with engine.connect() as connection:
            query = due_query(SCHEDULE, 200).compile(engine, compile_kwargs={"literal_binds": True})
            plan = connection.exec_driver_sql("EXPLAIN " + str(query).replace("%", "%%")).scalars()
            uses = next((line.strip() for line in plan if "Index" in line), "no index")
        engine.dispose()
    print(f"{args.purchases:,} purchases with a number; 200 due taken, ten to a page")
    print(f"plan: {uses}")
    print(f"refresh selection, partial index : {with_index:8.1f} ms (median of {args.runs})")
    print(f"refresh selection, no index scans: {without:8.1f} ms")
    print(f"ratio                            : {without / with_index:8.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
