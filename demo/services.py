"""A fresh database and vhost on the local services, by name (dropped and made again)."""

from __future__ import annotations

import os
from urllib.parse import quote, urlsplit

import requests
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from demo.stack import ROOT_DIR

ADMIN_URL = os.environ.get(
    "DEMO_ADMIN_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
AMQP_BASE = os.environ.get("DEMO_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
MANAGEMENT = os.environ.get("DEMO_MANAGEMENT_URL", "http://127.0.0.1:15672")


def fresh_database(name: str) -> str:
    """Drop ``name`` if it exists, create it, migrate it to head; its URL."""
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    config = Config(str(ROOT_DIR / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")
    return url


def fresh_vhost(name: str) -> tuple[str, str]:
    """Delete and create the vhost ``name``; (its AMQP URL, its management UI page)."""
    parts = urlsplit(AMQP_BASE)
    auth = (parts.username or "guest", parts.password or "guest")
    api = f"{MANAGEMENT}/api/vhosts/{quote(name, safe='')}"
    requests.delete(api, auth=auth, timeout=10)
    requests.put(api, auth=auth, timeout=10).raise_for_status()
    permissions = f"{MANAGEMENT}/api/permissions/{quote(name, safe='')}/{auth[0]}"
    body = {"configure": ".*", "write": ".*", "read": ".*"}
    requests.put(permissions, json=body, auth=auth, timeout=10).raise_for_status()
    amqp = f"{parts.scheme}://{parts.netloc}/{quote(name, safe='')}"
    return amqp, f"{MANAGEMENT}/#/queues/{quote(name, safe='')}"
