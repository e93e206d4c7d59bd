import pytest

from shared.domain.masking import mask_email, mask_emails_in
from shared.domain.urls import UnsafeValue, order_status_url


def test_the_seeds_url_with_the_order_upper_cased():
    assert order_status_url("w1234567890", "user@example.com") == (
        "https://store.apple.com/go/jp/vieworder/W1234567890/user@example.com"
    )


def test_nine_digit_orders_are_accepted_and_values_are_stripped():
    assert order_status_url(" W512494298 ", " a@b.jp ").endswith("/W512494298/a@b.jp")


def test_full_width_digits_typed_by_hand_are_normalised():
    assert "/W1234567890/" in order_status_url("Ｗ１２３４５６７８９０", "a@b.jp")


def test_plus_and_at_stay_readable_and_legal_oddities_are_encoded():
    url = order_status_url("W1234567890", "first+tag%x@example.com")
    assert url.endswith("/first+tag%25x@example.com")
    assert order_status_url("W1234567890", "名前@example.jp").endswith(
        "/%E5%90%8D%E5%89%8D@example.jp"
    )


@pytest.mark.parametrize(
    ("order", "reason"),
    [
        (None, "order number"),
        ("", "order number"),
        ("W123", "order number"),
        ("W12345678901", "order number"),
        ("X1234567890", "order number"),
        ("W123456789/", "order number"),
        ("W١٢٣٤٥٦٧٨٩٠", "order number"),
    ],
)
def test_unsafe_order_numbers_are_refused(order, reason):
    with pytest.raises(UnsafeValue, match=reason):
        order_status_url(order, "user@example.com")


@pytest.mark.parametrize(
    ("email", "reason"),
    [
        (None, "empty"),
        ("", "empty"),
        ("   ", "empty"),
        ("us er@example.com", "' '"),
        ("user@exa/mple.com", "'/'"),
        ("user?x@example.com", "'?'"),
        ("user#x@example.com", "'#'"),
        ("user\\x@example.com", "'\\\\\\\\'"),
        ("user\x00@example.com", "control"),
        ("user\u202e@example.com", "control"),
        ("user\n@example.com", "control"),
        ("userexample.com", "form"),
        ("@example.com", "form"),
        ("user@localhost", "form"),
        ("a..b@example.com", "form"),
        ("a@b@example.com", "form"),
        ("x" * 250 + "@example.com", "longer than"),
    ],
)
def test_unsafe_emails_are_refused_with_a_reason(email, reason):
    with pytest.raises(UnsafeValue, match=reason):
        order_status_url("W1234567890", email)


def test_mask_email():
    assert mask_email("user@example.com") == "u***@example.com"
    assert mask_email("") == "" and mask_email("no-at-sign") == "***"


def test_mask_emails_in_text_and_urls():
    text = (
        "to user@example.com via https://store.apple.com/go/jp/vieworder/W1/first%2Btag%40ex.co.jp"
    )
    masked = mask_emails_in(text)
    assert "user@" not in masked and "u***@example.com" in masked
    assert "first" not in masked and "f***@ex.co.jp" in masked


def test_an_address_only_percent_encoded_is_masked_and_text_without_one_is_kept():
    encoded = "GET /go/jp/vieworder/W1/first%2Btag%40ex.co.jp failed"
    assert "first" not in mask_emails_in(encoded) and "f***@ex.co.jp" in mask_emails_in(encoded)
    plain = "[webhook] queued job.completed: custom_id=owryt-0a1b2c3d-0001 job_id=7"
    assert mask_emails_in(plain) == plain
