import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.invalid import Invalid
from shared.domain.tracking_numbers import Carrier, carrier_of, validate

YAMATO = "YAMATO TRANSPORT CO.,LTD."
JP_LOGISTICS = "JP LOGISTICS GROUP CO., LTD."
VALID_12 = [
    "123456789013",
    "444413758703",
    "405548424886",
    "512547514334",
    "483654795890",
    "183793020961",
]


@pytest.mark.parametrize("number", VALID_12)
@pytest.mark.parametrize("carrier", [YAMATO, JP_LOGISTICS, "佐川急便", None])
def test_the_domain_vectors_of_12_digits_are_valid_for_every_carrier(number, carrier):
    assert validate(number, carrier) == number


@pytest.mark.parametrize(
    "raw",
    [
        "1234-5678-9013",
        "１２３４５６７８９０１３",
        "1234 5678 9013",
        "１２３４－５６７８－９０１３",
        " 123456789013\n",
    ],
)
def test_hyphens_spaces_and_full_width_digits_are_normalized(raw):
    assert validate(raw, YAMATO) == "123456789013"


@pytest.mark.parametrize(
    "raw", ["123456789012", "1234-5678-9012", "123456789017", "123456789018", "123456789019"]
)
def test_a_wrong_check_digit_is_invalid(raw):
    with pytest.raises(Invalid) as error:
        validate(raw, YAMATO)
    assert error.value.rule == "tracking_number_check_digit"


def test_japan_post_registered_mail_has_11_digits_with_its_own_check():
    assert validate("13112383852", JP_LOGISTICS) == "13112383852"
    with pytest.raises(Invalid, match="check digit"):
        validate("13112383853", JP_LOGISTICS)


def test_an_11_digit_number_is_not_a_yamato_number():
    with pytest.raises(Invalid) as error:
        validate("13112383852", YAMATO)
    assert error.value.rule == "tracking_number_format"


@pytest.mark.parametrize("raw", ["EJ123456785JP", "RB123456785GB", "ej 123456785 jp"])
def test_s10_international_numbers_are_checked(raw):
    assert validate(raw, JP_LOGISTICS) == raw.replace(" ", "").upper()


def test_an_s10_number_with_a_wrong_check_digit_is_invalid():
    with pytest.raises(Invalid, match="check digit"):
        validate("EJ123456789JP", None)


@pytest.mark.parametrize("raw", ["<b>123</b>", "abc", "12345", "1234567890123", "W1234567890"])
def test_other_shapes_are_invalid(raw):
    with pytest.raises(Invalid) as error:
        validate(raw, None)
    assert error.value.rule == "tracking_number_format"


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_no_number_is_none_not_an_error(raw):
    assert validate(raw, YAMATO) is None


@pytest.mark.parametrize(
    "method,carrier",
    [
        (YAMATO, Carrier.YAMATO),
        ("ヤマト運輸", Carrier.YAMATO),
        (JP_LOGISTICS, Carrier.JAPAN_POST),
        ("日本郵便", Carrier.JAPAN_POST),
        ("SAGAWA EXPRESS CO.,LTD.", Carrier.SAGAWA),
        ("UNKNOWN", Carrier.UNKNOWN),
        (None, Carrier.UNKNOWN),
    ],
)
def test_the_carrier_comes_from_apples_shipping_method(method, carrier):
    assert carrier_of(method) is carrier


@given(st.integers(min_value=0, max_value=10**11 - 1))
def test_every_11_digit_base_with_its_mod_7_digit_is_valid_and_no_other_last_digit_is(base):
    head = f"{base:011d}"
    good = head + str(int(head) % 7)
    assert validate(good, YAMATO) == good
    for digit in "0123456789":
        if digit != good[-1]:
            with pytest.raises(Invalid):
                validate(head + digit, YAMATO)
