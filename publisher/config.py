"""The publisher's own settings, read from :class:`shared.settings.Settings` at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.tasks import TRACKING_TASK_CONFIGS


@dataclass(frozen=True)
class PublisherConfig:
    max_attempts: int
    retry_base_s: float
    #: a create without an answer is looked for no sooner than this after it was made
    #: (``python -m publisher``: twice ``HTTP_TIMEOUT_S``)
    settle_after_s: float = 60.0
    max_parkings_logged: int = 3
    #: waits up to this long are slept in place, longer ones parked in RabbitMQ
    sleep_max_s: float = 1.0
    #: the sitemap of each task this publisher creates jobs for (the others are refused)
    sitemaps: Mapping[str, int] = field(
        default_factory=lambda: {
            t.name: t.sitemap_id for t in TRACKING_TASK_CONFIGS.values() if t.sitemap_id
        }
    )
