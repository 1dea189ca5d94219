"""Recording reads of decisions in the access trail: the ``@audited`` view decorator.

Put it under :func:`~gateway.auth.require_scopes` on every route that reads decisions::

    @bp.get("/v1/decisions/<decision_id>")
    @require_scopes("decisions:read")
    @audited
    def get_decision(decision_id): ...

A successful answer (status below 400) is recorded, with the token's subject, the route,
the parameters and, when the view sets ``g.trail_result_count``, how many records it
returned, before it leaves; a streamed body is recorded before its first byte. If the
record cannot be written the reader gets a 503 instead of the data. A view may set
``g.trail_params`` to record its parsed query instead of the raw query string.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import current_app, g, request

from gateway.access_trail import AccessTrail
from gateway.auth import current_principal
from gateway.decision_log import LogUnavailable
from gateway.state import gateway_state

F = TypeVar("F", bound=Callable[..., Any])


def _params() -> dict[str, Any]:
    params = g.get("trail_params")
    if params is not None:
        return dict(params)
    return {**(request.view_args or {}), **{name: request.args[name] for name in request.args}}


def audited(view: F) -> F:
    """View decorator: record each successful read in the access trail (see the module)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        response = current_app.make_response(view(*args, **kwargs))
        if response.status_code >= 400:
            return response
        trail: AccessTrail = gateway_state().extras["access_trail"]
        rule = request.url_rule.rule if request.url_rule else request.path
        try:
            trail.record(
                actor=current_principal().client_id,
                channel=g.get("trail_channel", "api"),  # "console" for console pages
                action=f"{request.method} {rule}",
                params=_params(),
                result_count=g.get("trail_result_count"),
                request_id=g.get("request_id"),
            )
        except LogUnavailable:
            response.close()  # a streamed body's cursor is released, nothing is sent
            raise
        return response

    return cast(F, wrapper)
