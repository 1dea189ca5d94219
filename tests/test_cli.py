"""The ``loangate`` command line, on the same configuration path as the server."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from gateway.auth.clients import get_client
from gateway.cli import main as cli


@pytest.fixture
def env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("LOANGATE_DATABASE__URL", db_url)
    monkeypatch.setenv("LOANGATE_MODELS__DIR", str(tmp_path / "models"))
    monkeypatch.setenv("LOANGATE_INSTANCE", str(tmp_path / "instance"))
    return db_url


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_db_models_and_clients(env: str) -> None:
    assert "up to date" in run("db", "upgrade")
    out = run("models", "train")
    assert "registered german-credit v1 (logistic, stage champion)" in out
    assert "is the champion" in run("models", "train", "--if-missing")
    listing = run("models", "list")
    assert "german-credit\tv1\tlogistic\tchampion" in listing

    out = run(
        "clients", "create", "--name", "core banking", "--scopes", "decisions:create decisions:read"
    )
    client_id = out.split("client_id:")[1].split()[0]
    secret = out.split("client_secret:")[1].split()[0]
    engine = sa.create_engine(env)
    record = get_client(engine, client_id)
    assert record is not None and record.scopes == {"decisions:create", "decisions:read"}
    assert record.check_secret(secret) and secret not in record.secret_hash
    engine.dispose()
    assert client_id in run("clients", "list")


def test_unknown_scope_is_refused(env: str) -> None:
    run("db", "upgrade")
    result = CliRunner().invoke(cli, ["clients", "create", "--name", "x", "--scopes", "root"])
    assert result.exit_code != 0 and "root" in result.output


def test_invalid_configuration_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOANGATE_SERVER__MAX_BODY_BYTES", "tiny")
    result = CliRunner().invoke(cli, ["db", "upgrade"])
    assert result.exit_code != 0
    assert "server.max_body_bytes" in result.output
