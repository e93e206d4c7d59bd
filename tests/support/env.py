"""The settings a test's services run with: the test's database, vhost and simulator,
with time compressed; each test module adds what it is about."""

from __future__ import annotations

from tests.conftest import SIM_TOKEN


def services_env(database_url: str, amqp_url: str, api_url: str, **more: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "AMQP_URL": amqp_url,
        "WEBSCRAPER_API_URL": api_url,
        "WEBSCRAPER_API_TOKEN": SIM_TOKEN,
        "SELECTOR_REPUBLISH_GRACE_S": "0",
        "HTTP_TIMEOUT_S": "2",
        "AMQP_HEARTBEAT_S": "5",
        **more,
    }
