"""Batch runs: each row logged once across interruptions, output complete, formats agree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from flask import Flask

from gateway.batch.copybook import load_copybook
from gateway.batch.readers import count_rows, file_sha256
from gateway.batch.runner import key_prefix, score_file
from tests.batch_files import COPYBOOK, coded, german_rows, write_fixed

ROWS = 250
CHUNK = 100


class Interrupted(Exception):
    pass


def logged(app: Flask, client_id: str) -> list[tuple[str, str]]:
    with app.extensions["loangate"].engine.connect() as conn:
        rows = conn.execute(
            sa.text("select idempotency_key, id from decisions where client_id = :c"),
            {"c": client_id},
        ).all()
    return [(r[0], r[1]) for r in rows]


def run(app: Flask, path: Path, fmt: str, output: Path, **kwargs: Any) -> Any:
    state = app.extensions["loangate"]
    return score_file(
        state.extras["pipelines"]["credit-risk"],
        state.engine,
        path,
        fmt=fmt,
        client_id=kwargs.pop("client_id", "nightly"),
        output=output,
        chunk_size=CHUNK,
        copybook=load_copybook(COPYBOOK) if fmt == "fixed" else None,
        **kwargs,
    )


def test_interrupted_run_resumes_without_duplicates(app: Flask, tmp_path: Path) -> None:
    path = tmp_path / "apps.dat"
    write_fixed(path, ROWS, seed=3)
    output = tmp_path / "out.csv"

    def stop_after_first_chunk(_rows: int) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        run(app, path, "fixed", output, on_chunk=stop_after_first_chunk)
    first = dict(logged(app, "nightly"))
    assert len(first) == CHUNK  # the first chunk committed, as one transaction
    assert not output.exists()  # an incomplete output never replaces the output

    summary = run(app, path, "fixed", output)
    assert (summary.rows, summary.decided, summary.skipped) == (ROWS, ROWS - CHUNK, CHUNK)
    keys = dict(logged(app, "nightly"))
    prefix = key_prefix(file_sha256(path))
    assert sorted(keys) == sorted(f"{prefix}{n}" for n in range(1, ROWS + 1))
    assert len(set(keys.values())) == ROWS
    assert {k: keys[k] for k in first} == first  # rows logged before were not decided again

    out = pd.read_csv(output)
    assert out["row_number"].tolist() == list(range(1, ROWS + 1))
    assert out["decision_id"].tolist() == [keys[f"{prefix}{n}"] for n in range(1, ROWS + 1)]
    assert set(out["status"]) == {"decided"}

    again = run(app, path, "fixed", output)  # a third run decides nothing
    assert again.decided == 0 and len(logged(app, "nightly")) == ROWS
    assert pd.read_csv(output)["decision_id"].tolist() == out["decision_id"].tolist()


def test_csv_parquet_and_fixed_width_decide_alike(app: Flask, tmp_path: Path) -> None:
    picks = write_fixed(tmp_path / "apps.dat", 40, seed=11, encoding="ascii")
    source = german_rows()
    rows = [coded(source[i]) for i in picks]
    pd.DataFrame.from_records(rows).to_csv(tmp_path / "apps.csv", index=False)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "apps.parquet")
    outcomes = {}
    for fmt, name, extra in (
        ("fixed", "apps.dat", {"encoding": "ascii"}),
        ("csv", "apps.csv", {}),
        ("parquet", "apps.parquet", {}),
    ):
        output = tmp_path / f"{fmt}.parquet"
        run(app, tmp_path / name, fmt, output, output_format="parquet", client_id=fmt, **extra)
        out = pq.read_table(output).to_pandas()
        outcomes[fmt] = out[["outcome", "probability_of_default", "reason_codes"]]
        assert len(out) == 40 == count_rows(tmp_path / name, fmt, load_copybook(COPYBOOK))
    pd.testing.assert_frame_equal(outcomes["fixed"], outcomes["csv"])
    pd.testing.assert_frame_equal(outcomes["fixed"], outcomes["parquet"])


def test_bad_rows_are_rejected_records_not_a_failed_run(app: Flask, tmp_path: Path) -> None:
    path = tmp_path / "apps.csv"
    good = german_rows()[0]
    pd.DataFrame.from_records(
        [good, {**good, "duration_in_month": "six"}, {**good, "purpose": ""}]
    ).to_csv(path, index=False)
    fixed = tmp_path / "apps.dat"
    write_fixed(fixed, 2)
    data = bytearray(fixed.read_bytes())
    data[4] = 0xC1  # a letter in DURATION-IN-MONTH of record 1
    fixed.write_bytes(bytes(data))

    run(app, path, "csv", tmp_path / "a.csv", client_id="csv")
    out = pd.read_csv(tmp_path / "a.csv", keep_default_na=False)
    assert out["status"].tolist() == ["decided", "rejected", "rejected"]
    assert out["errors"][1] == "/applicant/duration_in_month:type"
    assert out["errors"][2] == "/applicant/purpose:required"

    run(app, fixed, "fixed", tmp_path / "b.csv", client_id="fixed")
    out = pd.read_csv(tmp_path / "b.csv", keep_default_na=False)
    assert out["status"].tolist() == ["rejected", "decided"]
    assert out["errors"][0] == "/record/duration_in_month:format"
    assert len(logged(app, "csv")) == 3 and len(logged(app, "fixed")) == 2


def test_parquet_nulls_are_missing_fields_and_integers_stay_integers(
    app: Flask, tmp_path: Path
) -> None:
    rows = [coded(r) for r in german_rows()[:3]]
    rows[1]["age_in_years"] = None  # imputed by the schema's missing-value policy
    rows[2]["duration_in_month"] = None  # required: rejected
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "apps.parquet")
    run(app, tmp_path / "apps.parquet", "parquet", tmp_path / "out.csv", client_id="pq")
    out = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert out["status"].tolist() == ["decided", "decided", "rejected"]
    assert out["errors"][2] == "/applicant/duration_in_month:required"
    second = app.extensions["loangate"].extras["decision_log"].get(out["decision_id"][1]).parsed()
    assert {"field": "age_in_years", "value": 33, "strategy": "constant"} in second["imputations"]
    assert second["application"]["credit_amount"] == rows[1]["credit_amount"]
    assert type(second["application"]["duration_in_month"]) is int


def test_a_truncated_fixed_width_file_is_refused(app: Flask, tmp_path: Path) -> None:
    path = tmp_path / "apps.dat"
    write_fixed(path, 3)
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ValueError, match="record boundary"):
        run(app, path, "fixed", tmp_path / "out.csv")


MAPPING = """\
name: branch-extract
source: json
application_id: {path: LOAN_REF}
code_tables:
  purpose: {values: {CAR: "car (new)", TV: radio/television}}
fields:
  credit_amount: {path: AMOUNT_CENTS, type: integer, unit: {from: cents, to: units}}
  duration_in_month: {path: TERM_YEARS, type: integer, unit: {from: years, to: months}}
  purpose: {path: PURPOSE, codes: purpose}
  age_in_years: {path: AGE, type: integer}
"""


def test_a_mapping_turns_source_columns_into_applications(app: Flask, tmp_path: Path) -> None:
    from gateway.mappings import load_mapping

    state = app.extensions["loangate"]
    pipeline = state.extras["pipelines"]["credit-risk"]
    (tmp_path / "branch.yaml").write_text(MAPPING)
    mapping = load_mapping(tmp_path / "branch.yaml", state.config_dir, pipeline.input_schema())
    path = tmp_path / "branch.csv"
    path.write_text(
        "LOAN_REF,AMOUNT_CENTS,TERM_YEARS,PURPOSE,AGE\n"
        "BR-1,250000,2,CAR,41\n"
        "BR-2,100000,1,BOAT,30\n"  # a code the table does not hold
    )
    run(app, path, "csv", tmp_path / "out.csv", client_id="branch", mapping=mapping)
    out = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert out["status"].tolist() == ["decided", "rejected"]
    assert out["errors"][1] == "PURPOSE:code"  # the source path, as the mapping names it
    log = state.extras["decision_log"]
    first = log.get(out["decision_id"][0]).parsed()
    assert first["application_id"] == "BR-1"
    assert first["application"] == {
        "credit_amount": 2500,
        "duration_in_month": 24,
        "purpose": "car (new)",
        "age_in_years": 41,
    }
    imputed = {i["field"] for i in first["imputations"]}
    assert "status_of_existing_checking_account" in imputed  # unfilled: the missing policy
