"""docker-compose.yml is checked by reading it: there is no Docker engine where tests run."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from shared.settings import DEFAULTS, SECRETS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
ENV_EXAMPLE = dict(
    line.split("=", 1)
    for line in (ROOT / ".env.example").read_text().splitlines()
    if line and not line.startswith("#")
)
#: what each trackfill command cannot start without (``python -m X`` by its module X)
REQUIRED = {
    "webscraper-sim": (),
    "alembic": (),
    "selector": (),
    "publisher": ("WEBSCRAPER_API_TOKEN",),
    "webhook_gateway": ("WEBHOOK_TOKEN",),
    "ingestor": ("WEBSCRAPER_API_TOKEN",),
}


def program_of(command: list[str]) -> str:
    return command[2] if command[0] == "python" else command[0]


def trackfill_services():
    return {
        name: s
        for name, s in SERVICES.items()
        if s.get("build") or s.get("image", "").startswith("trackfill")
    }


def test_the_stack_has_the_broker_with_its_ui_the_database_and_the_migration():
    assert SERVICES["rabbitmq"]["image"] == "rabbitmq:3-management"
    assert {"5672:5672", "15672:15672"} <= set(SERVICES["rabbitmq"]["ports"])
    assert SERVICES["postgres"]["image"].startswith("postgres:")
    assert SERVICES["migrate"]["command"] == ["alembic", "upgrade", "head"]
    assert SERVICES["migrate"]["restart"] == "no"


def test_the_four_services_run_from_the_one_image():
    commands = {program_of(s["command"]) for s in trackfill_services().values()}
    assert {"selector", "publisher", "webhook_gateway", "ingestor"} <= commands
    assert {s["image"] for s in trackfill_services().values()} == {"trackfill:latest"}


@pytest.mark.parametrize("name", ["selector", "publisher", "ingestor"])
def test_the_consumers_start_after_the_migration_and_a_healthy_broker(name):
    depends = SERVICES[name]["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert depends["rabbitmq"]["condition"] == "service_healthy"


def test_the_gateway_is_published_on_its_bind_port_and_checked_on_healthz():
    gateway = SERVICES["webhook-gateway"]
    port = ENV_EXAMPLE["GATEWAY_BIND"].rpartition(":")[2]
    assert f"{port}:{port}" in gateway["ports"]
    assert f"127.0.0.1:{port}/healthz" in " ".join(gateway["healthcheck"]["test"])
    webhook = " ".join(SERVICES["webscraper-sim"]["command"])
    assert (
        f"http://webhook-gateway:{port}/api/acquisition/webscraper/webscraper-tracking/" in webhook
    )


@pytest.mark.parametrize("name", ["rabbitmq", "postgres", "webscraper-sim", "webhook-gateway"])
def test_long_running_services_have_healthchecks(name):
    assert SERVICES[name]["healthcheck"]["test"][0] == "CMD"


def test_the_migration_waits_for_a_healthy_database():
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_simulator_is_in_the_demo_profile():
    assert SERVICES["webscraper-sim"]["profiles"] == ["demo"]


@pytest.mark.parametrize("name", sorted(trackfill_services()))
def test_every_trackfill_command_exists_in_the_package(name):
    command = SERVICES[name]["command"]
    program = command[0]
    if program == "python":
        assert command[1] == "-m"
        assert importlib.util.find_spec(f"{command[2]}.__main__"), command
    elif program == "alembic":
        assert (ROOT / "alembic.ini").exists() and (ROOT / "migrations" / "env.py").exists()
    else:
        assert program in SCRIPTS, f"{program} is not a console script of pyproject.toml"


@pytest.mark.parametrize("name", sorted(trackfill_services()))
def test_every_trackfill_service_gets_its_settings_and_restarts(name):
    service = SERVICES[name]
    assert service["env_file"] == ".env"
    assert service["restart"] in ("unless-stopped", "no")
    for variable in REQUIRED[program_of(service["command"])]:
        assert variable in ENV_EXAMPLE


def test_env_example_lists_every_setting_with_the_secrets_as_placeholders():
    assert set(DEFAULTS) | set(SECRETS) <= set(ENV_EXAMPLE)
    for secret in SECRETS:
        assert ENV_EXAMPLE[secret].startswith("change-me")


def test_interpolated_variables_are_in_env_example():
    text = (ROOT / "docker-compose.yml").read_text()
    for variable in re.findall(r"\$\{(\w+)", text):
        assert variable in ENV_EXAMPLE, variable


def test_the_image_copies_every_package():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in (
        "shared",
        "selector",
        "publisher",
        "webhook_gateway",
        "ingestor",
        "webscraper_sim",
        "ops",
        "migrations",
    ):
        assert f"COPY {package} ./{package}" in dockerfile
