"""MISMO and IDoc over HTTP, through their mappings, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

from adapters.soap.xml import parse
from gateway.errors import ConfigError
from tests.conftest import bearer, gateway_overrides, register_demo_model

ROOT = Path(__file__).resolve().parent.parent
MISMO = (ROOT / "docs" / "examples" / "mismo" / "loan-application.xml").read_bytes()
IDOC = (ROOT / "docs" / "examples" / "idoc" / "ZLOANAPP01.xml").read_bytes()
MISMO_URL = "/v1/pipelines/credit-risk/mismo"
IDOC_URL = "/v1/pipelines/credit-risk/idoc"
REST_URL = "/v1/pipelines/credit-risk/decisions"
DECISION_NS = "{urn:loangate:decision:1}"

#: What the MISMO sample says, written out by hand as the canonical application.
MISMO_AS_JSON = {
    "credit_amount": 12500,
    "duration_in_month": 48,
    "purpose": "others",
    "property": "real estate",
    "age_in_years": 38,
    "number_of_people_being_liable_to_provide_maintenance_for": 2,
    "present_employment_since": "4 <= ... < 7 years",
    "housing": "own",
}
#: The German credit attributes MISMO has no element for (with an imputation policy).
MISMO_CANNOT_SUPPLY = {
    "status_of_existing_checking_account",
    "credit_history",
    "savings_account_and_bonds",
    "installment_rate_in_percentage_of_disposable_income",
    "other_debtors_or_guarantors",
    "present_residence_since",
    "other_installment_plans",
    "number_of_existing_credits_at_this_bank",
    "job",
    "telephone",
}


@pytest.fixture
def scorer(get_token: Callable[..., str]) -> dict[str, str]:
    return bearer(get_token("decisions:create"))


@pytest.fixture
def auditor(get_token: Callable[..., str]) -> dict[str, str]:
    # pii:read: these tests compare the logged inputs, personal fields included
    return bearer(get_token("decisions:read", "pii:read"))


def post_xml(client: FlaskClient, url: str, body: bytes, headers: dict[str, str]) -> Any:
    return client.post(url, data=body, content_type="application/xml", headers=headers)


def count_rows(app: Flask) -> int:
    with app.extensions["loangate"].engine.connect() as conn:
        return int(conn.execute(sa.text("select count(*) from decisions")).scalar_one())


def riskier(sample: bytes) -> bytes:
    return sample.replace(b"12500.00", b"19500.00").replace(
        b"<LoanMaturityPeriodCount>4<", b"<LoanMaturityPeriodCount>6<"
    )


@pytest.mark.parametrize("variant", ["sample", "riskier"])
def test_mismo_and_the_equivalent_rest_json_get_the_same_decision(
    client: FlaskClient, scorer: dict[str, str], auditor: dict[str, str], variant: str
) -> None:
    body, fields = MISMO, dict(MISMO_AS_JSON)
    if variant == "riskier":
        body, fields = riskier(MISMO), {**fields, "credit_amount": 19500, "duration_in_month": 72}
    resp = post_xml(client, MISMO_URL, body, scorer)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.mimetype == "application/xml"
    answer = parse(resp.data)
    decision_id = answer.findtext(f"{DECISION_NS}DecisionId")
    assert answer.findtext(f"{DECISION_NS}LoanIdentifier") == "LOS-2026-000417"
    mismo = client.get(f"/v1/decisions/{decision_id}", headers=auditor).get_json()

    rest = client.post(
        REST_URL, json={"application_id": "LOS-2026-000417", "applicant": fields}, headers=scorer
    ).get_json()

    assert mismo["adapter"] == "mismo" and rest["adapter"] == "rest"
    assert mismo["application"] == fields
    for member in ("probability_of_default", "outcome", "reason_codes", "imputations"):
        assert mismo[member] == rest[member], member
    imputed = {i["field"] for i in mismo["imputations"]}
    assert imputed == MISMO_CANNOT_SUPPLY
    assert answer.findtext(f"{DECISION_NS}Outcome") == rest["outcome"]
    codes = [e.text for e in answer.iter(f"{DECISION_NS}ReasonCode")]
    assert codes == [r["code"] for r in rest["reason_codes"]]
    assert {e.text for e in answer.iter(f"{DECISION_NS}ImputedField")} == MISMO_CANNOT_SUPPLY
    if variant == "riskier":
        assert rest["outcome"] != "approve" and codes  # the comparison covers reasons too


def test_idoc_is_decided_once_with_docnum_echoed(
    app: Flask, client: FlaskClient, scorer: dict[str, str], auditor: dict[str, str]
) -> None:
    resp = post_xml(client, IDOC_URL, IDOC, scorer)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    answer = parse(resp.data)
    assert answer.tag == "ZLOANDEC01"
    assert answer.findtext("DOCNUM") == "0000000004711001"
    assert answer.findtext("OUTCOME") in {"A", "R", "D"}
    decision_id = answer.findtext("DECISION_ID")
    record = client.get(f"/v1/decisions/{decision_id}", headers=auditor).get_json()
    assert record["application_id"] == "0000000004711001"
    assert record["adapter"] == "idoc"
    assert record["idempotency_key"] == "idoc-0000000004711001"
    found = client.get("/v1/decisions?application_id=0000000004711001", headers=auditor)
    assert [d["decision_id"] for d in found.get_json()["items"]] == [decision_id]

    again = post_xml(client, IDOC_URL, IDOC, scorer)  # the port re-sends the same IDoc
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert parse(again.data).findtext("DECISION_ID") == decision_id
    changed = post_xml(client, IDOC_URL, IDOC.replace(b"A43", b"A40"), scorer)
    assert changed.status_code == 409  # same DOCNUM, other content: not silently re-decided
    assert count_rows(app) == 1


MAPPING_ERRORS = [
    (IDOC_URL, IDOC.replace(b"19810702", b"19811302"), "IDOC/Z1APPLICANT/BIRTHDT", "date"),
    (IDOC_URL, IDOC.replace(b"A43", b"A99"), "IDOC/Z1LOANHDR/PURPOSE", "code"),
    (IDOC_URL, IDOC.replace(b"235000", b"lots"), "IDOC/Z1LOANHDR/AMOUNT_CENTS", "type"),
    (MISMO_URL, MISMO.replace(b"Refinance", b"Timeshare"), "m:LoanPurposeType", "code"),
    (IDOC_URL, MISMO, "/", "root"),
]


def test_mapping_errors_are_422_naming_the_source_path(
    app: Flask, client: FlaskClient, scorer: dict[str, str]
) -> None:
    for n, (url, body, pointer, code) in enumerate(MAPPING_ERRORS, 1):
        resp = post_xml(client, url, body, scorer)
        assert resp.status_code == 422 and resp.mimetype == "application/problem+json"
        [error] = resp.get_json()["errors"]
        assert error["pointer"].endswith(pointer) and error["code"] == code
        assert count_rows(app) == n  # each rejection is logged


def test_unfillable_required_field_is_refused_by_the_pipeline(
    client: FlaskClient, scorer: dict[str, str]
) -> None:
    body = MISMO.replace(b"<BaseLoanAmount>12500.00</BaseLoanAmount>", b"")
    resp = post_xml(client, MISMO_URL, body, scorer)
    assert resp.status_code == 422
    assert resp.get_json()["errors"][0]["pointer"] == "/applicant/credit_amount"


HOSTILE = {
    "billion laughs": b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]>'
    b"<ZLOANAPP01>&b;</ZLOANAPP01>",
    "external entity": b'<?xml version="1.0"?><!DOCTYPE z [<!ENTITY x SYSTEM "file:///etc/passwd">'
    b"]><ZLOANAPP01><IDOC>&x;</IDOC></ZLOANAPP01>",
    "utf-16 doctype": '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE z SYSTEM '
    '"http://127.0.0.1:9/x.dtd"><ZLOANAPP01/>'.encode("utf-16"),
    "not well-formed": b"<ZLOANAPP01><IDOC></ZLOANAPP01>",
    "empty": b"",
    "deep nesting": b"<a>" * 300 + b"</a>" * 300,
}


def test_hostile_xml_is_refused_before_mapping(
    app: Flask, client: FlaskClient, scorer: dict[str, str]
) -> None:
    for url in (IDOC_URL, MISMO_URL):
        for name, body in HOSTILE.items():
            resp = post_xml(client, url, body, scorer)
            assert resp.status_code == 400, (url, name, resp.get_data(as_text=True))
            assert resp.mimetype == "application/problem+json"
            assert "root:" not in resp.get_data(as_text=True)  # never a file's content
    with app.extensions["loangate"].engine.connect() as conn:
        rejected = conn.execute(sa.text("select count(*) from decisions where status_code = 400"))
        assert rejected.scalar_one() == 2 * len(HOSTILE)  # logged as rejections, none decided


def test_http_edges(client: FlaskClient, scorer: dict[str, str]) -> None:
    assert client.post(MISMO_URL, data=MISMO, content_type="application/xml").status_code == 401
    wrong_type = client.post(MISMO_URL, data=MISMO, content_type="text/plain", headers=scorer)
    assert wrong_type.status_code == 415
    unknown = post_xml(client, "/v1/pipelines/nope/idoc", IDOC, scorer)
    assert unknown.status_code == 404
    big = b"<ZLOANAPP01>" + b"x" * 100_000 + b"</ZLOANAPP01>"
    assert post_xml(client, IDOC_URL, big, scorer).status_code == 413


def test_a_mapping_onto_an_unknown_field_refuses_to_start(
    db_url: str, tmp_path: Path, trained_model: Any
) -> None:
    from gateway import create_app

    url = db_url
    register_demo_model(url, tmp_path / "models", trained_model)
    doc = yaml.safe_load((ROOT / "config" / "mappings" / "mismo-3.4.yaml").read_text())
    doc["fields"]["monthly_income"] = {"path": "m:ABOUT_VERSIONS", "type": "number"}
    bad = tmp_path / "bad-mismo.yaml"
    bad.write_text(yaml.safe_dump(doc), encoding="utf-8")
    overrides = gateway_overrides(url, tmp_path / "models")
    overrides["pipelines"] = {
        "credit-risk": {"adapters": ["rest", {"name": "mismo", "config": {"mapping": str(bad)}}]}
    }
    with pytest.raises(
        ConfigError,
        match=r"pipelines\.credit-risk\.adapters\.1 \(adapter mismo\): mapping bad-mismo\.yaml: "
        r"fields\.monthly_income: not a field",
    ):
        create_app(overrides, instance_path=tmp_path / "instance")
    overrides["pipelines"]["credit-risk"]["adapters"] = ["rest", "idoc", {"name": "idoc"}]
    with pytest.raises(ConfigError, match=r"adapters\.2: adapter 'idoc' repeated"):
        create_app(overrides, instance_path=tmp_path / "instance")


def test_openapi_documents_the_xml_routes(client: FlaskClient) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]
    for path in ("/v1/pipelines/{pipeline}/mismo", "/v1/pipelines/{pipeline}/idoc"):
        assert "application/xml" in paths[path]["post"]["requestBody"]["content"]


def test_xml_answer_is_plain_xml(client: FlaskClient, scorer: dict[str, str]) -> None:
    resp = post_xml(client, IDOC_URL, IDOC, scorer)
    tree = etree.fromstring(resp.data)
    assert tree.getroottree().docinfo.xml_version == "1.0" and tree.nsmap == {}


def test_pipeline_listing_shows_the_xml_adapters(
    client: FlaskClient, auditor: dict[str, str]
) -> None:
    resp = client.get("/v1/pipelines/credit-risk", headers=auditor)
    described = resp.get_json()
    assert {"mismo", "idoc"} <= set(described["adapters"])


def test_cli_applies_a_mapping_offline(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from adapters.mappings_cli import mappings_commands

    runner = CliRunner()
    sample = ROOT / "docs" / "examples" / "idoc" / "ZLOANAPP01.xml"
    ok = runner.invoke(
        mappings_commands, ["apply", str(sample), "--mapping", "mappings/idoc-zloanapp01.yaml"]
    )
    assert ok.exit_code == 0, ok.output
    out = yaml.safe_load(ok.output)
    assert out["application_id"] == "0000000004711001" and out["applicant"]["age_in_years"] == 45
    assert set(out["unfilled"]) == {
        "other_debtors_or_guarantors",
        "present_residence_since",
        "property",
        "other_installment_plans",
        "personal_status_and_sex",
        "foreign_worker",
    }
    bad = tmp_path / "bad.xml"
    bad.write_bytes(IDOC.replace(b"A43", b"A99"))
    failed = runner.invoke(
        mappings_commands, ["apply", str(bad), "--mapping", "mappings/idoc-zloanapp01.yaml"]
    )
    assert failed.exit_code == 1 and "IDOC/Z1LOANHDR/PURPOSE" in failed.output
