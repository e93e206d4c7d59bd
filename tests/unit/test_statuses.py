import pytest

from shared.domain.statuses import Outcome, classify, is_done, normalize

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
