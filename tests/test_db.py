"""The schema: migrations match the table declarations; durability settings; readiness."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask.testing import FlaskClient

from gateway.tables import Base


@pytest.mark.filterwarnings("ignore:.*expression-based index")  # checked by name below
def test_migrations_match_the_table_declarations(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_sqlite_runs_wal_with_full_sync(tmp_path: Path) -> None:
    from gateway.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path}/d.db")
    with engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(sa.text("PRAGMA synchronous")).scalar() == 2  # FULL
    engine.dispose()


def test_readyz_reports_database_and_models(app: Flask, client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["checks"] == {"database": True, "models": True}
    with app.extensions["loangate"].engine.begin() as conn:
        cascade = "" if conn.dialect.name == "sqlite" else " CASCADE"  # reviews refer to it
        conn.execute(sa.text("DROP TABLE decisions" + cascade))
    # the database answers but cannot hold decisions: not ready
    assert client.get("/readyz").status_code == 503


def test_readyz_is_503_when_the_database_is_unreachable(app: Flask, client: FlaskClient) -> None:
    state = app.extensions["loangate"]
    state.extras["decision_log"].engine = sa.create_engine(
        "postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 1}
    )
    resp = client.get("/readyz")
    assert resp.status_code == 503
    assert resp.get_json()["checks"]["database"] is False


def test_the_probability_sort_key_is_indexed(engine: sa.Engine) -> None:
    """An expression index, which the comparison above cannot reflect: checked by name."""
    import importlib

    migration = importlib.import_module(
        "gateway.migrations.versions.0020_decisions_probability_key"
    )
    with engine.connect() as conn:
        assert migration.NAME in migration.index_names(conn)
