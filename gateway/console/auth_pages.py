"""Signing in and out of the console."""

from __future__ import annotations

import secrets
from typing import Any

import structlog
from flask import (
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from gateway.console import sessions, users
from gateway.console.blueprint import bp, check_csrf, page
from gateway.state import gateway_state

log = structlog.get_logger(__name__)


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
    check_csrf(session["pre_csrf"])
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
