"""docker-compose.yml, docker-compose.demo.yml, the Dockerfile and .dockerignore are
checked by reading them: there is no Docker engine where tests run."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from shared.settings import DEFAULTS, SECRETS, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DEMO = yaml.safe_load((ROOT / "docker-compose.demo.yml").read_text())["services"]
#: the settings the stack sets itself (built from .env's secrets), not read from .env
STACK_ENVIRONMENT = COMPOSE["x-trackfill"]["environment"]
#: both files together, as `docker compose -f ... -f ...` merges them (per key, shallowly)
ALL = {name: {**SERVICES.get(name, {}), **DEMO.get(name, {})} for name in {*SERVICES, *DEMO}}
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


def trackfill_services(services=None):
    return {
        name: s
        for name, s in (services or ALL).items()
        if s.get("build") or s.get("image", "").startswith("trackfill")
    }


def test_the_stack_has_a_supported_broker_with_its_ui_the_database_and_the_migration():
    # 3-management is 3.13, past its community support
    assert SERVICES["rabbitmq"]["image"] == "rabbitmq:4.3-management"
    assert {"127.0.0.1:5672:5672", "127.0.0.1:15672:15672"} <= set(SERVICES["rabbitmq"]["ports"])
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
    webhook = " ".join(DEMO["webscraper-sim"]["command"])
    assert (
        f"http://webhook-gateway:{port}/api/acquisition/webscraper/webscraper-tracking/" in webhook
    )


@pytest.mark.parametrize("name", ["rabbitmq", "postgres", "webscraper-sim", "webhook-gateway"])
def test_long_running_services_have_healthchecks(name):
    assert ALL[name]["healthcheck"]["test"][0] == "CMD"


@pytest.mark.parametrize("name", ["selector", "publisher", "ingestor"])
def test_the_consumers_are_checked_on_their_metrics_port(name):
    port = STACK_ENVIRONMENT["METRICS_PORT"]
    assert port != "0"  # the port the healthcheck asks is the one the service serves
    check = " ".join(SERVICES[name]["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/metrics" in check


def test_no_port_but_the_webhook_is_published_beyond_this_host():
    for name, service in ALL.items():
        for port in service.get("ports", []):
            if name != "webhook-gateway":
                assert port.startswith("127.0.0.1:"), (name, port)


def test_no_guest_login_and_the_credentials_come_from_env():
    broker = SERVICES["rabbitmq"]["environment"]
    assert broker["RABBITMQ_DEFAULT_USER"].startswith("${RABBITMQ_USER")
    assert broker["RABBITMQ_DEFAULT_PASS"].startswith("${RABBITMQ_PASSWORD")
    text = (ROOT / "docker-compose.yml").read_text() + (ROOT / ".env.example").read_text()
    assert "guest" not in text
    assert "${RABBITMQ_USER" in STACK_ENVIRONMENT["AMQP_URL"]
    assert "${POSTGRES_PASSWORD" in STACK_ENVIRONMENT["DATABASE_URL"]


def test_only_the_demo_points_the_services_at_the_simulator():
    assert ENV_EXAMPLE["WEBSCRAPER_API_URL"] == "https://api.webscraper.io/api/v1/"
    assert "webscraper-sim" not in SERVICES and "webscraper-sim" not in str(SERVICES)
    for name in ("selector", "publisher", "ingestor"):
        url = DEMO[name]["environment"]["WEBSCRAPER_API_URL"]
        assert url == "http://webscraper-sim:8900/api/v1/"
        assert "WEBSCRAPER_API_URL" not in SERVICES[name].get("environment", {})


def test_the_monitoring_profile_runs_prometheus_and_grafana_with_the_repo_config():
    for name in ("prometheus", "grafana"):
        assert SERVICES[name]["profiles"] == ["monitoring"]
        for volume in SERVICES[name]["volumes"]:
            source = volume.split(":")[0]
            assert not source.startswith("./") or (ROOT / source).exists(), volume
    plugins = (ROOT / "monitoring/rabbitmq/enabled_plugins").read_text()
    assert "rabbitmq_prometheus" in plugins and "rabbitmq_management" in plugins
    assert any("enabled_plugins" in v for v in SERVICES["rabbitmq"]["volumes"])
    grafana = SERVICES["grafana"]["environment"]
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD")


def test_the_image_installs_the_constrained_dependencies_before_copying_the_code():
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    first_code = next(i for i, line in enumerate(lines) if line.startswith("COPY shared"))
    deps = next(i for i, line in enumerate(lines) if "-c constraints.txt" in line)
    assert deps < first_code
    assert any("constraints.txt" in line and line.startswith("COPY") for line in lines[:deps])
    assert "--no-deps" in "\n".join(lines[first_code:])


def test_the_constraints_pin_every_dependency_within_its_range():
    from packaging.requirements import Requirement

    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not pinned: {line}"
            pins[name.lower().replace("_", "-")] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for text in [*project["dependencies"], *project["optional-dependencies"]["test"]]:
        wanted = Requirement(text)
        name = wanted.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not in constraints.txt"
        assert wanted.specifier.contains(pins[name]), (text, pins[name])
    run = (ROOT / "run").read_text()
    assert "-c constraints.txt" in run


def test_json_logs_need_python_json_logger_3_1():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "python-json-logger>=3.1" in project["dependencies"]  # 3.0 has no .json module


def test_the_build_context_leaves_out_secrets_and_local_state():
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {".env", ".git", ".venv", "**/__pycache__"} <= set(ignored)


def test_the_migration_waits_for_a_healthy_database():
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", sorted(trackfill_services()))
def test_every_trackfill_command_exists_in_the_package(name):
    command = ALL[name]["command"]
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
    service = ALL[name]
    assert service["env_file"] == ".env"
    assert service["restart"] in ("unless-stopped", "no")
    for variable in REQUIRED[program_of(service["command"])]:
        assert variable in ENV_EXAMPLE


def test_env_example_lists_every_setting_with_the_secrets_as_placeholders():
    assert set(DEFAULTS) | set(SECRETS) <= set(ENV_EXAMPLE) | set(STACK_ENVIRONMENT)
    for secret in SECRETS:
        assert ENV_EXAMPLE[secret].startswith("change-me")


def test_interpolated_variables_are_in_env_example():
    text = (ROOT / "docker-compose.yml").read_text() + (
        ROOT / "docker-compose.demo.yml"
    ).read_text()
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
        "demo",
        "migrations",
    ):
        assert f"COPY {package} ./{package}" in dockerfile


NODES = ("rabbitmq", "rabbitmq-2", "rabbitmq-3")


def test_the_cluster_profile_adds_two_nodes_that_join_the_first_with_one_cookie_and_config():
    conf = dict(
        line.split(" = ", 1)
        for line in (ROOT / "broker" / "rabbitmq.conf").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert conf["cluster_formation.peer_discovery_backend"] == "classic_config"
    listed = {v for k, v in conf.items() if k.startswith("cluster_formation.classic_config.nodes")}
    assert listed == {f"rabbit@{SERVICES[name]['hostname']}" for name in NODES}
    assert "profiles" not in SERVICES["rabbitmq"]  # the default stack's one node
    for name in NODES:
        node = SERVICES[name]
        assert node["image"] == SERVICES["rabbitmq"]["image"]
        assert node.get("profiles", ["cluster"]) == ["cluster"]
        assert "./broker/rabbitmq.conf:/etc/rabbitmq/conf.d/90-trackfill.conf:ro" in node["volumes"]
        cookie = node["environment"]["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"]
        assert cookie.startswith("-setcookie ${RABBITMQ_ERLANG_COOKIE")
        assert node["environment"]["RABBITMQ_CTL_ERL_ARGS"].startswith("-setcookie ")
        assert node["healthcheck"]["test"][0] == "CMD"
    data = {v.split(":")[0] for name in NODES for v in SERVICES[name]["volumes"]}
    assert {"rabbitmq-data", "rabbitmq-2-data", "rabbitmq-3-data"} <= data  # one each
    for name in NODES[1:]:
        assert SERVICES[name]["depends_on"]["rabbitmq"]["condition"] == "service_healthy"


def test_the_services_are_given_every_node_and_wait_for_the_cluster_when_it_runs():
    # the variables as compose fills them in (letters and digits, as .env.example says)
    filled = re.sub(r"\$\{[A-Z_]+(:\?[^}]*)?\}", "x", STACK_ENVIRONMENT["AMQP_URL"])
    assert [urlsplit(url).hostname for url in filled.split(";")] == list(NODES)
    assert load_settings({"AMQP_URL": filled}).amqp_url == filled  # a valid setting
    for name in ("selector", "publisher", "ingestor", "webhook-gateway"):
        depends = SERVICES[name]["depends_on"]
        for node in NODES[1:]:
            assert depends[node] == {"condition": "service_healthy", "required": False}
