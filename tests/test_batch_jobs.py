"""Batch files over HTTP: upload -> 202 -> status -> output; hostile uploads; resumed jobs."""

from __future__ import annotations

import csv
import io
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from gateway.batch.jobs import JobSpec, job_context, new_owner, resume_jobs
from gateway.batch.runner import score_file
from tests.batch_files import COPYBOOK, german_rows, write_fixed
from tests.conftest import bearer, fetch_token, gateway_overrides, register_demo_model

UPLOAD_CAP = 64 * 1024
ROWS = 60


@pytest.fixture
def app(db_url: str, tmp_path: Path, trained_model: Any) -> Iterator[Flask]:
    """The gateway with a small upload cap and small chunks (several per file)."""
    from gateway import create_app

    models_dir = tmp_path / "models"
    register_demo_model(db_url, models_dir, trained_model)
    overrides = gateway_overrides(db_url, models_dir)
    overrides["batch"] = {"max_upload_bytes": UPLOAD_CAP, "chunk_size": 25, "lease_seconds": 30}
    application = create_app(overrides, instance_path=tmp_path / "instance")
    yield application
    application.extensions["loangate"].engine.dispose()


def csv_bytes(rows: list[dict[str, object]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def wait_finished(client: FlaskClient, token: str, location: str) -> dict[str, Any]:
    """Poll the status URL until the job is done or failed (a guard, not a timing check)."""
    deadline = time.monotonic() + 300
    while True:
        status = client.get(location, headers=bearer(token))
        assert status.status_code == 200, status.get_json()
        body: dict[str, Any] = status.get_json()
        if body["status"] in ("done", "failed") or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def decision_rows(app: Flask, client_id: str) -> list[tuple[str, str]]:
    with app.extensions["loangate"].engine.connect() as conn:
        rows = conn.execute(
            sa.text("select idempotency_key, id from decisions where client_id = :c"),
            {"c": client_id},
        ).all()
    return [(r[0], r[1]) for r in rows]


def client_id_of(app: Flask, token: str) -> str:
    verifier = app.extensions["loangate"].extras["auth"].verifier
    return str(verifier.verify(token).client_id)


def jobs_and_folders(app: Flask) -> tuple[int, list[str]]:
    state = app.extensions["loangate"]
    with state.engine.connect() as conn:
        count = conn.execute(sa.text("select count(*) from batch_jobs")).scalar_one()
    root = job_context(state).store.root
    return count, sorted(p.name for p in root.iterdir()) if root.exists() else []


# --- hostile uploads first ------------------------------------------------------------


def test_hostile_uploads_get_precise_errors_and_leave_no_job(
    app: Flask, client: FlaskClient, get_token: Callable[..., str]
) -> None:
    token = get_token("batches:create")
    url = "/v1/pipelines/credit-risk/batches"
    good = csv_bytes(german_rows()[:5])

    def post(body: bytes, content_type: str, query: str = "", tok: str | None = token) -> Any:
        headers = bearer(tok) if tok else {}
        return client.post(
            url + query, data=body, headers={**headers, "Content-Type": content_type}
        )

    # no token, wrong scope
    assert post(good, "text/csv", tok=None).status_code == 401
    assert post(good, "text/csv", tok=get_token("decisions:create")).status_code == 403
    # unknown pipeline
    resp = client.post(
        "/v1/pipelines/nope/batches",
        data=good,
        headers={**bearer(token), "Content-Type": "text/csv"},
    )
    assert resp.status_code == 404
    # too big: refused from its Content-Length, and when streamed past the cap
    big = good + b"\n".join([b"x" * 100] * (UPLOAD_CAP // 100 + 10))
    resp = post(big, "text/csv")
    assert resp.status_code == 413
    assert resp.mimetype == "application/problem+json"
    assert "batch.max_upload_bytes" in resp.get_json()["detail"]
    chunked = client.post(  # no Content-Length: the cap is enforced while streaming
        url,
        input_stream=io.BytesIO(big),
        headers={**bearer(token), "Content-Type": "text/csv", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert chunked.status_code == 413
    # a body bigger than the 64 KB decision cap but under the upload cap is accepted
    assert UPLOAD_CAP >= 64 * 1024
    # wrong content type
    resp = post(good, "application/json")
    assert resp.status_code == 415
    # copybook and mapping: unknown names, path traversal, a path, the wrong format
    for query in (
        "?copybook=nope",
        "?copybook=../../../etc/passwd",
        "?copybook=..%2F..%2Fgateway",
        "?copybook=/etc/passwd",
        "?copybook=copybooks/german-credit",
        "?copybook=german-credit.cpy%00",
        "?copybook=",
    ):
        resp = post(b"\x40" * 71, "application/octet-stream", query)
        assert resp.status_code == 400, (query, resp.get_json())
        assert resp.get_json()["errors"][0]["pointer"] == "/query/copybook"
    resp = post(b"\x40" * 71, "application/octet-stream")  # fixed width needs a copybook
    assert resp.status_code == 400
    for query in ("?mapping=nope", "?mapping=../mappings/mismo-3.4", "?mapping=%2Fetc%2Fhosts"):
        resp = post(good, "text/csv", query)
        assert resp.status_code == 400, query
        assert resp.get_json()["errors"][0]["pointer"] == "/query/mapping"
    assert post(good, "text/csv", "?copybook=german-credit").status_code == 400
    assert post(good, "text/csv", "?mapping=mismo-3.4").status_code == 400  # an XML mapping
    assert post(good, "text/csv", "?output=xlsx").status_code == 400
    assert post(good, "text/csv", "?encoding=utf-32").status_code == 400
    assert post(good, "text/csv", "?path=/etc/passwd").status_code == 400
    # garbage bytes in every format, an empty body
    garbage = bytes(range(256)) * 3
    for body, content_type, query in (
        (garbage, "text/csv", ""),
        (garbage, "application/vnd.apache.parquet", ""),
        (garbage[:100], "application/octet-stream", "?copybook=german-credit"),
        (garbage, "application/xml", ""),
        (b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>", "application/xml", ""),
        (b"PK\x03\x04" + garbage, "application/zip", ""),
    ):
        resp = post(body, content_type, query)
        assert resp.status_code == 422, (content_type, resp.get_json())
        assert resp.get_json()["type"].endswith("unreadable-batch-file")
    assert post(b"", "text/csv").status_code == 400
    # a CSV with a column the application does not have
    rows = [{**r, "shoe_size": 44} for r in german_rows()[:3]]
    resp = post(csv_bytes(rows), "text/csv")
    assert resp.status_code == 422
    assert [e["pointer"] for e in resp.get_json()["errors"]] == ["/columns/shoe_size"]
    # nothing was kept of any of them
    assert jobs_and_folders(app) == (0, [])


# --- the upload route, end to end -------------------------------------------------------


def test_upload_runs_as_a_job_with_a_status_url_and_an_output(
    app: Flask, client: FlaskClient, get_token: Callable[..., str]
) -> None:
    token = get_token("batches:create")
    rows = german_rows()[:ROWS]
    rows[3] = {**rows[3], "age_in_years": "old"}  # a bad row: a rejection, not a failed job
    resp = client.post(
        "/v1/pipelines/credit-risk/batches",
        data=csv_bytes(rows),
        headers={**bearer(token), "Content-Type": "text/csv"},
    )
    assert resp.status_code == 202, resp.get_json()
    location = resp.headers["Location"]
    accepted = resp.get_json()
    assert location == f"/v1/batches/{accepted['batch_id']}"
    assert accepted["status"] in ("queued", "running", "done")
    assert accepted["rows_total"] == ROWS

    done = wait_finished(client, token, location)
    assert done["status"] == "done", done
    assert done["rows_done"] == ROWS
    assert done["errors"] == 1
    assert done["decided"] == ROWS - 1
    assert done["links"]["output"] == f"{location}/output"

    out = client.get(done["links"]["output"], headers=bearer(token))
    assert out.status_code == 200
    assert out.mimetype == "text/csv"
    lines = list(csv.DictReader(io.StringIO(out.get_data(as_text=True))))
    assert [int(r["row_number"]) for r in lines] == list(range(1, ROWS + 1))
    assert lines[3]["outcome"] == "rejected"
    logged = decision_rows(app, client_id_of(app, token))
    assert len(logged) == ROWS  # one record per row
    assert sorted(r["decision_id"] for r in lines) == sorted(i for _, i in logged)
    store = job_context(app.extensions["loangate"]).store
    assert not store.input_path(done["batch_id"]).exists()  # the applications are not kept


def test_fixed_width_upload_with_a_named_copybook_gives_parquet(
    app: Flask, client: FlaskClient, get_token: Callable[..., str], tmp_path: Path
) -> None:
    token = get_token("batches:create")
    path = tmp_path / "loans.dat"
    write_fixed(path, ROWS, seed=11, encoding="cp037")
    resp = client.post(
        "/v1/pipelines/credit-risk/batches?copybook=german-credit&output=parquet",
        data=path.read_bytes(),
        headers={**bearer(token), "Content-Type": "application/octet-stream"},
    )
    assert resp.status_code == 202, resp.get_json()
    done = wait_finished(client, token, resp.headers["Location"])
    assert done["status"] == "done", done
    assert (done["rows_total"], done["rows_done"], done["errors"]) == (ROWS, ROWS, 0)
    out = client.get(done["links"]["output"], headers=bearer(token))
    assert out.mimetype == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(out.get_data()))
    assert table.num_rows == ROWS
    assert len(decision_rows(app, client_id_of(app, token))) == ROWS


def test_only_the_submitter_or_an_auditor_reads_a_job(
    app: Flask, client: FlaskClient, get_token: Callable[..., str]
) -> None:
    owner, other = get_token("batches:create"), get_token("batches:create")
    auditor, scorer = get_token("decisions:read"), get_token("decisions:create")
    resp = client.post(
        "/v1/pipelines/credit-risk/batches",
        data=csv_bytes(german_rows()[:5]),
        headers={**bearer(owner), "Content-Type": "text/csv"},
    )
    location = resp.headers["Location"]
    wait_finished(client, owner, location)
    for path in (location, f"{location}/output"):
        assert client.get(path, headers=bearer(owner)).status_code == 200
        assert client.get(path, headers=bearer(auditor)).status_code == 200
        assert client.get(path, headers=bearer(other)).status_code == 404
        assert client.get(path, headers=bearer(scorer)).status_code == 403
        assert client.get(path).status_code == 401
    for bad in ("/v1/batches/../../etc", "/v1/batches/%00", "/v1/batches/" + "Z" * 26):
        assert client.get(bad, headers=bearer(owner)).status_code == 404


def test_output_of_a_job_not_done_is_a_conflict(
    app: Flask, client: FlaskClient, get_token: Callable[..., str]
) -> None:
    token = get_token("batches:create")
    ctx = job_context(app.extensions["loangate"])
    job_id = "01JZZZZZZZZZZZZZZZZZZZZZZZ"
    ctx.store.folder(job_id).mkdir(parents=True)
    spec = JobSpec("credit-risk", "csv", "csv")
    ctx.store.create(
        job_id,
        client_id_of(app, token),
        spec,
        input_bytes=0,
        input_sha256="0" * 64,
        rows_total=None,
        owner="alive-elsewhere",
    )
    resp = client.get(f"/v1/batches/{job_id}/output", headers=bearer(token))
    assert resp.status_code == 409
    assert client.get(f"/v1/batches/{job_id}", headers=bearer(token)).get_json()["status"] == (
        "queued"
    )
    assert ctx.store.resumable() == []  # its lease is live: nobody takes it over


# --- a job whose process died -------------------------------------------------------------


class Killed(Exception):
    """Stands for the process dying mid-file."""


def test_a_job_whose_process_died_resumes_with_no_duplicate_record(
    app: Flask, client: FlaskClient, tmp_path: Path
) -> None:
    state = app.extensions["loangate"]
    token = fetch_token(app, client, "batches:create")
    client_id = client_id_of(app, token)
    ctx = job_context(state)
    store = ctx.store
    job_id = "01JAAAAAAAAAAAAAAAAAAAAAAA"
    store.folder(job_id).mkdir(parents=True)
    source = tmp_path / "loans.dat"
    write_fixed(source, ROWS, seed=5)
    shutil.copyfile(source, store.input_path(job_id))
    spec = JobSpec("credit-risk", "fixed", "csv", copybook="german-credit")
    job = store.create(
        job_id,
        client_id,
        spec,
        input_bytes=source.stat().st_size,
        input_sha256="x" * 64,
        rows_total=ROWS,
        owner="worker-1",
    )
    # worker-1 runs the job and dies after its second chunk (two chunks logged)
    assert store.claim(job_id, "worker-1")
    chunks = 0

    def die_after_two(_rows: int) -> None:
        nonlocal chunks
        chunks += 1
        if chunks == 2:
            raise Killed

    from gateway.batch.copybook import load_copybook

    with pytest.raises(Killed):
        score_file(
            state.extras["pipelines"]["credit-risk"],
            state.engine,
            store.input_path(job_id),
            fmt="fixed",
            client_id=client_id,
            output=store.output_path(job),
            chunk_size=ctx.chunk_size,
            copybook=load_copybook(COPYBOOK),
            on_chunk=die_after_two,
        )
    before = dict(decision_rows(app, client_id))
    assert len(before) == 2 * ctx.chunk_size
    # its lease runs out (nobody renews it)
    with state.engine.begin() as conn:
        conn.execute(
            sa.text("update batch_jobs set lease_expires_at = :t where id = :i"),
            {"t": "2000-01-01 00:00:00", "i": job_id},
        )
    assert store.resumable() == [job_id]
    # a restarted server (or `loangate batch resume-jobs`) takes it over and finishes it
    assert resume_jobs(ctx) == [(job_id, "done")]
    assert store.claim(job_id, new_owner()) is False  # done: nobody takes it again
    after = dict(decision_rows(app, client_id))
    assert len(after) == ROWS  # every row once: no duplicate record
    assert {k: after[k] for k in before} == before  # rows logged before kept their records
    status = client.get(f"/v1/batches/{job_id}", headers=bearer(token)).get_json()
    assert (status["status"], status["rows_done"], status["attempts"]) == ("done", ROWS, 2)
    out = client.get(f"/v1/batches/{job_id}/output", headers=bearer(token))
    lines = list(csv.DictReader(io.StringIO(out.get_data(as_text=True))))
    assert len(lines) == ROWS
    assert {r["decision_id"] for r in lines} == set(after.values())
