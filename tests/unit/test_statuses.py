import pytest

from shared.domain.statuses import (
    CODES,
    DONE_CODES,
    Outcome,
    StatusCode,
    classify,
    code_of,
    is_done,
    normalize,
)

DELIVERED = [
    "配達完了",
    "配達完了（宅配ボックス）",
    "投函完了",
    "お客様引渡完了",  # Yamato
    "お届け先にお届け済み",
    "窓口でお渡し",  # Japan Post
    "配達済み",
    "配達終了",
    "引渡完了",
    "↓配達完了",
    "⇒配達完了",  # Sagawa, with its arrows
    "  配達完了  ",
    "配達完了\u3000",
    "配送済み",
    "DELIVERED",
    "delivered",
]
CLOSED = ["返品完了", "差出人に返送済み", "CANCELED", "キャンセル済み", "↓返品完了"]
KEEP_CHECKING = [
    None,
    "",
    "伝票番号未登録",
    "荷物受付",
    "発送済み",
    "作業店通過",
    "輸送中",
    "配達中",
    "持戻（ご不在）",
    "調査中",
    "引受",
    "到着",
    "通過",
    "保管",
    "処理中",
    "出荷準備中",
    "配送準備中",
    "出荷完了",
    "PLACED",
    "SHIPPED",
    "PREPARED_FOR_SHIPMENT",
    "何か新しい状態",
    "未配達完了",  # a prefix rule, not a substring rule
]


@pytest.mark.parametrize("status", DELIVERED)
def test_delivered_states_are_done(status):
    assert classify(status) is Outcome.DELIVERED and is_done(status)


@pytest.mark.parametrize("status", CLOSED)
def test_returned_and_cancelled_states_are_done_and_flagged(status):
    assert classify(status) is Outcome.CLOSED and is_done(status)


@pytest.mark.parametrize("status", KEEP_CHECKING)
def test_everything_else_keeps_checking(status):
    assert classify(status) is Outcome.KEEP_CHECKING and not is_done(status)


def test_normalize_applies_nfkc_trims_and_drops_leading_arrows():
    assert normalize(" ↓ 配達完了（ＡＢＣ） ") == "配達完了(ABC)"


#: every status string docs/domain.md names, with the code it gives it
KNOWN = {
    "伝票番号未登録": "pending",
    "お問い合わせ番号が見つかりません": "pending",
    "処理中": "pending",
    "出荷準備中": "pending",
    "配送準備中": "pending",
    "PLACED": "pending",
    "PROCESSING": "pending",
    "PREPARED_FOR_SHIPMENT": "pending",
    "荷物受付": "info_received",
    "引受": "info_received",
    "輸送中": "in_transit",
    "作業店通過": "in_transit",
    "到着": "in_transit",
    "通過": "in_transit",
    "発送済み": "in_transit",
    "出荷完了": "in_transit",
    "SHIPPED": "in_transit",
    "配達中": "out_for_delivery",
    "持ち出し中": "out_for_delivery",
    "持戻（ご不在）": "delivery_failed",
    "ご不在のため持ち戻り": "delivery_failed",
    "保管": "ready_for_pickup",
    "窓口保管": "ready_for_pickup",
    "配達完了": "delivered",
    "配達完了（宅配ボックス）": "delivered",
    "投函完了": "delivered",
    "お客様引渡完了": "delivered",
    "お届け先にお届け済み": "delivered",
    "窓口でお渡し": "delivered",
    "配達済み": "delivered",
    "配達終了": "delivered",
    "引渡完了": "delivered",
    "↓配達完了": "delivered",
    "配送済み": "delivered",
    "DELIVERED": "delivered",
    "返品完了": "returned",
    "差出人に返送済み": "returned",
    "CANCELED": "cancelled",
    "キャンセル済み": "cancelled",
    "調査中": "exception",
}


@pytest.mark.parametrize(("status", "code"), KNOWN.items())
def test_every_known_status_has_its_normalised_code(status, code):
    assert code_of(status) == code


@pytest.mark.parametrize("status", ["何か新しい状態", "未配達完了", "???", "NEW_STATE"])
def test_a_status_no_rule_knows_is_unknown_and_keeps_being_checked(status):
    assert code_of(status) is StatusCode.UNKNOWN and classify(status) is Outcome.KEEP_CHECKING


@pytest.mark.parametrize("status", [None, "", "   ", "\u3000"])
def test_no_status_has_no_code(status):
    assert code_of(status) is None


@pytest.mark.parametrize("status", [*KNOWN, *DELIVERED, *CLOSED, *KEEP_CHECKING])
def test_the_done_rule_is_a_view_of_the_code_table(status):
    code = code_of(status)
    assert is_done(status) == (code in DONE_CODES)
    if code in DONE_CODES:
        assert classify(status) is DONE_CODES[code]


def test_every_code_but_unknown_has_statuses_in_the_table():
    assert set(CODES) == set(StatusCode) - {StatusCode.UNKNOWN}
    assert set(KNOWN.values()) == {c.value for c in CODES}
