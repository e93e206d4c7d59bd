"""The quota ledger: every call to the scraper's API is reserved here before it is made,
and every answer is kept here (see docs/quota-ledger.md).

The public face: :class:`QuotaLedger` (``reserve``, ``plan``, ``claim``, ``mark_used``;
``answers`` for what the API said; ``used_in_window`` and ``creations_by_prefix`` for
counts), its values (:class:`QuotaPolicy`, :class:`Reservation`, :class:`CreateMade`,
the call kinds) and the window rule every count uses (:func:`in_window`).
"""

from shared.quota.ledger import QuotaLedger, creations_by_prefix
from shared.quota.store import LEDGER_LOCK
from shared.quota.values import CREATE, EXTERNAL, CreateMade, QuotaPolicy, Reservation
from shared.quota.windows import in_window, in_window_or_ahead

__all__ = [
    "CREATE",
    "EXTERNAL",
    "LEDGER_LOCK",
    "CreateMade",
    "QuotaLedger",
    "QuotaPolicy",
    "Reservation",
    "creations_by_prefix",
    "in_window",
    "in_window_or_ahead",
]
