"""The console's pages: a blueprint of the gateway, rendered on the server.

Every page but sign-in needs a live session (:mod:`gateway.console.sessions`); every page
and action checks the scopes of the person's role on the server (:func:`page`), whatever
the page showed them; every state-changing request carries the session's CSRF token; every
page view is recorded in the access trail (channel ``console``), as API reads are.
"""

from __future__ import annotations

import functools
import hmac
import re
import secrets
from collections.abc import Callable
from typing import Any, TypeVar, cast
from urllib.parse import urlencode

import orjson
import structlog
from flask import (
    Blueprint,
    Response,
    abort,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.exceptions import HTTPException

from gateway import ids
from gateway.api.access import audited
from gateway.api.models import change_stage, describe, registry, roll_back
from gateway.api.reviews import parse_review, review_log
from gateway.auth.tokens import Principal
from gateway.console import sessions, users
from gateway.console.charts import waterfall
from gateway.console.cookie import configure_cookie
from gateway.decision_export import FORMATS, export_chunks
from gateway.decision_query import (
    FILTERS,
    OUTCOMES,
    PAGING,
    SORTING,
    SORTS,
    DecisionQuery,
    QueryError,
    parse_query,
)
from gateway.errors import Problem
from gateway.integrity.background import settings as integrity_settings
from gateway.integrity.sealer import head
from gateway.integrity.verify import verify
from gateway.personal.views import documents_for_caller
from gateway.registry import STAGES
from gateway.reviews import FINAL_OUTCOMES
from gateway.state import gateway_state

log = structlog.get_logger(__name__)

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

F = TypeVar("F", bound=Callable[..., Any])

#: Endpoints reachable without a session.
PUBLIC = frozenset({"console.sign_in", "console.static"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: No inline script or style, nothing from elsewhere, no framing (docs/console.md).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
PAGE_SIZE = 50


def console_settings() -> dict[str, Any]:
    """The ``console`` section of the configuration."""
    return dict(gateway_state().config.get("console") or {})


def _settings() -> sessions.SessionSettings:
    return sessions.SessionSettings.from_config(console_settings())


@bp.before_request
def _require_session() -> Any:
    g.trail_channel = "console"
    if request.endpoint in PUBLIC:
        return None
    sid = session.get("sid")
    active = sessions.load(gateway_state().engine, sid, _settings()) if sid else None
    if active is None:
        session.clear()
        target = request.full_path if request.method in SAFE_METHODS else None
        args = {"next": target.rstrip("?")} if target else {}
        if sid:
            args["expired"] = "1"
        return redirect(_with_query(url_for(".sign_in"), args))
    g.console = active
    g.principal = Principal(active.actor, active.scopes, "console", None)
    if request.method not in SAFE_METHODS:
        _check_csrf(active.csrf_token)
    return None


def _with_query(path: str, args: dict[str, str]) -> str:
    return f"{path}?{urlencode(args)}" if args else path


def _check_csrf(expected: str) -> None:
    sent = request.form.get("csrf_token", "") or request.headers.get("X-CSRF-Token", "")
    if not sent or not hmac.compare_digest(sent, expected):
        abort(400, "The form is missing its CSRF token or it does not match: reload the page.")


@bp.after_request
def _security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    if request.endpoint != "console.static":
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(HTTPException)
def _error_page(exc: HTTPException) -> tuple[str, int]:
    code = exc.code or 500
    page = render_template("console/error.html", code=code, name=exc.name, detail=exc.description)
    return page, code


@bp.context_processor
def _template_globals() -> dict[str, Any]:
    active = g.get("console")
    return {
        "me": active,
        "csrf_token": active.csrf_token if active else session.get("pre_csrf", ""),
        "can": (lambda scope: bool(active) and scope in active.scopes),
    }


def page(*scopes: str) -> Callable[[F], F]:
    """View decorator: the person's role must hold ``scopes`` (403 otherwise), and a
    successful view is recorded in the access trail."""
    needed = frozenset(scopes)

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            if not g.console.scopes.issuperset(needed):
                abort(403, "Your role does not allow this page or action.")
            return view(*args, **kwargs)

        wrapper = audited(checked)
        wrapper.required_scopes = needed  # type: ignore[attr-defined]
        return cast(F, wrapper)

    return decorator


def _safe_next(target: str | None) -> str:
    """A console path to go to after sign-in; anything else (another site) is ignored."""
    if target and target.startswith("/console/") and not target.startswith("//"):
        return target
    return url_for(".decisions")


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Any:
    """Sign in with a name, a password and, when the account has one, a TOTP code."""
    if "pre_csrf" not in session:
        session["pre_csrf"] = secrets.token_urlsafe(32)
    target = request.values.get("next")
    if request.method == "GET":
        notice = "Your session ended; sign in again." if request.args.get("expired") else None
        return render_template("console/sign_in.html", next=target, notice=notice)
    _check_csrf(session["pre_csrf"])
    engine = gateway_state().engine
    name = request.form.get("name", "")
    try:
        user = users.sign_in(
            engine, name, request.form.get("password", ""), request.form.get("code", "")
        )
    except users.SignInRefused as refused:
        log.info("console_sign_in_refused", reason=refused.reason)
        return render_template("console/sign_in.html", next=target, error=str(refused)), 401
    sid, _csrf = sessions.start(engine, user.name)
    session.clear()  # a new cookie: nothing from before sign-in is carried over
    session["sid"] = sid
    gateway_state().extras["access_trail"].record(
        actor=f"user:{user.name}",
        channel="console",
        action="POST /console/sign-in",
        params={"role": user.role},
        request_id=g.get("request_id"),
    )
    return redirect(_safe_next(target))


@bp.post("/sign-out")
@page()
def sign_out() -> Any:
    """End the session on the server and drop the cookie."""
    sessions.end(gateway_state().engine, session["sid"])
    session.clear()
    return redirect(url_for(".sign_in"))


@bp.get("/")
@page()
def home() -> Any:
    """The console's start: the decisions search."""
    return redirect(url_for(".decisions"))


def _filters() -> dict[str, str]:
    """The query string without empty fields (a form sends every field, filled or not)."""
    return {k: v for k, v in request.args.items() if v.strip()}


def _query(allowed: tuple[str, ...]) -> tuple[DecisionQuery | None, str | None]:
    try:
        return parse_query(_filters(), allowed), None
    except QueryError as exc:
        return None, f"{exc.name}: {exc.detail}"


@bp.get("/decisions")
@page("decisions:read")
def decisions() -> Any:
    """Search the decision log with every filter of the API, sorted and paged."""
    args = _filters()
    args.setdefault("limit", str(PAGE_SIZE))
    query, error = None, None
    try:
        query = parse_query(args, (*FILTERS, *SORTING, *PAGING))
    except QueryError as exc:
        error = f"{exc.name}: {exc.detail}"
    items: list[dict[str, Any]] = []
    next_url = None
    if query is not None:
        documents, cursor = gateway_state().extras["decision_log"].query(query)
        items = [orjson.loads(d) for d in documents_for_caller(documents)]
        g.trail_params, g.trail_result_count = query.as_params(), len(items)
        if cursor:
            next_url = _with_query(url_for(".decisions"), {**args, "cursor": cursor})
    keep = {k: v for k, v in args.items() if k not in PAGING}
    body = render_template(
        "console/decisions.html",
        items=items,
        error=error,
        args=keep,
        next_url=next_url,
        outcome_options=[("", "any"), *((o, o) for o in OUTCOMES)],
        sort_options=[("", "time received"), *((s, s.replace("_", " ")) for s in SORTS[1:])],
        order_options=[("", "newest or highest first"), ("asc", "oldest or lowest first")],
        export_csv=_with_query(url_for(".export"), {**keep, "format": "csv"}),
        export_parquet=_with_query(url_for(".export"), {**keep, "format": "parquet"}),
    )
    return (body, 400) if error else body


@bp.get("/decisions/export")
@page("decisions:read")
def export() -> Any:
    """The matching records as a streamed CSV or Parquet file, as the API's export."""
    query, error = _query((*FILTERS, *SORTING, "format"))
    fmt = request.args.get("format", "csv")
    if error or query is None or fmt not in FORMATS:
        abort(400, error or "format: one of " + ", ".join(FORMATS))
    g.trail_params = {**query.as_params(), "format": fmt}
    return Response(
        export_chunks(gateway_state().engine, query, fmt),
        mimetype=FORMATS[fmt],
        headers={"Content-Disposition": f'attachment; filename="decisions.{fmt}"'},
    )


@bp.get("/decisions/<decision_id>")
@page("decisions:read")
def decision(decision_id: str) -> Any:
    """One decision: the application, how it was validated and enriched, the model, the
    contributions as a waterfall, reason codes, policy, timings, review and loan outcome."""
    if not ids.is_valid(decision_id):
        abort(404, "No such decision.")
    state = gateway_state()
    stored = state.extras["decision_log"].get(decision_id)
    if stored is None:
        abort(404, "No such decision.")
    (shown,) = documents_for_caller([stored.document])
    doc = orjson.loads(shown)
    review = state.extras["reviews"].get(decision_id)
    outcome = state.extras["outcomes"].get(decision_id)
    explanation = doc.get("explanation")
    chart = None
    if explanation and explanation.get("contributions"):
        chart = waterfall(
            explanation["base_value"], explanation["contributions"], explanation["output"]
        )
    g.trail_result_count = 1
    imputed = {i.get("field") for i in doc.get("imputations") or ()}
    return render_template(
        "console/decision.html",
        d=doc,
        chart=chart,
        imputed=imputed,
        review=review.as_dict() if review else None,
        loan_outcome=outcome.as_dict() if outcome else None,
    )


@bp.get("/reviews")
@page("decisions:review")
def reviews() -> Any:
    """The review queue: referred decisions awaiting a reviewer, oldest first."""
    cursor = request.args.get("cursor") or None
    try:
        items, next_cursor = review_log().queue(False, cursor, PAGE_SIZE, documents_for_caller)
    except ValueError:
        abort(400, "cursor: not a cursor of this queue")
    queue = [orjson.loads(item)["decision"] for item in items]
    g.trail_result_count = len(queue)
    next_url = _with_query(url_for(".reviews"), {"cursor": next_cursor}) if next_cursor else None
    return render_template(
        "console/reviews.html",
        queue=queue,
        next_url=next_url,
        outcomes=FINAL_OUTCOMES,
        done=request.args.get("done"),
    )


@bp.post("/decisions/<decision_id>/review")
@page("decisions:review")
def review(decision_id: str) -> Any:
    """Decide a referral: a final outcome and a justification, both required."""
    if not ids.is_valid(decision_id):
        abort(404, "No such decision.")
    form = {k: request.form.get(k, "") for k in ("final_outcome", "justification")}
    try:
        outcome, justification = parse_review(form)
        review_log().submit(decision_id, g.console.actor, outcome, justification)
    except Problem as problem:
        reasons = "; ".join(f"{e.pointer.lstrip('/')}: {e.detail}" for e in problem.errors)
        abort(problem.status if problem.status < 500 else 400, reasons or problem.detail)
    g.trail_params = {"decision_id": decision_id, "final_outcome": outcome}
    return redirect(_with_query(url_for(".reviews"), {"done": decision_id}))


@bp.get("/models")
@page("decisions:read")
def models() -> Any:
    """Registered model versions: stage, metrics, provenance; stage changes for admins."""
    infos = registry().list(None)
    g.trail_result_count = len(infos)
    return render_template(
        "console/models.html",
        versions=[describe(i) for i in infos],
        history={name: registry().history(name) for name in sorted({i.name for i in infos})},
        stages=STAGES,
        done=request.args.get("done"),
    )


@bp.post("/models/<name>/versions/<int:version>/stage")
@page("models:admin")
def model_stage(name: str, version: int) -> Any:
    """Move a version to a stage, after a confirmation page (``confirm=yes``)."""
    stage, reason = request.form.get("stage", ""), request.form.get("reason", "").strip()
    if stage not in STAGES:
        abort(400, "stage: one of " + ", ".join(STAGES))
    if request.form.get("confirm") != "yes":
        what = f"Move {name} version {version} to {stage}?"
        return render_template("console/confirm.html", what=what, form=dict(request.form))
    try:
        change_stage(name, version, stage, g.console.actor, reason or None)
    except Problem as problem:
        abort(problem.status, problem.detail)
    g.trail_params = {"name": name, "version": version, "stage": stage}
    return redirect(_with_query(url_for(".models"), {"done": f"{name} v{version}: {stage}"}))


@bp.post("/models/<name>/rollback")
@page("models:admin")
def model_rollback(name: str) -> Any:
    """Make the previous champion the champion again, after a confirmation page."""
    if request.form.get("confirm") != "yes":
        what = f"Make the previous champion of {name} the champion again?"
        return render_template("console/confirm.html", what=what, form=dict(request.form))
    try:
        changed = roll_back(name, g.console.actor)
    except Problem as problem:
        abort(problem.status, problem.detail)
    g.trail_params = {"name": name, "rollback": True}
    done = f"{name} v{changed.version}: champion again"
    return redirect(_with_query(url_for(".models"), {"done": done}))


@bp.get("/integrity")
@page("decisions:read")
def integrity() -> Any:
    """The log's tamper evidence: verify status and the last checkpoint; verify on demand."""
    state = gateway_state()
    report = None
    if request.args.get("verify"):
        late = integrity_settings(state.config)["late_after_seconds"]
        report = verify(state.engine, late_after=late).as_dict()
    with state.engine.connect() as conn:
        last = head(conn)
    return render_template(
        "console/integrity.html", report=report, last=last.as_dict() if last else None
    )


@bp.get("/plugins")
@page("decisions:read")
def plugins() -> Any:
    """What is loaded, and how each pipeline is configured (secrets masked)."""
    state = gateway_state()
    pipelines = [masked(p.describe()) for p in state.extras["pipelines"].values()]
    return render_template(
        "console/plugins.html", plugins=state.extras["plugins"], pipelines=pipelines
    )


#: A configuration key ending in one of these words (or holding "password" or "secret")
#: has its value hidden; a key ending ``_env`` names a variable, which is shown.
SECRET_WORDS = frozenset({"password", "secret", "token", "key", "credentials", "authorization"})


def _secret_key(key: str) -> bool:
    parts = [p for p in re.split(r"[^a-z0-9]+", key.lower()) if p]
    if not parts or parts[-1] == "env":
        return False
    return parts[-1] in SECRET_WORDS or any("password" in p or "secret" in p for p in parts)


def masked(value: Any, key: str = "") -> Any:
    """``value`` with every secret-looking member replaced by ``"••••"``, recursively."""
    if _secret_key(key):
        return "••••" if value not in (None, "", [], {}) else value
    if isinstance(value, dict):
        return {k: masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


def init_app(app: Any) -> None:
    """Register the console on ``app`` with its session cookie's settings."""
    settings = dict(gateway_state(app).config.get("console") or {})
    if not settings.get("enabled", True):
        return
    configure_cookie(app, gateway_state(app), settings)
    app.register_blueprint(bp)
