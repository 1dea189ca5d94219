"""Personal data in the decision log: sealed at rest, masked or opened on reading, erasable.

On SQLite and PostgreSQL, through the real app, real tokens and the real CLI commands.
"""

from __future__ import annotations

import base64
import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import PROJECT_ROOT
from gateway.errors import ConfigError
from gateway.integrity.sealer import seal_all
from gateway.integrity.verify import verify
from gateway.personal import PersonalData
from gateway.personal.cli import make_commands
from gateway.personal.crypto import (
    DecryptionError,
    MasterKeys,
    new_key,
    open_envelope,
    seal,
    subject_ref,
)
from gateway.personal.store import SubjectKeyStore
from tests.conftest import bearer, fetch_token, gateway_overrides, register_demo_model
from tests.helpers import body, context_for

URL = "/v1/pipelines/credit-risk/decisions"
#: Values that appear nowhere else in a decision record, so a search for them can fail.
CUSTOMER = "CUST-Qx7-90210-zebra"
OTHER_CUSTOMER = "CUST-Wv3-31337-okapi"
AGE = 97
PHONE = "yes, registered under the customers name"


def _schema_with_customer_id(folder: Path) -> Path:
    """The credit-application schema plus a personal ``customer_id`` (the subject)."""
    source = PROJECT_ROOT / "config" / "schemas" / "credit-application.yaml"
    doc = yaml.safe_load(source.read_text(encoding="utf-8"))
    doc["fields"]["customer_id"] = {"type": "category", "missing": "allow", "class": "personal"}
    path = folder / "credit-application-subjects.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def _overrides(db_url: str, tmp_path: Path, **personal: Any) -> dict[str, Any]:
    schema = _schema_with_customer_id(tmp_path)
    return {
        **gateway_overrides(db_url, tmp_path / "models"),
        "pipelines": {
            "credit-risk": {"validators": [{"name": "schema", "config": {"schema": str(schema)}}]}
        },
        "personal_data": {"subject_field": "customer_id", **personal},
        "integrity": {"enabled": False},
    }


@pytest.fixture
def pii_app(db_url: str, tmp_path: Path, trained_model: Any) -> Iterator[Flask]:
    """The gateway with a subject field (``customer_id``) on a fresh database."""
    from gateway import create_app

    register_demo_model(db_url, tmp_path / "models", trained_model)
    app = create_app(_overrides(db_url, tmp_path), instance_path=tmp_path / "instance")
    yield app
    app.extensions["loangate"].engine.dispose()


@pytest.fixture
def pii_client(pii_app: Flask) -> FlaskClient:
    return pii_app.test_client()


def _decide(app: Flask, client: FlaskClient, **fields: Any) -> dict[str, Any]:
    token = fetch_token(app, client, "decisions:create")
    resp = client.post(URL, json=body(1, **fields), headers=bearer(token))
    assert resp.status_code == 201, resp.get_json()
    return dict(resp.get_json())


def _stored_text(app: Flask) -> str:
    with app.extensions["loangate"].engine.connect() as conn:
        return "\n".join(conn.execute(sa.text("SELECT document FROM decisions")).scalars())


def _stored(app: Flask, decision_id: str) -> str:
    with app.extensions["loangate"].engine.connect() as conn:
        return str(
            conn.execute(
                sa.text("SELECT document FROM decisions WHERE id = :id"), {"id": decision_id}
            ).scalar_one()
        )


def _count(app: Flask, table: str) -> int:
    with app.extensions["loangate"].engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def _personal(app: Flask) -> PersonalData:
    service: PersonalData = app.extensions["loangate"].extras["personal_data"]
    return service


# --- envelopes (no database) -------------------------------------------------------------

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(value=_json, pointer=st.text(max_size=40))
def test_seal_then_open_is_the_identity(value: Any, pointer: str) -> None:
    key = new_key()
    envelope = seal(value, "k1", key, "01J00000000000000000000000", pointer)
    assert orjson.loads(orjson.dumps(envelope)) == envelope  # stays JSON
    assert open_envelope(envelope, key, "01J00000000000000000000000", pointer) == value


def test_tampered_moved_or_foreign_ciphertext_does_not_open() -> None:
    key, decision = new_key(), "01J00000000000000000000000"
    envelope = seal(AGE, "k1", key, decision, "/application/age_in_years")
    text = envelope["$pii"]
    flipped = text[:-3] + ("A" if text[-3] != "A" else "B") + text[-2:]
    pointer = "/application/age_in_years"
    cases = [
        ({"$pii": flipped}, key, decision, pointer, "does not decrypt"),
        (envelope, key, "01J00000000000000000000001", pointer, "moved from another record"),
        (envelope, key, decision, "/features/age_in_years", "moved from another record"),
        (envelope, new_key(), decision, pointer, "under another key"),
        ({"$pii": "v1:k1:"}, key, decision, pointer, "too short"),
        ({"$pii": "v2:k1:AAAA"}, key, decision, pointer, "malformed"),
        ({"$pii": 42}, key, decision, pointer, "malformed"),
        ({"$pii": "v1::AAAA"}, key, decision, pointer, "malformed"),
        ({"$pii": "v1:k1:" + "A" * 7}, key, decision, pointer, "base64|too short"),
    ]
    for env, k, dec, ptr, why in cases:
        with pytest.raises(DecryptionError, match=why):
            open_envelope(env, k, dec, ptr)


def test_wrapped_key_does_not_unwrap_for_another_subject() -> None:
    master = MasterKeys("m1", {"m1": new_key()})
    data_key = new_key()
    master_id, wrapped = master.wrap(data_key, "k1", "ref-a")
    assert master.unwrap(master_id, wrapped, "k1", "ref-a") == data_key
    with pytest.raises(DecryptionError, match="does not unwrap"):
        master.unwrap(master_id, wrapped, "k1", "ref-b")
    with pytest.raises(DecryptionError, match="not configured"):
        MasterKeys("m2", {"m2": new_key()}).unwrap(master_id, wrapped, "k1", "ref-a")


@pytest.mark.parametrize(
    ("personal", "environ", "message"),
    [
        ({"master_keys": [{"id": "m1", "env": "T_PII_M1"}]}, {"T_PII_M1": "x"}, "subject_hash_key"),
        (
            {"master_keys": [{"id": "m1", "env": "T_PII_UNSET"}], "subject_hash_key": {"env": "X"}},
            {},
            "T_PII_UNSET is not set",
        ),
        (
            {"master_keys": [{"id": "m1", "env": "T_PII_M1"}], "subject_hash_key": {"env": "H"}},
            {"T_PII_M1": base64.urlsafe_b64encode(b"short").decode(), "H": "x"},
            "32 bytes",
        ),
        ({"subject_hash_key": {"env": "H"}}, {}, "together with master_keys"),
    ],
)
def test_bad_key_configuration_refuses_to_start(
    personal: dict[str, Any],
    environ: dict[str, str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        PersonalData.from_config(
            {"personal_data": personal}, tmp_path, tmp_path, sa.create_engine("sqlite://")
        )


# --- the decision path ---------------------------------------------------------------------


def test_stored_record_holds_no_personal_value_in_clear(
    pii_app: Flask, pii_client: FlaskClient
) -> None:
    answer = _decide(pii_app, pii_client, customer_id=CUSTOMER, age_in_years=AGE, telephone=PHONE)
    imputed = _decide(pii_app, pii_client, customer_id=OTHER_CUSTOMER, telephone=None)

    text = _stored_text(pii_app)
    for value in (CUSTOMER, OTHER_CUSTOMER, PHONE, f'"age_in_years":{AGE}'):
        assert value not in text
    doc = orjson.loads(_stored(pii_app, answer["decision_id"]))
    for member in ("application", "features"):
        for field in ("customer_id", "age_in_years", "telephone"):
            assert set(doc[member][field]) == {"$pii"}, (member, field)
        assert doc[member]["credit_amount"] == body(1)["applicant"]["credit_amount"]  # ordinary
    # protected attributes stay in clear at rest (aggregate fairness monitoring)
    assert (
        doc["application"]["personal_status_and_sex"]
        == body(1)["applicant"]["personal_status_and_sex"]
    )
    assert doc["personal_data"]["subject"] == subject_ref(_personal(pii_app).hash_key, CUSTOMER)
    # an imputed personal value is sealed too
    stored_imputed = orjson.loads(_stored(pii_app, imputed["decision_id"]))
    (phone,) = [i for i in stored_imputed["imputations"] if i["field"] == "telephone"]
    assert set(phone["value"]) == {"$pii"}
    assert _count(pii_app, "subject_keys") == 2 and _count(pii_app, "decision_subjects") == 2

    # scoring used the values in clear: the same probability as the pipeline run directly
    raw = {**body(1)["applicant"], "customer_id": CUSTOMER, "age_in_years": AGE, "telephone": PHONE}
    ran = pii_app.extensions["loangate"].extras["pipelines"]["credit-risk"].run(context_for(raw))
    assert ran.score is not None
    assert answer["probability_of_default"] == pytest.approx(ran.score.probability, abs=1e-12)
    assert answer["outcome"] == ran.decision.outcome if ran.decision else False


def test_readers_see_clear_values_only_with_pii_read(
    pii_app: Flask, pii_client: FlaskClient
) -> None:
    answer = _decide(pii_app, pii_client, customer_id=CUSTOMER, age_in_years=AGE, telephone=PHONE)
    url = f"/v1/decisions/{answer['decision_id']}"
    plain = fetch_token(pii_app, pii_client, "decisions:read")
    cleared = fetch_token(pii_app, pii_client, "decisions:read", "pii:read")

    masked = pii_client.get(url, headers=bearer(plain))
    assert masked.status_code == 200
    assert PHONE not in masked.get_data(as_text=True)
    shown = masked.get_json()
    for field in ("customer_id", "age_in_years", "telephone", "personal_status_and_sex"):
        assert shown["application"][field] == {"$masked": True}, field
        assert shown["features"][field] == {"$masked": True}, field
    assert shown["application"]["credit_amount"] == body(1)["applicant"]["credit_amount"]
    assert shown["personal_data"] == {"$masked": True}  # the pseudonym links decisions
    assert "review" in shown and "loan_outcome" in shown  # linked records still joined

    clear = pii_client.get(url, headers=bearer(cleared)).get_json()
    assert set(clear["personal_data"]) == {"subject", "key"}
    assert clear["application"]["customer_id"] == CUSTOMER
    assert clear["application"]["age_in_years"] == AGE
    assert clear["features"]["telephone"] == PHONE
    assert (
        clear["application"]["personal_status_and_sex"]
        == body(1)["applicant"]["personal_status_and_sex"]
    )

    listed = pii_client.get("/v1/decisions", headers=bearer(plain)).get_json()["items"]
    assert listed[0]["application"]["age_in_years"] == {"$masked": True}
    listed = pii_client.get("/v1/decisions", headers=bearer(cleared)).get_json()["items"]
    assert listed[0]["application"]["age_in_years"] == AGE


def test_replayed_answer_is_the_first_answer(pii_app: Flask, pii_client: FlaskClient) -> None:
    token = fetch_token(pii_app, pii_client, "decisions:create")
    headers = {**bearer(token), "Idempotency-Key": "pii-replay-1"}
    request = body(1, customer_id=CUSTOMER, telephone=None)
    first = pii_client.post(URL, json=request, headers=headers)
    again = pii_client.post(URL, json=request, headers=headers)
    assert first.status_code == again.status_code == 201
    one, two = first.get_json(), again.get_json()
    assert two["decision_id"] == one["decision_id"]
    assert two["imputations"] == one["imputations"]  # opened again for its own caller


def test_erased_subject_is_unreadable_and_the_log_still_verifies(
    pii_app: Flask, pii_client: FlaskClient
) -> None:
    gone = [
        _decide(pii_app, pii_client, customer_id=CUSTOMER, age_in_years=AGE, telephone=PHONE)
        for _ in range(2)
    ]
    kept = _decide(pii_app, pii_client, customer_id=OTHER_CUSTOMER, age_in_years=AGE)
    before = {d["decision_id"]: _stored(pii_app, d["decision_id"]) for d in gone}
    engine = pii_app.extensions["loangate"].engine

    state = pii_app.extensions["loangate"]
    (command,) = make_commands(lambda: state)
    out = CliRunner().invoke(command, ["erase", CUSTOMER, "--by", "dpo@example.com"])
    assert out.exit_code == 0, out.output
    assert "1 key(s) destroyed, 2 decision(s) affected" in out.output
    assert CUSTOMER not in out.output

    ref = subject_ref(_personal(pii_app).hash_key, CUSTOMER)
    with engine.connect() as conn:
        keys = conn.execute(
            sa.text("SELECT count(*) FROM subject_keys WHERE subject_ref = :r"), {"r": ref}
        )
        assert keys.scalar_one() == 0
        # the binned values of monitoring go with the key; the other subject's stay
        binned = conn.execute(sa.text("SELECT decision_id FROM decision_monitoring")).scalars()
        assert set(binned) == {kept["decision_id"]}
        erasure = conn.execute(sa.text("SELECT * FROM subject_erasures")).mappings().one()
    assert erasure["subject_ref"] == ref and erasure["erased_by"] == "dpo@example.com"
    assert erasure["decisions"] == 2 and erasure["reason"] == "request"
    assert CUSTOMER not in str(dict(erasure))

    # The rows are untouched, byte for byte: verify passes once they are sealed.
    assert {i: _stored(pii_app, i) for i in before} == before
    seal_all(engine)
    report = verify(engine)
    assert report.ok and report.records == 3, report.findings

    # No key is left that opens them: not through the store, not through the API.
    key_id = orjson.loads(before[gone[0]["decision_id"]])["personal_data"]["key"]
    assert _personal(pii_app).keys.data_keys([key_id]) == {key_id: None}
    cleared = fetch_token(pii_app, pii_client, "decisions:read", "pii:read")
    for d in gone:
        doc = pii_client.get(f"/v1/decisions/{d['decision_id']}", headers=bearer(cleared))
        assert doc.status_code == 200
        assert CUSTOMER not in doc.get_data(as_text=True)
        assert doc.get_json()["application"]["customer_id"] == {"$erased": True}
        assert doc.get_json()["features"]["age_in_years"] == {"$erased": True}
    other = pii_client.get(f"/v1/decisions/{kept['decision_id']}", headers=bearer(cleared))
    assert other.get_json()["application"]["customer_id"] == OTHER_CUSTOMER

    # An applicant coming back after an erasure (made by this process, whose key cache
    # it clears) gets a new key; the old decisions stay erased.
    assert _personal(pii_app).erase(OTHER_CUSTOMER, "tests").decisions == 1
    back = _decide(pii_app, pii_client, customer_id=OTHER_CUSTOMER, age_in_years=AGE)
    shown = pii_client.get(f"/v1/decisions/{back['decision_id']}", headers=bearer(cleared))
    assert shown.get_json()["application"]["customer_id"] == OTHER_CUSTOMER
    old = pii_client.get(f"/v1/decisions/{kept['decision_id']}", headers=bearer(cleared))
    assert old.get_json()["application"]["customer_id"] == {"$erased": True}


def test_erasing_an_unknown_subject_says_so_and_is_still_recorded(pii_app: Flask) -> None:
    state = pii_app.extensions["loangate"]
    (command,) = make_commands(lambda: state)
    for hostile in ("nobody", "x" * 10_000, "ünïcødé\u202e", "' OR 1=1 --"):
        out = CliRunner().invoke(command, ["erase", hostile, "--by", "tests"])
        assert out.exit_code == 0, out.output
        assert "0 key(s) destroyed, 0 decision(s) affected" in out.output
        assert "warning: no key found" in out.output
    assert _count(pii_app, "subject_erasures") == 4
    # the embedded default generated its keys in the instance folder, readable by no one else
    for name in ("pii-master.key", "pii-subject-hash.key"):
        assert (state.instance_path / "keys" / name).stat().st_mode & 0o777 == 0o600


def test_decision_without_subject_field_is_its_own_subject(
    pii_app: Flask, pii_client: FlaskClient
) -> None:
    answer = _decide(pii_app, pii_client, age_in_years=AGE)
    erased = _personal(pii_app).erase(answer["decision_id"], "tests")
    assert (erased.keys_destroyed, erased.decisions) == (1, 1)


def test_retention_purge_erases_only_subjects_past_the_period(
    db_url: str, tmp_path: Path, trained_model: Any
) -> None:
    from gateway import create_app

    register_demo_model(db_url, tmp_path / "models", trained_model)
    app = create_app(
        _overrides(db_url, tmp_path, retention_days=30), instance_path=tmp_path / "instance"
    )
    try:
        client = app.test_client()
        old = _decide(app, client, customer_id=CUSTOMER, age_in_years=AGE)
        recent = _decide(app, client, customer_id=OTHER_CUSTOMER, age_in_years=AGE)
        personal, engine = _personal(app), app.extensions["loangate"].engine
        later = datetime.now(UTC) + timedelta(days=31)
        # OTHER_CUSTOMER decided again, 20 days from now: inside the period at ``later``.
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO decision_subjects (decision_id, subject_ref, key_id, decided_at)"
                    " SELECT :id, subject_ref, key_id, :at FROM decision_subjects"
                    " WHERE decision_id = :src"
                ),
                {"id": "0" * 26, "at": later - timedelta(days=11), "src": recent["decision_id"]},
            )
        assert personal.purge_expired(now=datetime.now(UTC)) == []  # nothing expired yet
        done = personal.purge_expired(now=later)
        assert [e.subject_ref for e in done] == [subject_ref(personal.hash_key, CUSTOMER)]
        assert done[0].decisions == 1
        token = fetch_token(app, client, "decisions:read", "pii:read")
        gone = client.get(f"/v1/decisions/{old['decision_id']}", headers=bearer(token))
        assert gone.get_json()["application"]["customer_id"] == {"$erased": True}
        kept = client.get(f"/v1/decisions/{recent['decision_id']}", headers=bearer(token))
        assert kept.get_json()["application"]["customer_id"] == OTHER_CUSTOMER
        seal_all(engine)
        assert verify(engine).ok
    finally:
        app.extensions["loangate"].engine.dispose()


def test_master_key_rotation_keeps_data_readable(
    db_url: str, tmp_path: Path, trained_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway import create_app

    def key_text() -> str:
        return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()

    for name in ("T_PII_OLD", "T_PII_NEW", "T_PII_HASH"):
        monkeypatch.setenv(name, key_text())
    old = [{"id": "2026-old", "env": "T_PII_OLD"}]
    both = [{"id": "2026-new", "env": "T_PII_NEW"}, *old]
    hash_key = {"env": "T_PII_HASH"}
    register_demo_model(db_url, tmp_path / "models", trained_model)

    def app_with(master_keys: list[dict[str, str]]) -> Flask:
        overrides = _overrides(db_url, tmp_path, master_keys=master_keys, subject_hash_key=hash_key)
        return create_app(overrides, instance_path=tmp_path / "instance")

    first = app_with(old)
    answer = _decide(first, first.test_client(), customer_id=CUSTOMER, age_in_years=AGE)
    first.extensions["loangate"].engine.dispose()
    assert not (tmp_path / "instance" / "keys" / "pii-master.key").exists()

    rotating = app_with(both)
    state = rotating.extensions["loangate"]
    (command,) = make_commands(lambda: state)
    out = CliRunner().invoke(command, ["rotate-keys"])
    assert out.exit_code == 0, out.output
    assert "1 key(s) re-wrapped under master key '2026-new'" in out.output
    rotating.extensions["loangate"].engine.dispose()

    new_only = app_with([both[0]])  # the old master key is gone
    try:
        client = new_only.test_client()
        token = fetch_token(new_only, client, "decisions:read", "pii:read")
        doc = client.get(f"/v1/decisions/{answer['decision_id']}", headers=bearer(token))
        assert doc.get_json()["application"]["customer_id"] == CUSTOMER
        with new_only.extensions["loangate"].engine.connect() as conn:
            masters = conn.execute(sa.text("SELECT DISTINCT master_key_id FROM subject_keys"))
            assert masters.scalars().all() == ["2026-new"]
    finally:
        new_only.extensions["loangate"].engine.dispose()


# --- the key store -------------------------------------------------------------------------


def test_concurrent_first_decisions_of_a_subject_share_one_key(engine: sa.Engine) -> None:
    master = MasterKeys("m1", {"m1": new_key()})
    stores = [SubjectKeyStore(engine, master) for _ in range(6)]  # one per "process"
    barrier = threading.Barrier(len(stores))
    got: list[tuple[str, bytes]] = []
    errors: list[BaseException] = []

    def first_decision(store: SubjectKeyStore) -> None:
        try:
            barrier.wait()
            got.append(store.key_for("ref-of-one-applicant"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first_decision, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(got)) == 1 and len(got) == len(stores)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM subject_keys")).scalar_one() == 1
    # many at once (a batch chunk) agrees with one at a time
    many = stores[0].keys_for(["ref-of-one-applicant", "ref-two", "ref-three"])
    assert many["ref-of-one-applicant"] == got[0]
    assert stores[1].keys_for(["ref-two"])["ref-two"] == many["ref-two"]


def test_batch_chunks_are_sealed_like_single_decisions(pii_app: Flask, tmp_path: Path) -> None:
    from gateway.batch.runner import score_file

    state = pii_app.extensions["loangate"]
    rows = [
        {**body(i)["applicant"], "customer_id": f"{CUSTOMER}-{i}", "age_in_years": AGE}
        for i in range(3)
    ]
    path = tmp_path / "applications.csv"
    header = list(rows[0])
    path.write_text(
        ",".join(header)
        + "\n"
        + "\n".join(
            ",".join(f'"{r[h]}"' if isinstance(r[h], str) else str(r[h]) for h in header)
            for r in rows
        )
        + "\n",
        encoding="utf-8",
    )
    summary = score_file(
        state.extras["pipelines"]["credit-risk"],
        state.engine,
        path,
        fmt="csv",
        client_id="batch-test",
        output=tmp_path / "out.csv",
        decision_log=state.extras["decision_log"],
        protect=state.extras["personal_data"].protect_many,
    )
    assert summary.decided == 3
    text = _stored_text(pii_app)
    assert CUSTOMER not in text and f'"age_in_years":{AGE}' not in text
    assert _count(pii_app, "subject_keys") == 3 and _count(pii_app, "decision_subjects") == 3
    erased = _personal(pii_app).erase(f"{CUSTOMER}-1", "tests")
    assert (erased.keys_destroyed, erased.decisions) == (1, 1)


def test_no_personal_value_reaches_the_logs(
    pii_app: Flask,
    pii_client: FlaskClient,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _decide(pii_app, pii_client, customer_id=CUSTOMER, age_in_years=AGE, telephone=PHONE)
    _personal(pii_app).erase(CUSTOMER, "tests")
    logged = caplog.text + "".join(capsys.readouterr())
    assert CUSTOMER not in logged and PHONE not in logged
