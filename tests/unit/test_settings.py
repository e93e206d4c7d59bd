import dataclasses

import pytest

from shared.settings import SettingsError, load_settings


def test_defaults_are_the_contracts():
    settings = load_settings({})
    assert settings.database_url == "postgresql+psycopg2://postgres@127.0.0.1:5432/trackfill"
    assert settings.amqp_url == "amqp://guest:guest@127.0.0.1:5672/%2F"
    assert settings.webscraper_api_url == "https://api.webscraper.io/api/v1/"
    assert settings.gateway_bind == "0.0.0.0:8000"
    assert (settings.api_quota_calls, settings.api_quota_window_s) == (200, 900.0)
    assert settings.publish_min_interval_s == 6.0
    assert (settings.selector_max_records, settings.selector_interval_s) == (20, 900.0)
    assert (settings.recheck_base_s, settings.recheck_max_s) == (1800.0, 86400.0)
    assert settings.webscraper_api_token is None and settings.webhook_token is None


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        load_settings({}).api_quota_calls = 5  # type: ignore[misc]


@pytest.mark.parametrize("name", ["WEBSCRAPER_API_TOKEN", "WEBHOOK_TOKEN"])
def test_a_missing_required_setting_is_named(name):
    with pytest.raises(SettingsError, match=f"^{name} is required but not set$"):
        load_settings({}, require=[name])


def test_a_blank_required_setting_counts_as_missing():
    with pytest.raises(SettingsError, match="WEBHOOK_TOKEN"):
        load_settings({"WEBHOOK_TOKEN": "   "}, require=["WEBHOOK_TOKEN"])


def test_required_settings_are_read_when_present():
    settings = load_settings({"WEBSCRAPER_API_TOKEN": "abc"}, require=["WEBSCRAPER_API_TOKEN"])
    assert settings.webscraper_api_token == "abc"


def test_durations_accept_fractions_so_tests_can_compress_time():
    settings = load_settings({"API_QUOTA_WINDOW_S": "9", "PUBLISH_MIN_INTERVAL_S": "0.06"})
    assert settings.api_quota_window_s == 9.0
    assert settings.publish_min_interval_s == pytest.approx(0.06)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("API_QUOTA_WINDOW_S", "-1"),
        ("API_QUOTA_WINDOW_S", "0"),
        ("API_QUOTA_WINDOW_S", "nan"),
        ("API_QUOTA_WINDOW_S", "inf"),
        ("SELECTOR_INTERVAL_S", "15m"),
        ("PUBLISH_MIN_INTERVAL_S", "-0.5"),
        ("API_QUOTA_CALLS", "0"),
        ("API_QUOTA_CALLS", "2.5"),
        ("SELECTOR_MAX_RECORDS", "many"),
        ("GATEWAY_BIND", "8000"),
        ("GATEWAY_BIND", "0.0.0.0:99999"),
        ("AMQP_URL", "http://127.0.0.1:5672/"),
        ("AMQP_URL", "amqp://127.0.0.1:5672/;http://127.0.0.1:5673/"),
        ("AMQP_URL", "amqp://127.0.0.1:5672/;"),
        ("WEBSCRAPER_API_URL", "api.webscraper.io"),
        ("DATABASE_URL", "sqlite:///x.db"),
        ("DATABASE_URL", "not a url"),
        ("INGEST_GROUP_SIZE", "0"),
        ("INGEST_GROUP_SIZE", "101"),
        ("JAPAN_POST_SITEMAP_ID", "abc"),
        ("JAPAN_POST_SITEMAP_ID", "0"),
        ("JAPAN_POST_SITEMAP_ID", "-5"),
        ("REFRESH_INTERVAL_S", "0"),
        ("REFRESH_MAX_SHARE", "1.5"),
        ("REFRESH_MAX_SHARE", "-0.1"),
        ("REFRESH_MAX_SHARE", "nan"),
        ("REFRESH_MAX_SHARE", "a quarter"),
    ],
)
def test_a_malformed_setting_is_named_with_its_value(name, value):
    with pytest.raises(SettingsError, match=f"^{name} "):
        load_settings({name: value})


def test_the_ingestor_groups_up_to_a_hundred_notifications():
    assert load_settings({}).ingest_group_size == 10
    assert load_settings({"INGEST_GROUP_SIZE": "100"}).ingest_group_size == 100


def test_zero_publish_interval_is_allowed():
    assert load_settings({"PUBLISH_MIN_INTERVAL_S": "0"}).publish_min_interval_s == 0


def test_recheck_max_below_base_is_refused():
    with pytest.raises(SettingsError, match="RECHECK_MAX_S"):
        load_settings({"RECHECK_BASE_S": "100", "RECHECK_MAX_S": "10"})


def test_passwords_do_not_reach_error_messages():
    with pytest.raises(SettingsError) as error:
        load_settings({"AMQP_URL": "http://user:hunter2@host/"})
    assert "hunter2" not in str(error.value)
    with pytest.raises(SettingsError) as error:
        load_settings({"AMQP_URL": "amqp://u:hunter2@a:5672/;amqp://u:hunter3@b:5672;x"})
    assert "hunter" not in str(error.value)


def test_amqp_url_takes_a_clusters_nodes_separated_by_semicolons():
    urls = "amqp://guest:guest@node1:5672/%2F; amqp://guest:guest@node2:5672/%2F"
    assert load_settings({"AMQP_URL": urls}).amqp_url == urls.replace(" ", "")


def test_repr_hides_the_tokens():
    settings = load_settings({"WEBSCRAPER_API_TOKEN": "s3cret-api", "WEBHOOK_TOKEN": "s3cret-hook"})
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in str(settings)


def test_only_secret_settings_can_be_required():
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        load_settings({}, require=["DATABASE_URL"])


def test_the_refresh_task_is_off_until_its_sitemap_is_set():
    settings = load_settings({})
    assert settings.japan_post_sitemap_id is None
    assert (settings.refresh_interval_s, settings.refresh_max_share) == (21600.0, 0.25)
    assert load_settings({"JAPAN_POST_SITEMAP_ID": " 1424310 "}).japan_post_sitemap_id == 1424310
