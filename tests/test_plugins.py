"""Plugins: entry-point loading, the environment switches, listing, and event hooks."""

from __future__ import annotations

import importlib
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from gateway import create_app, hookimpl
from gateway.cli import main as cli
from gateway.plugin_manager import collect_components, describe_plugins, make_plugin_manager
from tests.conftest import bearer, gateway_overrides, register_demo_model
from tests.helpers import body

FIRST_PARTY = {
    "rest": ("adapter", "rest"),
    "schema-validator": ("validator", "schema"),
    "derived-features": ("enricher", "derived"),
    "sklearn-scorer": ("scorer", "sklearn"),
    "linear-explainer": ("explainer", "linear"),
    "threshold-policy": ("policy", "threshold"),
}

ACME = '''
from gateway import hookimpl
from gateway.components import Enricher
from gateway.context import Enrichment


class BureauFlag(Enricher):
    """Marks every application as seen by a (pretend) bureau."""

    name = "acme-bureau"
    config_schema = {"type": "object", "additionalProperties": False,
                     "properties": {"flag": {"type": "string"}}}

    def enrich(self, ctx):
        flag = self.config.get("flag", "seen")
        return ctx.evolve(enrichments=(*ctx.enrichments, Enrichment("bureau", flag, "acme")))


@hookimpl
def register_enrichers():
    return [BureauFlag]
'''


@pytest.fixture
def acme_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A third-party plugin distribution, found through its ``loangate`` entry point."""
    site = tmp_path / "site"
    dist = site / "acme_loangate-1.2.0.dist-info"
    dist.mkdir(parents=True)
    (site / "acme_loangate.py").write_text(ACME)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-loangate\nVersion: 1.2.0\n")
    (dist / "entry_points.txt").write_text("[loangate]\nacme = acme_loangate\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    yield
    sys.modules.pop("acme_loangate", None)


def with_acme_enricher(url: str, models: Path) -> dict[str, Any]:
    from gateway.config import load_config

    config, _ = load_config(environ={})
    enrichers = config["pipelines"]["credit-risk"]["enrichers"]
    acme = {"name": "acme-bureau", "config": {"flag": "clean"}}
    return {
        **gateway_overrides(url, models),
        "pipelines": {"credit-risk": {"enrichers": [*enrichers, acme]}},
    }


def test_first_party_components_load_through_entry_points(
    client: FlaskClient, get_token: Callable[..., str]
) -> None:
    resp = client.get("/v1/plugins", headers=bearer(get_token("decisions:read")))
    assert resp.status_code == 200
    plugins = {p["name"]: p for p in resp.get_json()["plugins"]}
    for name, (kind, component) in FIRST_PARTY.items():
        assert plugins[name]["distribution"] == "loangate"
        assert plugins[name]["version"] == "0.1.0"
        assert plugins[name]["components"] == [{"kind": kind, "name": component}]
    assert client.get("/v1/plugins").status_code == 401


def test_third_party_plugin_serves_a_pipeline(
    acme_installed: None, db_url: str, tmp_path: Path, trained_model: Any
) -> None:
    register_demo_model(db_url, tmp_path / "models", trained_model)
    app = create_app(with_acme_enricher(db_url, tmp_path / "models"), instance_path=tmp_path / "i")
    listing = {p["name"]: p for p in app.extensions["loangate"].extras["plugins"]}
    assert listing["acme"]["distribution"] == "acme-loangate"
    assert listing["acme"]["version"] == "1.2.0"
    token = app.extensions["loangate"].extras["auth"].mint_token("c", ["decisions:create"])
    doc = (
        app.test_client()
        .post("/v1/pipelines/credit-risk/decisions", json=body(1), headers=bearer(token))
        .get_json()
    )
    assert {"field": "bureau", "value": "clean", "source": "acme"} in doc["enrichments"]
    assert "enricher:acme-bureau" in doc["timings_ms"]


def test_blocked_plugin_is_absent(acme_installed: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "acme" in dict(make_plugin_manager().list_name_plugin())
    monkeypatch.setenv("LOANGATE_BLOCK_PLUGINS", "acme, linear-explainer")
    pm = make_plugin_manager()
    listing = {p["name"] for p in describe_plugins(pm, collect_components(pm))}
    assert "acme" not in listing and "linear-explainer" not in listing
    assert "rest" in listing
    catalog = collect_components(pm)
    assert "acme-bureau" not in catalog["enricher"] and "linear" not in catalog["explainer"]


def test_autoload_switch_loads_only_explicit_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOANGATE_DISABLE_PLUGIN_AUTOLOAD", "1")
    from plugins.policies import threshold

    pm = make_plugin_manager([threshold])
    catalog = collect_components(pm)
    assert set(catalog["policy"]) == {"threshold"}
    assert catalog["adapter"] == {} and catalog["scorer"] == {}


def test_cli_lists_plugins() -> None:
    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 0, result.output
    for name, (kind, component) in FIRST_PARTY.items():
        assert name in result.output and f"{kind} {component}" in result.output


def test_component_name_clash_refuses_to_start() -> None:
    from gateway.components import Policy
    from gateway.errors import ConfigError

    class Impostor(Policy):
        name = "threshold"

    class Plugin:
        @hookimpl
        def register_policies(self) -> list[type[Policy]]:
            return [Impostor]

    pm = make_plugin_manager([Plugin()])
    with pytest.raises(ConfigError, match="policy 'threshold' is contributed by both"):
        collect_components(pm)


class Recorder:
    """A plugin that records ``decision_logged`` events (one slow, one failing sibling)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.seen = threading.Event()

    @hookimpl
    def decision_logged(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        self.seen.set()


class Broken:
    @hookimpl
    def decision_logged(self) -> None:
        raise RuntimeError("plugin bug")


def test_decision_logged_event_reaches_plugins_and_failures_are_contained(
    db_url: str, tmp_path: Path, trained_model: Any
) -> None:
    register_demo_model(db_url, tmp_path / "models", trained_model)
    recorder = Recorder()
    app: Flask = create_app(
        gateway_overrides(db_url, tmp_path / "models"),
        plugins=[Broken(), recorder],
        instance_path=tmp_path / "i",
    )
    token = app.extensions["loangate"].extras["auth"].mint_token("c", ["decisions:create"])
    resp = app.test_client().post(
        "/v1/pipelines/credit-risk/decisions", json=body(1), headers=bearer(token)
    )
    assert resp.status_code == 201
    assert recorder.seen.wait(5)
    assert recorder.records[0]["decision_id"] == resp.get_json()["decision_id"]
    assert recorder.records[0]["application"]["credit_amount"] == 5951


def test_hookspecs_are_documented() -> None:
    from gateway import hookspecs

    names = [n for n in dir(hookspecs) if n.startswith(("register_", "decision_"))]
    assert len(names) == 10
    for name in names:
        doc = textwrap.dedent(getattr(hookspecs, name).__doc__ or "")
        assert "Called" in doc, name


def test_plugin_blueprint_is_served_and_problem_from_a_stage_is_answered(
    db_url: str, tmp_path: Path, trained_model: Any
) -> None:
    from flask import Blueprint

    from gateway.components import Validator
    from gateway.errors import Problem

    bp = Blueprint("telex", __name__)

    @bp.get("/telex/ping")
    def ping() -> str:
        return "pong"

    class Gatekeeper(Validator):
        """Refuses every application outright with its own problem."""

        name = "gatekeeper"

        def validate(self, ctx: Any) -> Any:
            raise Problem(451, "unavailable", "Unavailable for legal reasons", "embargo")

    class Plugin:
        @hookimpl
        def register_blueprints(self) -> list[Blueprint]:
            return [bp]

        @hookimpl
        def register_validators(self) -> list[type[Validator]]:
            return [Gatekeeper]

    register_demo_model(db_url, tmp_path / "models", trained_model)
    from gateway.config import load_config

    validators = load_config(environ={})[0]["pipelines"]["credit-risk"]["validators"]
    config = {
        **gateway_overrides(db_url, tmp_path / "models"),
        "pipelines": {"credit-risk": {"validators": [{"name": "gatekeeper"}, *validators]}},
    }
    app = create_app(config, plugins=[Plugin()], instance_path=tmp_path / "i")
    client = app.test_client()
    assert client.get("/telex/ping").data == b"pong"
    assert "Plugin" in {p["name"] for p in app.extensions["loangate"].extras["plugins"]}
    token = app.extensions["loangate"].extras["auth"].mint_token("c", ["decisions:create"])
    resp = client.post("/v1/pipelines/credit-risk/decisions", json=body(1), headers=bearer(token))
    assert resp.status_code == 451 and resp.get_json()["detail"] == "embargo"
    assert resp.get_json()["decision_id"]  # the refusal is on record
