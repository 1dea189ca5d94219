"""The console through Flask's test client, on SQLite and PostgreSQL: sign-in and its
throttle, sessions and their end, CSRF, roles onto scopes, the pages, the access trail."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st

from gateway.console import sessions
from gateway.console.charts import waterfall
from gateway.console.users import FREE_FAILURES, create_user
from tests.conftest import bearer
from tests.helpers import body

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def sign_in(client: FlaskClient, name: str, password: str = PASSWORD, **extra: str) -> Any:
    page = client.get("/console/sign-in")
    assert page.status_code == 200
    form = {"csrf_token": csrf_of(page.text), "name": name, "password": password, **extra}
    return client.post("/console/sign-in", data=form)


@pytest.fixture
def decided(app: Flask, get_token: Callable[..., str]) -> list[str]:
    """Three decisions, one with a script in its application id."""
    client = app.test_client()
    token = get_token("decisions:create")
    ids = []
    for i, application_id in enumerate(["LN-1", "LN-2", "<script>alert(1)</script>"], 1):
        resp = client.post(
            "/v1/pipelines/credit-risk/decisions",
            json=body(i, application_id=application_id),
            headers=bearer(token),
        )
        assert resp.status_code == 201, resp.get_json()
        ids.append(resp.get_json()["decision_id"])
    return ids


def user(app: Flask, name: str, role: str, **kw: Any) -> Any:
    return create_user(app.extensions["loangate"].engine, name, role, PASSWORD, **kw)


def trail(app: Flask) -> list[Any]:
    with app.extensions["loangate"].engine.connect() as conn:
        return list(
            conn.execute(
                sa.text("select actor, channel, action, result_count from access_trail order by id")
            )
        )


def test_sign_in_search_and_open_a_decision(app: Flask, decided: list[str]) -> None:
    user(app, "alice", "auditor")
    client = app.test_client()
    assert client.get("/console/decisions").status_code == 302  # no session: sign in first
    resp = sign_in(client, "alice")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/console/decisions")
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/console" in cookie

    page = client.get("/console/decisions")
    assert page.status_code == 200
    for decision_id in decided:
        assert f"/console/decisions/{decision_id}" in page.text
    assert "alice (auditor)" in page.text
    filtered = client.get("/console/decisions?application_id=LN-2&outcome=&sort=")
    assert filtered.text.count('href="/console/decisions/01') == 1  # empty fields are ignored

    one = client.get(f"/console/decisions/{decided[0]}")
    assert one.status_code == 200
    assert "<svg" in one.text and 'class="bar base"' in one.text and "model output" in one.text
    assert "german-credit" in one.text

    actions = [(a, c, act) for a, c, act, _ in trail(app)]
    assert ("user:alice", "console", "POST /console/sign-in") in actions
    assert ("user:alice", "console", "GET /console/decisions") in actions
    assert ("user:alice", "console", "GET /console/decisions/<decision_id>") in actions


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # no database-specific path
def test_a_bad_filter_is_named_on_the_page(app: Flask) -> None:
    user(app, "alice", "auditor")
    client = app.test_client()
    sign_in(client, "alice")
    resp = client.get("/console/decisions?min_probability=1' OR '1'='1")
    assert resp.status_code == 400
    assert "min_probability" in resp.text


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # no database-specific path
def test_script_in_an_application_is_inert(app: Flask, decided: list[str]) -> None:
    user(app, "alice", "auditor")
    client = app.test_client()
    sign_in(client, "alice")
    for url in ("/console/decisions", f"/console/decisions/{decided[2]}"):
        resp = client.get(url)
        assert "<script>alert(1)</script>" not in resp.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in resp.text
        policy = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert "<script" not in resp.text  # no script of its own either


def test_personal_values_follow_the_role(app: Flask, decided: list[str]) -> None:
    user(app, "alice", "auditor")
    user(app, "rita", "risk-officer")
    auditor, officer = app.test_client(), app.test_client()
    sign_in(auditor, "alice")
    sign_in(officer, "rita")
    url = f"/console/decisions/{decided[0]}"
    assert "masked (needs pii:read)" in auditor.get(url).text
    assert "masked (needs pii:read)" not in officer.get(url).text


def test_wrong_passwords_lock_the_account(app: Flask) -> None:
    user(app, "alice", "auditor")
    client = app.test_client()
    unknown = sign_in(client, "nobody", "whatever it is")
    assert unknown.status_code == 401
    for _ in range(FREE_FAILURES):
        resp = sign_in(client, "alice", "not the password")
        assert resp.status_code == 401
        assert resp.text.count("try again later") == unknown.text.count("try again later")
    assert sign_in(client, "alice").status_code == 401  # locked, even with the password
    assert client.get("/console/decisions").status_code == 302


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # no database-specific path
def test_totp_is_required_when_set(app: Flask) -> None:
    import pyotp

    _, secret = user(app, "tom", "reviewer", totp=True)
    client = app.test_client()
    assert sign_in(client, "tom").status_code == 401
    assert sign_in(client, "tom", code="000000").status_code in (302, 401)
    ok = sign_in(client, "tom", code=pyotp.TOTP(secret).now())
    assert ok.status_code == 302


def test_csrf_and_sign_out(app: Flask) -> None:
    user(app, "alice", "auditor")
    client = app.test_client()
    sign_in(client, "alice")
    page = client.get("/console/decisions")
    assert client.post("/console/sign-out").status_code == 400  # no token
    assert client.post("/console/sign-out", data={"csrf_token": "x" * 43}).status_code == 400
    assert client.get("/console/decisions").status_code == 200  # still signed in
    cookie = client.get_cookie("loangate_console", path="/console")
    assert cookie is not None
    out = client.post("/console/sign-out", data={"csrf_token": csrf_of(page.text)})
    assert out.status_code == 302
    assert client.get("/console/decisions").status_code == 302

    replayed = app.test_client()  # the cookie copied before sign-out is worth nothing
    replayed.set_cookie("loangate_console", cookie.value, path="/console")
    assert replayed.get("/console/decisions").status_code == 302

    no_token = app.test_client()  # sign-in itself needs the form's token
    assert (
        no_token.post("/console/sign-in", data={"name": "alice", "password": PASSWORD}).status_code
        == 400
    )


@pytest.mark.parametrize("aged", ["idle", "absolute"])
def test_an_expired_session_goes_back_to_sign_in(app: Flask, aged: str) -> None:
    user(app, "alice", "auditor")
    client = app.test_client()
    sign_in(client, "alice")
    engine = app.extensions["loangate"].engine
    table = sessions.sessions
    by = timedelta(minutes=31) if aged == "idle" else timedelta(hours=13)
    column = table.c.last_seen_at if aged == "idle" else table.c.created_at
    with engine.begin() as conn:  # idle: not seen for 31 min; absolute: signed in 13 h ago
        (when,) = conn.execute(sa.select(column)).one()
        conn.execute(sa.update(table).values({column.name: when - by}))
    resp = client.get("/console/decisions?outcome=approve")
    assert resp.status_code == 302
    assert (
        "/console/sign-in?" in resp.headers["Location"] and "expired=1" in resp.headers["Location"]
    )
    assert "Your session ended" in client.get(resp.headers["Location"]).text
    with engine.connect() as conn:
        assert conn.execute(sa.select(table.c.ended_at)).scalar() is not None


def test_a_disabled_account_loses_its_session(app: Flask) -> None:
    from gateway.console.users import set_disabled

    user(app, "alice", "auditor")
    client = app.test_client()
    sign_in(client, "alice")
    set_disabled(app.extensions["loangate"].engine, "alice")
    assert client.get("/console/decisions").status_code == 302
    assert sign_in(client, "alice").status_code == 401


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/v1/decisions"])
def test_sign_in_never_sends_elsewhere(app: Flask, target: str) -> None:
    user(app, "alice", "auditor")
    resp = sign_in(app.test_client(), "alice", next=target)
    assert resp.headers["Location"].endswith("/console/decisions")


def test_export_streams_csv(app: Flask, decided: list[str]) -> None:
    user(app, "alice", "auditor")
    client = app.test_client()
    sign_in(client, "alice")
    resp = client.get("/console/decisions/export?format=csv&pipeline=credit-risk")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert all(d in resp.text for d in decided)
    assert client.get("/console/decisions/export?format=xml").status_code == 400


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # no database-specific path
def test_users_cli(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.console.cli import make_commands

    (group,) = make_commands(lambda: app.extensions["loangate"])
    runner = CliRunner()
    made = runner.invoke(
        group, ["create", "--name", "bob", "--role", "reviewer", "--generate-password"]
    )
    assert made.exit_code == 0, made.output
    password = re.search(r"password: (\S+)", made.output)
    assert password
    assert sign_in(app.test_client(), "bob", password.group(1)).status_code == 302
    bad = runner.invoke(
        group, ["create", "--name", "eve", "--role", "auditor", "--password-stdin"], input="short\n"
    )
    assert bad.exit_code != 0 and "12 characters" in bad.output
    again = runner.invoke(group, ["create", "--name", "bob", "--role", "admin", "--sso-only"])
    assert again.exit_code != 0 and "exists" in again.output
    listed = runner.invoke(group, ["list"])
    assert "bob\treviewer\tactive\tpassword" in listed.output
    assert runner.invoke(group, ["disable", "bob"]).exit_code == 0
    assert "bob\treviewer\tdisabled" in runner.invoke(group, ["list"]).output


contributions = st.dictionaries(
    st.text(min_size=1, max_size=12),
    st.floats(min_value=-5, max_value=5, allow_nan=False),
    min_size=1,
    max_size=30,
)


@given(base=st.floats(min_value=-5, max_value=5, allow_nan=False), parts=contributions)
def test_waterfall_steps_chain_from_base_to_output(base: float, parts: dict[str, float]) -> None:
    output = base + sum(parts.values())
    chart = waterfall(base, parts, output, top=8)
    steps = chart.bars[1:-1]
    assert chart.bars[0].end == base and chart.bars[-1].end == output
    assert len(steps) == min(len(parts), 9)
    level = base
    for bar in steps:
        assert bar.start == pytest.approx(level)
        level = bar.end
    assert level == pytest.approx(output, abs=1e-9)
    for bar in chart.bars:
        assert bar.x >= 0 and bar.x + bar.width <= chart.width + 1


@pytest.fixture
def referred(app: Flask, get_token: Callable[..., str]) -> str:
    """A referred decision (applicant 0 of the demo data is referred by the demo policy)."""
    client = app.test_client()
    token = get_token("decisions:create")
    for i in range(1, 40):
        resp = client.post(
            "/v1/pipelines/credit-risk/decisions",
            json=body(i, application_id=f"REF-{i}"),
            headers=bearer(token),
        )
        if resp.get_json()["outcome"] == "refer":
            return str(resp.get_json()["decision_id"])
    raise AssertionError("no referral among the first applicants")


def test_review_a_referral_with_a_justification(app: Flask, referred: str) -> None:
    user(app, "rob", "reviewer")
    client = app.test_client()
    sign_in(client, "rob")
    queue = client.get("/console/reviews")
    assert queue.status_code == 200 and f"/console/decisions/{referred}/take" in queue.text
    token = csrf_of(queue.text)
    taken = client.post(f"/console/decisions/{referred}/take", data={"csrf_token": token})
    assert taken.status_code == 302 and f"taken={referred}" in taken.headers["Location"]
    assert f"/console/decisions/{referred}/review" in client.get("/console/reviews").text
    url = f"/console/decisions/{referred}/review"
    missing = client.post(url, data={"csrf_token": token, "final_outcome": "approve"})
    assert missing.status_code == 422 and "justification" in missing.text
    done = client.post(
        url,
        data={"csrf_token": token, "final_outcome": "approve", "justification": "Income verified"},
    )
    assert done.status_code == 302 and f"done={referred}" in done.headers["Location"]
    assert f"/console/decisions/{referred}/review" not in client.get("/console/reviews").text
    again = client.post(
        url, data={"csrf_token": token, "final_outcome": "decline", "justification": "again"}
    )
    assert again.status_code == 409
    page = client.get(f"/console/decisions/{referred}")
    assert "Reviewed by user:rob" in page.text and "Income verified" in page.text
    actions = {act for a, c, act, _ in trail(app) if a == "user:rob"}
    assert "POST /console/decisions/<decision_id>/review" in actions


def test_an_auditor_cannot_review_by_page_or_by_request(app: Flask, referred: str) -> None:
    user(app, "alice", "auditor")
    client = app.test_client()
    sign_in(client, "alice")
    page = client.get("/console/decisions")
    assert "Review queue" not in page.text  # not offered
    assert client.get("/console/reviews").status_code == 403
    crafted = client.post(
        f"/console/decisions/{referred}/review",
        data={
            "csrf_token": csrf_of(page.text),
            "final_outcome": "approve",
            "justification": "crafted",
        },
    )
    assert crafted.status_code == 403
    assert "Reviewed by" not in client.get(f"/console/decisions/{referred}").text


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # no database-specific path
def test_the_console_serves_its_own_assets(app: Flask) -> None:
    client = app.test_client()
    page = client.get("/console/sign-in")
    sheets = re.findall(r'<link rel="stylesheet" href="([^"]+)"', page.text)
    assert sheets == ["/console/static/console.css"]
    css = client.get(sheets[0])
    assert css.status_code == 200 and css.mimetype == "text/css"
    assert not re.search(r"https?://", page.text + css.text)  # nothing from elsewhere


def test_models_page_and_admin_stage_changes(app: Flask) -> None:
    engine = app.extensions["loangate"].engine
    reg = app.extensions["loangate"].extras["registry"]
    (champion,) = [i for i in reg.list("german-credit") if i.stage == "champion"]
    user(app, "alice", "auditor")
    user(app, "root", "admin")
    auditor, admin = app.test_client(), app.test_client()
    sign_in(auditor, "alice")
    sign_in(admin, "root")
    page = auditor.get("/console/models")
    assert page.status_code == 200 and "german-credit" in page.text
    assert "Change…" not in page.text  # the action is not offered to an auditor
    url = f"/console/models/german-credit/versions/{champion.version}/stage"
    refused = auditor.post(url, data={"csrf_token": csrf_of(page.text), "stage": "archived"})
    assert refused.status_code == 403  # nor taken from a crafted request

    form = {"csrf_token": csrf_of(admin.get("/console/models").text), "stage": "archived"}
    confirm = admin.post(url, data=form)
    assert confirm.status_code == 200 and "Move german-credit version" in confirm.text
    assert reg.get("german-credit", version=champion.version).stage == "champion"  # not yet
    done = admin.post(url, data={**form, "confirm": "yes", "reason": "drill"})
    assert done.status_code == 302
    assert reg.get("german-credit", version=champion.version).stage == "archived"
    history = admin.get("/console/models").text
    assert "user:root" in history and "drill" in history
    with engine.connect() as conn:
        actions = {r[0] for r in conn.execute(sa.text("select action from access_trail"))}
    assert "POST /console/models/<name>/versions/<int:version>/stage" in actions


def test_integrity_and_plugins_pages(app: Flask, decided: list[str]) -> None:
    from gateway.integrity.sealer import seal_all

    seal_all(app.extensions["loangate"].engine)
    user(app, "alice", "auditor")
    client = app.test_client()
    sign_in(client, "alice")
    page = client.get("/console/integrity")
    assert page.status_code == 200 and "Merkle root" in page.text
    checked = client.get("/console/integrity?verify=1")
    assert "Verified: 3 records" in checked.text
    plugins = client.get("/console/plugins")
    assert plugins.status_code == 200 and "credit-risk" in plugins.text


def test_secrets_are_masked_in_configuration() -> None:
    from gateway.console.admin_pages import masked

    shown = masked(
        {
            "address": "https://core.example",
            "password_env": "CORE_PASSWORD",
            "auth": {"client_secret": "s3cr3t", "token_url": "https://idp"},
            "headers": [{"Authorization": "Basic abc"}],
            "api_key": "",
        }
    )
    assert shown == {
        "address": "https://core.example",
        "password_env": "CORE_PASSWORD",
        "auth": {"client_secret": "••••", "token_url": "https://idp"},
        "headers": [{"Authorization": "••••"}],
        "api_key": "",
    }


def test_replay_evidence_and_notice_from_a_decision(app: Flask, referred: str) -> None:
    from gateway.integrity.sealer import seal_all

    user(app, "alice", "auditor")
    client = app.test_client()
    sign_in(client, "alice")
    page = client.get(f"/console/decisions/{referred}")
    assert f"/console/decisions/{referred}/evidence" in page.text
    assert client.get(f"/console/decisions/{referred}/evidence").status_code == 409  # unsealed
    seal_all(app.extensions["loangate"].engine)
    bundle = client.get(f"/console/decisions/{referred}/evidence")
    assert bundle.status_code == 200 and bundle.get_json()["record"]["columns"]["id"] == referred
    notice = client.get(f"/console/decisions/{referred}/notice")
    assert notice.status_code == 200 and notice.mimetype == "text/html"
    pdf = client.get(f"/console/decisions/{referred}/notice?format=pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    replayed = client.post(
        f"/console/decisions/{referred}/replay", data={"csrf_token": csrf_of(page.text)}
    )
    assert replayed.status_code == 200 and "Reproduced" in replayed.text
    assert client.post(f"/console/decisions/{referred}/replay").status_code == 400  # no CSRF
    actions = {act for a, c, act, _ in trail(app) if c == "console"}
    assert {
        "GET /console/decisions/<decision_id>/evidence",
        "GET /console/decisions/<decision_id>/notice",
        "POST /console/decisions/<decision_id>/replay",
    } <= actions


def _run(kind: str, results: dict[str, Any], alerts: int, minute: int) -> dict[str, Any]:
    from gateway import ids

    at = f"2026-12-0{1 + minute // 60}T10:{minute % 60:02d}:00+00:00"
    return {
        "id": ids.new_id(),
        "kind": kind,
        "pipeline": "credit-risk",
        "model": "german-credit",
        "version": 1,
        "window": {"last": 1000, "since": None, "until": None, "rows": 1000},
        "started_at": at,
        "finished_at": at,
        "results": results,
        "alerts": alerts,
    }


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # no database-specific path
def test_monitoring_page_draws_every_kind_with_its_figures(app: Flask) -> None:
    from gateway.monitoring import runs

    engine = app.extensions["loangate"].engine
    shares = [0.1] * 10
    shifted = [0.02, 0.03, 0.05, 0.1, 0.1, 0.1, 0.1, 0.15, 0.15, 0.2]
    for minute, psi in enumerate([0.01, 0.05, 0.31]):
        feature = {
            "feature": "<b>credit_amount</b>",
            "status": "alert" if psi > 0.2 else None,
            "psi": psi,
            "ks": 0.02,
        }
        score = {
            "feature": "score",
            "psi": psi / 2,
            "ks": 0.01,
            "status": None,
            "reference_shares": shares,
            "window_shares": shifted,
        }
        runs.store(
            engine,
            _run(
                "drift",
                {"rows": 1000, "features": [feature], "score": score},
                int(psi > 0.2),
                minute,
            ),
        )
    bands = [
        {"band": i, "upper": None, "count": 50, "bad_rate": 0.1 * i, "mean_probability": 0.09 * i}
        for i in range(4)
    ]
    runs.store(
        engine,
        _run(
            "performance",
            {
                "outcomes": 200,
                "auc": 0.71,
                "ks": 0.33,
                "brier": 0.18,
                "training": {"auc": 0.78, "ks": 0.4, "brier": 0.17},
                "bands": bands,
                "status": "warn",
            },
            0,
            5,
        ),
    )
    groups = [
        {"group": "A", "decided": 300, "approval_rate": 0.6, "ratio": 1.0},
        {"group": "B", "decided": 250, "approval_rate": 0.42, "ratio": 0.7},
    ]
    runs.store(
        engine,
        _run(
            "fairness",
            {
                "attributes": [
                    {"attribute": "foreign_worker", "groups": groups, "highest_rate": 0.6}
                ]
            },
            1,
            6,
        ),
    )

    user(app, "rita", "risk-officer")
    user(app, "rob", "reviewer")
    officer, reviewer = app.test_client(), app.test_client()
    sign_in(officer, "rita")
    sign_in(reviewer, "rob")
    assert reviewer.get("/console/monitoring").status_code == 403  # no monitoring:read
    page = officer.get("/console/monitoring")
    assert page.status_code == 200
    text = page.text
    assert "<polyline" in text and "&lt;b&gt;credit_amount&lt;/b&gt;" in text
    assert "<b>credit_amount" not in text  # a feature name is text, in the chart too
    assert "Score distribution" in text and ">0.200<" in text  # the window's top decile
    assert "0.7100" in text and "0.7800" in text  # window and training AUC
    assert "observed" in text and ">0.300<" in text  # the calibration table
    assert "foreign_worker" in text and "0.700" in text
    assert text.count("</tr>") > 10


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # no database-specific path
def test_column_headers_sort_and_say_so(app: Flask, decided: list[str]) -> None:
    user(app, "alice", "auditor")
    client = app.test_client()
    sign_in(client, "alice")

    def probabilities(html: str) -> list[float]:
        return [float(p) for p in re.findall(r'<td class="num">(0\.\d{4})</td>', html)]

    def header_link(html: str, label: str) -> str:
        found = re.search(r'<a href="([^"]+)">' + label, html)
        assert found, label
        return found.group(1).replace("&amp;", "&")

    page = client.get("/console/decisions?outcome=&pipeline=credit-risk").text
    assert 'aria-sort="descending"><a href="' in page  # newest first, by default
    by_p = client.get(header_link(page, "Probability")).text
    assert probabilities(by_p) == sorted(probabilities(by_p), reverse=True)
    assert "pipeline=credit-risk" in header_link(by_p, "Probability")  # filters are kept
    ascending = client.get(header_link(by_p, "Probability")).text
    assert probabilities(ascending) == sorted(probabilities(ascending))
    assert 'aria-sort="ascending"' in ascending


def test_a_taken_referral_is_one_reviewers(app: Flask, referred: str) -> None:
    user(app, "rob", "reviewer")
    user(app, "ray", "reviewer")
    rob, ray = app.test_client(), app.test_client()
    sign_in(rob, "rob")
    sign_in(ray, "ray")
    rob_token = csrf_of(rob.get("/console/reviews").text)
    ray_token = csrf_of(ray.get("/console/reviews").text)
    assert (
        rob.post(f"/console/decisions/{referred}/take", data={"csrf_token": rob_token}).status_code
        == 302
    )
    queue = ray.get("/console/reviews").text
    assert "Being reviewed by user:rob" in queue
    assert f"/console/decisions/{referred}/review" not in queue
    second = ray.post(f"/console/decisions/{referred}/take", data={"csrf_token": ray_token})
    assert f"held={referred}" in second.headers["Location"]
    crafted = ray.post(
        f"/console/decisions/{referred}/review",
        data={"csrf_token": ray_token, "final_outcome": "decline", "justification": "mine"},
    )
    assert crafted.status_code == 409 and "user:rob" in crafted.text
    done = rob.post(
        f"/console/decisions/{referred}/review",
        data={"csrf_token": rob_token, "final_outcome": "approve", "justification": "checked"},
    )
    assert done.status_code == 302
    claims = app.extensions["loangate"].extras["review_claims"]
    assert claims.holders([referred]) == {}  # released with the review
    approved = app.test_client()  # an approved decision cannot be taken
    user(app, "rex", "reviewer")
    sign_in(approved, "rex")
    token = csrf_of(approved.get("/console/reviews").text)
    assert (
        approved.post(f"/console/decisions/{referred}/take", data={"csrf_token": token}).status_code
        == 409
    )


def test_an_expired_claim_can_be_taken_by_another(app: Flask, referred: str) -> None:
    from datetime import UTC, datetime

    from gateway.review_claims import CLAIM_TTL

    claims = app.extensions["loangate"].extras["review_claims"]
    assert claims.take(referred, "user:rob").reviewer == "user:rob"
    assert claims.take(referred, "user:ray").reviewer == "user:rob"  # live: rob keeps it
    with app.extensions["loangate"].engine.begin() as conn:
        conn.execute(
            sa.text("update review_claims set claimed_at = :t"),
            {"t": datetime.now(UTC) - CLAIM_TTL - timedelta(minutes=1)},
        )
    assert claims.take(referred, "user:ray").reviewer == "user:ray"
