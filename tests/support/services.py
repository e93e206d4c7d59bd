"""Finding PostgreSQL and RabbitMQ for the tests.

Order of preference (docs/rabbitmq.md): URLs from the environment, then the local services,
then Docker through testcontainers if an engine answers, else a skip naming what is
missing.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit

from sqlalchemy.engine import make_url

LOCAL_DATABASE_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
LOCAL_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout):
        return True
    return False


def _url_reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url.replace("+psycopg2", ""))
    return reachable(parts.hostname or "127.0.0.1", parts.port or default_port)


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env().ping()
        return True
    except Exception:
        return False


@contextlib.contextmanager
def postgres_server() -> Iterator[str | None]:
    """An admin URL of a PostgreSQL server (its ``postgres`` database), or None."""
    explicit = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    for url in (explicit, LOCAL_DATABASE_URL):
        if url and _url_reachable(url, 5432):
            yield str(make_url(url).set(database="postgres"))
            return
    if not _docker_answers():
        yield None
        return
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:15", driver="psycopg2") as container:
        yield str(make_url(container.get_connection_url()).set(database="postgres"))


@contextlib.contextmanager
def rabbitmq_server() -> Iterator[tuple[str, str] | None]:
    """(AMQP URL, management URL) of a RabbitMQ server with its management API, or None."""
    explicit = os.environ.get("TEST_AMQP_URL") or os.environ.get("AMQP_URL")
    for url in (explicit, LOCAL_AMQP_URL):
        if url and _url_reachable(url, 5672):
            management = os.environ.get("RABBITMQ_MANAGEMENT_URL") or _management_for(url)
            parts = urlsplit(management)
            if reachable(parts.hostname or "127.0.0.1", parts.port or 15672):
                yield url, management
                return
    if not _docker_answers():
        yield None
        return
    from testcontainers.rabbitmq import RabbitMqContainer

    with RabbitMqContainer("rabbitmq:4.3-management") as container:
        host = container.get_container_host_ip()
        amqp = f"amqp://guest:guest@{host}:{container.get_exposed_port(5672)}/%2F"
        yield amqp, f"http://guest:guest@{host}:{container.get_exposed_port(15672)}/"


def _management_for(amqp_url: str) -> str:
    parts = urlsplit(amqp_url)
    user = unquote(parts.username or "guest")
    password = unquote(parts.password or "guest")
    return f"http://{user}:{password}@{parts.hostname}:15672/"
