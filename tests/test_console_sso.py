"""Single sign-on to the console against a stand-in OpenID Connect provider on loopback:
the code flow with PKCE, state and nonce; roles from a claim; refusals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from gateway.console.users import create_user, get_user
from tests.conftest import gateway_overrides, register_demo_model
from tests.oidc_provider import Provider, running_provider

CLIENT_ID, SECRET = "loangate-console", "idp-client-secret"
ROLES = {"credit-audit": "auditor", "credit-review": "reviewer", "bank-admins": "admin"}


@pytest.fixture
def provider() -> Iterator[Provider]:
    with running_provider(CLIENT_ID, SECRET) as idp:
        yield idp


@pytest.fixture
def sso_app(
    db_url: str,
    tmp_path: Path,
    trained_model: Any,
    provider: Provider,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Flask]:
    from gateway import create_app

    monkeypatch.setenv("TEST_OIDC_SECRET", SECRET)
    models = tmp_path / "models"
    register_demo_model(db_url, models, trained_model)
    overrides = gateway_overrides(db_url, models)
    overrides["console"] = {
        "oidc": {
            "issuer": provider.issuer,
            "client_id": CLIENT_ID,
            "client_secret_env": "TEST_OIDC_SECRET",
            "role_claim": "groups",
            "name_claim": "preferred_username",
            "roles": ROLES,
        }
    }
    app = create_app(overrides, instance_path=tmp_path / "instance")
    yield app
    app.extensions["loangate"].engine.dispose()


def through_provider(client: FlaskClient) -> tuple[Any, str]:
    """Start at /console/sso, let the provider answer, come back: (callback response, the
    authorize URL the browser was sent to)."""
    start = client.get("/console/sso")
    assert start.status_code == 302
    authorize = start.headers["Location"]
    answer = requests.get(authorize, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["Location"])
    assert back.path == "/console/sso/callback"
    return client.get(f"{back.path}?{back.query}"), authorize


def test_sign_in_with_the_provider_and_a_mapped_role(sso_app: Flask, provider: Provider) -> None:
    client = sso_app.test_client()
    assert "Sign in with your organisation" in client.get("/console/sign-in").text
    provider.claims = {"sub": "u-17", "preferred_username": "ines", "groups": ["credit-audit"]}
    done, authorize = through_provider(client)
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and query["nonce"] and query["state"]
    assert provider.verifier_checked == 1  # the code was exchanged with its PKCE verifier
    assert done.status_code == 302 and done.headers["Location"].endswith("/console/decisions")
    page = client.get("/console/decisions")
    assert page.status_code == 200 and "ines (auditor)" in page.text
    user = get_user(sso_app.extensions["loangate"].engine, "ines")
    assert user is not None and not user.has_password

    provider.claims = {
        "sub": "u-17",
        "preferred_username": "ines",
        "groups": ["credit-review", "bank-admins"],
    }
    again = sso_app.test_client()
    through_provider(again)  # the role follows the provider, the narrowest mapped one first
    assert "ines (reviewer)" in again.get("/console/decisions").text


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # no database-specific path
def test_no_mapped_role_is_refused(sso_app: Flask, provider: Provider) -> None:
    provider.claims = {"sub": "u-2", "preferred_username": "olaf", "groups": ["canteen"]}
    client = sso_app.test_client()
    done, _ = through_provider(client)
    assert done.status_code == 403
    assert client.get("/console/decisions").status_code == 302
    assert get_user(sso_app.extensions["loangate"].engine, "olaf") is None


def test_a_local_account_cannot_be_taken_over(sso_app: Flask, provider: Provider) -> None:
    create_user(sso_app.extensions["loangate"].engine, "root", "admin", "a long local password")
    provider.claims = {"sub": "u-3", "preferred_username": "root", "groups": ["credit-audit"]}
    done, _ = through_provider(sso_app.test_client())
    assert done.status_code == 403


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # no database-specific path
def test_a_forged_or_replayed_callback_is_refused(sso_app: Flask, provider: Provider) -> None:
    provider.claims = {"preferred_username": "ines", "groups": ["credit-audit"]}
    client = sso_app.test_client()
    start = client.get("/console/sso")
    answer = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    back = urlsplit(answer.headers["Location"])
    code = parse_qs(back.query)["code"][0]
    forged = client.get(f"/console/sso/callback?code={code}&state=not-the-state")
    assert forged.status_code == 401
    stranger = sso_app.test_client()  # another browser: no state of its own
    assert stranger.get(f"{back.path}?{back.query}").status_code == 401
    assert client.get("/console/decisions").status_code == 302


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # no database-specific path
def test_an_id_token_without_a_subject_is_refused(sso_app: Flask, provider: Provider) -> None:
    provider.claims = {"preferred_username": "ines", "groups": ["credit-audit"]}  # no "sub"
    done, _ = through_provider(sso_app.test_client())
    assert done.status_code == 401
