"""The simulator's deterministic pages: the tests downstream rely on these rules."""

import datetime as dt
import re

import pytest

from webscraper_sim.scenarios import (
    job_end_status,
    order_number_of,
    page_for,
    valid_tracking_number,
)

NOW = dt.datetime(2026, 12, 30, 3, 0, tzinfo=dt.UTC)


def url(order: str) -> str:
    return f"https://store.apple.com/go/jp/vieworder/{order}/u%2Btag@example.com"


def check_digit_ok(number: str) -> bool:
    digits = re.sub(r"\D", "", number)
    return len(digits) == 12 and int(digits[:11]) % 7 == int(digits[11])


def test_order_number_is_read_from_the_path():
    assert order_number_of(url("W1234567890")) == "W1234567890"
    assert order_number_of("https://example.com/") == ""


@pytest.mark.parametrize("order", ["W1234567890", "W0000000000", "W512494298", "W9999999999"])
def test_generated_tracking_numbers_pass_the_mod7_check(order):
    assert check_digit_ok(valid_tracking_number(order))


def test_the_last_digit_chooses_the_page():
    pages = {d: page_for(url(f"W123456789{d}"), NOW) for d in "0123456789"}
    assert check_digit_ok(pages["0"].record["tracking_number"])
    assert re.fullmatch(r"\d{4}-\d{4}-\d{4}", pages["1"].record["tracking_number"])
    assert pages["2"].record["tracking_number"][0] == "４"  # full-width digits
    assert pages["3"].record["shipping_method"] == "JP LOGISTICS GROUP CO., LTD."
    assert pages["4"].record["tracking_number"] is None
    assert pages["4"].record["delivery_status"] == "伝票番号未登録"
    assert pages["5"].record["delivery_status"] == "出荷準備中"
    assert pages["6"].record["delivery_status"].startswith("配達完了")
    assert (pages["7"].record, pages["7"].problem) == (None, "empty")
    assert (pages["8"].record, pages["8"].problem) == (None, "failed")
    assert not check_digit_ok(pages["9"].record["tracking_number"])


def test_estimates_cross_the_new_year_near_its_end():
    assert (
        page_for(url("W1234567893"), NOW)
        .record["estimated_delivery_date"]
        .startswith("2027年1月1日")
    )


@pytest.mark.parametrize(
    ("ending", "status"), [("97", "stopped"), ("98", "failed"), ("96", "finished")]
)
def test_the_last_two_digits_can_end_the_whole_job(ending, status):
    assert job_end_status([url("W12345678" + ending)]) == status


def test_a_japan_post_page_gives_a_record_per_number_in_its_order():
    from shared.domain.japan_post import search_url
    from webscraper_sim.scenarios import JAPAN_POST_STATUSES, UNKNOWN_NUMBER, japan_post_number

    numbers = [japan_post_number(n, n % 10) for n in range(10)]
    page = page_for(search_url(numbers), NOW)
    assert page.problem is None
    assert [re.sub(r"\D", "", r["tracking_number"]) for r in page.records] == numbers
    assert [r["delivery_status"] for r in page.records] == [
        JAPAN_POST_STATUSES[str(n % 10)] for n in range(10)
    ]
    unknown = page.records[5]
    assert (unknown["delivery_status"], unknown["status_date"]) == (UNKNOWN_NUMBER, None)
    assert page.records[0]["status_date"] == "2026/12/30 09:00"  # Tokyo time, 3 h before
    assert all(check_digit_ok(number) for number in numbers)


def test_a_japan_post_page_without_numbers_is_empty():
    page = page_for("https://trackings.post.japanpost.jp/services/srv/search/?search=x", NOW)
    assert (page.records, page.problem) == ((), "empty")
