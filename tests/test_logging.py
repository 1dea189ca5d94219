"""Logs: JSON lines carrying the request id, and never a secret, a token or personal data."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.auth.clients import create_client
from tests.helpers import body


def test_log_lines_are_json_with_request_id_and_nothing_sensitive(
    app: Flask, client: FlaskClient, capfd: pytest.CaptureFixture[str]
) -> None:
    client_id, secret = create_client(
        app.extensions["loangate"].engine, "logs", ["decisions:create"]
    )
    capfd.readouterr()
    token_resp = client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    token = token_resp.get_json()["access_token"]
    payload = body(1, application_id="LN-SECRET-77")
    payload["applicant"]["credit_amount"] = 987654
    resp = client.post(
        "/v1/pipelines/credit-risk/decisions",
        json=payload,
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": "req-42"},
    )
    assert resp.status_code == 201
    bad = client.post(
        "/v1/pipelines/credit-risk/decisions",
        json=body(1, purpose="my-secret-plan"),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert bad.status_code == 422
    out = capfd.readouterr().err
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert lines, out
    decision_lines = [entry for entry in lines if entry.get("request_id") == "req-42"]
    assert decision_lines and all(entry["event"] for entry in decision_lines)
    for forbidden in (
        secret,
        token,
        token.split(".")[2],
        "987654",
        "LN-SECRET-77",
        "my-secret-plan",
        "skilled employee",
    ):
        assert forbidden not in out
