"""The console's blueprint: sessions, CSRF, headers and roles for every page.

Every page but sign-in needs a live session (:mod:`gateway.console.sessions`); every page
and action checks the scopes of the person's role on the server (:func:`page`), whatever
the page showed them; every state-changing request carries the session's CSRF token; every
page view is recorded in the access trail (channel ``console``), as API reads are. The
pages themselves are in ``*_pages`` modules beside this one, registered by :func:`init_app`.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from typing import Any, TypeVar, cast
from urllib.parse import urlencode

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

from gateway.api.access import audited
from gateway.auth.tokens import Principal
from gateway.console import sessions
from gateway.console.cookie import configure_cookie
from gateway.errors import Problem
from gateway.state import gateway_state

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
PUBLIC = frozenset({"console.sign_in", "console.static", "console.sso", "console.sso_callback"})
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
        return redirect(with_query(url_for(".sign_in"), args))
    g.console = active
    g.principal = Principal(active.actor, active.scopes, "console", None)
    if request.method not in SAFE_METHODS:
        check_csrf(active.csrf_token)
    return None


def check_csrf(expected: str) -> None:
    """Abort with 400 unless the request carries ``expected`` as its CSRF token."""
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
        "sso": bool(gateway_state().extras.get("console_sso")),
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


def through_api(view: Callable[..., Any], scope: str, *args: Any) -> Any:
    """Answer with an API view, the person's session standing in for a bearer token.

    ``view.__wrapped__`` is the view under its token check: it keeps its own ``@audited``
    (recorded with channel ``console``) and its own rules; its problems become pages.
    """
    if scope not in g.console.scopes:
        abort(403, "Your role does not allow this page or action.")
    try:
        return view.__wrapped__(*args)  # type: ignore[attr-defined]
    except Problem as problem:
        abort(problem.status, problem.detail)


def with_query(path: str, args: dict[str, str]) -> str:
    """``path`` with ``args`` as its query string."""
    return f"{path}?{urlencode(args)}" if args else path


def init_app(app: Any) -> None:
    """Register the console on ``app`` with its session cookie's settings."""
    settings = dict(gateway_state(app).config.get("console") or {})
    if not settings.get("enabled", True):
        return
    configure_cookie(app, gateway_state(app), settings)
    # The page modules add their routes to ``bp`` when imported.
    from gateway.console import (  # noqa: F401
        admin_pages,
        auth_pages,
        decision_pages,
        monitoring_pages,
        review_pages,
        sso_pages,
    )

    if settings.get("oidc"):
        sso_pages.install(app, settings["oidc"])

    app.register_blueprint(bp)
