"""The schema as the migrations build it, on PostgreSQL."""

import contextlib
import re
import uuid

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from shared.db.models import Base
from tests.conftest import alembic_config

pytestmark = pytest.mark.integration


def test_models_and_migrations_agree(engine):
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_the_contract_tables_and_columns_exist(engine):
    inspector = inspect(engine)
    columns = {
        t: {c["name"] for c in inspector.get_columns(t)} for t in inspector.get_table_names()
    }
    assert {"id", "email"} <= columns["official_account"]
    assert {
        "id",
        "order_number",
        "official_account_id",
        "tracking_number",
        "latest_delivery_status",
        "shipping_method",
        "estimated_delivery_date",
        "created_at",
        "updated_at",
    } <= columns["purchasing"]
    assert {
        "id",
        "batch_uuid",
        "file_path",
        "task_name",
        "total_jobs",
        "completed_jobs",
        "failed_jobs",
        "status",
        "created_at",
        "updated_at",
    } <= columns["tracking_batch"]
    assert {
        "id",
        "batch_id",
        "purchasing_id",
        "custom_id",
        "job_id",
        "target_url",
        "index",
        "status",
        "created_at",
        "completed_at",
        "error",
    } <= columns["tracking_job"]
    assert {"id", "operation_type", "success", "message", "timestamp", "details"} <= columns[
        "sync_log"
    ]


def test_rows_from_other_systems_need_only_the_contract_columns(db):
    with db.begin() as connection:
        connection.execute(text("INSERT INTO official_account (email) VALUES ('a@example.com')"))
        connection.execute(text("INSERT INTO purchasing (order_number) VALUES ('W1234567890')"))
        assert connection.execute(text("SELECT count(*) FROM purchasing")).scalar() == 1


def _batch(connection, batch_uuid):
    return connection.execute(
        text(
            "INSERT INTO tracking_batch (batch_uuid, file_path, task_name) "
            "VALUES (:u, 'f', 't') RETURNING id"
        ),
        {"u": batch_uuid},
    ).scalar()


def test_batch_uuid_is_unique(db):
    batch_uuid = uuid.uuid4()
    with db.begin() as connection:
        _batch(connection, batch_uuid)
    with pytest.raises(IntegrityError, match="uq_tracking_batch_batch_uuid"), db.begin() as c:
        _batch(c, batch_uuid)


def test_custom_id_is_unique(db):
    insert = text(
        "INSERT INTO tracking_job (batch_id, custom_id, target_url, index) "
        "VALUES (:b, 'owryt-x-0000', 'u', 0)"
    )
    with db.begin() as connection:
        batch_id = _batch(connection, uuid.uuid4())
        connection.execute(insert, {"b": batch_id})
    with pytest.raises(IntegrityError, match="uq_tracking_job_custom_id"), db.begin() as c:
        c.execute(insert, {"b": batch_id})


def test_a_job_needs_an_existing_batch(db):
    with pytest.raises(IntegrityError, match="fk_tracking_job_batch_id"), db.begin() as c:
        c.execute(
            text(
                "INSERT INTO tracking_job (batch_id, custom_id, target_url, index) "
                "VALUES (999, 'owryt-y-0000', 'u', 0)"
            )
        )


def test_an_unknown_batch_status_is_refused(db):
    with pytest.raises(IntegrityError, match="ck_tracking_batch_status"), db.begin() as c:
        c.execute(
            text(
                "INSERT INTO tracking_batch (batch_uuid, file_path, task_name, status) "
                "VALUES (:u, 'f', 't', 'done')"
            ),
            {"u": uuid.uuid4()},
        )


def test_the_selection_index_is_partial_on_a_missing_tracking_number(engine):
    with engine.connect() as connection:
        definition = connection.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_purchasing_needs_tracking'")
        ).scalar()
    assert "WHERE" in definition and "tracking_number IS NULL" in definition


@contextlib.contextmanager
def empty_database(postgres_admin_url: str):
    """(alembic config, engine) of a database of its own, with no schema; dropped after."""
    from sqlalchemy.engine import make_url

    name = f"trackfill_mig_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    try:
        yield alembic_config(url), engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_downgrade_to_base_and_upgrade_again(postgres_admin_url):
    with empty_database(postgres_admin_url) as (config, engine):
        command.upgrade(config, "head")
        command.downgrade(config, "base")
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
        command.upgrade(config, "head")
        assert "tracking_job" in inspect(engine).get_table_names()


def test_packing_makes_the_jobs_in_flight_at_the_upgrade_packs_of_one(postgres_admin_url):
    """Jobs whose create may be under way or made when 0005 runs keep being handled as
    they were: each its own pack (its custom_id the scraping job's)."""
    with empty_database(postgres_admin_url) as (config, engine):
        command.upgrade(config, "0004")
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO tracking_batch (batch_uuid, file_path, task_name, status) "
                    "VALUES ('00000000-0000-0000-0000-000000000001', 'p', 't', 'processing')"
                )
            )
            for n, status in enumerate(("queued", "publishing", "pending", "completed")):
                connection.execute(
                    text(
                        "INSERT INTO tracking_job (batch_id, custom_id, target_url, index, status) "
                        "VALUES (1, :custom_id, 'https://x/', :n, :status)"
                    ),
                    {"custom_id": f"owryt-00000000-{n:04d}", "n": n, "status": status},
                )
        command.upgrade(config, "head")
        with engine.connect() as connection:
            packs = dict(
                connection.execute(text("SELECT status, pack_of = id FROM tracking_job")).all()
            )
        assert packs == {"queued": None, "publishing": True, "pending": True, "completed": None}


def test_the_status_code_migration_fills_the_rows_that_have_a_status(postgres_admin_url):
    with empty_database(postgres_admin_url) as (config, engine):
        command.upgrade(config, "0006")
        statuses = ["配達完了", "↓配達完了", "輸送中", "伝票番号未登録", "何か新しい状態", None]
        with engine.begin() as connection:
            for n, status in enumerate(statuses):
                connection.execute(
                    text(
                        "INSERT INTO purchasing (id, order_number, latest_delivery_status) "
                        "VALUES (:id, 'W0000000000', :status)"
                    ),
                    {"id": n + 1, "status": status},
                )
        command.upgrade(config, "head")
        with engine.connect() as connection:
            codes = connection.execute(
                text("SELECT delivery_status_code FROM purchasing ORDER BY id")
            ).scalars()
            assert list(codes) == [
                "delivered",
                "delivered",
                "in_transit",
                "pending",
                "unknown",
                None,
            ]
        command.downgrade(config, "0006")
        assert "delivery_status_code" not in {
            c["name"] for c in inspect(engine).get_columns("purchasing")
        }


def test_the_refresh_index_leaves_out_exactly_the_done_codes(engine):
    """The migration wrote the done codes into the index's predicate as they were; the
    refresh query's copy comes from the status table: a new done code needs a migration."""
    from shared.domain.statuses import DONE_CODES

    with engine.connect() as connection:
        definition = connection.execute(
            text(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_purchasing_may_need_refresh'"
            )
        ).scalar_one()
    left_out = set(re.findall(r"'([a-z_]+)'::", definition))
    assert left_out == {code.value for code in DONE_CODES}
    assert "delivery_status_checked_at NULLS FIRST" in definition


def test_0009_moves_first_attempt_at_back_to_the_first_jobs_creation(postgres_admin_url):
    """A row written after 0006 holds its first look's end; one whose jobs were pruned
    keeps what it has."""
    with empty_database(postgres_admin_url) as (config, engine):
        command.upgrade(config, "0008")
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO purchasing (id, order_number) VALUES (1, 'W0000000000'), "
                    "(2, 'W0000000001');"
                    "INSERT INTO tracking_batch (batch_uuid, file_path, task_name, status) "
                    "VALUES ('00000000-0000-0000-0000-000000000001', 'p', 't', 'completed');"
                    "INSERT INTO tracking_job (batch_id, purchasing_id, custom_id, target_url, "
                    "index, status, created_at) VALUES (1, 1, 'owryt-00000000-0000', 'u', 0, "
                    "'failed', '2026-12-01 10:00+00');"
                    "INSERT INTO purchase_check (purchasing_id, next_check_at, first_attempt_at) "
                    "VALUES (1, now(), '2026-12-01 10:30+00'), (2, now(), '2026-12-02 10:00+00')"
                )
            )
        command.upgrade(config, "head")
        with engine.connect() as connection:
            began = connection.execute(
                text(
                    "SELECT to_char(first_attempt_at AT TIME ZONE 'UTC', 'MM-DD HH24:MI') "
                    "FROM purchase_check ORDER BY purchasing_id"
                )
            ).scalars()
            assert list(began) == ["12-01 10:00", "12-02 10:00"]
