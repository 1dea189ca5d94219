"""The model registry over HTTP: versions, their metadata and history, promotion.

Reading needs ``decisions:read`` (auditors read what scored a decision); changing a
stage needs ``models:admin``. A promotion is checked against
this process's pipelines first (a version they cannot score with is refused, 409)
and takes effect in every server process within ``models.refresh_seconds``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from gateway.auth import current_principal, require_scopes
from gateway.errors import FieldError, Problem, not_found, validation_failed
from gateway.http import json_response
from gateway.registry import STAGES, ModelNotFound, ModelRegistry, ModelVersionInfo
from gateway.state import gateway_state

from .inputs import json_body, query_error
from .spec import AUTH_ERRORS, json_content, path_param, problem, query

bp = Blueprint("models", __name__)

#: Metadata members summarised in listings (the full metadata is on the version's page).
SUMMARY = ("metrics", "training_data", "explainer")
MAX_REASON = 1000
#: The largest version number the registry can hold (a 32-bit INTEGER column).
MAX_VERSION = 2**31 - 1


def registry() -> ModelRegistry:
    found: ModelRegistry = gateway_state().extras["registry"]
    return found


def describe(info: ModelVersionInfo, *, full: bool = False) -> dict[str, Any]:
    """A version as the API shows it: identity, stage, provenance, and its metadata."""
    meta = info.metadata
    body: dict[str, Any] = {
        "name": info.name,
        "version": info.version,
        "kind": info.kind,
        "stage": info.stage,
        "sha256": info.sha256,
        "created_at": info.created_at.isoformat(),
        "created_by": info.created_by,
        "features": [f.get("name") for f in meta.get("features", ())],
        "reason_code_table": (meta.get("reason_codes") or {}).get("version"),
        "training_data_sha256": (meta.get("training_data") or {}).get("sha256"),
        "metrics": meta.get("metrics"),
        "links": {"self": f"/v1/models/{info.name}/versions/{info.version}"},
    }
    if full:
        body["metadata"] = meta
    return body


def _version(name: str, version: int) -> ModelVersionInfo:
    # The route takes any digits; the column holds a 32-bit integer, and a number past it
    # would fail in the database driver (an overflow), not find nothing.
    if not 0 < version <= MAX_VERSION:
        raise not_found(f"model {name!r} has no version {version}")
    try:
        return registry().get(name, version=version)
    except ModelNotFound as exc:
        raise not_found(str(exc)) from None


@bp.get("/v1/models")
@require_scopes("decisions:read")
def list_models() -> Response:
    """Every registered version, by name then version (``name`` filters)."""
    for key in request.args:
        if key != "name":
            raise query_error(key, "unknown parameter")
    infos = registry().list(request.args.get("name"))
    return json_response({"items": [describe(i) for i in infos]})


@bp.get("/v1/models/<name>/versions/<int:version>")
@require_scopes("decisions:read")
def get_version(name: str, version: int) -> Response:
    """One version with its whole metadata (reference profile, metrics, parameters...)."""
    return json_response(describe(_version(name, version), full=True))


@bp.get("/v1/models/<name>/history")
@require_scopes("decisions:read")
def history(name: str) -> Response:
    """Every stage change of the model's versions, oldest first."""
    events = registry().history(name)
    if not events:
        raise not_found(f"no model named {name!r} is registered")
    return json_response({"name": name, "events": events})


def parse_stage_change(doc: Any) -> tuple[str, str | None]:
    """``(stage, reason)`` from a stage-change body; a 422 naming each bad member."""
    if not isinstance(doc, dict):
        raise validation_failed((FieldError("", "type", "the body must be a JSON object"),))
    errors = [
        FieldError(f"/{str(k)[:50]}", "unknown", "unknown member")
        for k in doc
        if k not in ("stage", "reason")
    ]
    stage, reason = doc.get("stage"), doc.get("reason")
    if stage not in STAGES:
        errors.append(FieldError("/stage", "enum", f"must be one of {list(STAGES)}"))
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
        errors.append(FieldError("/reason", "type", f"must be text of at most {MAX_REASON}"))
    if errors:
        raise validation_failed(tuple(errors))
    return str(stage), reason


def _refused(info: ModelVersionInfo, problems: list[str]) -> Problem:
    return Problem(
        409,
        "model-not-usable",
        "The pipelines cannot score with this version",
        f"{info.name} v{info.version}: " + "; ".join(problems),
    )


def change_stage(
    name: str, version: int, stage: str, actor: str, reason: str | None = None
) -> ModelVersionInfo:
    """Move a version to ``stage`` for ``actor`` (the API's route and the console's action):
    a 404 or 409 :class:`Problem` when the version is unknown or cannot score."""
    reg = registry()
    info = _version(name, version)
    if stage in ("champion", "challenger"):
        problems = reg.followers.problems(reg.load(info), stage)
        if problems:
            raise _refused(info, problems)
    changed = reg.set_stage(name, version, stage, changed_by=actor, reason=reason)
    reg.followers.refresh()  # this process at once; the others within refresh_seconds
    return changed


def roll_back(name: str, actor: str) -> ModelVersionInfo:
    """Make the previous champion of ``name`` the champion again (a 404 without one)."""
    reg = registry()
    try:
        changed = reg.rollback(name, changed_by=actor)
    except ModelNotFound as exc:
        raise not_found(str(exc)) from None
    reg.followers.refresh()
    return changed


@bp.post("/v1/models/<name>/versions/<int:version>/stage")
@require_scopes("models:admin")
def set_stage(name: str, version: int) -> Response:
    """Move a version to a stage; a new champion archives the previous one."""
    stage, reason = parse_stage_change(json_body())
    changed = change_stage(name, version, stage, current_principal().client_id, reason)
    return json_response(describe(changed))


@bp.post("/v1/models/<name>/rollback")
@require_scopes("models:admin")
def rollback(name: str) -> Response:
    """Make the previous champion the champion again."""
    return json_response(describe(roll_back(name, current_principal().client_id)))


def openapi_paths() -> dict[str, Any]:
    """The OpenAPI description of these routes (merged by :mod:`gateway.api.openapi`)."""
    version_schema = {
        "type": "object",
        "required": ["name", "version", "kind", "stage", "sha256", "created_at", "created_by"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "integer"},
            "kind": {"type": "string"},
            "stage": {"enum": list(STAGES)},
            "sha256": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "created_by": {"type": "string"},
            "features": {"type": "array", "items": {"type": "string"}},
            "reason_code_table": {"type": ["string", "null"]},
            "training_data_sha256": {"type": ["string", "null"]},
            "metrics": {"type": ["object", "null"]},
            "metadata": {"type": "object", "description": "the whole metadata (one version)"},
            "links": {"type": "object"},
        },
    }
    name = path_param("name")
    version = path_param("version", {"type": "integer", "minimum": 1, "maximum": MAX_VERSION})
    read = {"tags": ["models"], "security": [{"bearer": ["decisions:read"]}]}
    admin = {"tags": ["models"], "security": [{"bearer": ["models:admin"]}]}
    changed = json_content(version_schema, "The version after the change")
    return {
        "/v1/models": {
            "get": {
                **read,
                "summary": "Registered model versions",
                "parameters": [query("name", {"type": "string"}, "only this model")],
                "responses": {
                    "200": json_content(
                        {"type": "object", "properties": {"items": {"type": "array"}}},
                        "Every version",
                    ),
                    "400": problem("Unknown parameter"),
                    **AUTH_ERRORS,
                },
            }
        },
        "/v1/models/{name}/versions/{version}": {
            "get": {
                **read,
                "summary": "One model version with its whole metadata",
                "parameters": [name, version],
                "responses": {
                    "200": json_content(version_schema, "The version"),
                    **AUTH_ERRORS,
                    "404": problem("No such version"),
                },
            }
        },
        "/v1/models/{name}/history": {
            "get": {
                **read,
                "summary": "Every stage change of a model's versions (who, when, why)",
                "parameters": [name],
                "responses": {
                    "200": json_content({"type": "object"}, "The history"),
                    **AUTH_ERRORS,
                    "404": problem("No such model"),
                },
            }
        },
        "/v1/models/{name}/versions/{version}/stage": {
            "post": {
                **admin,
                "summary": "Promote, demote or archive a version; every worker follows",
                "parameters": [name, version],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["stage"],
                                "properties": {
                                    "stage": {"enum": list(STAGES)},
                                    "reason": {"type": "string", "maxLength": MAX_REASON},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": changed,
                    "400": problem("Malformed JSON"),
                    **AUTH_ERRORS,
                    "404": problem("No such version"),
                    "409": problem("The pipelines cannot score with this version"),
                    "415": problem("Not JSON"),
                    "422": problem("A member is missing or invalid"),
                },
            }
        },
        "/v1/models/{name}/rollback": {
            "post": {
                **admin,
                "summary": "Make the previous champion the champion again",
                "parameters": [name],
                "responses": {
                    "200": changed,
                    **AUTH_ERRORS,
                    "404": problem("No champion before the current one"),
                },
            }
        },
    }
