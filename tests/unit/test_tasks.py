"""The registry of tasks: three tasks, one webhook path, told apart by the prefix."""

import pytest

from shared.settings import load_settings
from shared.tasks import (
    JAPAN_POST_TRACKING_10,
    OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO,
    TRACKING_TASK_CONFIGS,
    YAMATO_STATUS_REFRESH,
    enabled_tasks,
    task_for_custom_id,
)


def test_the_refresh_task_has_the_contracts_names():
    task = TRACKING_TASK_CONFIGS["japan_post_tracking_10_tracking_number"]
    assert task.custom_id("0123abcd", 7) == "jpt10-0123abcd-0007"
    assert task.filename_prefix == "purchasing_query_japan_post_tracking_10_"
    assert (task.triggered, task.completed) == (
        "japan_post_tracking_10_triggered",
        "japan_post_tracking_10_completed",
    )
    assert (task.purchases_per_url, task.seeks_number) == (10, False)


def test_the_yamato_refresh_has_the_contracts_names():
    task = TRACKING_TASK_CONFIGS["official_website_yamato_status_refresh"]
    assert task.custom_id("0123abcd", 7) == "owysr-0123abcd-0007"
    assert task.filename_prefix == "purchasing_query_yamato_status_refresh_"
    assert (task.sitemap_id, task.purchases_per_url, task.seeks_number) == (1421177, 1, False)


def test_every_task_shares_the_seeds_webhook_path():
    assert {t.path_keyword for t in TRACKING_TASK_CONFIGS.values()} == {"webscraper-tracking"}


@pytest.mark.parametrize(
    ("custom_id", "task"),
    [
        ("owryt-0123abcd-0000", OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO),
        ("jpt10-0123abcd-0042", JAPAN_POST_TRACKING_10),
        ("owysr-0123abcd-0042", YAMATO_STATUS_REFRESH),
        ("jpt11-0123abcd-0042", None),
        ("", None),
    ],
)
def test_the_prefix_names_the_task(custom_id, task):
    assert task_for_custom_id(custom_id) is task
    if task is not None:
        assert task.owns(custom_id)
        assert not any(
            other.owns(custom_id) for other in TRACKING_TASK_CONFIGS.values() if other is not task
        )


def test_the_japan_post_refresh_is_enabled_by_its_sitemap_setting_the_yamato_one_always():
    assert list(enabled_tasks(load_settings({}))) == [
        OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO,
        YAMATO_STATUS_REFRESH,
    ]
    settings = load_settings({"JAPAN_POST_SITEMAP_ID": "77"})
    assert list(enabled_tasks(settings)) == [
        OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO,
        JAPAN_POST_TRACKING_10,
        YAMATO_STATUS_REFRESH,
    ]
    assert JAPAN_POST_TRACKING_10.sitemap_in(settings) == 77
    assert OFFICIAL_WEBSITE_REDIRECT_TO_YAMATO.sitemap_in(settings) == 1421177
