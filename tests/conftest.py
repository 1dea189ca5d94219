"""Shared fixtures: databases (SQLite and PostgreSQL), the app, clients and tokens."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from gateway import db

PG_URL = os.environ.get("LOANGATE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _pg_available() -> bool:
    try:
        eng = sa.create_engine(PG_URL)
        with eng.connect() as conn:
            conn.execute(sa.text("select 1"))
        eng.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_available() -> bool:
    ok = _pg_available()
    if not ok and IN_CI:
        pytest.fail(f"PostgreSQL is required in CI and is not reachable at {PG_URL}")
    return ok


REDIS_URL = os.environ.get("LOANGATE_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis (rate limits); unreachable is a skip locally and a failure in CI."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        if IN_CI:
            pytest.fail(f"Redis is required in CI and is not reachable at {REDIS_URL}: {exc}")
        pytest.skip("Redis not reachable (a failure in CI)")
    return REDIS_URL


def make_db_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str | None]:
    """A fresh, migrated database of ``backend``: (url, schema to drop or None)."""
    if backend == "sqlite":
        path = tmp_path_factory.mktemp("db") / "loangate.db"
        url = f"sqlite:///{path}"
        schema = None
    else:
        schema = f"t_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    return url, schema


def drop_schema(schema: str | None) -> None:
    if schema is None:
        return
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A freshly migrated database URL, once for SQLite and once for PostgreSQL."""
    if request.param == "postgresql" and not request.getfixturevalue("pg_available"):
        pytest.skip("PostgreSQL not reachable (a failure in CI)")
    url, schema = make_db_url(request.param, tmp_path_factory)
    yield url
    drop_schema(schema)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = db.make_engine(db_url)
    yield eng
    eng.dispose()


# --- the gateway ----------------------------------------------------------------

MODEL_NAME = "german-credit"


@pytest.fixture(scope="session")
def trained_model() -> Any:
    """The demo logistic model, trained once per test session."""
    from gateway.training import train

    return train()


def register_demo_model(url: str, models_dir: Path, trained: Any) -> None:
    """Register the session's trained model as champion in the database at ``url``."""
    from gateway.registry import ModelRegistry

    eng = db.make_engine(url)
    ModelRegistry(eng, models_dir).register(
        MODEL_NAME,
        trained.estimator,
        trained.metadata,
        kind=trained.kind,
        stage="champion",
        created_by="tests",
    )
    eng.dispose()


def gateway_overrides(url: str, models_dir: Path) -> dict[str, Any]:
    return {"database": {"url": url}, "models": {"dir": str(models_dir)}}


@pytest.fixture
def app(db_url: str, tmp_path: Path, trained_model: Any) -> Iterator[Flask]:
    """A gateway on a fresh database (SQLite and PostgreSQL) with the demo model."""
    from gateway import create_app

    models_dir = tmp_path / "models"
    register_demo_model(db_url, models_dir, trained_model)
    application = create_app(
        gateway_overrides(db_url, models_dir), instance_path=tmp_path / "instance"
    )
    yield application
    application.extensions["loangate"].engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def fetch_token(app: Flask, client: FlaskClient, *scopes: str) -> str:
    """A new client with ``scopes``, and a real access token for it from ``POST /oauth/token``."""
    from gateway.auth.clients import create_client

    client_id, secret = create_client(
        app.extensions["loangate"].engine, "test client", list(scopes)
    )
    resp = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": " ".join(scopes)},
        auth=(client_id, secret),
    )
    assert resp.status_code == 200, resp.get_json()
    return str(resp.get_json()["access_token"])


@pytest.fixture
def get_token(app: Flask, client: FlaskClient) -> Callable[..., str]:
    """``get_token("decisions:create")``: a real access token from ``POST /oauth/token``."""
    return lambda *scopes: fetch_token(app, client, *scopes)


@pytest.fixture
def tokens(get_token: Callable[..., str]) -> dict[str, str]:
    """One token per role: scorer, auditor, reviewer, lender (outcomes)."""
    return {
        "scorer": get_token("decisions:create"),
        "auditor": get_token("decisions:read"),
        "reviewer": get_token("decisions:review"),
        "lender": get_token("outcomes:write"),
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
