"""The simulator's orders living in time (webscraper_sim/orders.py)."""

import datetime as dt
import statistics

from webscraper_sim.orders import OrderModel, page_at, story_of

ORIGIN = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
MODEL = OrderModel()
STORIES = [story_of(f"W{n:010d}", MODEL, ORIGIN) for n in range(3000)]
HOUR = dt.timedelta(hours=1)


def page(story, at):
    return page_at(story, at).records[0]


def test_a_story_is_the_same_for_the_same_order_seed_and_origin():
    assert story_of("W1234567890", MODEL, ORIGIN) == story_of("W1234567890", MODEL, ORIGIN)
    assert story_of("W1234567890", OrderModel(seed=1), ORIGIN) != STORIES[0]


def test_before_the_handover_the_page_shows_apples_state_and_the_estimate():
    story = next(s for s in STORIES if s.handover_at and s.preparing_at > s.placed_at)
    early, late = page(story, story.placed_at), page(story, story.handover_at - HOUR / 60)
    assert (early["tracking_number"], early["delivery_status"]) == (None, "処理中")
    assert (late["tracking_number"], late["delivery_status"]) == (None, "出荷準備中")
    first, last = story.estimate
    assert early["estimated_delivery_date"] == f"{first:%Y/%m/%d} - {last:%Y/%m/%d}"


def test_from_the_handover_the_page_shows_the_number_and_the_carriers_story():
    story = next(s for s in STORIES if s.handover_at)
    seen = [
        page(story, at)
        for at in (story.handover_at, story.registered_at, story.out_for_delivery_at)
    ]
    assert {record["tracking_number"] for record in seen} == {
        f"{story.tracking_number[:4]}-{story.tracking_number[4:8]}-{story.tracking_number[8:]}"
    }
    assert [record["delivery_status"] for record in seen][0] == "伝票番号未登録"
    assert page(story, story.delivered_at)["delivery_status"] == "配達完了"


def test_a_cancelled_order_says_so_and_never_shows_a_number():
    story = next(s for s in STORIES if s.cancelled_at)
    assert page(story, story.cancelled_at - HOUR)["delivery_status"] == "処理中"
    later = page(story, story.cancelled_at + dt.timedelta(days=40))
    assert (later["tracking_number"], later["delivery_status"]) == (None, "キャンセル済み")


def test_the_model_follows_its_parameters():
    leads = [(s.estimate[0] - s.placed_at.date()).days for s in STORIES]
    assert 0.4 < sum(lead <= 3 for lead in leads) / len(leads) < 0.6  # half within 3 days
    assert 0.15 < sum(lead > 10 for lead in leads) / len(leads) < 0.25  # a fifth beyond 10
    never = sum(s.handover_at is None for s in STORIES) / len(STORIES)
    assert 0.03 < never < 0.07  # one in twenty never ships
    shipped = [s for s in STORIES if s.handover_at and s.preparing_at > s.placed_at]
    preparing_h = [(s.handover_at - s.preparing_at) / HOUR for s in shipped]
    assert min(preparing_h) >= 12 and max(preparing_h) <= 36
    before = [
        (dt.datetime.combine(s.estimate[0], dt.time(), s.handover_at.tzinfo) - s.handover_at).days
        for s in shipped
    ]
    assert 0 <= statistics.median(before) <= 1  # about a day before the estimate
    assert all(s.delivered_at > s.registered_at > s.handover_at for s in shipped)
