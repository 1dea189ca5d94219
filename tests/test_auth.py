"""OAuth 2.0: token endpoint, JWKS, bearer-token checks, external issuers, key rotation.

Each test builds a tiny Flask app with only the auth subsystem (``gateway.auth.init_app``)
and two protected routes. Tests that touch the client table run on SQLite and PostgreSQL
(the ``engine`` fixture); token-check tests need no database and use SQLite only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Flask, jsonify
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.jwk import RSAKey
from joserfc.jws import JWSRegistry
from werkzeug.security import check_password_hash

from gateway import db
from gateway.auth import (
    DEFAULT_AUTH_CONFIG,
    SCOPES,
    AuthService,
    AuthSettings,
    KeyStore,
    Principal,
    TokenVerifier,
    current_principal,
    init_app,
    require_scopes,
)
from gateway.auth import tokens as tokens_mod
from gateway.auth.cli import make_commands
from gateway.auth.clients import create_client, disable_client, get_client, list_clients
from gateway.errors import ConfigError, Problem
from gateway.state import GatewayState
from gateway.tables import OAuthClient

ISSUER = "https://gateway.test"
AUDIENCE = "loangate"
IDP = "https://idp.example.test/"
IDP_AUDIENCE = "api://loangate"
TTL = 300
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi"}


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A key directory generated once per module and copied per test (RSA keygen is slow)."""
    path = tmp_path_factory.mktemp("keys-template") / "keys"
    KeyStore.open(path)
    return path


@pytest.fixture(scope="module")
def idp_key() -> RSAKey:
    """The enterprise IdP's key pair: a second, unrelated key."""
    return RSAKey.generate_key(2048, parameters={"kid": "idp-key-1", "alg": "RS256", "use": "sig"})


@pytest.fixture(scope="module")
def idp_jwks_file(tmp_path_factory: pytest.TempPathFactory, idp_key: RSAKey) -> Path:
    path = tmp_path_factory.mktemp("idp") / "jwks.json"
    path.write_text(json.dumps({"keys": [idp_key.as_dict(private=False)]}))
    return path


def auth_config(idp_jwks_file: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "token_ttl_seconds": TTL,
        "leeway_seconds": 30,
        "trusted_issuers": [
            {
                "issuer": IDP,
                "audience": IDP_AUDIENCE,
                "jwks_file": str(idp_jwks_file),
                "scope_claim": "scp",
            }
        ],
        **overrides,
    }


def build_app(
    engine: sa.Engine, instance: Path, config: dict[str, Any], keys_template: Path | None
) -> Flask:
    if keys_template is not None and not (instance / "keys").exists():
        shutil.copytree(keys_template, instance / "keys")
    app = Flask("auth-test")
    app.extensions["loangate"] = GatewayState(
        config={"auth": config}, engine=engine, instance_path=instance, config_dir=instance
    )
    init_app(app)

    @app.get("/read")
    @require_scopes("decisions:read")
    def read() -> Any:
        p = current_principal()
        return jsonify(client_id=p.client_id, scopes=sorted(p.scopes), issuer=p.issuer)

    @app.post("/create")
    @require_scopes("decisions:create")
    def create() -> Any:
        return jsonify(ok=True)

    return app


@pytest.fixture
def db_app(engine: sa.Engine, tmp_path: Path, keys_template: Path, idp_jwks_file: Path) -> Flask:
    """The auth app on the parametrised database (SQLite and PostgreSQL)."""
    return build_app(engine, tmp_path, auth_config(idp_jwks_file), keys_template)


@pytest.fixture(scope="module")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    path = tmp_path_factory.mktemp("authdb") / "auth.db"
    eng = db.make_engine(f"sqlite:///{path}")
    db.upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def app(
    sqlite_engine: sa.Engine, tmp_path: Path, keys_template: Path, idp_jwks_file: Path
) -> Flask:
    """The auth app for token-check tests, which read no database."""
    return build_app(sqlite_engine, tmp_path, auth_config(idp_jwks_file), keys_template)


def service(app: Flask) -> AuthService:
    return app.extensions["loangate"].extras["auth"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else orjson.dumps(data)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def segments(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    h, p, _ = token.split(".")
    return (
        json.loads(base64.urlsafe_b64decode(h + "==")),
        json.loads(base64.urlsafe_b64decode(p + "==")),
    )


def own_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "lgc_test",
        "client_id": "lgc_test",
        "iat": now,
        "exp": now + TTL,
        "jti": "jti-1",
        "scope": "decisions:read",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def sign(claims: dict[str, Any], key: Any, **header: Any) -> str:
    hdr = {"alg": "RS256", "typ": "at+jwt", **header}
    return jwt.encode(hdr, claims, key, algorithms=[hdr["alg"]])


def token_request(
    client: FlaskClient, client_id: str, secret: str, method: str = "basic", **form: str
) -> Any:
    data = {"grant_type": "client_credentials", **form}
    if method == "basic":
        return client.post("/oauth/token", data=data, auth=(client_id, secret))
    data.update(client_id=client_id, client_secret=secret)
    return client.post("/oauth/token", data=data)


def assert_invalid_token(resp: Any) -> None:
    assert resp.status_code == 401, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert body["status"] == 401 and body["type"] == "/problems/invalid-token"
    challenge = resp.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge


# --- token endpoint (SQLite and PostgreSQL) ----------------------------------------------------


@pytest.mark.parametrize("method", ["basic", "post"])
def test_token_endpoint_issues_rfc9068_jwt(db_app: Flask, method: str) -> None:
    engine = db_app.extensions["loangate"].engine
    client_id, secret = create_client(
        engine, "core banking", ["decisions:read", "decisions:create"]
    )
    client = db_app.test_client()

    resp = token_request(client, client_id, secret, method)

    assert resp.status_code == 200, resp.get_json()
    assert resp.headers["Cache-Control"] == "no-store"
    body = resp.get_json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == TTL
    assert body["scope"] == "decisions:create decisions:read"
    header, claims = segments(body["access_token"])
    assert header == {"alg": "RS256", "typ": "at+jwt", "kid": service(db_app).keys.active_kid}
    assert claims["iss"] == ISSUER and claims["aud"] == AUDIENCE
    assert claims["sub"] == client_id == claims["client_id"]
    assert claims["exp"] - claims["iat"] == TTL and abs(claims["iat"] - time.time()) < 5
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    assert claims["scope"] == "decisions:create decisions:read"

    ok = client.get("/read", headers=bearer(body["access_token"]))
    assert ok.status_code == 200
    assert ok.get_json() == {
        "client_id": client_id,
        "scopes": ["decisions:create", "decisions:read"],
        "issuer": ISSUER,
    }


def test_each_token_has_its_own_jti(db_app: Flask) -> None:
    engine = db_app.extensions["loangate"].engine
    client_id, secret = create_client(engine, "c", ["decisions:read"])
    client = db_app.test_client()
    jtis = {
        segments(token_request(client, client_id, secret).get_json()["access_token"])[1]["jti"]
        for _ in range(3)
    }
    assert len(jtis) == 3


def test_requested_scope_narrows_and_cannot_widen(db_app: Flask) -> None:
    engine = db_app.extensions["loangate"].engine
    client_id, secret = create_client(engine, "c", ["decisions:read", "decisions:create"])
    client = db_app.test_client()

    narrowed = token_request(client, client_id, secret, scope="decisions:read")
    assert narrowed.status_code == 200 and narrowed.get_json()["scope"] == "decisions:read"
    token = narrowed.get_json()["access_token"]
    assert client.post("/create", headers=bearer(token)).status_code == 403

    wider = token_request(client, client_id, secret, scope="decisions:read models:admin")
    assert wider.status_code == 400
    assert wider.get_json()["error"] == "invalid_scope"
    assert "access_token" not in wider.get_json()

    unknown = token_request(client, client_id, secret, scope="root")
    assert unknown.status_code == 400 and unknown.get_json()["error"] == "invalid_scope"


@pytest.mark.parametrize("method", ["basic", "post"])
def test_bad_client_credentials_are_invalid_client(db_app: Flask, method: str) -> None:
    engine = db_app.extensions["loangate"].engine
    client_id, secret = create_client(engine, "c", ["decisions:read"])
    client = db_app.test_client()

    for cid, sec in [(client_id, secret + "x"), (client_id, ""), ("lgc_nobody", secret)]:
        resp = token_request(client, cid, sec, method)
        assert resp.status_code in (400, 401), resp.get_json()
        assert resp.get_json()["error"] in ("invalid_client", "invalid_request")
        assert "access_token" not in resp.get_json()
    wrong = token_request(client, client_id, secret + "x", method)
    assert wrong.status_code == 401 and wrong.get_json()["error"] == "invalid_client"
    if method == "basic":
        assert wrong.headers["WWW-Authenticate"].startswith("Basic")

    assert disable_client(engine, client_id)
    disabled = token_request(client, client_id, secret, method)
    assert disabled.status_code == 401 and disabled.get_json()["error"] == "invalid_client"


def test_unsupported_grant_type(db_app: Flask) -> None:
    engine = db_app.extensions["loangate"].engine
    client_id, secret = create_client(engine, "c", ["decisions:read"])
    resp = db_app.test_client().post(
        "/oauth/token", data={"grant_type": "password"}, auth=(client_id, secret)
    )
    assert resp.status_code == 400 and resp.get_json()["error"] == "unsupported_grant_type"


def test_clients_are_stored_with_hashed_secrets(engine: sa.Engine) -> None:
    client_id, secret = create_client(engine, "ERP", "decisions:create, decisions:read")

    with engine.connect() as conn:
        row = conn.execute(
            sa.select(OAuthClient.__table__).where(OAuthClient.client_id == client_id)
        ).one()
    assert secret not in row.secret_hash and secret not in str(tuple(row))
    assert check_password_hash(row.secret_hash, secret)
    assert row.scopes == "decisions:create decisions:read"

    record = get_client(engine, client_id)
    assert record is not None and record.check_secret(secret) and not record.check_secret("x")
    assert record.scopes == frozenset({"decisions:create", "decisions:read"})
    assert "secret_hash" not in repr(record)
    assert [c.client_id for c in list_clients(engine)] == [client_id]

    assert disable_client(engine, client_id) and not disable_client(engine, "lgc_nobody")
    assert get_client(engine, client_id).disabled  # type: ignore[union-attr]
    assert list_clients(engine, include_disabled=False) == []
    assert get_client(engine, "lgc_nobody") is None


@pytest.mark.parametrize("scopes", [[], ["decisions:read", "root"], "  "])
def test_create_client_validates_scopes(sqlite_engine: sa.Engine, scopes: Any) -> None:
    with pytest.raises(ValueError, match="scope"):
        create_client(sqlite_engine, "c", scopes)


def test_cli_creates_client_and_prints_secret_once(engine: sa.Engine, tmp_path: Path) -> None:
    state = GatewayState(
        config={"auth": {}}, engine=engine, instance_path=tmp_path, config_dir=tmp_path
    )
    commands = {c.name: c for c in make_commands(lambda: state)}
    runner = CliRunner()

    created = runner.invoke(
        commands["clients"], ["create", "--name", "CRM", "--scopes", "decisions:read"]
    )
    assert created.exit_code == 0, created.output
    lines = dict(line.split(":", 1) for line in created.stdout.splitlines() if ":" in line)
    client_id, secret = lines["client_id"].strip(), lines["client_secret"].strip()
    record = get_client(engine, client_id)
    assert record is not None and record.check_secret(secret)

    listed = runner.invoke(commands["clients"], ["list"])
    assert client_id in listed.output and secret not in listed.output

    bad = runner.invoke(commands["clients"], ["create", "--name", "x", "--scopes", "nope"])
    assert bad.exit_code != 0 and "unknown scope" in bad.output

    rotated = runner.invoke(commands["keys"], ["rotate"])
    assert rotated.exit_code == 0
    assert rotated.output.strip() in KeyStore.open(tmp_path / "keys").kids


def test_no_secret_or_token_is_logged(db_app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    engine = db_app.extensions["loangate"].engine
    client_id, secret = create_client(engine, "c", ["decisions:read"])
    client = db_app.test_client()
    with caplog.at_level(logging.DEBUG):
        token = token_request(client, client_id, secret, "post").get_json()["access_token"]
        client.get("/read", headers=bearer(token))
        client.get("/read", headers=bearer(token + "x"))
        token_request(client, client_id, secret + "x")
    assert caplog.records  # Authlib did log at DEBUG ...
    assert secret not in caplog.text and token not in caplog.text  # ... but no credential


# --- JWKS and metadata ---------------------------------------------------------------------------


def test_jwks_publishes_public_keys_only(app: Flask) -> None:
    resp = app.test_client().get("/.well-known/jwks.json")
    assert resp.status_code == 200
    assert "max-age=" in resp.headers["Cache-Control"]
    keys = orjson.loads(resp.data)["keys"]
    assert [k["kid"] for k in keys] == [service(app).keys.active_kid]
    for key in keys:
        assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig"
        assert not PRIVATE_MEMBERS & set(key)
        assert len(base64.urlsafe_b64decode(key["n"] + "==")) * 8 == 2048


def test_metadata(app: Flask) -> None:
    meta = app.test_client().get("/.well-known/oauth-authorization-server").get_json()
    assert meta["issuer"] == ISSUER
    assert meta["token_endpoint"].endswith("/oauth/token")
    assert meta["jwks_uri"].endswith("/.well-known/jwks.json")
    assert set(meta["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }
    assert set(meta["scopes_supported"]) >= set(SCOPES)


# --- protected resources: hostile tokens ---------------------------------------------------------


def test_missing_token_is_401_with_challenge(app: Flask) -> None:
    client = app.test_client()
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": ""}):
        resp = client.get("/read", headers=headers)
        assert resp.status_code == 401 and resp.mimetype == "application/problem+json"
        assert resp.get_json()["instance"] == "/read"
        # RFC 6750 §3.1: no error code when the request carries no bearer credentials.
        assert resp.headers["WWW-Authenticate"] == 'Bearer realm="loangate"'


def test_valid_minted_token_passes(app: Flask) -> None:
    token = service(app).mint_token("lgc_test", ["decisions:read"])
    resp = app.test_client().get("/read", headers=bearer(token))
    assert resp.status_code == 200 and resp.get_json()["client_id"] == "lgc_test"


def test_wrong_scope_is_403(app: Flask) -> None:
    token = service(app).mint_token("lgc_test", ["decisions:read"])
    resp = app.test_client().post("/create", headers=bearer(token))
    assert resp.status_code == 403 and resp.mimetype == "application/problem+json"
    assert resp.get_json()["type"] == "/problems/insufficient-scope"
    assert resp.headers["WWW-Authenticate"] == (
        'Bearer realm="loangate", error="insufficient_scope", scope="decisions:create"'
    )


def hs256_with_public_key(s: AuthService) -> str:
    """The classic algorithm-confusion forgery: HMAC keyed with the published RSA key."""
    head = b64({"alg": "HS256", "typ": "at+jwt", "kid": s.keys.active_kid})
    body = b64(own_claims(scope="decisions:read models:admin"))
    public_pem = s.keys.verification_keys[s.keys.active_kid].as_pem()
    mac = hmac.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def with_header(s: AuthService, **header: Any) -> str:
    """A token correctly signed by the active key, with extra header members."""
    head = b64({"alg": "RS256", "typ": "at+jwt", "kid": s.keys.active_kid, **header})
    body = b64(own_claims())
    sig = JWSRegistry().get_alg("RS256").sign(f"{head}.{body}".encode(), s.keys.active)
    return f"{head}.{body}.{b64(sig)}"


HOSTILE: dict[str, Callable[[AuthService, RSAKey], str]] = {
    "expired": lambda s, k: sign(
        own_claims(iat=int(time.time()) - 1000, exp=int(time.time()) - 31),
        s.keys.active,
        kid=s.keys.active_kid,
    ),
    "issued in the future": lambda s, k: sign(
        own_claims(iat=int(time.time()) + 600, exp=int(time.time()) + 900),
        s.keys.active,
        kid=s.keys.active_kid,
    ),
    "not yet valid": lambda s, k: sign(
        own_claims(nbf=int(time.time()) + 600), s.keys.active, kid=s.keys.active_kid
    ),
    "wrong audience": lambda s, k: sign(
        own_claims(aud="someone-else"), s.keys.active, kid=s.keys.active_kid
    ),
    "wrong issuer": lambda s, k: sign(
        own_claims(iss="https://evil.test"), s.keys.active, kid=s.keys.active_kid
    ),
    "no exp": lambda s, k: sign(own_claims(exp=None), s.keys.active, kid=s.keys.active_kid),
    "no jti": lambda s, k: sign(own_claims(jti=None), s.keys.active, kid=s.keys.active_kid),
    "not an access token": lambda s, k: sign(
        own_claims(), s.keys.active, kid=s.keys.active_kid, typ="JWT"
    ),
    "unknown kid": lambda s, k: sign(own_claims(), k, kid="nobody-knows-me"),
    "foreign key, known kid": lambda s, k: sign(own_claims(), k, kid=s.keys.active_kid),
    "no kid": lambda s, k: sign(own_claims(), s.keys.active),
    "alg none": lambda s, k: (
        f"{b64({'alg': 'none', 'typ': 'at+jwt', 'kid': s.keys.active_kid})}.{b64(own_claims())}."
    ),
    "alg None, signature kept": lambda s, k: ".".join(
        [
            b64({"alg": "None", "typ": "at+jwt", "kid": s.keys.active_kid}),
            *s.mint_token("x", ["decisions:read"]).split(".")[1:],
        ]
    ),
    "HS256 keyed with the public key": lambda s, k: hs256_with_public_key(s),
    "tampered payload": lambda s, k: ".".join(
        [
            (t := s.mint_token("lgc_test", ["decisions:create"]).split("."))[0],
            b64(own_claims(scope="decisions:read models:admin")),
            t[2],
        ]
    ),
    "tampered signature": lambda s, k: (
        (t := s.mint_token("x", ["decisions:read"]))[:-8]
        + ("A" * 8 if t[-8:] != "A" * 8 else "B" * 8)
    ),
    "malformed header": lambda s, k: "eyJhbGciOiJSUzI1NiIsImtpZCI6.eyJzdWIiOiJ4In0.c2ln",
    "header not an object": lambda s, k: f"{b64(b'[1,2]')}.{b64(own_claims())}.c2ln",
    "two segments": lambda s, k: ".".join(s.mint_token("x", ["decisions:read"]).split(".")[:2]),
    "garbage": lambda s, k: "not-a-token",
    "critical extension": lambda s, k: with_header(s, crit=["x-ext"], **{"x-ext": 1}),
    "unencoded payload (RFC 7797)": lambda s, k: with_header(s, b64=False, crit=["b64"]),
    "kid not a string": lambda s, k: with_header(s, kid=7),
    "oversized": lambda s, k: "a" * 10_000,
    "idp token with the gateway's iss": lambda s, k: sign(own_claims(), k, kid="idp-key-1"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_tokens_are_401(app: Flask, idp_key: RSAKey, case: str) -> None:
    token = HOSTILE[case](service(app), idp_key)
    assert_invalid_token(app.test_client().get("/read", headers=bearer(token)))


def test_malformed_authorization_header_is_401(app: Flask) -> None:
    token = service(app).mint_token("x", ["decisions:read"])
    client = app.test_client()
    for value in ("Bearer", "Bearer ", f"Bearer {token} extra"):
        assert_invalid_token(client.get("/read", headers={"Authorization": value}))
    # The scheme is case-insensitive (RFC 7235).
    assert client.get("/read", headers={"Authorization": f"bearer {token}"}).status_code == 200


def test_extra_header_members_are_fine(app: Flask) -> None:
    token = with_header(service(app), jku="https://evil.test/jwks.json")  # never fetched
    assert app.test_client().get("/read", headers=bearer(token)).status_code == 200


def test_leeway_accepts_small_clock_skew(app: Flask) -> None:
    s = service(app)
    now = int(time.time())
    token = sign(own_claims(iat=now - 400, exp=now - 10), s.keys.active, kid=s.keys.active_kid)
    assert s.verifier.verify(token).client_id == "lgc_test"


@pytest.fixture(scope="module")
def standalone(
    tmp_path_factory: pytest.TempPathFactory, idp_jwks_file: Path
) -> tuple[TokenVerifier, str]:
    """A verifier and one valid token, built once (hypothesis dislikes per-test fixtures)."""
    base = tmp_path_factory.mktemp("standalone")
    settings_ = AuthSettings.from_config(auth_config(idp_jwks_file), base, base)
    keys = KeyStore.from_settings(settings_)
    token = sign(own_claims(), keys.active, kid=keys.active_kid)
    return TokenVerifier.from_settings(settings_, keys), token


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_flipping_any_byte_is_refused(standalone: tuple[TokenVerifier, str], data: Any) -> None:
    verifier, token = standalone
    assert verifier.verify(token).client_id == "lgc_test"
    raw = bytearray(token.encode())
    i = data.draw(st.integers(0, len(raw) - 1), label="index")
    raw[i] ^= data.draw(st.integers(1, 255), label="xor")
    with pytest.raises(Problem) as info:
        verifier.verify(raw.decode("latin-1"))
    assert info.value.status == 401


# --- external issuer ------------------------------------------------------------------------------


def idp_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": IDP,
        "aud": [IDP_AUDIENCE, "other-api"],
        "azp": "erp-system",
        "sub": "service-principal-42",
        "iat": now,
        "exp": now + 600,
        "scp": ["decisions:read", "decisions:create"],
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def test_external_issuer_token_is_accepted(app: Flask, idp_key: RSAKey) -> None:
    client = app.test_client()
    token = sign(idp_claims(), idp_key, kid="idp-key-1", typ="JWT")
    resp = client.get("/read", headers=bearer(token))
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {
        "client_id": "erp-system",
        "scopes": ["decisions:create", "decisions:read"],
        "issuer": IDP,
    }
    # scp as a space-separated string works too; the scope claim is the configured one.
    as_string = sign(idp_claims(scp="decisions:read"), idp_key, kid="idp-key-1")
    assert client.get("/read", headers=bearer(as_string)).status_code == 200
    scope_not_scp = sign(idp_claims(scp=None, scope="decisions:read"), idp_key, kid="idp-key-1")
    assert client.get("/read", headers=bearer(scope_not_scp)).status_code == 403


@pytest.mark.parametrize(
    "claims, header",
    [
        (idp_claims(aud=AUDIENCE), {"kid": "idp-key-1"}),  # the gateway's own audience
        (idp_claims(aud="api://other"), {"kid": "idp-key-1"}),
        (idp_claims(exp=int(time.time()) - 100), {"kid": "idp-key-1"}),
        (idp_claims(iss="https://idp.example.test"), {"kid": "idp-key-1"}),  # no trailing /
        (idp_claims(), {"kid": "idp-key-2"}),
    ],
)
def test_external_issuer_bad_tokens_are_401(
    app: Flask, idp_key: RSAKey, claims: dict[str, Any], header: dict[str, Any]
) -> None:
    token = sign(claims, idp_key, **header)
    assert_invalid_token(app.test_client().get("/read", headers=bearer(token)))


def test_gateway_key_cannot_sign_for_the_idp(app: Flask) -> None:
    s = service(app)
    token = sign(idp_claims(), s.keys.active, kid=s.keys.active_kid)
    assert_invalid_token(app.test_client().get("/read", headers=bearer(token)))


def test_external_issuer_from_jwks_uri_refetches_rarely(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, idp_key: RSAKey
) -> None:
    new_key = RSAKey.generate_key(2048, parameters={"kid": "idp-key-2", "alg": "RS256"})
    published = [idp_key]
    calls: list[str] = []

    class Resp:
        def raise_for_status(self) -> None: ...

        def json(self) -> Any:
            return {"keys": [k.as_dict(private=False) for k in published]}

    def fake_get(url: str, timeout: float) -> Resp:
        assert timeout > 0
        calls.append(url)
        return Resp()

    monkeypatch.setattr(tokens_mod.requests, "get", fake_get)
    cfg = {
        "trusted_issuers": [
            {
                "issuer": IDP,
                "audience": IDP_AUDIENCE,
                "jwks_uri": "https://idp.example.test/keys",
                "scope_claim": "scp",
            }
        ]
    }
    settings_ = AuthSettings.from_config(cfg, tmp_path, tmp_path)
    verifier = TokenVerifier.from_settings(settings_, KeyStore.from_settings(settings_))
    assert calls == ["https://idp.example.test/keys"]  # fetched at start

    for _ in range(5):  # known kid: no fetch per request
        verifier.verify(sign(idp_claims(), idp_key, kid="idp-key-1"))
    assert len(calls) == 1

    published.append(new_key)  # the IdP rotates
    rotated = sign(idp_claims(), new_key, kid="idp-key-2")
    with pytest.raises(Problem):  # unknown kid within 5 minutes of the last fetch: no fetch
        verifier.verify(rotated)
    assert len(calls) == 1

    verifier._issuers[IDP].keys._last_refresh -= tokens_mod.JWKS_REFRESH_SECONDS + 1
    assert verifier.verify(rotated).client_id == "erp-system"  # one re-fetch, then accepted
    assert len(calls) == 2
    with pytest.raises(Problem):  # another unknown kid right after: no new fetch
        verifier.verify(sign(idp_claims(), new_key, kid="idp-key-3"))
    assert len(calls) == 2


# --- keys: generation, rotation, config ---------------------------------------------------------


def test_keys_generated_on_first_run_with_private_file_mode(tmp_path: Path) -> None:
    store = KeyStore.open(tmp_path / "keys")
    pem = tmp_path / "keys" / f"{store.active_kid}.pem"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert b"PRIVATE KEY" in pem.read_bytes()
    again = KeyStore.open(tmp_path / "keys")  # the next start (or worker) loads the same key
    assert again.active_kid == store.active_kid and again.kids == store.kids


def test_rotation_keeps_old_tokens_valid(app: Flask) -> None:
    s = service(app)
    client = app.test_client()
    old_kid = s.keys.active_kid
    old_token = s.mint_token("lgc_test", ["decisions:read"])

    new_kid = s.keys.rotate()

    assert new_kid != old_kid and s.keys.active_kid == new_kid
    assert client.get("/read", headers=bearer(old_token)).status_code == 200
    new_token = s.mint_token("lgc_test", ["decisions:read"])
    assert segments(new_token)[0]["kid"] == new_kid
    assert client.get("/read", headers=bearer(new_token)).status_code == 200
    published = {k["kid"] for k in orjson.loads(client.get("/.well-known/jwks.json").data)["keys"]}
    assert published == {old_kid, new_kid}
    assert stat.S_IMODE((s.settings.keys_dir / f"{new_kid}.pem").stat().st_mode) == 0o600

    s.keys.retire(old_kid)
    assert_invalid_token(client.get("/read", headers=bearer(old_token)))
    assert client.get("/read", headers=bearer(new_token)).status_code == 200
    with pytest.raises(ValueError, match="active"):
        s.keys.retire(new_kid)


def test_rotation_by_another_process_is_picked_up(app: Flask) -> None:
    s = service(app)
    other = KeyStore.open(s.settings.keys_dir)  # e.g. `loangate keys rotate`, or another worker
    new_kid = other.rotate()
    token = sign(own_claims(), other.active, kid=new_kid)

    s.verifier._issuers[ISSUER].keys._last_refresh -= 2  # past the 1 s refresh limit
    assert s.verifier.verify(token).client_id == "lgc_test"
    assert s.keys.active_kid == new_kid  # and this process now signs with it


def test_signing_keys_from_config(
    tmp_path: Path, sqlite_engine: sa.Engine, idp_jwks_file: Path
) -> None:
    k1 = RSAKey.generate_key(2048)
    k2 = RSAKey.generate_key(2048)
    (tmp_path / "k1.pem").write_bytes(k1.as_pem(private=True))
    cfg = auth_config(
        idp_jwks_file,
        signing_keys=[
            {"kid": "cfg-1", "pem_file": "k1.pem"},  # relative to the config directory
            {"kid": "cfg-0", "pem": k2.as_pem(private=True).decode()},
        ],
    )
    app = build_app(sqlite_engine, tmp_path, cfg, None)
    s = service(app)
    assert s.keys.active_kid == "cfg-1" and s.keys.kids == ["cfg-0", "cfg-1"]
    assert not (tmp_path / "keys").exists()  # no key generated when config provides them
    old = sign(own_claims(), k2, kid="cfg-0")
    assert s.verifier.verify(old).client_id == "lgc_test"
    assert segments(s.mint_token("c", ["decisions:read"]))[0]["kid"] == "cfg-1"
    with pytest.raises(RuntimeError, match="config"):
        s.keys.rotate()


# --- configuration -----------------------------------------------------------------------------


def test_default_config() -> None:
    settings_ = AuthSettings.from_config(None, Path("/inst"), Path("/cfg"))
    assert settings_.issuer == DEFAULT_AUTH_CONFIG["issuer"]
    assert settings_.audience == "loangate"
    assert settings_.token_ttl_seconds == 300 and settings_.leeway_seconds == 30
    assert settings_.keys_dir == Path("/inst/keys")
    assert settings_.trusted_issuers == () and settings_.signing_keys == ()


@pytest.mark.parametrize(
    "section, where",
    [
        ({"token_ttl": 5}, "unknown key"),
        ({"token_ttl_seconds": "300"}, "auth.token_ttl_seconds"),
        ({"leeway_seconds": 3600}, "auth.leeway_seconds"),
        (
            {"trusted_issuers": [{"issuer": IDP, "jwks_file": "x.json", "algorithms": ["HS256"]}]},
            "algorithms",
        ),
        ({"trusted_issuers": [{"issuer": IDP, "algorithms": ["RS256"]}]}, "jwks_file or jwks_uri"),
        ({"trusted_issuers": [{"issuer": IDP, "jwks_uri": "http://idp/keys"}]}, "https"),
        ({"trusted_issuers": [{"issuer": IDP, "jwks_file": "missing.json"}]}, "jwks_file"),
        ({"issuer": IDP, "trusted_issuers": [{"issuer": IDP, "jwks_file": "x.json"}]}, "unique"),
        ({"signing_keys": [{"kid": "a"}]}, "pem_file or pem"),
        ({"signing_keys": [{"kid": "a", "pem": "not a pem"}]}, "auth.signing_keys"),
    ],
)
def test_bad_config_refuses_to_start(tmp_path: Path, section: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError, match=where):
        settings_ = AuthSettings.from_config(section, tmp_path, tmp_path)
        TokenVerifier.from_settings(settings_, KeyStore.from_settings(settings_))


def test_require_scopes_rejects_unknown_scope_names() -> None:
    with pytest.raises(ValueError, match="unknown scope"):
        require_scopes("decisions:raed")


def test_principal_is_frozen() -> None:
    p = Principal("c", frozenset({"decisions:read"}), ISSUER, None)
    assert p.has("decisions:read") and not p.has("decisions:read", "models:admin")
    with pytest.raises(AttributeError):
        p.client_id = "other"  # type: ignore[misc]


def test_external_token_without_kid_uses_the_single_key(app: Flask, idp_key: RSAKey) -> None:
    token = sign(idp_claims(), idp_key)  # some IdPs with one key omit kid
    assert app.test_client().get("/read", headers=bearer(token)).status_code == 200


def test_token_endpoint_over_plain_http_is_a_client_error(db_app: Flask) -> None:
    engine = db_app.extensions["loangate"].engine
    client_id, secret = create_client(engine, "c", ["decisions:read"])
    resp = db_app.test_client().post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
        base_url="http://gateway.internal",  # not loopback, not https: Authlib refuses
    )
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_request"


def test_import_uses_no_deprecated_authlib_jose() -> None:
    code = (
        "import sys, gateway.auth, gateway.auth.cli; "
        "assert 'authlib.jose' not in sys.modules, 'authlib.jose imported'"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", code],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


class CountingAlgorithm:
    """Wraps a JWS algorithm to count signature checks."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.checks = inner, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def verify(self, *args: Any) -> bool:
        self.checks += 1
        return bool(self.inner.verify(*args))


def test_a_verified_token_is_checked_once_until_it_expires(app: Flask) -> None:
    s = service(app)
    issuer = s.verifier._issuers[ISSUER]
    counting = CountingAlgorithm(issuer.algorithm_models["RS256"])
    issuer.algorithm_models["RS256"] = counting  # type: ignore[assignment]
    token = s.mint_token("lgc_test", ["decisions:read"])
    client = app.test_client()
    for _ in range(3):
        assert client.get("/read", headers=bearer(token)).status_code == 200
    assert counting.checks == 1
    # Once its expiry has passed, a remembered token is checked afresh (and refused if the
    # check fails): the cache never extends a token's life.
    principal, _, cached_issuer, kid, key = s.verifier._verified[token]
    s.verifier._verified[token] = (principal, time.time() - 1, cached_issuer, kid, key)
    assert client.get("/read", headers=bearer(token)).status_code == 200
    assert counting.checks == 2
    # A forged token that merely shares a prefix with a remembered one is checked in full.
    assert_invalid_token(client.get("/read", headers=bearer(token[:-2] + "AA")))
