from urllib.parse import unquote

import pytest

from shared.domain.japan_post import MAX_NUMBERS, SEARCH_URL, numbers_in, search_url
from shared.domain.urls import UnsafeValue

NUMBERS = [f"1234567890{n:02d}" for n in range(12)]


@pytest.mark.parametrize("count", range(1, MAX_NUMBERS + 1))
def test_a_search_url_carries_1_to_10_numbers_in_their_order(count):
    url = search_url(NUMBERS[:count])
    assert url.startswith(SEARCH_URL + "?requestNo1=" + NUMBERS[0])
    assert unquote(url).endswith("&search=追跡スタート")
    assert url.count("requestNo") == count
    assert numbers_in(url) == NUMBERS[:count]


def test_the_numbers_go_without_hyphens_or_full_width_digits():
    url = search_url(["1234-5678-9012", "１２３４５６７８９０１３"])
    assert "requestNo1=123456789012&requestNo2=123456789013&" in url


@pytest.mark.parametrize(
    "numbers",
    [[], NUMBERS[:11], ["12345"], ["1234567890ab"], ["123456789012&x=1"], [NUMBERS[0]] * 2],
)
def test_what_cannot_make_a_search_is_refused(numbers):
    with pytest.raises(UnsafeValue):
        search_url(numbers)


def test_another_url_asks_for_no_number():
    assert numbers_in("https://store.apple.com/go/jp/vieworder/W1234567890/a@b.c") == []
    assert numbers_in(f"{SEARCH_URL}?search=x") == []
