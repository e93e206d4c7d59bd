"""The registry of scraping tasks (the seed's ``TRACKING_TASK_CONFIGS``).

A task ties together the webhook path keyword, the batch's file-name prefix, the
sitemap, the custom-id prefix and a display name. Routing keys are task names.
"""

from __future__ import annotations

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
