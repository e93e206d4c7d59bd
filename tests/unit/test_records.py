import datetime as dt

import pytest

from ingestor.records import read_record, record_for, scraped_at
from shared.domain.statuses import Outcome

ANCHOR = dt.datetime(2026, 12, 28, 3, 0, tzinfo=dt.UTC)
URL = "https://store.apple.com/go/jp/vieworder/W1234567890/user+tag@example.com"


def record(**columns):
    base = {
        "web-scraper-order": f"{int(ANCHOR.timestamp())}-1",
        "web-scraper-start-url": URL,
        "tracking_number": "1234-5678-9013",
        "delivery_status": "輸送中",
        "shipping_method": "YAMATO TRANSPORT CO.,LTD.",
        "estimated_delivery_date": "01/05 14:00-16:00",
    }
    return {**base, **columns}


def test_a_good_record_gives_every_value_normalized_and_the_year_after_new_year():
    scraped = read_record(record(), dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    assert scraped.tracking_number == "123456789013"
    assert scraped.delivery_status == "輸送中" and scraped.outcome is Outcome.KEEP_CHECKING
    assert scraped.shipping_method == "YAMATO TRANSPORT CO.,LTD."
    assert scraped.estimated_delivery_date == dt.date(2027, 1, 5)  # anchored on the scrape
    assert scraped.rejected == {} and not scraped.needs_recheck


def test_garbage_values_are_left_out_each_with_its_rule():
    scraped = read_record(
        record(
            tracking_number="123456789012",
            delivery_status="<b>???</b>",
            estimated_delivery_date="来週のどこか",
        ),
        ANCHOR,
    )
    assert scraped.tracking_number is None and scraped.delivery_status is None
    assert scraped.estimated_delivery_date is None
    assert set(scraped.rejected) == {
        "tracking_number_check_digit",
        "delivery_status_markup",
        "estimated_delivery_date_unparseable",
    }
    assert scraped.needs_recheck


@pytest.mark.parametrize(
    "status,outcome",
    [("配達完了（宅配ボックス）", Outcome.DELIVERED), ("↓返品完了", Outcome.CLOSED)],
)
def test_a_final_status_without_a_number_needs_no_recheck(status, outcome):
    scraped = read_record(record(tracking_number=None, delivery_status=status), ANCHOR)
    assert scraped.outcome is outcome and not scraped.needs_recheck


def test_not_shipped_yet_needs_a_recheck_and_is_not_an_error():
    scraped = read_record(
        record(tracking_number="", delivery_status="伝票番号未登録", estimated_delivery_date="-"),
        ANCHOR,
    )
    assert scraped.tracking_number is None and scraped.rejected == {}
    assert scraped.delivery_status == "伝票番号未登録" and scraped.needs_recheck


@pytest.mark.parametrize(
    "column,value,rule",
    [
        ("tracking_number", ["123"], "tracking_number_type"),
        ("delivery_status", "配達中\x00", "delivery_status_control"),
        ("delivery_status", "x" * 201, "delivery_status_too_long"),
        ("shipping_method", "???", "shipping_method_meaningless"),
        ("estimated_delivery_date", "2026/02/30", "estimated_delivery_date_impossible"),
    ],
)
def test_each_bad_shape_is_rejected_with_its_rule(column, value, rule):
    assert rule in read_record(record(**{column: value}), ANCHOR).rejected


def test_a_number_typed_as_a_json_number_is_read_as_its_digits():
    assert read_record(record(tracking_number=123456789013), ANCHOR).tracking_number == (
        "123456789013"
    )


def test_the_scrape_time_comes_from_web_scraper_order():
    assert scraped_at({"web-scraper-order": "1767225600-3"}) == dt.datetime(
        2026, 1, 1, tzinfo=dt.UTC
    )
    assert scraped_at({"web-scraper-order": "abc-1"}) is None
    assert scraped_at({}) is None


def test_records_are_matched_by_their_start_url_whatever_its_encoding():
    reencoded = "HTTPS://STORE.APPLE.COM/go/jp/vieworder/W1234567890/user%2Btag%40example.com/"
    other = record(**{"web-scraper-start-url": URL.replace("W1234567890", "W1234567891")})
    mine = record(**{"web-scraper-start-url": reencoded})
    assert record_for([other, mine], URL) is mine
    assert record_for([other], URL) is None


def test_of_several_records_for_one_url_the_one_with_a_number_wins():
    empty, full = record(tracking_number=None), record()
    assert record_for([empty, full], URL) is full


JP_URL = "https://trackings.post.japanpost.jp/services/srv/search/?requestNo1=512547514334&requestNo2=483654795890&search=%E8%BF%BD%E8%B7%A1%E3%82%B9%E3%82%BF%E3%83%BC%E3%83%88"


def jp_record(number: str, status: str | None = "通過", url: str = JP_URL) -> dict:
    return {
        "web-scraper-start-url": url,
        "tracking_number": number,
        "delivery_status": status,
        "status_date": "2026/12/01 10:00",
    }


def test_a_japan_post_record_is_matched_by_its_normalised_number_within_its_url():
    from ingestor.records import record_of_number

    first, second = jp_record("5125-4751-4334"), jp_record("４８３６５４７９５８９０")
    elsewhere = jp_record("512547514334", url=JP_URL.replace("requestNo2=483654795890&", ""))
    records = [elsewhere, second, first]
    assert record_of_number(records, JP_URL, "512547514334") is first
    assert record_of_number(records, JP_URL, "483654795890") is second
    assert record_of_number(records, JP_URL, "405548424886") is None
    assert record_of_number(records, JP_URL, None) is None


def test_a_japan_post_record_gives_its_status_and_never_a_number():
    from ingestor.records import read_status_record

    scraped = read_status_record(jp_record("512547514334", " 持ち出し中 "), ANCHOR)
    assert (scraped.tracking_number, scraped.delivery_status) == (None, "持ち出し中")
    assert scraped.delivery_status_code == "out_for_delivery"
    assert not scraped.needs_recheck  # the refresh's own interval decides the next look


@pytest.mark.parametrize(
    ("status", "rule"),
    [
        (None, "delivery_status_missing"),
        ("<b>x</b>", "delivery_status_markup"),
        ("x" * 300, "delivery_status_too_long"),
    ],
)
def test_a_japan_post_record_without_a_usable_status_is_rejected_with_its_reason(status, rule):
    from ingestor.records import read_status_record

    scraped = read_status_record(jp_record("512547514334", status), ANCHOR)
    assert scraped.delivery_status is None
    assert list(scraped.rejected) == [rule]
