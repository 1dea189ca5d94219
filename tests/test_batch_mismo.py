"""MISMO 3.4 in batch: one application per DEAL, from one XML file or a ZIP of loan files."""

from __future__ import annotations

import copy
import csv
import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

from adapters.soap.xml import parse
from gateway.batch.mismo import document_rows, iter_rows
from gateway.batch.runner import score_file
from gateway.mappings import load_mapping
from tests.conftest import bearer
from tests.test_batch_jobs import wait_finished

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = (ROOT / "docs" / "examples" / "mismo" / "loan-application.xml").read_bytes()
NS = "{http://www.mismo.org/residential/2009/schemas}"


def mapping(app: Flask) -> object:
    state = app.extensions["loangate"]
    schema = state.extras["pipelines"]["credit-risk"].input_schema()
    return load_mapping("mappings/mismo-3.4.yaml", state.config_dir, schema)


def loan(root: etree._Element) -> etree._Element:
    return root.find(f".//{NS}DEAL")  # type: ignore[return-value]


def with_deals(amounts: list[str]) -> bytes:
    """The sample MESSAGE with one DEAL per amount (ids LOS-1, LOS-2, ...)."""
    root = parse(SAMPLE)
    first = loan(root)
    deals = first.getparent()
    assert deals is not None
    deals.remove(first)
    for i, amount in enumerate(amounts, 1):
        deal = copy.deepcopy(first)
        deal.find(f".//{NS}LoanIdentifier").text = f"LOS-{i}"  # type: ignore[union-attr]
        deal.find(f".//{NS}BaseLoanAmount").text = amount  # type: ignore[union-attr]
        deals.append(deal)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def test_each_deal_is_mapped_as_its_own_single_file_would_be(app: Flask) -> None:
    amounts = ["12500.00", "800.00", "lots", "23000.50"]
    rows = document_rows(mapping(app), "bulk.xml", with_deals(amounts))  # type: ignore[arg-type]
    assert [app_id for _, app_id, _ in rows] == ["LOS-1", "LOS-2", None, "LOS-4"]
    fields, _, errors = rows[2]
    assert fields == {} and errors and "BaseLoanAmount" in errors[0].pointer
    for i, amount in enumerate(amounts):
        if i == 2:
            continue
        single = mapping(app).apply(parse(with_deals([amount])))  # type: ignore[attr-defined]
        assert rows[i][0] == single.fields


def test_hostile_documents_in_an_archive_are_rejected_rows_not_a_failed_file(
    app: Flask, tmp_path: Path
) -> None:
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("b-loan.xml", with_deals(["9000.00"]))
        zf.writestr("a-loan.xml", with_deals(["1000.00", "2000.00"]))
        zf.writestr("c-broken.xml", b"<MESSAGE><unclosed>")
        zf.writestr(
            "d-dtd.xml", b"<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><x>&e;</x>"
        )
        zf.writestr("e-other.xml", b"<Invoice/>")
        zf.writestr("scan.pdf", b"%PDF-1.4 not read")
    rows = list(iter_rows(archive, mapping(app)))  # type: ignore[arg-type]
    assert [r[1] for r in rows[:3]] == ["LOS-1", "LOS-2", "LOS-1"]  # members in name order
    pointers = [r[2][0].pointer for r in rows[3:]]
    assert pointers == ["/file/c-broken.xml", "/file/d-dtd.xml", "/file/e-other.xml"]
    assert "DTD" in rows[4][2][0].detail


def test_a_mismo_file_is_decided_once_per_deal_and_resumes(app: Flask, tmp_path: Path) -> None:
    state = app.extensions["loangate"]
    path = tmp_path / "bulk.xml"
    path.write_bytes(with_deals([f"{1000 + 250 * i}.00" for i in range(30)] + ["n/a"]))
    kwargs = {
        "fmt": "mismo",
        "client_id": "los-export",
        "output": tmp_path / "out.csv",
        "chunk_size": 8,
        "mapping": mapping(app),
    }
    pipeline = state.extras["pipelines"]["credit-risk"]
    first = score_file(pipeline, state.engine, path, **kwargs)  # type: ignore[arg-type]
    again = score_file(pipeline, state.engine, path, **kwargs)  # type: ignore[arg-type]
    assert (first.rows, first.decided, again.decided, again.skipped) == (31, 31, 0, 31)
    with state.engine.connect() as conn:
        docs = [
            orjson.loads(d)
            for (d,) in conn.execute(
                sa.text("select document from decisions where client_id = 'los-export'")
            )
        ]
    assert len(docs) == 31
    by_id = {d["application_id"]: d for d in docs}
    assert by_id["LOS-1"]["adapter"] == "batch"
    assert by_id["LOS-1"]["application"]["credit_amount"] == 1000
    assert sum(d["outcome"] == "rejected" for d in docs) == 1


def test_a_zip_of_loan_files_uploads_as_a_job(
    app: Flask, client: FlaskClient, get_token: Callable[..., str]
) -> None:
    token = get_token("batches:create")
    body = io.BytesIO()
    with zipfile.ZipFile(body, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(5):
            zf.writestr(f"loan-{i}.xml", with_deals([f"{5000 + i}.00"]))
    resp = client.post(
        "/v1/pipelines/credit-risk/batches",
        data=body.getvalue(),
        headers={**bearer(token), "Content-Type": "application/zip"},
    )
    assert resp.status_code == 202, resp.get_json()
    assert resp.get_json()["mapping"] == "mismo-3.4"
    done = wait_finished(client, token, resp.headers["Location"])
    assert (done["status"], done["rows_total"], done["rows_done"]) == ("done", 5, 5)
    out = client.get(done["links"]["output"], headers=bearer(token)).get_data(as_text=True)
    assert len(list(csv.DictReader(io.StringIO(out)))) == 5
    # a single MESSAGE with several DEALs, as application/xml
    resp = client.post(
        "/v1/pipelines/credit-risk/batches",
        data=with_deals(["1000.00", "2000.00", "3000.00"]),
        headers={**bearer(token), "Content-Type": "application/xml"},
    )
    assert resp.status_code == 202
    assert wait_finished(client, token, resp.headers["Location"])["rows_done"] == 3


def test_the_cli_scores_a_mismo_file_and_resumes_abandoned_jobs(
    app: Flask, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from gateway.batch.jobs import JobSpec, job_context
    from gateway.cli import main as cli

    monkeypatch.setenv("LOANGATE_DATABASE__URL", db_url)
    monkeypatch.setenv("LOANGATE_MODELS__DIR", str(tmp_path / "models"))
    monkeypatch.setenv("LOANGATE_INSTANCE", str(tmp_path / "instance"))
    path = tmp_path / "bulk.xml"
    path.write_bytes(with_deals(["1000.00", "2000.00", "3000.00"]))
    result = CliRunner().invoke(cli, ["batch", "score", str(path), "--pipeline", "credit-risk"])
    assert result.exit_code == 0, result.output
    assert "3 rows: 3 decided, 0 already logged" in result.output
    assert len(Path(f"{path}.decisions.csv").read_text().splitlines()) == 4

    # a job accepted by a process that died before running it: its lease has run out
    store = job_context(app.extensions["loangate"]).store
    job_id = "01JBBBBBBBBBBBBBBBBBBBBBBB"
    store.folder(job_id).mkdir(parents=True)
    store.input_path(job_id).write_bytes(path.read_bytes())
    spec = JobSpec("credit-risk", "mismo", "csv", mapping="mismo-3.4")
    store.create(
        job_id, "los", spec, input_bytes=1, input_sha256="0" * 64, rows_total=3, owner="gone"
    )
    with app.extensions["loangate"].engine.begin() as conn:
        conn.execute(
            sa.text("update batch_jobs set lease_expires_at = :t where id = :i"),
            {"t": "2000-01-01 00:00:00", "i": job_id},
        )
    result = CliRunner().invoke(cli, ["batch", "resume-jobs"])
    assert result.exit_code == 0, result.output
    assert f"{job_id}: done" in result.output
    job = store.get(job_id)
    assert job is not None and (job.status, job.rows_done, job.decided) == ("done", 3, 3)
