"""What the gateway's views need from the app that serves them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

FIELDS = ("scrapingjob_id", "status", "sitemap_id", "sitemap_name", "custom_id")
FORM_TYPES = ("application/x-www-form-urlencoded",)


class Broker(Protocol):
    def publish(self, exchange: str, routing_key: str, envelope: Any) -> None: ...

    def check(self) -> None: ...


@dataclass(frozen=True)
class Parts:
    """The app's parts, kept in ``app.extensions["trackfill"]``."""

    broker: Broker
    #: the expected ``token`` query parameter, as bytes for a constant-time comparison
    token: bytes
