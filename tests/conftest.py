"""Test fixtures.

What is real: PostgreSQL (one fresh database per test session, built by
``alembic upgrade head``; every table emptied after each test that uses it), RabbitMQ
(one fresh vhost per test, created and deleted through the management API) and HTTP
(the Web Scraper simulator is a real server on a free port).

What is faked: only Web Scraper Cloud itself, which the simulator stands in for.

Where ``DATABASE_URL``/``AMQP_URL`` (or ``TEST_DATABASE_URL``/``TEST_AMQP_URL``) are set
they are used; else the local services; else testcontainers if a Docker engine answers;
else the tests that need a service are skipped with a message naming what is missing;
with ``TRACKFILL_REQUIRE_SERVICES=1`` (as CI sets it) they fail instead, so a run that
quietly lost its services can never pass.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from shared.db.models import Base
from shared.db.session import make_engine
from tests.support.rabbit import Management
from tests.support.services import postgres_server, rabbitmq_server
from webscraper_sim.server import Simulator
from webscraper_sim.state import SimConfig

ROOT = Path(__file__).resolve().parent.parent
#: every table the tests may fill (the quota state's single row is reset instead)
TABLES = tuple(t.name for t in Base.metadata.sorted_tables if t.name != "api_quota_state")


def alembic_config(database_url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    return config


def missing(service: str) -> None:
    """Skip the test that needs ``service``; fail it where the services are required."""
    if os.environ.get("TRACKFILL_REQUIRE_SERVICES") == "1":
        pytest.fail(f"TRACKFILL_REQUIRE_SERVICES=1 and {service}", pytrace=False)
    pytest.skip(service)


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    with postgres_server() as url:
        if url is None:
            missing("no PostgreSQL: set DATABASE_URL, run one on 127.0.0.1:5432, or Docker")
        yield url


@pytest.fixture(scope="session")
def database_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh database for this test session, migrated to head."""
    name = f"trackfill_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        command.upgrade(alembic_config(url), "head")
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    """The migrated database, emptied after the test."""
    yield engine
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        connection.execute(text("UPDATE api_quota_state SET blocked_until = NULL"))


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[tuple[str, Management]]:
    with rabbitmq_server() as found:
        if found is None:
            missing(
                "no RabbitMQ with its management API: set AMQP_URL, run one on 127.0.0.1:5672 "
                "with rabbitmq_management enabled (port 15672), or Docker"
            )
        amqp_url, management_url = found
        yield amqp_url, Management(management_url)


class VHost:
    """A fresh RabbitMQ vhost: its name, an AMQP URL pointing at it, and the API."""

    def __init__(self, name: str, amqp_url: str, management: Management):
        self.name, self.amqp_url, self.management = name, amqp_url, management

    def queue(self, name: str) -> dict:
        return self.management.queue(self.name, name)

    def messages(self, queue: str) -> list[dict]:
        return self.management.get_messages(self.name, queue)


@pytest.fixture
def vhost(rabbitmq: tuple[str, Management]) -> Iterator[VHost]:
    base_url, management = rabbitmq
    name = f"trackfill-test-{uuid.uuid4().hex[:10]}"
    management.create_vhost(name)
    parts = urlsplit(base_url)
    url = urlunsplit((parts.scheme, parts.netloc, "/" + quote(name, safe=""), "", ""))
    try:
        yield VHost(name, url, management)
    finally:
        management.delete_vhost(name)


SIM_TOKEN = "sim-test-token-0123456789"


@pytest.fixture(scope="module")
def simulator() -> Iterator[Simulator]:
    """A simulator on a free port with fast job timings; reset with ``sim`` per test."""
    config = SimConfig(
        api_token=SIM_TOKEN,
        schedule_delay_s=0.05,
        start_delay_s=0.05,
        run_s=0.1,
        webhook_timeout_s=1.0,
        webhook_retry_delays_s=(0.2, 0.4),
    )
    sim = Simulator(config).start()
    yield sim
    sim.stop()


@pytest.fixture
def sim(simulator: Simulator) -> Simulator:
    """The module's simulator, emptied (jobs, calls, quota, faults) for this test."""
    simulator.state.reset()
    return simulator
