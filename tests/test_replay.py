"""Decision replay: logged decisions re-run through their logged model and policy versions.

SQLite and PostgreSQL; the acceptance run decides through a real gunicorn server and
replays through the CLI. Tampering uses SQLite (decisions are append-only on PostgreSQL).
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from gateway import create_app, db
from gateway.errors import ConfigError
from gateway.registry import ModelRegistry
from gateway.replay.compare import TOLERANCE, compare
from gateway.replay.engine import Replayer, logged_application
from tests.conftest import MODEL_NAME, bearer, gateway_overrides, register_demo_model
from tests.helpers import applicants, body
from tests.servers import running_server

URL = "/v1/pipelines/credit-risk/decisions"
#: Fields the schema imputes or lets stay empty when missing.
OPTIONAL = (
    "status_of_existing_checking_account",
    "credit_history",
    "savings_account_and_bonds",
    "present_employment_since",
    "installment_rate_in_percentage_of_disposable_income",
    "age_in_years",
    "personal_status_and_sex",
    "other_debtors_or_guarantors",
)


def varied(rng: random.Random, i: int) -> dict[str, Any]:
    """A request body: real applicants, some with missing fields, rule hits, legacy codes,
    or invalid values (rejected)."""
    fields = dict(rng.choice(applicants()))
    kind = i % 10
    if kind in (1, 2):
        for name in rng.sample(OPTIONAL, rng.randint(1, 4)):
            fields.pop(name, None)
    elif kind == 3:
        fields["age_in_years"] = 17  # H02: decline
    elif kind == 4:
        fields["credit_amount"] = rng.randint(20001, 60000)  # H01: refer
    elif kind == 5:
        fields["duration_in_month"] = rng.randint(73, 120)  # H03: refer
    elif kind == 6:
        fields["status_of_existing_checking_account"] = "A11"  # legacy code alias
    elif kind == 7:
        fields["credit_amount"] = "a lot"  # rejected: wrong type
    elif kind == 8:
        fields.pop("purpose")  # rejected: required
    return {"applicant": fields, "application_id": f"LN-{i}"}


def cli_env(db_url: str, tmp: Path) -> dict[str, str]:
    return {
        "LOANGATE_DATABASE__URL": db_url,
        "LOANGATE_MODELS__DIR": str(tmp / "models"),
        "LOANGATE_INSTANCE": str(tmp / "instance"),
    }


def run_cli(db_url: str, tmp: Path, *args: str) -> Any:
    from gateway.cli import main

    return CliRunner(env=cli_env(db_url, tmp)).invoke(main, ["decisions", "replay", *args])


def replay(client: FlaskClient, token: str, decision_id: str) -> Any:
    return client.post(f"/v1/decisions/{decision_id}/replay", headers=bearer(token))


def decide(client: FlaskClient, token: str, payload: Any) -> dict[str, Any]:
    """Decide ``payload`` over REST; the logged record (``token`` may create and read)."""
    resp = client.post(URL, json=payload, headers=bearer(token))
    assert resp.status_code in (201, 422), resp.get_json()
    decision_id = resp.get_json()["decision_id"]
    record = client.get(f"/v1/decisions/{decision_id}", headers=bearer(token))
    assert record.status_code == 200
    return dict(record.get_json())


@pytest.fixture
def tok(get_token: Callable[..., str]) -> dict[str, str]:
    return {
        "create": get_token("decisions:create", "decisions:read"),
        "read": get_token("decisions:read"),
    }


# --- acceptance: 100 random decisions, decided by a real server ----------------------


def test_a_hundred_random_decisions_reproduce(
    db_url: str, tmp_path: Path, trained_model: Any
) -> None:
    rng = random.Random(2026)
    with running_server(db_url, tmp_path, trained_model) as srv:
        token = srv.token("decisions:create", "decisions:read")
        headers = bearer(token)
        outcomes: dict[str, int] = {}
        ids = []
        for i in range(130):
            resp = requests.post(srv.base + URL, json=varied(rng, i), headers=headers, timeout=10)
            assert resp.status_code in (201, 422), resp.text
            doc = resp.json()
            ids.append(doc["decision_id"])
            key = doc.get("outcome") or "rejected"
            outcomes[key] = outcomes.get(key, 0) + 1
        # The mix is what the test claims: approvals, referrals, declines and rejections.
        assert {"approve", "refer", "decline", "rejected"} <= set(outcomes), outcomes
        # One over the server's API.
        one = requests.post(f"{srv.base}/v1/decisions/{ids[3]}/replay", headers=headers, timeout=10)
        assert one.status_code == 200, one.text
        assert one.json()["reproduced"] is True, one.json()

    result = run_cli(db_url, tmp_path, "--sample", "100", "--seed", "7", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 100 and report["reproduced"] == 100, report
    assert report["differed"] == 0 and report["not_replayable"] == 0
    replayed = report["reports"]
    assert len({r["decision_id"] for r in replayed}) == 100
    assert {r["decision_id"] for r in replayed} <= set(ids)
    assert all(r["reproduced"] is True and r["differences"] == [] for r in replayed)
    # Rule hits, imputations and rejections were among what was replayed.
    decided = [r for r in replayed if r["policy"] is not None]
    assert len(decided) < 100  # rejections replay too (they reject the same way)
    # The same seed draws the same sample.
    again = json.loads(run_cli(db_url, tmp_path, "--sample", "100", "--seed", "7", "--json").stdout)
    assert [r["decision_id"] for r in again["reports"]] == [r["decision_id"] for r in replayed]
    human = run_cli(db_url, tmp_path, "--pipeline", "credit-risk", "--since", "2000-01-01")
    assert human.exit_code == 0, human.output
    assert "replayed 130: 130 reproduced, 0 differed, 0 not replayable" in human.output


# --- the API ---------------------------------------------------------------------------


def test_replay_over_the_api(app: Flask, client: FlaskClient, tok: dict[str, str]) -> None:
    rng = random.Random(5)
    docs = [decide(client, tok["create"], varied(rng, i)) for i in range(20)]
    for doc in docs:
        resp = replay(client, tok["read"], doc["decision_id"])
        assert resp.status_code == 200, resp.get_json()
        report = resp.get_json()
        assert report["reproduced"] is True, report
        assert report["differences"] == [] and report["max_abs_deviation"] <= TOLERANCE
        assert report["decision_id"] == doc["decision_id"]
        if doc["status"] == "decided":
            assert report["model"] == doc["model"]
            assert report["policy"] == {
                "name": doc["policy"]["name"],
                "version": doc["policy"]["version"],
            }
    rejected = [d for d in docs if d["status"] == "rejected"]
    assert rejected  # a rejection reproduces when it rejects the same way
    with app.extensions["loangate"].engine.connect() as conn:
        trail = conn.execute(
            sa.text("select count(*) from access_trail where action = :a"),
            {"a": "POST /v1/decisions/<decision_id>/replay"},
        ).scalar_one()
    assert trail == len(docs)  # each replay is a read, kept in the access trail
    assert any(d["policy"] and d["policy"]["rule_hits"] for d in docs)
    assert any(d["imputations"] for d in docs)


def test_replay_refuses_bad_callers_and_ids(
    app: Flask, client: FlaskClient, tok: dict[str, str], get_token: Callable[..., str]
) -> None:
    doc = decide(client, tok["create"], body(1))
    path = f"/v1/decisions/{doc['decision_id']}/replay"
    assert client.post(path).status_code == 401
    assert client.post(path, headers=bearer(get_token("decisions:create"))).status_code == 403
    assert client.get(path, headers=bearer(tok["read"])).status_code == 405
    for bad in ("01J00000000000000000000000", "not-an-id", "x" * 500, "%00"):
        resp = replay(client, tok["read"], bad)
        assert resp.status_code == 404, bad
        assert resp.mimetype == "application/problem+json"
    spec = client.get("/openapi.json").get_json()
    assert "/v1/decisions/{decision_id}/replay" in spec["paths"]


def test_a_request_refused_before_the_pipeline_is_not_replayable(
    app: Flask, client: FlaskClient, tok: dict[str, str]
) -> None:
    resp = client.post(
        URL,
        data=b'{"applicant": ',
        headers={**bearer(tok["create"]), "Content-Type": "application/json"},
    )
    assert resp.status_code == 400
    report = replay(client, tok["read"], resp.get_json()["decision_id"]).get_json()
    assert report["reproduced"] is None and report["reason"] == "rejected-before-pipeline"


# --- versions: the model and the policy the decision names ----------------------------


def _new_champion(app: Flask, trained: Any, factor: float) -> int:
    """Register a changed copy of the demo model as the new champion; its version."""
    estimator = copy.deepcopy(trained.estimator)
    estimator[-1].coef_ = estimator[-1].coef_ * factor
    state = app.extensions["loangate"]
    registry = ModelRegistry(state.engine, Path(state.config["models"]["dir"]))
    info = registry.register(
        MODEL_NAME,
        estimator,
        trained.metadata,
        kind=trained.kind,
        stage="champion",
        created_by="tests",
    )
    return info.version


def test_old_decisions_replay_with_their_model_version_after_the_champion_changes(
    app: Flask, db_url: str, tmp_path: Path, trained_model: Any, get_token: Callable[..., str]
) -> None:
    client = app.test_client()
    create, read = get_token("decisions:create", "decisions:read"), get_token("decisions:read")
    old = [decide(client, create, body(i, application_id=f"old-{i}")) for i in range(1, 11)]
    assert {d["model"]["version"] for d in old} == {1}
    version = _new_champion(app, trained_model, 1.5)
    assert version == 2
    newer = create_app(
        gateway_overrides(db_url, tmp_path / "models"), instance_path=tmp_path / "instance"
    )
    try:
        new_client = newer.test_client()
        new = [decide(new_client, create, body(i, application_id=f"new-{i}")) for i in range(1, 11)]
        assert {d["model"]["version"] for d in new} == {2}
        # The champion moved: the same applicants get other probabilities now...
        assert [d["probability_of_default"] for d in new] != [
            d["probability_of_default"] for d in old
        ]
        # ...and each decision still reproduces with the version it names.
        for doc in old + new:
            report = replay(new_client, read, doc["decision_id"]).get_json()
            assert report["reproduced"] is True, report
            assert report["model"]["version"] == doc["model"]["version"]
    finally:
        newer.extensions["loangate"].engine.dispose()


def test_a_missing_model_artifact_is_named(
    app: Flask, db_url: str, tmp_path: Path, trained_model: Any, get_token: Callable[..., str]
) -> None:
    client = app.test_client()
    doc = decide(client, get_token("decisions:create", "decisions:read"), body(1))
    _new_champion(app, trained_model, 0.5)
    (tmp_path / "models" / MODEL_NAME / "v1.skops").unlink()
    newer = create_app(
        gateway_overrides(db_url, tmp_path / "models"), instance_path=tmp_path / "instance"
    )
    try:
        resp = replay(newer.test_client(), get_token("decisions:read"), doc["decision_id"])
        assert resp.status_code == 200
        report = resp.get_json()
        assert report["reproduced"] is None and report["reason"] == "model-unavailable"
        assert "'german-credit' v1" in report["detail"] and "missing" in report["detail"]
    finally:
        newer.extensions["loangate"].engine.dispose()
    result = run_cli(db_url, tmp_path, doc["decision_id"])
    assert result.exit_code == 3, result.output
    assert "not replayable (model-unavailable): model 'german-credit' v1" in result.output


def _policy(**settings: Any) -> dict[str, Any]:
    return {"pipelines": {"credit-risk": {"policy": {"config": settings}}}}


def test_a_changed_policy_under_the_same_version_refuses_to_start(
    app: Flask, db_url: str, tmp_path: Path, get_token: Callable[..., str]
) -> None:
    client = app.test_client()
    create, read = get_token("decisions:create", "decisions:read"), get_token("decisions:read")
    before = [decide(client, create, body(i)) for i in range(1, 9)]
    version = before[0]["policy"]["version"]
    overrides = gateway_overrides(db_url, tmp_path / "models")
    with pytest.raises(ConfigError, match=r"pipelines\.credit-risk\.policy.*bump `version`"):
        create_app({**overrides, **_policy(approve_below=0.05)}, instance_path=tmp_path / "i2")
    # Bumped, it starts; the old decisions replay with the settings of their version.
    changed = _policy(approve_below=0.05, decline_at=0.3, version=f"{version}-b")
    newer = create_app({**overrides, **changed}, instance_path=tmp_path / "instance")
    try:
        new_client = newer.test_client()
        after = [decide(new_client, create, body(i)) for i in range(1, 9)]
        assert [d["outcome"] for d in after] != [d["outcome"] for d in before]
        for doc in before + after:
            report = replay(new_client, read, doc["decision_id"]).get_json()
            assert report["reproduced"] is True, report
        with newer.extensions["loangate"].engine.connect() as conn:
            versions = conn.execute(
                sa.text("select version from policy_versions where pipeline = 'credit-risk'")
            ).scalars()
            assert sorted(versions) == sorted([version, f"{version}-b"])
    finally:
        newer.extensions["loangate"].engine.dispose()
    # The same settings again under the same version start as before.
    same = create_app(overrides, instance_path=tmp_path / "instance")
    same.extensions["loangate"].engine.dispose()


# --- tampering and erasure (SQLite: decisions are append-only on PostgreSQL) ----------


@pytest.fixture
def sqlite_app(tmp_path: Path, trained_model: Any) -> Iterator[Flask]:
    url = f"sqlite:///{tmp_path / 'loangate.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    register_demo_model(url, tmp_path / "models", trained_model)
    application = create_app(
        gateway_overrides(url, tmp_path / "models"), instance_path=tmp_path / "instance"
    )
    yield application
    application.extensions["loangate"].engine.dispose()


def _rewrite(app: Flask, decision_id: str, change: Callable[[dict[str, Any]], None]) -> None:
    engine = app.extensions["loangate"].engine
    with engine.begin() as conn:
        text = conn.execute(
            sa.text("select document from decisions where id = :id"), {"id": decision_id}
        ).scalar_one()
        document = json.loads(text)
        change(document)
        conn.execute(
            sa.text("update decisions set document = :d where id = :id"),
            {"d": json.dumps(document), "id": decision_id},
        )


def test_a_tampered_document_reports_the_members_that_differ(
    sqlite_app: Flask, tmp_path: Path
) -> None:
    client = sqlite_app.test_client()
    create = _token(sqlite_app, "decisions:create", "decisions:read")
    read = _token(sqlite_app, "decisions:read")
    doc = decide(client, create, body(1, age_in_years=...))  # imputed age
    assert doc["outcome"] in {"refer", "decline"} and doc["imputations"]
    logged_p = doc["probability_of_default"]
    logged_code = doc["reason_codes"][0]["code"]

    def tamper(d: dict[str, Any]) -> None:
        d["probability_of_default"] = 0.01
        d["outcome"] = "approve"
        d["reason_codes"][0]["code"] = "R00"
        d["features"]["credit_amount"] += 1

    _rewrite(sqlite_app, doc["decision_id"], tamper)
    report = replay(client, read, doc["decision_id"]).get_json()
    assert report["reproduced"] is False
    diffs = {d["member"]: d for d in report["differences"]}
    assert diffs["/probability_of_default"] == {
        "member": "/probability_of_default",
        "logged": 0.01,
        "replayed": logged_p,
    }
    assert diffs["/outcome"]["replayed"] == doc["outcome"]
    assert diffs["/reason_codes/0/code"] == {
        "member": "/reason_codes/0/code",
        "logged": "R00",
        "replayed": logged_code,
    }
    assert diffs["/features/credit_amount"]["logged"] == doc["features"]["credit_amount"] + 1
    assert set(diffs) == {
        "/probability_of_default",
        "/outcome",
        "/reason_codes/0/code",
        "/features/credit_amount",
    }
    url = f"sqlite:///{tmp_path / 'loangate.db'}"
    result = run_cli(url, tmp_path, doc["decision_id"])
    assert result.exit_code == 1, result.output
    assert f"{doc['decision_id']}: DIFFERS" in result.output
    assert "/probability_of_default: logged 0.01 replayed" in result.output
    assert "1 differed" in result.output


def test_an_erased_application_is_reported_not_failed(sqlite_app: Flask, tmp_path: Path) -> None:
    client = sqlite_app.test_client()
    doc = decide(client, _token(sqlite_app, "decisions:create", "decisions:read"), body(2))
    _rewrite(sqlite_app, doc["decision_id"], lambda d: d.update(application=None))
    report = replay(client, _token(sqlite_app, "decisions:read"), doc["decision_id"]).get_json()
    assert report == {
        "decision_id": doc["decision_id"],
        "reproduced": None,
        "reason": "erased",
        "detail": "the application's personal data has been erased",
        "model": doc["model"],
        "policy": {"name": doc["policy"]["name"], "version": doc["policy"]["version"]},
    }
    result = run_cli(f"sqlite:///{tmp_path / 'loangate.db'}", tmp_path, "--since", "2000-01-01")
    assert result.exit_code == 0, result.output  # an erasure is not a failure
    assert "1 erased" in result.output
    with sqlite_app.extensions["loangate"].engine.connect() as conn:
        trail = conn.execute(
            sa.text("select params, result_count from access_trail where channel = 'cli'")
        ).all()
    assert [(json.loads(p), n) for p, n in trail] == [({"since": "2000-01-01"}, 1)]


def test_a_policy_version_never_recorded_is_not_replayable(sqlite_app: Flask) -> None:
    client = sqlite_app.test_client()
    doc = decide(client, _token(sqlite_app, "decisions:create", "decisions:read"), body(1))
    _rewrite(sqlite_app, doc["decision_id"], lambda d: d["policy"].update(version="1999-01"))
    report = replay(client, _token(sqlite_app, "decisions:read"), doc["decision_id"]).get_json()
    assert report["reproduced"] is None and report["reason"] == "policy-unknown"
    assert "'1999-01'" in report["detail"] and "credit-risk" in report["detail"]


def _token(app: Flask, *scopes: str) -> str:
    auth = app.extensions["loangate"].extras["auth"]
    return str(auth.mint_token("replay-tests", list(scopes)))


# --- the CLI's arguments, the comparison and the cache --------------------------------


def test_cli_usage_errors(sqlite_app: Flask, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'loangate.db'}"
    assert run_cli(url, tmp_path).exit_code == 2
    assert run_cli(url, tmp_path, "01J00000000000000000000000", "--sample", "3").exit_code == 2
    assert run_cli(url, tmp_path, "--sample", "0").exit_code == 2
    assert run_cli(url, tmp_path, "--since", "yesterday").exit_code == 2
    missing = run_cli(url, tmp_path, "01J00000000000000000000000")
    assert missing.exit_code == 1 and "no decision with id" in missing.output
    empty = run_cli(url, tmp_path, "--sample", "5", "--json")
    assert empty.exit_code == 0 and json.loads(empty.stdout)["n"] == 0


def test_compare_tolerates_only_last_bit_noise() -> None:
    logged = {"probability_of_default": 0.25, "explanation": {"contributions": {"a": 0.1}}}
    noisy = {"probability_of_default": 0.25 + 1e-16, "explanation": {"contributions": {"a": 0.1}}}
    differences, deviation = compare(logged, noisy)
    assert differences == [] and 0 < deviation <= TOLERANCE
    off = {"probability_of_default": 0.25 + 1e-9, "explanation": {"contributions": {"b": 0.1}}}
    members = {d.member for d in compare(logged, off)[0]}
    assert members == {
        "/probability_of_default",
        "/explanation/contributions/a",
        "/explanation/contributions/b",
    }
    assert compare({"outcome": 1}, {"outcome": True})[0]  # a bool is not a number here
    assert compare({"features": {"a/b": "x"}}, {"features": {"a/b": "y"}})[0][0].member == (
        "/features/a~1b"
    )
    assert logged_application({"application": None}) is None
    assert logged_application({"application": {"a": 1}}) == {"a": 1}


def test_replay_loads_each_model_version_once_and_keeps_few(
    app: Flask, trained_model: Any, get_token: Callable[..., str]
) -> None:
    client = app.test_client()
    create = get_token("decisions:create", "decisions:read")
    made = [decide(client, create, body(i)) for i in range(1, 4)]
    _new_champion(app, trained_model, 1.2)
    state = app.extensions["loangate"]
    # As stored (personal values sealed): what the replayer reads from the log.
    docs = [state.extras["decision_log"].get(d["decision_id"]).parsed() for d in made]
    serving: Replayer = state.extras["replayer"]
    replayer = Replayer(
        serving.pipelines,
        serving.specs,
        serving.catalog,
        serving.services,
        serving.policies,
        serving.opener,
        cache_size=1,
    )
    v2 = copy.deepcopy(docs[0])
    v2["model"] = {
        **v2["model"],
        "version": 2,
        "sha256": replayer.registry.get(MODEL_NAME, version=2).sha256,
    }
    reports = replayer.replay_many([docs[0], v2, docs[1], docs[2]])
    assert [r.reproduced for r in reports] == [True, False, True, True], reports
    assert reports[1].model is not None and reports[1].model["version"] == 2
    assert {d.member for d in reports[1].differences} >= {"/probability_of_default"}
    assert len(replayer.registry._cache) == 1  # the LRU keeps cache_size versions loaded


def test_personal_values_in_differences_are_masked_without_pii_read(sqlite_app: Flask) -> None:
    client = sqlite_app.test_client()
    doc = decide(client, _token(sqlite_app, "decisions:create", "decisions:read"), body(1))
    _rewrite(sqlite_app, doc["decision_id"], lambda d: d["features"].update(age_in_years=99))
    masked = replay(client, _token(sqlite_app, "decisions:read"), doc["decision_id"]).get_json()
    assert masked["reproduced"] is False
    assert masked["differences"] == [
        {
            "member": "/features/age_in_years",
            "logged": {"$masked": True},
            "replayed": {"$masked": True},
        }
    ]
    token = _token(sqlite_app, "decisions:read", "pii:read")
    clear = replay(client, token, doc["decision_id"]).get_json()
    assert clear["differences"] == [
        {
            "member": "/features/age_in_years",
            "logged": 99,
            "replayed": applicants()[1]["age_in_years"],
        }
    ]


def test_a_decision_of_an_erased_applicant_replays_as_erased(
    app: Flask, client: FlaskClient, tok: dict[str, str]
) -> None:
    doc = decide(client, tok["create"], body(3))
    personal = app.extensions["loangate"].extras["personal_data"]
    stored = app.extensions["loangate"].extras["decision_log"].get(doc["decision_id"]).parsed()
    assert replay(client, tok["read"], doc["decision_id"]).get_json()["reproduced"] is True
    erasure = personal.erase(personal.subject_id(stored), "tests")
    assert erasure.decisions == 1
    report = replay(client, tok["read"], doc["decision_id"]).get_json()
    assert report["reproduced"] is None and report["reason"] == "erased", report


def test_lookups_are_taken_from_the_log_not_called_again(
    db_url: str, tmp_path: Path, trained_model: Any
) -> None:
    from gateway.features import FeatureStore, read_chunks
    from tests.test_features import CSV, PIPELINE, SCHEMA, commented_pipeline, write

    register_demo_model(db_url, tmp_path / "models", trained_model)
    overrides = {
        **gateway_overrides(db_url, tmp_path / "models"),
        "pipelines": {PIPELINE: commented_pipeline()},
    }
    gateway = create_app(overrides, instance_path=tmp_path / "instance")
    try:
        client = gateway.test_client()
        token = _token(gateway, "decisions:create", "decisions:read")
        url = f"/v1/pipelines/{PIPELINE}/decisions"
        store = FeatureStore(gateway.extensions["loangate"].engine)
        store.load("crm-profile", read_chunks(CSV, 3), SCHEMA)

        def decide_here(**fields: Any) -> dict[str, Any]:
            made = client.post(url, json=body(1, **fields), headers=bearer(token))
            assert made.status_code == 201, made.get_json()
            return dict(client.get(made.headers["Location"], headers=bearer(token)).get_json())

        known, unknown = decide_here(customer_id="C-1001"), decide_here(customer_id="C-9999")
        assert known["features"]["crm_segment"] == "premium"
        # A newer load changes what a lookup gives today...
        store.load(
            "crm-profile", read_chunks(write(tmp_path, "C-1001,2026-01-01,1,retail,,\n"), 3), SCHEMA
        )
        assert decide_here(customer_id="C-1001")["features"]["crm_segment"] == "retail"
        # ...but a replay uses what the decision was given, and reproduces.
        for doc in (known, unknown):
            report = replay(client, token, doc["decision_id"]).get_json()
            assert report["reproduced"] is True, report
    finally:
        gateway.extensions["loangate"].engine.dispose()


def test_a_malformed_record_is_reported_not_a_server_error(sqlite_app: Flask) -> None:
    client = sqlite_app.test_client()
    doc = decide(client, _token(sqlite_app, "decisions:create", "decisions:read"), body(1))
    _rewrite(sqlite_app, doc["decision_id"], lambda d: d.update(received_at="yesterday"))
    resp = replay(client, _token(sqlite_app, "decisions:read"), doc["decision_id"])
    assert resp.status_code == 200
    report = resp.get_json()
    assert report["reproduced"] is None and report["reason"] == "not-replayable"
    assert "the record cannot be read (ValueError" in report["detail"]
