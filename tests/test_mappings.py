"""The mapping engine: paths, conversions, start-time refusals, and its properties."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.soap.xml import parse
from gateway.components import Services
from gateway.errors import ConfigError
from gateway.mappings import Mapping, MappingError, load_mapping
from plugins.validators.schema import SchemaValidator

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config"
MISMO_SAMPLE = ROOT / "docs" / "examples" / "mismo" / "loan-application.xml"
IDOC_SAMPLE = ROOT / "docs" / "examples" / "idoc" / "ZLOANAPP01.xml"


def input_schema() -> dict[str, Any]:
    services = Services(CONFIG, CONFIG, None)  # type: ignore[arg-type]  # no models needed
    schema = SchemaValidator({"schema": "schemas/credit-application.yaml"}, services)
    return schema.input_schema()


SCHEMA = input_schema()


def write(tmp_path: Path, doc: dict[str, Any], name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def json_mapping(tmp_path: Path, fields: dict[str, Any], **extra: Any) -> Mapping:
    doc = {"name": "t", "source": "json", "fields": fields, **extra}
    return load_mapping(write(tmp_path, doc), CONFIG, SCHEMA)


# --- the shipped mappings on the shipped samples ---------------------------------------------


def test_mismo_sample_maps_what_mismo_carries() -> None:
    mapping = load_mapping("mappings/mismo-3.4.yaml", CONFIG, SCHEMA)
    result = mapping.apply(parse(MISMO_SAMPLE.read_bytes()))
    assert result.fields == {
        "credit_amount": 12500,
        "duration_in_month": 48,  # 4 years
        "purpose": "others",
        "property": "real estate",
        "age_in_years": 38,  # born 1988-03-14, file created 2026-11-20
        "number_of_people_being_liable_to_provide_maintenance_for": 2,
        "present_employment_since": "4 <= ... < 7 years",  # since 2021-06-01: 65 months
        "housing": "own",
    }
    assert result.application_id == "LOS-2026-000417"
    assert set(result.unfilled) == set(SCHEMA["properties"]) - set(result.fields)


def test_idoc_sample_maps_legacy_codes_cents_and_sap_dates() -> None:
    mapping = load_mapping("mappings/idoc-zloanapp01.yaml", CONFIG, SCHEMA)
    result = mapping.apply(parse(IDOC_SAMPLE.read_bytes()))
    assert result.fields["credit_amount"] == 2350  # 235000 cents
    assert result.fields["purpose"] == "radio/television"  # A43 from the CSV code table
    assert result.fields["age_in_years"] == 45  # 1981-07-02 to CREDAT 2026-11-20
    assert result.fields["present_employment_since"] == "1 <= ... < 4 years"
    assert result.fields["telephone"] == "yes, registered under the customers name"
    assert result.application_id == "0000000004711001"
    assert result.idempotency_key == "idoc-0000000004711001"


def test_missing_as_of_counts_to_today(tmp_path: Path) -> None:
    mapping = json_mapping(
        tmp_path, {"age_in_years": {"path": "born", "format": "iso-date", "derive": "years_since"}}
    )
    assert mapping.apply({"born": "2000-06-15"}, today=date(2026, 6, 14)).fields == {
        "age_in_years": 25
    }
    assert mapping.apply({"born": "2000-06-15"}, today=date(2026, 6, 15)).fields == {
        "age_in_years": 26
    }


def test_output_shapes_json_and_xml(tmp_path: Path) -> None:
    output = {
        "fields": [
            {"name": "id", "value": "decision_id"},
            {"name": "result", "value": "outcome", "codes": {"approve": "A"}},
            {"name": "reasons", "value": "reason_codes[*].code"},
            {"name": "source", "const": "loangate"},
        ]
    }
    mapping = json_mapping(
        tmp_path, {"credit_amount": {"path": "a", "type": "integer"}}, output=output
    )
    document = {"decision_id": "d1", "outcome": "approve", "reason_codes": [{"code": "R1"}]}
    assert mapping.render(document) == {
        "id": "d1",
        "result": "A",
        "reasons": ["R1"],
        "source": "loangate",
    }
    xml = load_mapping("mappings/idoc-zloanapp01.yaml", CONFIG, SCHEMA).render(
        {
            "application_id": "0042",
            "outcome": "decline",
            "reason_codes": [{"code": "R1"}, {"code": "R2"}],
        }
    )
    root = parse(xml)
    assert root.tag == "ZLOANDEC01"
    assert root.findtext("DOCNUM") == "0042" and root.findtext("OUTCOME") == "D"
    assert [e.text for e in root.findall("REASON")] == ["R1", "R2"]


# --- run-time errors name the source path -----------------------------------------------------


@pytest.mark.parametrize(
    ("record", "pointer", "code"),
    [
        ({"term": "twelve"}, "loan.term", "type"),
        ({"term": 12.5}, "loan.term", "type"),
        ({"born": "31.02.1990"}, "applicant.born", "date"),
        ({"purpose": "A99"}, "loan.purpose", "code"),
        ({"born": "2999-01-01"}, "applicant.born", "date"),
    ],
)
def test_run_time_errors_name_the_source_path(
    tmp_path: Path, record: dict[str, Any], pointer: str, code: str
) -> None:
    mapping = json_mapping(
        tmp_path,
        {
            "duration_in_month": {"path": "loan.term", "type": "integer"},
            "age_in_years": {"path": "applicant.born", "format": "german", "derive": "years_since"},
            "purpose": {"path": "loan.purpose", "codes": "purpose"},
        },
        code_tables={"purpose": {"csv": "codes/german_credit_codes.csv", "column": "purpose"}},
    )
    nested = {
        "loan": {k: v for k, v in record.items() if k in ("term", "purpose")},
        "applicant": {k: v for k, v in record.items() if k == "born"},
    }
    if "born" in record and record["born"] == "2999-01-01":
        nested["applicant"]["born"] = "01.01.2999"
    with pytest.raises(MappingError) as info:
        mapping.apply(nested, today=date(2026, 1, 1))
    [error] = info.value.errors
    assert (error.pointer, error.code) == (pointer, code)
    problem = info.value.problem()
    assert problem.status == 422 and problem.errors[0].pointer == pointer


def test_ambiguous_xml_path_is_an_error_naming_it(tmp_path: Path) -> None:
    doc = {
        "name": "t",
        "source": "xml",
        "fields": {"duration_in_month": {"path": "T", "type": "integer"}},
    }
    mapping = load_mapping(write(tmp_path, doc), CONFIG, SCHEMA)
    with pytest.raises(MappingError) as info:
        mapping.apply(parse(b"<R><T>1</T><T>2</T></R>"))
    assert info.value.errors[0].pointer == "T" and info.value.errors[0].code == "ambiguous"


def test_wrong_root_is_refused() -> None:
    mapping = load_mapping("mappings/idoc-zloanapp01.yaml", CONFIG, SCHEMA)
    with pytest.raises(MappingError) as info:
        mapping.apply(parse(b"<ZOTHER01><IDOC/></ZOTHER01>"))
    assert info.value.errors[0].code == "root"


# --- start-time refusals name file and key ---------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fields": {"salary": {"path": "a"}}}, r"fields\.salary: not a field"),
        ({"fields": {"credit_amount": {"path": "a..b"}}}, r"fields\.credit_amount\.path"),
        (
            {"fields": {"purpose": {"path": "a", "codes": "nope"}}},
            r"fields\.purpose\.codes: unknown code table 'nope'",
        ),
        (
            {
                "fields": {
                    "credit_amount": {
                        "path": "a",
                        "type": "number",
                        "unit": {"from": "groats", "to": "units"},
                    }
                }
            },
            r"fields\.credit_amount\.unit: unknown unit 'groats'",
        ),
        (
            {
                "fields": {
                    "credit_amount": {
                        "path": "a",
                        "type": "number",
                        "unit": {"from": "years", "to": "units"},
                    }
                }
            },
            r"fields\.credit_amount\.unit: cannot convert",
        ),
        (
            {"fields": {"age_in_years": {"path": "a", "format": "%Q", "derive": "years_since"}}},
            r"fields\.age_in_years\.format: unknown date format",
        ),
        ({"fields": {"purpose": {"const": "spaceship"}}}, r"fields\.purpose: 'spaceship' is not"),
        (
            {
                "fields": {"housing": {"path": "a", "codes": "h"}},
                "code_tables": {"h": {"values": {"X": "castle"}}},
            },
            r"fields\.housing: 'castle'",
        ),
        (
            {
                "fields": {"housing": {"path": "a", "codes": "h"}},
                "code_tables": {"h": {"csv": "codes/missing.csv"}},
            },
            r"code_tables\.h\.csv",
        ),
        (
            {
                "fields": {"credit_amount": {"path": "a", "type": "integer"}},
                "output": {"fields": [{"name": "x", "value": "salary"}]},
            },
            r"output\.fields\.0\.value: 'salary'",
        ),
        (
            {
                "fields": {
                    "credit_amount": {
                        "path": "a",
                        "type": "number",
                        "bands": [{"value": 1}, {"below": 3, "value": 2}],
                    }
                }
            },
            r"fields\.credit_amount\.bands",
        ),
        ({"fields": {"credit_amount": {"path": "a", "bogus": 1}}}, r"fields\.credit_amount"),
    ],
)
def test_bad_mapping_files_refuse_to_start(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    doc = {"name": "t", "source": "json", **change}
    with pytest.raises(ConfigError, match=r"mapping bad\.yaml: " + message):
        load_mapping(write(tmp_path, doc, "bad.yaml"), CONFIG, SCHEMA)


def test_bad_xml_paths_refuse_to_start(tmp_path: Path) -> None:
    for path, message in (
        ("q:A", "undeclared namespace prefix"),
        ("A[", "not a valid XPath"),
        ("/A", "relative to the root"),
    ):
        doc = {"name": "t", "source": "xml", "fields": {"credit_amount": {"path": path}}}
        with pytest.raises(
            ConfigError, match=r"bad\.yaml: fields\.credit_amount\.path: .*" + message
        ):
            load_mapping(write(tmp_path, doc, "bad.yaml"), CONFIG, SCHEMA)


# --- properties ---------------------------------------------------------------------------------

PATHS = ("a", "b.c", "b.d[0]", "e")


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    record=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from(["a", "b", "c", "d", "e"]), inner, max_size=4)
        ),
        max_leaves=12,
    )
)
def test_any_record_maps_or_fails_naming_a_source_path(tmp_path: Path, record: Any) -> None:
    mapping = json_mapping(
        tmp_path,
        {
            "credit_amount": {
                "path": "a",
                "type": "number",
                "unit": {"from": "cents", "to": "units"},
            },
            "age_in_years": {"path": "b.c", "format": "iso-date", "derive": "years_since"},
            "purpose": {"path": "b.d[0]", "codes": "p"},
            "present_employment_since": {
                "path": "e",
                "type": "integer",
                "bands": [{"below": 12, "value": "... < 1 year"}, {"value": "... >= 7 years"}],
            },
        },
        code_tables={"p": {"values": {"1": "business", "A40": "car (new)"}}},
    )
    try:
        result = mapping.apply(record, today=date(2026, 1, 1))
    except MappingError as exc:
        assert exc.errors and {e.pointer for e in exc.errors} <= set(PATHS)
    else:
        assert set(result.fields) | set(result.unfilled) == set(SCHEMA["properties"])


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_any_idoc_text_maps_or_fails_naming_a_source_path(data: st.DataObject) -> None:
    mapping = IDOC
    root = parse(IDOC_SAMPLE.read_bytes())
    segments = [e for e in root.iter() if e.getparent() is not None and len(e) == 0]
    for element in data.draw(st.lists(st.sampled_from(segments), max_size=4, unique=True)):
        alphabet = st.characters(blacklist_categories=("Cs", "Cc"))
        element.text = data.draw(st.text(alphabet=alphabet, max_size=10) | st.just("20260231"))
    try:
        mapping.apply(root)
    except MappingError as exc:
        paths = {r.where for alts in mapping.rules for r in alts}
        paths |= {mapping.as_of.where} if mapping.as_of else set()
        paths |= {r.where for r in (mapping.application_id, mapping.idempotency_key) if r}
        assert exc.errors and {e.pointer for e in exc.errors} <= paths


IDOC = load_mapping("mappings/idoc-zloanapp01.yaml", CONFIG, SCHEMA)


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    table=st.dictionaries(
        st.text(min_size=1, max_size=8).filter(lambda s: s == s.strip()),
        st.sampled_from(["rent", "own", "for free"]),
        min_size=1,
        max_size=6,
    ),
    stranger=st.text(min_size=1, max_size=8),
)
def test_code_tables_round_trip(tmp_path: Path, table: dict[str, str], stranger: str) -> None:
    mapping = json_mapping(
        tmp_path, {"housing": {"path": "h", "codes": "t"}}, code_tables={"t": {"values": table}}
    )
    for code, label in table.items():
        assert mapping.apply({"h": code}).fields == {"housing": label}
    if stranger not in table:
        with pytest.raises(MappingError) as info:
            mapping.apply({"h": stranger})
        assert info.value.errors[0].pointer == "h"


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cents=st.integers(min_value=100, max_value=10**11), years=st.integers(1, 10))
def test_units_convert_exactly(tmp_path: Path, cents: int, years: int) -> None:
    mapping = json_mapping(
        tmp_path,
        {
            "credit_amount": {
                "path": "amount",
                "type": "integer",
                "unit": {"from": "cents", "to": "units"},
            },
            "duration_in_month": {
                "path": "term",
                "type": "integer",
                "unit": {"from": "years", "to": "months"},
            },
        },
    )
    fields = mapping.apply({"amount": str(cents), "term": years}).fields
    expected = int((Decimal(cents) / 100).quantize(Decimal(1), rounding="ROUND_HALF_UP"))
    assert fields == {"credit_amount": expected, "duration_in_month": 12 * years}


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    day=st.dates(min_value=date(1900, 1, 1), max_value=date(2026, 1, 1)),
    fmt=st.sampled_from(
        [
            ("iso-date", "%Y-%m-%d"),
            ("sap-dats", "%Y%m%d"),
            ("german", "%d.%m.%Y"),
            ("us", "%m/%d/%Y"),
        ]
    ),
)
def test_date_formats_read_what_they_name(tmp_path: Path, day: date, fmt: tuple[str, str]) -> None:
    mapping = json_mapping(
        tmp_path,
        {
            "present_employment_since": {
                "path": "since",
                "format": fmt[0],
                "derive": "months_since",
                "bands": [{"below": 12, "value": "... < 1 year"}, {"value": "... >= 7 years"}],
            }
        },
    )
    months = (2026 - day.year) * 12 + 1 - day.month - (day.day > 1)
    got = mapping.apply({"since": day.strftime(fmt[1])}, today=date(2026, 1, 1)).fields
    assert got == {"present_employment_since": "... < 1 year" if months < 12 else "... >= 7 years"}


def test_adapter_entries_may_be_names_or_name_and_config() -> None:
    from gateway.config import GATEWAY_SCHEMA, validate

    def config(adapters: list[Any]) -> dict[str, Any]:
        stage = {"name": "x"}
        return {"pipelines": {"p": {"adapters": adapters, "scorer": stage, "policy": stage}}}

    validate(
        config(["rest", {"name": "mismo", "config": {"mapping": "mappings/m.yaml"}}]),
        GATEWAY_SCHEMA,
    )
    with pytest.raises(ConfigError, match=r"pipelines\.p\.adapters\.1"):
        validate(config(["rest", {"name": "mismo", "mapping": "m.yaml"}]), GATEWAY_SCHEMA)
