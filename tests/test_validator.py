"""The schema validator: types, ranges, categories, required fields and imputation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.components import Services
from gateway.config import PROJECT_ROOT
from gateway.context import DecisionContext
from gateway.errors import ConfigError
from plugins.validators.schema import SchemaValidator
from tests.helpers import applicant, context_for

CONFIG_DIR = PROJECT_ROOT / "config"


def make_validator(schema: str = "schemas/credit-application.yaml", config_dir: Path = CONFIG_DIR):
    services = Services(config_dir=config_dir, instance_path=config_dir, registry=None)  # type: ignore[arg-type]
    return SchemaValidator({"schema": schema}, services)


@pytest.fixture(scope="module")
def validator() -> SchemaValidator:
    return make_validator()


def ctx_for(fields: dict[str, Any]) -> DecisionContext:
    return context_for(fields)


def codes(ctx: DecisionContext) -> dict[str, str]:
    return {e.pointer: e.code for e in ctx.errors}


def test_every_german_credit_row_is_valid(validator: SchemaValidator) -> None:
    from tests.helpers import applicants

    for row in applicants():
        out = validator.validate(ctx_for(row))
        assert not out.errors, out.errors
        assert out.imputations == ()
        assert out.features == row


def test_missing_required_field_is_named(validator: SchemaValidator) -> None:
    fields = applicant()
    del fields["credit_amount"]
    out = validator.validate(ctx_for(fields))
    assert codes(out) == {"/applicant/credit_amount": "required"}


def test_missing_imputable_field_is_filled_and_recorded(validator: SchemaValidator) -> None:
    fields = applicant()
    del fields["savings_account_and_bonds"]
    fields["job"] = None
    out = validator.validate(ctx_for(fields))
    assert not out.errors
    imputed = {i.field: i.value for i in out.imputations}
    assert imputed == {
        "savings_account_and_bonds": "unknown/ no savings account",
        "job": "skilled employee / official",
    }
    assert out.features["savings_account_and_bonds"] == "unknown/ no savings account"


def test_protected_attribute_may_be_absent(validator: SchemaValidator) -> None:
    fields = applicant()
    del fields["foreign_worker"]
    out = validator.validate(ctx_for(fields))
    assert not out.errors and out.features["foreign_worker"] is None
    assert validator.protected_fields() == {"foreign_worker", "personal_status_and_sex"}


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("duration_in_month", "24", "type"),
        ("duration_in_month", 24.5, "type"),
        ("duration_in_month", True, "type"),
        ("duration_in_month", 0, "minimum"),
        ("credit_amount", 10**9, "maximum"),
        ("purpose", "yacht", "enum"),
        ("purpose", 3, "type"),
        ("purpose", "'; DROP TABLE decisions; --", "enum"),
        ("age_in_years", float("nan"), "type"),
    ],
)
def test_bad_values_are_named(
    validator: SchemaValidator, field: str, value: Any, code: str
) -> None:
    out = validator.validate(ctx_for({**applicant(), field: value}))
    assert codes(out) == {f"/applicant/{field}": code}


def test_unknown_fields_are_reported_with_the_rest(validator: SchemaValidator) -> None:
    fields = {**applicant(), "shoe_size": 44, "purpose": "yacht"}
    del fields["duration_in_month"]
    out = validator.validate(ctx_for(fields))
    assert codes(out) == {
        "/applicant/shoe_size": "unknown",
        "/applicant/purpose": "enum",
        "/applicant/duration_in_month": "required",
    }


def test_legacy_codes_are_accepted_as_aliases(validator: SchemaValidator) -> None:
    out = validator.validate(ctx_for({**applicant(), "purpose": "A43", "housing": "A152"}))
    assert not out.errors
    assert out.features["purpose"] == "radio/television"
    assert out.features["housing"] == "own"


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=12),
        st.one_of(st.none(), st.integers(), st.text(max_size=8), st.floats(allow_nan=True)),
        max_size=6,
    )
)
def test_any_input_is_either_valid_or_rejected_with_field_errors(fields: dict[str, Any]) -> None:
    validator = make_validator()
    out = validator.validate(ctx_for(fields))
    if out.errors:
        assert all(e.pointer.startswith("/applicant/") and e.detail for e in out.errors)
        assert out.features == {}
    else:
        assert set(out.features) == set(validator.fields)


def test_bad_schema_file_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "name: x\nversion: '1'\nfields:\n  age: {type: integer, missing: {impute: 'old'}}\n"
    )
    with pytest.raises(ConfigError, match=r"fields\.age\.missing\.impute"):
        make_validator("s.yaml", tmp_path)
    (tmp_path / "t.yaml").write_text(
        "name: x\nversion: '1'\nfields:\n  age: {type: float, missing: reject}\n"
    )
    with pytest.raises(ConfigError, match=r"fields\.age\.type"):
        make_validator("t.yaml", tmp_path)
