"""Hard rules of the decision policy: operators, strictest action, start-time checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import PROJECT_ROOT
from gateway.errors import ConfigError
from plugins.policies.rules import (
    SEVERITY,
    HardRule,
    RuleHit,
    check_against_schema,
    evaluate,
    parse_rules,
    strictest,
)
from plugins.validators.schema import SchemaValidator
from tests.conftest import bearer, gateway_overrides, make_db_url, register_demo_model
from tests.helpers import applicants, body

URL = "/v1/pipelines/credit-risk/decisions"


def rule(**changes: Any) -> dict[str, Any]:
    base = {
        "code": "H9",
        "field": "credit_amount",
        "operator": "gt",
        "value": 100,
        "action": "refer",
        "text": "t",
    }
    return {**base, **changes}


@pytest.fixture(scope="module")
def input_schema() -> dict[str, Any]:
    """The demo pipeline's input schema, as its validator publishes it."""
    from gateway.components import Services

    services = Services(PROJECT_ROOT / "config", PROJECT_ROOT, None)  # type: ignore[arg-type]
    return SchemaValidator({"schema": "schemas/credit-application.yaml"}, services).input_schema()


@pytest.mark.parametrize(
    ("operator", "value", "hits", "misses"),
    [
        ("lt", 18, [17, 0], [18, 40]),
        ("le", 18, [18, 3], [19]),
        ("gt", 20000, [20001], [20000, 5]),
        ("ge", 20000, [20000, 90000], [19999]),
        ("eq", 4, [4, 4.0], [3, 5]),
        ("in", [1, 2], [1, 2], [3]),
    ],
)
def test_each_operator(operator: str, value: Any, hits: list[Any], misses: list[Any]) -> None:
    (parsed,) = parse_rules([rule(operator=operator, value=value)])
    for actual in hits:
        assert parsed.matches(actual), (operator, value, actual)
    for actual in misses:
        assert not parsed.matches(actual), (operator, value, actual)
    assert not parsed.matches(None)  # a missing value never fires a rule


def test_category_rules_and_hostile_values_never_execute() -> None:
    (eq, member) = parse_rules(
        [
            rule(code="A", field="housing", operator="eq", value="rent"),
            rule(code="B", field="purpose", operator="in", value=["business", "others"]),
        ]
    )
    assert eq.matches("rent") and not eq.matches("own")
    assert member.matches("others") and not member.matches("__import__('os').system('x')")
    # an ordering never compares a string, nor a bool posing as a number
    (ordering,) = parse_rules([rule(operator="gt", value=1)])
    assert not ordering.matches("9999") and not ordering.matches(True)


def test_strictest_action_wins() -> None:
    refer, decline = parse_rules(
        [rule(code="R", action="refer"), rule(code="D", action="decline", value=1000)]
    )
    hits = evaluate([refer, decline], {"credit_amount": 5000}, set())
    assert [h.rule.code for h in hits] == ["R", "D"]
    assert strictest("approve", hits) == "decline"
    assert strictest("approve", hits[:1]) == "refer"
    assert strictest("decline", hits[:1]) == "decline"  # a rule never softens the score band
    assert strictest("refer", ()) == "refer"


def test_a_decline_on_an_imputed_value_refers_instead() -> None:
    (under_age,) = parse_rules(
        [rule(code="H02", field="age_in_years", operator="lt", value=18, action="decline")]
    )
    (hit,) = evaluate([under_age], {"age_in_years": 16}, {"age_in_years"})
    assert hit.action == "refer" and hit.as_dict()["imputed"] is True
    (hit,) = evaluate([under_age], {"age_in_years": 16}, set())
    assert hit.action == "decline"


@given(
    band=st.sampled_from(sorted(SEVERITY)),
    actions=st.lists(st.sampled_from(["refer", "decline"]), max_size=6),
    imputed=st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_property_outcome_is_the_strictest(
    band: str, actions: list[str], imputed: list[bool]
) -> None:
    hits = [
        RuleHit(HardRule(f"C{i}", "f", "eq", 1, action, "t"), imputed[i])
        for i, action in enumerate(actions)
    ]
    outcome = strictest(band, hits)
    assert SEVERITY[outcome] >= SEVERITY[band]
    assert all(SEVERITY[outcome] >= SEVERITY[h.action] for h in hits)
    assert outcome in {band, *(h.action for h in hits)}
    assert outcome != "decline" or band == "decline" or any(h.action == "decline" for h in hits)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (rule(operator="in", value=5), "rules.0.value: the 'in' operator needs a list"),
        (
            rule(operator="eq", value=[1, 2]),
            "rules.0.value: a list is only allowed with the 'in' operator",
        ),
        (rule(operator="lt", value="ten"), "rules.0.value: operator 'lt' needs a number"),
        (rule(operator="ge", value=True), "rules.0.value: operator 'ge' needs a number"),
    ],
)
def test_bad_rules_are_refused(item: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_rules([item])


def test_duplicate_codes_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"rules.1.code: code 'H9' is used by another rule"):
        parse_rules([rule(), rule(value=5)])


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (rule(field="shoe_size"), r"rules.0.field: unknown field 'shoe_size'"),
        (rule(field="housing", operator="gt", value=1), r"rules.0.operator: 'gt' needs a numeric"),
        (rule(field="housing", operator="eq", value="castle"), r"rules.0.value: not a value"),
        (rule(field="housing", operator="eq", value=1), r"rules.0.value: housing holds string"),
        (rule(field="age_in_years", operator="eq", value="x"), r"rules.0.value: age_in_years"),
        (rule(field="purpose", operator="in", value=["business", "yacht"]), r"\['yacht'\]"),
    ],
)
def test_rules_are_checked_against_the_input_schema(
    input_schema: dict[str, Any], item: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        check_against_schema(parse_rules([item]), input_schema)


def test_the_demo_rules_fit_the_input_schema(input_schema: dict[str, Any]) -> None:
    import yaml

    config = yaml.safe_load((PROJECT_ROOT / "config" / "gateway.yaml").read_text())
    rules = config["pipelines"]["credit-risk"]["policy"]["config"]["rules"]
    check_against_schema(parse_rules(rules), input_schema)
    assert {r["code"] for r in rules} >= {"H01", "H02"}


# --- checked when the gateway starts ---------------------------------------------


@pytest.fixture(scope="module")
def sqlite_gateway(
    tmp_path_factory: pytest.TempPathFactory, trained_model: Any
) -> Iterator[Callable[[list[dict[str, Any]]], Any]]:
    """Build a gateway (SQLite: start-time checks touch no database) with given rules."""
    from gateway import create_app

    url, _ = make_db_url("sqlite", tmp_path_factory)
    models = tmp_path_factory.mktemp("models")
    register_demo_model(url, models, trained_model)
    instance = tmp_path_factory.mktemp("instance")

    def build(rules: list[dict[str, Any]]) -> Any:
        policy = {"config": {"rules": rules}}
        config = {
            **gateway_overrides(url, models),
            "pipelines": {"credit-risk": {"policy": policy}},
        }
        return create_app(config, instance_path=instance)

    yield build


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            rule(operator="like"),
            r"pipelines.credit-risk.policy \(policy threshold\) config: rules.0.operator",
        ),
        (rule(field="shoe_size"), r"pipelines.credit-risk.policy.config.rules.0.field: unknown"),
        (rule(action="approve"), r"rules.0.action: 'approve' is not one of"),
        (rule(text=""), r"rules.0.text"),
        (
            rule(field="foreign_worker", operator="eq", value="yes", action="decline"),
            "uses protected attribute.*foreign_worker",
        ),
    ],
)
def test_bad_rules_refuse_to_start(
    sqlite_gateway: Callable[[list[dict[str, Any]]], Any], item: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        sqlite_gateway([item])


def test_rule_hits_are_recorded_with_their_codes_first(
    client: FlaskClient, get_token: Callable[..., str]
) -> None:
    token = get_token("decisions:create", "decisions:read")
    young = body(0, age_in_years=17)
    doc = client.post(URL, json=young, headers=bearer(token)).get_json()
    assert doc["outcome"] == "decline"
    assert doc["reason_codes"][0]["code"] == "H02" and doc["reason_codes"][0]["text"]
    assert doc["policy"]["rule_hits"] == [
        {
            "code": "H02",
            "field": "age_in_years",
            "operator": "lt",
            "value": 18,
            "action": "decline",
            "imputed": False,
        }
    ]
    assert doc["policy"]["version"]  # the policy version travels with every decision
    large = client.post(URL, json=body(0, credit_amount=25000), headers=bearer(token)).get_json()
    assert large["outcome"] in {"refer", "decline"}
    assert "H01" in [r["code"] for r in large["reason_codes"]]
    assert 1 <= len(large["reason_codes"]) <= 4
    ordinary = client.post(URL, json={"applicant": applicants()[0]}, headers=bearer(token))
    assert ordinary.get_json()["policy"]["rule_hits"] == []
