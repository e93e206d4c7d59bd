import datetime as dt

import pytest

from shared.domain.dates import TOKYO, estimate_span, parse_estimate
from shared.domain.invalid import Invalid

SCRAPED = dt.datetime(2026, 8, 8, 1, 0, tzinfo=dt.UTC)  # 10:00 on 8 August in Tokyo


def at(year, month, day, hour=12):
    return dt.datetime(year, month, day, hour, tzinfo=TOKYO)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("2026/01/27 - 2026/02/03", dt.date(2026, 2, 3)),
        ("2026/01/27 – 2026/02/03", dt.date(2026, 2, 3)),
        ("2026/01/09 10:37", dt.date(2026, 1, 9)),
        ("08月10日 16:13", dt.date(2026, 8, 10)),
        ("09/30 14:00-16:00", dt.date(2026, 9, 30)),
        ("4/1 14:00～16:00", dt.date(2026, 4, 1)),  # four months stale: still this year
        ("2026年3月15日（月）", dt.date(2026, 3, 15)),
        ("2026-10-08（木）午前中", dt.date(2026, 10, 8)),
        ("２０２６／０８／１２", dt.date(2026, 8, 12)),
        ("08/12(水) 14:00〜16:00", dt.date(2026, 8, 12)),
        ("2026/12/28 ~ 2027/01/05", dt.date(2027, 1, 5)),
    ],
)
def test_every_format_of_the_domain_is_parsed(text, expected):
    assert parse_estimate(text, SCRAPED) == expected


@pytest.mark.parametrize("text", [None, "", "-", "午前中", "14:00-16:00", " － ", "指定なし"])
def test_text_without_a_date_is_no_estimate_not_an_error(text):
    assert parse_estimate(text, SCRAPED) is None


def test_an_estimate_scraped_in_december_for_january_is_next_year():
    assert parse_estimate("01/05 14:00-16:00", at(2026, 12, 28)) == dt.date(2027, 1, 5)
    assert parse_estimate("1月5日", at(2026, 12, 28)) == dt.date(2027, 1, 5)


def test_a_late_estimate_scraped_in_january_for_december_is_last_year():
    assert parse_estimate("12/30", at(2027, 1, 3)) == dt.date(2026, 12, 30)


def test_a_range_across_new_year_keeps_its_end():
    assert parse_estimate("12/30 - 01/04", at(2026, 12, 27)) == dt.date(2027, 1, 4)


def test_the_year_is_inferred_in_tokyo_not_utc():
    # 31 December 20:00 UTC is already 1 January in Tokyo: "12/31" is the day before
    late = dt.datetime(2026, 12, 31, 20, 0, tzinfo=dt.UTC)
    assert parse_estimate("12/31", late) == dt.date(2026, 12, 31)
    assert parse_estimate("06/30", late) == dt.date(2027, 6, 30)


@pytest.mark.parametrize("text", ["来週のどこか", "<b>soon</b>", "TBD", "12345"])
def test_text_that_is_not_a_date_is_invalid(text):
    with pytest.raises(Invalid) as error:
        parse_estimate(text, SCRAPED)
    assert error.value.rule == "estimated_delivery_date_unparseable"


@pytest.mark.parametrize("text", ["2026/02/30", "13/01", "2026年13月1日", "00/10"])
def test_dates_that_do_not_exist_are_invalid(text):
    with pytest.raises(Invalid) as error:
        parse_estimate(text, SCRAPED)
    assert error.value.rule == "estimated_delivery_date_impossible"


def test_29_february_without_a_year_lands_in_the_nearest_leap_year():
    assert parse_estimate("2/29", at(2028, 1, 10)) == dt.date(2028, 2, 29)


def test_29_february_without_a_year_is_refused_when_the_nearest_year_has_none():
    # 2028 has a 29 February, but a date scraped on 20 February 2027 means this month
    with pytest.raises(Invalid) as error:
        parse_estimate("2/29", at(2027, 2, 20))
    assert error.value.rule == "estimated_delivery_date_impossible"


def test_a_range_end_without_a_year_follows_the_year_of_its_start():
    assert parse_estimate("2026/12/28 - 01/05", at(2026, 6, 15)) == dt.date(2027, 1, 5)
    assert parse_estimate("2026/01/27 - 02/03", at(2026, 6, 15)) == dt.date(2026, 2, 3)


def test_a_range_of_iso_dates_whose_end_omits_the_year_keeps_its_end():
    assert parse_estimate("2026-01-27~02-03", SCRAPED) == dt.date(2026, 2, 3)
    assert parse_estimate("2026-12-28 - 01-05", SCRAPED) == dt.date(2027, 1, 5)


def test_an_estimate_is_read_as_its_first_and_last_day():
    assert estimate_span("12/30 - 01/04", at(2026, 12, 27)) == (
        dt.date(2026, 12, 30),
        dt.date(2027, 1, 4),
    )
    assert estimate_span("01/05 14:00-16:00", at(2026, 12, 28)) == (dt.date(2027, 1, 5),) * 2
    assert estimate_span("-", SCRAPED) is None
