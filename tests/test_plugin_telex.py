"""The example third-party adapter package (docs/examples/loangate-telex), installed with pip.

pip builds and installs the package into a folder of its own, which the test puts on
``sys.path``: the gateway finds it through its ``loangate`` entry point exactly as it
would in a virtual environment, and the test environment itself is left unchanged.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from openapi_spec_validator import validate as validate_spec

from gateway import create_app
from gateway.config import load_config
from tests.conftest import bearer, gateway_overrides, register_demo_model
from tests.helpers import applicant

PACKAGE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "loangate-telex"
PIPELINE = "credit-risk-telex"


@pytest.fixture(scope="session")
def telex_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package, built and installed by pip into a folder of its own (once a session)."""
    source = tmp_path_factory.mktemp("src") / "loangate-telex"
    shutil.copytree(PACKAGE, source)  # building writes into the source tree: not the repo's
    site = tmp_path_factory.mktemp("site")
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site)]
    done = subprocess.run([*pip, str(source)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return site


@pytest.fixture
def telex_app(
    telex_site: Path,
    monkeypatch: pytest.MonkeyPatch,
    db_url: str,
    tmp_path: Path,
    trained_model: Any,
) -> Iterator[Flask]:
    """A gateway whose config declares a pipeline served by the telex adapter."""
    monkeypatch.syspath_prepend(str(telex_site))
    importlib.invalidate_caches()
    register_demo_model(db_url, tmp_path / "models", trained_model)
    config, _ = load_config(environ={})
    pipeline = {**config["pipelines"]["credit-risk"], "adapters": ["telex"]}
    overrides = {
        **gateway_overrides(db_url, tmp_path / "models"),
        "pipelines": {PIPELINE: pipeline},
    }
    app = create_app(overrides, instance_path=tmp_path / "instance")
    yield app
    app.extensions["loangate"].engine.dispose()
    sys.modules.pop("loangate_telex", None)


def telex_line(**overrides: Any) -> bytes:
    fields = {"application_id": "TLX-1", **applicant(1), **overrides}
    return "|".join(f"{k}={v}" for k, v in fields.items()).encode()


def test_installed_adapter_is_listed_and_serves_a_configured_pipeline(telex_app: Flask) -> None:
    auth = telex_app.extensions["loangate"].extras["auth"]
    token = auth.mint_token("branch-7", ["decisions:create", "decisions:read"])
    client = telex_app.test_client()

    plugins = {
        p["name"]: p for p in client.get("/v1/plugins", headers=bearer(token)).json["plugins"]
    }
    assert plugins["telex"]["distribution"] == "loangate-telex"
    assert plugins["telex"]["version"] == "0.1.0"
    assert plugins["telex"]["components"] == [{"kind": "adapter", "name": "telex"}]

    url = f"/v1/pipelines/{PIPELINE}/telex"
    resp = client.post(
        url, data=telex_line(), headers={**bearer(token), "Content-Type": "text/plain"}
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.mimetype == "text/plain"
    answer = dict(pair.split("=", 1) for pair in resp.get_data(as_text=True).strip().split("|"))
    assert answer["outcome"] in {"approve", "refer", "decline"}
    record = client.get(f"/v1/decisions/{answer['decision_id']}", headers=bearer(token)).json
    assert (record["pipeline"], record["adapter"], record["client_id"]) == (
        PIPELINE,
        "telex",
        "branch-7",
    )
    assert record["application_id"] == "TLX-1"
    assert record["application"]["credit_amount"] == applicant(1)["credit_amount"]
    assert answer["reasons"] == ",".join(r["code"] for r in record["reason_codes"])


def test_telex_errors_are_problems(telex_app: Flask) -> None:
    auth = telex_app.extensions["loangate"].extras["auth"]
    client = telex_app.test_client()
    plain = {**bearer(auth.mint_token("c", ["decisions:create"])), "Content-Type": "text/plain"}
    url = f"/v1/pipelines/{PIPELINE}/telex"

    broken = client.post(url, data=b"duration_in_month=24|no pair here", headers=plain)
    assert broken.status_code == 422 and broken.mimetype == "application/problem+json"
    assert broken.json["errors"][0]["pointer"] == "/2"
    repeated = client.post(url, data=telex_line() + b"|credit_amount=1", headers=plain)
    assert repeated.status_code == 422
    for hostile in ("lots", "--5", "²", "1e9999"):  # stay strings: the validator refuses them
        invalid = client.post(url, data=telex_line(credit_amount=hostile), headers=plain)
        assert invalid.status_code == 422, hostile
        assert any(e["pointer"] == "/applicant/credit_amount" for e in invalid.json["errors"])
    as_json = {**plain, "Content-Type": "application/json"}
    assert client.post(url, data=telex_line(), headers=as_json).status_code == 415
    rest_only = client.post("/v1/pipelines/credit-risk/telex", data=telex_line(), headers=plain)
    assert rest_only.status_code == 404  # credit-risk does not list the telex adapter
    assert (
        client.post(url, data=telex_line(), headers={"Content-Type": "text/plain"}).status_code
        == 401
    )
    reader = {**bearer(auth.mint_token("c", ["decisions:read"])), "Content-Type": "text/plain"}
    assert client.post(url, data=telex_line(), headers=reader).status_code == 403


def test_plugin_routes_are_documented_in_openapi(telex_app: Flask) -> None:
    client = telex_app.test_client()
    spec = client.get("/openapi.json").json
    validate_spec(spec)
    # Every route of the plugin's blueprint (the gateway's own: tests/test_api_audit.py).
    routes = {str(r) for r in telex_app.url_map.iter_rules() if r.endpoint.startswith("telex.")}
    documented = {p.replace("{", "<").replace("}", ">") for p in spec["paths"]}
    assert routes == {"/v1/pipelines/<pipeline>/telex"}
    assert routes <= documented
    post = spec["paths"]["/v1/pipelines/{pipeline}/telex"]["post"]
    assert post["security"] == [{"bearer": ["decisions:create"]}]
    assert "text/plain" in post["responses"]["201"]["content"]
