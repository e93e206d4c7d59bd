"""The registry of scraping tasks (the seed's ``TRACKING_TASK_CONFIGS``).

A task ties together the webhook path keyword, the batch's file-name prefix, the
sitemap, the custom-id prefix and a display name. Routing keys are task names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class TaskConfig:
    name: str
    path_keyword: str
    filename_prefix: str
    sitemap_id: int
    custom_id_prefix: str
    display_name: str

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
)

TRACKING_TASK_CONFIGS: dict[str, TaskConfig] = {
    OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO.name: OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO,
}


def task_for_custom_id(custom_id: str) -> TaskConfig | None:
    """The task whose custom-id prefix starts ``custom_id``, or None."""
    for task in TRACKING_TASK_CONFIGS.values():
        if custom_id.startswith(task.custom_id_prefix):
            return task
    return None
