"""The console in a real headless Chromium (Debian's), against a real gunicorn gateway.

Marker ``browser``; CI runs it, and there a missing browser fails it. Playwright's own
browser download is not used: pytest-playwright launches ``/usr/bin/chromium`` (the version
pinned Playwright release drives). ``LOANGATE_SCREENSHOTS=docs/img/console`` also saves a
screenshot of every page there (what docs/console.md shows).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from gateway import db
from gateway.console import sessions
from gateway.console.users import create_user
from tests.conftest import IN_CI, make_db_url, register_demo_model
from tests.helpers import body
from tests.servers import Server, start_server, stop_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    if IN_CI:
        pytest.fail("chromium is missing: scripts/ensure-services.sh installs it", pytrace=False)
    pytest.skip("chromium is not installed", allow_module_level=True)

from axe_playwright_python.sync_playwright import Axe  # noqa: E402
from playwright.sync_api import Page, expect  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.xdist_group("browser")]

PASSWORD = "correct horse battery"
SCRIPT = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
SHOTS = os.environ.get("LOANGATE_SCREENSHOTS")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Debian's Chromium, headless; as root it needs --no-sandbox."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": ["--no-sandbox"]}


class Console:
    """A gateway with users and decisions, for the browser."""

    def __init__(self, srv: Server) -> None:
        self.srv = srv
        self.base = f"{srv.base}/console"
        self.engine = db.make_engine(srv.db_url)
        self.decisions: dict[str, str] = {}

    def decide(self, index: int, application_id: str) -> dict[str, Any]:
        token = self.srv.token("decisions:create")
        resp = requests.post(
            f"{self.srv.base}/v1/pipelines/credit-risk/decisions",
            json=body(index, application_id=application_id),
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert resp.status_code == 201, resp.text
        made: dict[str, Any] = resp.json()
        self.decisions[application_id] = made["decision_id"]
        return made


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, trained_model: Any) -> Iterator[Console]:
    url, _ = make_db_url("sqlite", tmp_path_factory)
    tmp = tmp_path_factory.mktemp("console")
    register_demo_model(url, tmp / "models", trained_model)
    srv = start_server(url, tmp, workers=2)
    try:
        con = Console(srv)
        for name, role in [("ada", "auditor"), ("rob", "reviewer"), ("root", "admin")]:
            create_user(con.engine, name, role, PASSWORD)
        con.decide(1, "LN-1001")
        con.decide(2, SCRIPT)
        for i in range(3, 40):  # until one is referred, for the review flow
            if con.decide(i, f"LN-{1000 + i}")["outcome"] == "refer":
                con.decisions["referral"] = con.decisions[f"LN-{1000 + i}"]
                break
        for _ in range(2):  # two drift runs (and the other kinds) for the monitoring page
            subprocess.run(
                [sys.executable, "-m", "gateway.cli", "monitor", "run", "--kind", "all"],
                env={
                    **os.environ,
                    "LOANGATE_DATABASE__URL": url,
                    "LOANGATE_MODELS__DIR": str(tmp / "models"),
                    "LOANGATE_INSTANCE": str(tmp / "instance"),
                },
                check=True,
                capture_output=True,
                timeout=120,
            )
        yield con
    finally:
        stop_server(srv)
        con.engine.dispose()


def sign_in(page: Page, console: Console, name: str) -> None:
    page.goto(f"{console.base}/sign-in")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Decisions", exact=True)).to_be_visible()


def no_serious_violations(page: Page, name: str) -> None:
    """axe-core on the page as shown: nothing serious or critical (and a screenshot)."""
    results = Axe().run(page)
    assert results.response["passes"], "axe-core checked nothing"
    bad = [
        (v["id"], v["impact"], v["help"])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{name}: {bad}"
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def test_three_clicks_from_sign_in_to_an_explanation(page: Page, console: Console) -> None:
    page.goto(f"{console.base}/")
    expect(page).to_have_url(re.compile(r"/console/sign-in"))
    no_serious_violations(page, "sign-in")
    page.get_by_label("Name").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()  # 1
    expect(page.get_by_role("heading", name="Decisions", exact=True)).to_be_visible()
    no_serious_violations(page, "decisions")
    page.get_by_role("row").filter(has_text="LN-1001").get_by_role("link").click()  # 2
    expect(page.get_by_role("heading", name=re.compile("Why"))).to_be_visible()
    chart = page.locator("figure.waterfall svg")
    expect(chart).to_be_visible()
    assert chart.locator("rect").count() >= 3  # base, contributions, output
    expect(page.get_by_role("cell", name="model output", exact=True)).to_be_visible()
    no_serious_violations(page, "decision")


def test_search_filters_and_a_bad_filter(page: Page, console: Console) -> None:
    sign_in(page, console, "ada")
    page.get_by_label("Application id").fill("LN-1001")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("table.decisions tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("LN-1001")
    page.get_by_label("Probability from").fill("1' OR '1'='1")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("alert")).to_contain_text("min_probability")


def test_a_script_in_an_application_stays_text(page: Page, console: Console) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_in(page, console, "ada")
    expect(page.get_by_text(SCRIPT, exact=True).first).to_be_visible()
    page.goto(f"{console.base}/decisions/{console.decisions[SCRIPT]}")
    expect(page.get_by_text(SCRIPT, exact=True).first).to_be_visible()
    assert page.evaluate("window.__xss") is None and not dialogs


def test_the_review_flow(page: Page, console: Console) -> None:
    referral = console.decisions["referral"]
    sign_in(page, console, "rob")
    page.get_by_role("link", name="Review queue").click()
    no_serious_violations(page, "review-queue")
    card = page.locator("article.referral").filter(
        has=page.locator(f'a[href$="/decisions/{referral}"]')
    )
    card.get_by_role("button", name="Take this referral").click()
    expect(page.get_by_role("status")).to_contain_text("You have taken")
    card = page.locator("article.referral").filter(
        has=page.locator(f'a[href$="/decisions/{referral}"]')
    )
    card.get_by_label("approve").check()
    card.get_by_role("button", name="Record the review").click()  # no justification yet
    expect(page).to_have_url(re.compile("/console/reviews"))  # the browser held it back
    card.get_by_label("Justification").fill("Income and employment verified by phone.")
    card.get_by_role("button", name="Record the review").click()
    expect(page.get_by_role("status")).to_contain_text("recorded")
    page.goto(f"{console.base}/decisions/{referral}")
    expect(page.get_by_text("Income and employment verified by phone.")).to_be_visible()
    expect(page.get_by_text("Reviewed by user:rob")).to_be_visible()


def test_an_auditor_is_refused_reviews_and_admin_actions(page: Page, console: Console) -> None:
    sign_in(page, console, "ada")
    expect(page.get_by_role("link", name="Review queue")).to_have_count(0)
    assert page.goto(f"{console.base}/reviews").status == 403
    csrf = page.goto(f"{console.base}/decisions").text()
    token = re.search(r'name="csrf_token" value="([^"]+)"', csrf)
    assert token
    crafted = page.request.post(
        f"{console.base}/decisions/{console.decisions['LN-1001']}/review",
        form={"csrf_token": token.group(1), "final_outcome": "approve", "justification": "x"},
    )
    assert crafted.status == 403

    # The admin actions: not offered on the models page, refused when posted anyway.
    page.goto(f"{console.base}/models")
    expect(page.get_by_role("heading", name="Models")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("Change|Roll back"))).to_have_count(0)
    for action, form in (
        ("/models/german-credit/versions/1/stage", {"stage": "archived", "confirm": "yes"}),
        ("/models/german-credit/rollback", {"confirm": "yes"}),
    ):
        refused = page.request.post(
            console.base + action, form={"csrf_token": token.group(1), **form}
        )
        assert refused.status == 403, action


def test_a_request_without_the_csrf_token_is_refused(page: Page, console: Console) -> None:
    sign_in(page, console, "ada")
    resp = page.request.post(f"{console.base}/sign-out", form={})
    assert resp.status == 400
    page.goto(f"{console.base}/decisions")
    expect(page.get_by_role("heading", name="Decisions", exact=True)).to_be_visible()


def test_an_expired_session_is_sent_back_to_sign_in(page: Page, console: Console) -> None:
    sign_in(page, console, "root")
    with console.engine.begin() as conn:  # every live session idle for 31 minutes
        table = sessions.sessions
        for row in conn.execute(sa.select(table).where(table.c.ended_at.is_(None))):
            seen = row.last_seen_at - timedelta(minutes=31)
            conn.execute(
                sa.update(table).where(table.c.id_hash == row.id_hash).values(last_seen_at=seen)
            )
    page.get_by_role("link", name="Decisions").click()
    expect(page).to_have_url(re.compile(r"/console/sign-in\?.*expired=1"))
    expect(page.get_by_role("status")).to_contain_text("Your session ended")
    page.get_by_label("Name").fill("root")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/console/decisions$"))


def test_every_other_page_is_accessible(page: Page, console: Console) -> None:
    sign_in(page, console, "root")
    page.get_by_role("link", name="Monitoring").click()
    expect(page.get_by_role("heading", name="Drift over time")).to_be_visible()
    expect(page.locator("figure.chart svg").first).to_be_visible()
    no_serious_violations(page, "monitoring")
    page.get_by_role("link", name="Models").click()
    expect(page.get_by_role("heading", name="Models")).to_be_visible()
    no_serious_violations(page, "models")
    page.get_by_role("button", name=re.compile("Change")).first.click()
    expect(page.get_by_role("heading", name="Confirm")).to_be_visible()
    no_serious_violations(page, "confirm")
    page.get_by_role("link", name="Cancel").click()
    page.get_by_role("link", name="Integrity").click()
    page.get_by_role("button", name="Verify the whole log now").click()
    expect(page.get_by_role("status")).to_contain_text("Verified")
    no_serious_violations(page, "integrity")
    page.get_by_role("link", name="Plugins").click()
    expect(page.get_by_role("heading", name="Plugins and pipelines")).to_be_visible()
    no_serious_violations(page, "plugins")
    page.goto(f"{console.base}/decisions/01ARZ3NDEKTSV4RRFFQ69G5FAV")
    expect(page.get_by_role("heading", name="404 Not Found")).to_be_visible()
    no_serious_violations(page, "not-found")


def test_keyboard_only_and_200_percent_zoom(page: Page, console: Console) -> None:
    """Sign in and reach a decision with the keyboard alone; at 200 % zoom (half the CSS
    width) no page scrolls sideways."""
    page.goto(f"{console.base}/sign-in")
    expect(page.get_by_label("Name")).to_be_focused()  # the form takes the focus on load
    page.keyboard.type("ada")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Decisions", exact=True)).to_be_visible()
    page.keyboard.press("Tab")  # from the top: the skip link first
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    link = page.get_by_role("row").filter(has_text="LN-1001").get_by_role("link")
    for _ in range(60):  # Tab through the page until the decision's link has the focus
        if link.evaluate("el => el === document.activeElement"):
            break
        page.keyboard.press("Tab")
    expect(link).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=re.compile("Why"))).to_be_visible()

    page.set_viewport_size({"width": 640, "height": 720})  # 1280 px at 200 %
    for path in ("/decisions", f"/decisions/{console.decisions['LN-1001']}", "/models"):
        page.goto(console.base + path)
        wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert wide <= 1, f"{path} scrolls sideways by {wide} px at 200 %"
