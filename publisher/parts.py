"""The collaborators the publisher's handling of one pack is made of, built once by the
handler and handed to each part that works on a pack (creating it, settling a lost
create)."""

from __future__ import annotations

from dataclasses import dataclass

from publisher.config import PublisherConfig
from publisher.outcomes import Outcomes
from publisher.packs import Packs
from publisher.slots import Slots
from shared.quota import QuotaLedger
from shared.webscraper.client import WebScraperClient


@dataclass(frozen=True)
class PackParts:
    packs: Packs
    ledger: QuotaLedger
    client: WebScraperClient
    config: PublisherConfig
    slots: Slots
    outcomes: Outcomes
