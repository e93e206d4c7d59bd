"""A scratch database (migrated) and RabbitMQ vhost on the local services, for one run."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alembic import command  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from tests.conftest import alembic_config  # noqa: E402
from tests.support.rabbit import Management  # noqa: E402

ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
MANAGEMENT_URL = "http://guest:guest@127.0.0.1:15672/"


@contextmanager
def scratch_database() -> Iterator[str]:
    """The URL of a fresh migrated database on the local PostgreSQL; dropped after."""
    name = f"trackfill_bench_{uuid.uuid4().hex[:8]}"
    # pre-ping: a fault run may restart PostgreSQL under this engine
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        command.upgrade(alembic_config(url), "head")
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def scratch_services() -> Iterator[tuple[str, str]]:
    """(database URL, AMQP URL) of a fresh migrated database and vhost; both dropped after."""
    vhost = f"trackfill-bench-{uuid.uuid4().hex[:8]}"
    management = Management(MANAGEMENT_URL)
    with scratch_database() as url:
        management.create_vhost(vhost)
        try:
            yield url, f"amqp://guest:guest@127.0.0.1:5672/{quote(vhost, safe='')}"
        finally:
            management.delete_vhost(vhost)
