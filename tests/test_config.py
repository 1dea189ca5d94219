"""Configuration: environment overrides, and a bad config refuses to start naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway import create_app
from gateway.config import DEFAULT_CONFIG_FILE, env_overrides, load_config
from gateway.errors import ConfigError
from tests.conftest import gateway_overrides, register_demo_model


def test_default_config_loads() -> None:
    config, config_dir = load_config(environ={})
    assert "credit-risk" in config["pipelines"]
    assert config_dir == DEFAULT_CONFIG_FILE.parent


def test_environment_overrides_nested_keys() -> None:
    env = {
        "LOANGATE_DATABASE__URL": "sqlite:////tmp/x.db",
        "LOANGATE_SERVER__MAX_BODY_BYTES": "2048",
        "LOANGATE_CONFIG": "ignored-here",
        "OTHER": "x",
    }
    assert env_overrides(env) == {
        "database": {"url": "sqlite:////tmp/x.db"},
        "server": {"max_body_bytes": 2048},
    }
    config, _ = load_config(DEFAULT_CONFIG_FILE, environ=env)
    assert config["server"]["max_body_bytes"] == 2048
    assert config["pipelines"]["credit-risk"]["scorer"]["name"] == "sklearn"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"serverr": {}}, r"Additional properties are not allowed \('serverr'"),
        ({"server": {"max_body_bytes": "big"}}, r"server\.max_body_bytes"),
        ({"pipelines": {"Bad Name!": {}}}, r"pipelines"),
        (
            {"pipelines": {"credit-risk": {"scorer": {"name": "sklearn", "colour": 1}}}},
            r"pipelines\.credit-risk\.scorer",
        ),
    ],
)
def test_bad_gateway_config_is_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(DEFAULT_CONFIG_FILE, overrides=overrides, environ={})


def policy_config(**changes: Any) -> dict[str, Any]:
    config, _ = load_config(environ={})
    policy = config["pipelines"]["credit-risk"]["policy"]
    return {
        "pipelines": {
            "credit-risk": {"policy": {**policy, "config": {**policy["config"], **changes}}}
        }
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            policy_config(approve_below="low"),
            r"pipelines\.credit-risk\.policy \(policy threshold\) config: approve_below",
        ),
        (policy_config(max_reasons=9), r"pipelines\.credit-risk\.policy .*max_reasons"),
        (
            policy_config(approve_below=0.9, decline_at=0.2),
            r"pipelines\.credit-risk\.policy \(policy threshold\): approve_below",
        ),
        (
            policy_config(reason_codes="missing.yaml"),
            r"pipelines\.credit-risk\.policy .*missing\.yaml",
        ),
        (
            {"pipelines": {"credit-risk": {"scorer": {"name": "xgboost"}}}},
            r"pipelines\.credit-risk\.scorer: unknown scorer 'xgboost' \(known: sklearn\)",
        ),
        (
            {
                "pipelines": {
                    "credit-risk": {"scorer": {"name": "sklearn", "config": {"model": "nope"}}}
                }
            },
            r"pipelines\.credit-risk\.scorer \(scorer sklearn\)",
        ),
        (
            {"pipelines": {"credit-risk": {"adapters": ["telex"]}}},
            r"pipelines\.credit-risk\.adapters\.0: unknown adapter 'telex'",
        ),
    ],
)
def test_bad_component_config_refuses_to_start(
    db_url: str, tmp_path: Path, trained_model: Any, overrides: dict[str, Any], message: str
) -> None:
    models = tmp_path / "models"
    register_demo_model(db_url, models, trained_model)
    config = {**gateway_overrides(db_url, models), **overrides}
    with pytest.raises(ConfigError, match=message):
        create_app(config, instance_path=tmp_path / "instance")


def test_reason_table_naming_a_protected_attribute_is_refused(
    db_url: str, tmp_path: Path, trained_model: Any
) -> None:
    table = tmp_path / "reasons.yaml"
    table.write_text(
        "table: t\nversion: '1'\ncodes:\n  foreign_worker: {code: R99, text: 'Foreign worker'}\n"
    )
    models = tmp_path / "models"
    register_demo_model(db_url, models, trained_model)
    config = {**gateway_overrides(db_url, models), **policy_config(reason_codes=str(table))}
    with pytest.raises(ConfigError, match="reason table uses protected attribute"):
        create_app(config, instance_path=tmp_path / "instance")
