"""CI sets TRACKFILL_REQUIRE_SERVICES=1: a test that needs a missing service then fails,
naming the service, instead of being skipped (a green run must have run them all)."""

import pytest

from tests.conftest import missing


def test_a_missing_service_fails_the_test_where_services_are_required(monkeypatch):
    monkeypatch.setenv("TRACKFILL_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="no PostgreSQL"):
        missing("no PostgreSQL: set DATABASE_URL")


def test_a_missing_service_skips_the_test_on_a_developer_machine(monkeypatch):
    monkeypatch.delenv("TRACKFILL_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no RabbitMQ"):
        missing("no RabbitMQ")


def test_ci_requires_the_services():
    from pathlib import Path

    script = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    assert "export TRACKFILL_REQUIRE_SERVICES=1\n./run test" in script


def test_every_test_has_a_time_limit(pytestconfig):
    # pytest-timeout: a loop waiting for a line that never comes fails instead of hanging
    assert 60 <= float(pytestconfig.getini("timeout")) <= 600
