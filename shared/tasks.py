"""The registry of scraping tasks (the seed's ``TRACKING_TASK_CONFIGS``).

A task ties together the webhook path keyword, the batch's file-name prefix, the
sitemap, the custom-id prefix, a display name and what its pages give: the tracking
number (Apple's order page) or the delivery status alone (Japan Post's search page, ten
purchases a URL; Apple's order page again for a Yamato parcel, one purchase a URL).
Routing keys are task names; tasks may share a webhook path, and the custom id's prefix
tells them apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TaskConfig:
    name: str
    path_keyword: str
    filename_prefix: str
    #: the sitemap; None: read from the setting ``sitemap_setting`` (unset: task off)
    sitemap_id: int | None
    custom_id_prefix: str
    display_name: str
    #: the sync_log operation types are ``{operation}_triggered`` / ``_completed``
    operation: str
    sitemap_setting: str | None = None
    #: purchases that share one start URL (Japan Post's page takes ten numbers)
    purchases_per_url: int = 1
    #: its pages give the tracking number; a job that ends without one waits its
    #: re-check delay (docs/selection.md). False: the page gives the status alone.
    seeks_number: bool = True

    @property
    def triggered(self) -> str:
        return f"{self.operation}_triggered"

    @property
    def completed(self) -> str:
        return f"{self.operation}_completed"

    def pack_size(self, settings: Any) -> int:
        """The most purchases one scraping job of the task carries under ``settings``
        (``PUBLISH_MAX_URLS_PER_JOB`` start URLs)."""
        return settings.publish_max_urls_per_job * self.purchases_per_url

    def sitemap_in(self, settings: Any) -> int | None:
        """The task's sitemap under ``settings`` (None: the task is off)."""
        if self.sitemap_setting is None:
            return self.sitemap_id
        return getattr(settings, self.sitemap_setting.lower())

    def custom_id(self, batch_short: str, index: int) -> str:
        """The seed's custom id: ``owryt-{batch_short}-{index:04d}``."""
        return f"{self.custom_id_prefix}{batch_short}-{index:04d}"

    @property
    def custom_id_shape(self) -> str:
        """The regular expression of every custom id the task makes (:meth:`custom_id`;
        a packed scraping job carries its first member's): the batch's 8 hex digits and
        the index, 4 digits or more."""
        return re.escape(self.custom_id_prefix) + "[0-9a-f]{8}-[0-9]{4,9}"

    def owns(self, custom_id: str) -> bool:
        """``custom_id`` has exactly the shape of this task's custom ids."""
        return re.fullmatch(self.custom_id_shape, custom_id) is not None


OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO = TaskConfig(
    name="official_website_redirect_to_yamato_tracking",
    path_keyword="webscraper-tracking",
    filename_prefix="purchasing_query_tracking_number_empty_",
    sitemap_id=1421177,
    custom_id_prefix="owryt-",
    display_name="Apple order page to carrier tracking",
    operation="tracking_number_empty",
)

JAPAN_POST_TRACKING_10 = TaskConfig(
    name="japan_post_tracking_10_tracking_number",
    path_keyword="webscraper-tracking",  # the seed's one endpoint; the prefix routes
    filename_prefix="purchasing_query_japan_post_tracking_10_",
    sitemap_id=None,
    custom_id_prefix="jpt10-",
    display_name="Japan Post delivery status refresh",
    operation="japan_post_tracking_10",
    sitemap_setting="JAPAN_POST_SITEMAP_ID",
    purchases_per_url=10,
    seeks_number=False,
)

YAMATO_STATUS_REFRESH = TaskConfig(
    name="official_website_yamato_status_refresh",
    path_keyword="webscraper-tracking",
    filename_prefix="purchasing_query_yamato_status_refresh_",
    sitemap_id=1421177,  # Apple's order page, which follows the redirect to Yamato's
    custom_id_prefix="owysr-",
    display_name="Yamato delivery status refresh through Apple's order page",
    operation="yamato_status_refresh",
    seeks_number=False,
)

TRACKING_TASK_CONFIGS: dict[str, TaskConfig] = {
    task.name: task
    for task in (OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO, JAPAN_POST_TRACKING_10, YAMATO_STATUS_REFRESH)
}


def enabled_tasks(settings: Any) -> Iterator[TaskConfig]:
    """The tasks that have a sitemap under ``settings``, in the registry's order."""
    return (task for task in TRACKING_TASK_CONFIGS.values() if task.sitemap_in(settings))


def task_for_custom_id(custom_id: str) -> TaskConfig | None:
    """The task whose custom-id prefix starts ``custom_id``, or None."""
    for task in TRACKING_TASK_CONFIGS.values():
        if custom_id.startswith(task.custom_id_prefix):
            return task
    return None
