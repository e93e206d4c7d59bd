"""One process of the cross-process quota test: from a shared start time, call the
simulator through the real ledger and client as fast as the ledger allows, until the
end time; print how many calls it made and how many 429s it got, as JSON.

    python -m tests.support.quota_worker DATABASE_URL API_URL TOKEN CALLS WINDOW_S START END
"""

from __future__ import annotations

import json
import sys
import time

from shared.db.session import make_engine, make_session_factory
from shared.quota import QuotaLedger, QuotaPolicy
from shared.webscraper.client import QuotaWait, RateLimited, WebScraperClient


def main(argv: list[str]) -> int:
    database_url, api_url, token, calls, window_s, start, end = argv
    ledger = QuotaLedger(
        make_session_factory(make_engine(database_url)),
        QuotaPolicy(int(calls), float(window_s), 0.0, 0),
    )
    client = WebScraperClient(api_url, token, ledger, timeout_s=5)
    made = limited = 0
    time.sleep(max(0.0, float(start) - time.time()))  # the barrier: both start together
    while time.time() < float(end):
        try:
            client.list_jobs(1)
            made += 1
        except RateLimited:
            limited += 1
        except QuotaWait as wait:
            time.sleep(min(wait.wait_s, 0.02))
    print(json.dumps({"made": made, "429": limited}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
