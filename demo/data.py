"""About seventy purchases that exercise every outcome. The simulator decides each page by
the order number's ending (``webscraper_sim.scenarios``), and each Japan Post status by
the tracking number's second-to-last digit; the rest of the mix is rows the selections
must leave alone or skip."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Engine, insert

from shared.db.models import OfficialAccount, Purchasing
from webscraper_sim.scenarios import YAMATO, japan_post_number, valid_tracking_number

#: (order-number ending, how many, what happens)
PAGES = [
    ("0", 6, "filled"),  # Yamato, valid number
    ("1", 6, "filled"),  # Yamato, number printed 1234-5678-9012
    ("2", 6, "filled"),  # Yamato, full-width digits
    ("3", 6, "filled"),  # JP Logistics
    ("4", 5, "pending"),  # not shipped yet (伝票番号未登録): re-check later
    ("5", 4, "pending"),  # Apple still preparing (出荷準備中): re-check later
    ("6", 4, "filled"),  # delivered
    ("7", 3, "failed"),  # empty page
    ("8", 3, "failed"),  # failed page
    ("9", 4, "pending"),  # garbage: bad check digit, markup status, no date
    ("97", 2, "failed"),  # a job of its own is stopped; in a pack, an empty page
    ("98", 2, "failed"),  # a job of its own fails; in a pack, a failed page
]
#: shipped by Japan Post, the status refresh's purchases: one per simulated outcome
#: (in transit, out for delivery, delivered, held, returned, unknown number, ...)
REFRESHED = range(10)
JP_LOGISTICS = "JP LOGISTICS GROUP CO., LTD."
#: shipped by Yamato, the Yamato refresh's purchases, last read 輸送中: (order-number
#: ending, how many, the page's number is theirs). The page now says 配達完了 (6) or
#: 配達中 (2); one shows another number than the stored one, and nothing is written.
YAMATO_SHIPPED = [("6", 3, True), ("2", 2, True), ("0", 1, False)]


@dataclass(frozen=True)
class DemoRow:
    purchasing_id: int
    order_number: str | None
    expected: str  # filled, pending, failed, skipped (by the selector), untouched


def insert_demo_rows(engine: Engine, start: int = 0) -> list[DemoRow]:
    """Insert the mix; order numbers are ``W`` + 10 digits from ``start`` (so that two
    runs on one database do not collide)."""
    created = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    rows: list[DemoRow] = []
    with engine.begin() as connection:

        def account(email: str | None) -> int:
            return connection.execute(
                insert(OfficialAccount).values(email=email).returning(OfficialAccount.id)
            ).scalar_one()

        def purchase(order: str | None, account_id: int | None, expected: str, **columns):
            nonlocal created
            created += dt.timedelta(minutes=1)
            pid = connection.execute(
                insert(Purchasing)
                .values(
                    order_number=order,
                    official_account_id=account_id,
                    created_at=created,
                    **columns,
                )
                .returning(Purchasing.id)
            ).scalar_one()
            rows.append(DemoRow(pid, order, expected))

        buyers = [account(f"buyer{n}@example.com") for n in range(1, 6)]
        serial = start
        for ending, count, expected in PAGES:
            for _ in range(count):
                serial += 1
                order = f"W{serial:08d}{ending:0>2}"  # "7" as "07": never a "97"
                purchase(order, buyers[serial % len(buyers)], expected)
        for outcome in REFRESHED:
            serial += 1
            purchase(
                f"W{serial:08d}{outcome:0>2}",
                buyers[serial % len(buyers)],
                "refreshed",
                tracking_number=japan_post_number(serial, outcome),
                shipping_method=JP_LOGISTICS,
                latest_delivery_status="引受",
            )
        for ending, count, same_number in YAMATO_SHIPPED:
            for _ in range(count):
                serial += 1
                order = f"W{serial:08d}{ending:0>2}"
                purchase(
                    order,
                    buyers[serial % len(buyers)],
                    "refreshed",
                    tracking_number=valid_tracking_number(order) if same_number else "444413758703",
                    shipping_method=YAMATO,
                    latest_delivery_status="輸送中",
                    delivery_status_code="in_transit",
                )
        # rows the selections must not touch
        purchase(  # delivered already: no refresh
            "W7000000090",
            buyers[4],
            "untouched",
            tracking_number=japan_post_number(90, 0),
            shipping_method=JP_LOGISTICS,
            latest_delivery_status="お届け先にお届け済み",
        )
        purchase("W7000000010", buyers[0], "untouched", tracking_number="444413758703")
        purchase("W7000000020", buyers[1], "untouched", latest_delivery_status="配達完了")
        purchase(
            "W7000000030", buyers[2], "untouched", latest_delivery_status="お届け先にお届け済み"
        )
        purchase("MQ7000000040", buyers[3], "untouched")  # not an Apple online order
        purchase("W7000000050", account(""), "untouched")  # account without e-mail
        purchase("W7000000060", None, "untouched")  # no account
        # matched, but no safe URL can be made: skipped with the reason
        purchase("W7000000070", account("bad/user@example.com"), "skipped")
        purchase("W7000000080", account("no-at-sign.example.com"), "skipped")
    return rows
