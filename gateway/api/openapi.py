"""``GET /openapi.json``: the OpenAPI 3.1 description of every route.

Built from the running configuration, so each pipeline's request schema is the
one its validator enforces.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app

from gateway import metrics
from gateway.api import audit as audit_api
from gateway.api import batches as batches_api
from gateway.api import comparisons as comparisons_api
from gateway.api import models as models_api
from gateway.api.spec import (
    AUTH_ERRORS,
    RETRY_AFTER_HEADER,
    json_content,
    problem,
    query,
    rate_limited,
)
from gateway.auth.scopes import SCOPES
from gateway.http import json_response
from gateway.monitoring import api as monitoring_api
from gateway.replay.api import REPLAY_REPORT
from gateway.state import gateway_state

bp = Blueprint("openapi", __name__)

_problem = problem
_json = json_content
_query = query

NULLABLE_STR = {"type": ["string", "null"]}
#: The media types of a SOAP envelope (1.1, 1.2): responses and faults alike.
_SOAP_TYPES: dict[str, Any] = {"text/xml": {}, "application/soap+xml": {}}

SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "request_id": {"type": "string"},
            "decision_id": {"type": "string", "description": "the record logged for a rejection"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["pointer", "code", "detail"],
                    "properties": {
                        "pointer": {"type": "string", "description": "JSON pointer to the field"},
                        "code": {"type": "string"},
                        "detail": {"type": "string"},
                    },
                },
            },
        },
    },
    "ReasonCode": {
        "type": "object",
        "required": ["code", "field", "text", "contribution"],
        "properties": {
            "code": {"type": "string"},
            "field": {"type": "string"},
            "text": {"type": "string"},
            "contribution": {"type": "number", "description": "adverse log-odds contribution"},
        },
    },
    "Decision": {
        "type": "object",
        "required": [
            "decision_id",
            "pipeline",
            "status",
            "outcome",
            "probability_of_default",
            "model",
            "reason_codes",
            "explanation",
            "imputations",
            "timings_ms",
        ],
        "properties": {
            "decision_id": {"type": "string", "description": "sortable id (ULID)"},
            "request_id": {"type": "string"},
            "pipeline": {"type": "string"},
            "adapter": {"type": "string"},
            "client_id": {"type": "string"},
            "application_id": NULLABLE_STR,
            "idempotency_key": NULLABLE_STR,
            "received_at": {"type": "string", "format": "date-time"},
            "decided_at": {"type": "string", "format": "date-time"},
            "status": {"enum": ["decided", "rejected", "error"]},
            "status_code": {"type": "integer"},
            "outcome": {"enum": ["approve", "refer", "decline", "rejected", "error"]},
            "probability_of_default": {"type": ["number", "null"]},
            "model": {
                "type": ["object", "null"],
                "properties": {
                    "name": {"type": "string"},
                    "version": {"type": "integer"},
                    "sha256": {"type": "string"},
                    "kind": {"type": "string"},
                },
            },
            "policy": {"type": ["object", "null"]},
            "reason_codes": {"type": "array", "items": {"$ref": "#/components/schemas/ReasonCode"}},
            "explanation": {
                "type": ["object", "null"],
                "properties": {
                    "method": {"type": "string"},
                    "base_value": {"type": "number"},
                    "output": {"type": "number", "description": "log-odds of default"},
                    "contributions": {"type": "object", "additionalProperties": {"type": "number"}},
                    "imputed": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "contributing fields imputed (missing in the request)",
                    },
                },
            },
            "imputations": {"type": "array", "items": {"type": "object"}},
            "enrichments": {"type": "array", "items": {"type": "object"}},
            "errors": {"type": "array", "items": {"type": "object"}},
            "timings_ms": {"type": "object", "additionalProperties": {"type": "number"}},
            "stage_notes": {"type": "object", "additionalProperties": {"type": "string"}},
            "referral_notes": {"type": "array", "items": {"type": "string"}},
            "error": {
                "type": ["object", "null"],
                "description": "for rejections and errors: the problem answered",
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "detail": {"type": "string"},
                },
            },
            "application": {"type": "object", "description": "as received (audit reads only)"},
            "features": {
                "type": "object",
                "description": "as validated and enriched (audit reads only)",
            },
            "links": {"type": "object"},
            "review": {
                "description": "audit reads: the human review, joined at read time",
                "oneOf": [{"$ref": "#/components/schemas/Review"}, {"type": "null"}],
            },
            "loan_outcome": {
                "description": "audit reads: how the loan turned out, joined at read time",
                "oneOf": [{"$ref": "#/components/schemas/LoanOutcome"}, {"type": "null"}],
            },
        },
    },
    "DecisionPage": {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Decision"}},
            "next_cursor": NULLABLE_STR,
        },
    },
    "Review": {
        "type": "object",
        "description": "a reviewer's final outcome for a referred decision (a linked record)",
        "required": [
            "review_id",
            "decision_id",
            "model_outcome",
            "final_outcome",
            "reviewer",
            "justification",
            "reviewed_at",
        ],
        "properties": {
            "review_id": {"type": "string"},
            "decision_id": {"type": "string"},
            "model_outcome": {"const": "refer"},
            "final_outcome": {"enum": ["approve", "decline"]},
            "reviewer": {"type": "string", "description": "client id of the reviewer's token"},
            "justification": {"type": "string", "minLength": 1, "maxLength": 4000},
            "reviewed_at": {"type": "string", "format": "date-time"},
        },
    },
    "ReviewRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["final_outcome", "justification"],
        "properties": {
            "final_outcome": {"enum": ["approve", "decline"]},
            "justification": {"type": "string", "minLength": 1, "maxLength": 4000},
        },
    },
    "ReviewPage": {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["decision", "review"],
                    "properties": {
                        "decision": {"$ref": "#/components/schemas/Decision"},
                        "review": {
                            "oneOf": [{"$ref": "#/components/schemas/Review"}, {"type": "null"}]
                        },
                    },
                },
            },
            "next_cursor": NULLABLE_STR,
        },
    },
    "ReviewReport": {
        "type": "object",
        "required": ["reason_codes", "totals"],
        "properties": {
            "reason_codes": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/OverrideRate"},
            },
            "totals": {
                "allOf": [{"$ref": "#/components/schemas/OverrideRate"}],
                "properties": {"pending": {"type": "integer"}},
            },
        },
    },
    "OverrideRate": {
        "type": "object",
        "required": ["reviewed", "approved", "declined", "override_rate"],
        "properties": {
            "code": {"type": "string"},
            "reviewed": {"type": "integer"},
            "approved": {"type": "integer"},
            "declined": {"type": "integer"},
            "override_rate": {
                "type": ["number", "null"],
                "description": "approved / reviewed: how often reviewers overturned a referral",
            },
        },
    },
    "LoanOutcome": {
        "type": "object",
        "required": ["decision_id", "status", "date", "recorded_by", "recorded_at"],
        "properties": {
            "decision_id": {"type": "string"},
            "status": {"enum": ["repaid", "defaulted"]},
            "date": {"type": "string", "format": "date"},
            "recorded_by": {"type": "string"},
            "recorded_at": {"type": "string", "format": "date-time"},
        },
    },
    "OutcomeRow": {
        "type": "object",
        "additionalProperties": False,
        "required": ["decision_id", "status", "date"],
        "properties": {
            "decision_id": {"type": "string"},
            "status": {"enum": ["repaid", "defaulted"]},
            "date": {"type": "string", "format": "date"},
        },
    },
    "OutcomeBatchResult": {
        "type": "object",
        "required": ["rows", "recorded", "unchanged"],
        "properties": {
            "rows": {"type": "integer"},
            "recorded": {"type": "integer", "description": "outcomes newly recorded"},
            "unchanged": {"type": "integer", "description": "already on record, identical"},
        },
    },
    "Token": {
        "type": "object",
        "required": ["access_token", "token_type", "expires_in"],
        "properties": {
            "access_token": {"type": "string"},
            "token_type": {"const": "Bearer"},
            "expires_in": {"type": "integer"},
            "scope": {"type": "string"},
        },
    },
    "OAuthError": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
    },
}


DECISION_ID = {"name": "decision_id", "in": "path", "required": True, "schema": {"type": "string"}}


def decision_route(summary: str, media_type: str, tag: str) -> dict[str, Any]:
    """The path item of a plugin route that decides one request through ``{pipeline}``.

    ``POST`` with a ``media_type`` body, answered 201 in the same type; scope
    ``decisions:create``; errors as problems. For :func:`gateway.hookspecs.register_openapi_paths`.
    """
    return {
        "post": {
            "summary": summary,
            "tags": [tag],
            "security": [{"bearer": ["decisions:create"]}],
            "parameters": [
                {"name": "pipeline", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}},
            ],
            "requestBody": {"required": True, "content": {media_type: {}}},
            "responses": {
                "201": {"description": "The decision", "content": {media_type: {}}},
                "400": _problem("Malformed request or header"),
                **AUTH_ERRORS,
                "404": _problem("Unknown pipeline, or it does not accept this adapter"),
                "409": _problem("Idempotency key reused with another body"),
                "413": _problem("Body over the size limit"),
                "415": _problem(f"Not {media_type}"),
                "422": _problem("Validation failed (the rejection is logged)"),
                "503": _problem("The decision log is unavailable; retry (Retry-After)"),
            },
        }
    }


def _mapped_xml(summary: str, guide: str) -> dict[str, Any]:
    """A route of an XML adapter driven by a mapping (``mismo``, ``idoc``)."""
    return {
        "post": {
            "summary": summary,
            "description": f"See {guide}. The body is mapped onto the canonical application by "
            "the adapter's mapping file; fields it cannot fill are imputed per the pipeline's "
            "missing-value policy. Errors are problem+json; a mapping error names the source path.",
            "tags": ["decisions"],
            "security": [{"bearer": ["decisions:create"]}],
            "parameters": [
                {"name": "pipeline", "in": "path", "required": True, "schema": {"type": "string"}},
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "maxLength": 200},
                    "description": "Overrides a key the mapping derives from the document.",
                },
            ],
            "requestBody": {"required": True, "content": {"application/xml": {}}},
            "responses": {
                "201": {
                    "description": "The logged decision, shaped by the mapping's output section",
                    "content": {"application/xml": {}},
                },
                "400": _problem("Not well-formed XML, a DTD or entity, or a bad header"),
                **AUTH_ERRORS,
                "404": _problem("Unknown pipeline, or the pipeline does not accept this adapter"),
                "409": _problem("Idempotency key reused with another body"),
                "413": _problem("Body over the size limit"),
                "415": _problem("Not XML"),
                "422": _problem("Mapping or validation failed (logged; names the source path)"),
                "503": _problem("The decision log is unavailable; retry (Retry-After)"),
            },
        }
    }


def build_spec() -> dict[str, Any]:
    """The OpenAPI document for the running gateway."""
    state = gateway_state()
    schemas = dict(SCHEMAS)
    schemas["ReplayReport"] = REPLAY_REPORT
    pipeline_names = sorted(state.extras["pipelines"])
    variants = []
    for name, pipeline in sorted(state.extras["pipelines"].items()):
        applicant = pipeline.input_schema() or {"type": "object"}
        schema_name = f"Application_{name.replace('-', '_')}"
        schemas[schema_name] = {
            "type": "object",
            "additionalProperties": False,
            "required": ["applicant"],
            "properties": {
                "application_id": {"type": "string", "maxLength": 200},
                "applicant": applicant,
            },
        }
        variants.append({"$ref": f"#/components/schemas/{schema_name}"})
    bearer: list[dict[str, list[str]]] = [{"bearer": []}]
    paths: dict[str, Any] = {
        "/oauth/token": {
            "post": {
                "summary": "Client-credentials grant: a signed JWT access token",
                "tags": ["oauth"],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": {
                                "type": "object",
                                "required": ["grant_type"],
                                "properties": {
                                    "grant_type": {"const": "client_credentials"},
                                    "scope": {"type": "string"},
                                    "client_id": {"type": "string"},
                                    "client_secret": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Token"}, "An access token"),
                    "400": _json({"$ref": "#/components/schemas/OAuthError"}, "Bad grant or scope"),
                    "401": _json(
                        {"$ref": "#/components/schemas/OAuthError"}, "Bad client credentials"
                    ),
                },
            }
        },
        "/.well-known/jwks.json": {
            "get": {
                "summary": "Public keys that verify the gateway's access tokens",
                "tags": ["oauth"],
                "responses": {
                    "200": {
                        "description": "A JSON Web Key Set (RFC 7517)",
                        "content": {"application/jwk-set+json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/.well-known/oauth-authorization-server": {
            "get": {
                "summary": "Authorization server metadata (RFC 8414)",
                "tags": ["oauth"],
                "responses": {"200": _json({"type": "object"}, "Server metadata")},
            }
        },
        "/v1/pipelines/{pipeline}/decisions": {
            "post": {
                "summary": "Decide one application",
                "tags": ["decisions"],
                "security": [{"bearer": ["decisions:create"]}],
                "parameters": [
                    {
                        "name": "pipeline",
                        "in": "path",
                        "required": True,
                        "schema": {"enum": pipeline_names},
                    },
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "maxLength": 200},
                        "description": "Same key and body: the same decision, logged once.",
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"oneOf": variants} if len(variants) > 1 else variants[0]
                        }
                    },
                },
                "responses": {
                    "201": _json({"$ref": "#/components/schemas/Decision"}, "The logged decision"),
                    "400": _problem("Malformed JSON or header"),
                    **AUTH_ERRORS,
                    "404": _problem("Unknown pipeline"),
                    "409": _problem("Idempotency key reused with another body"),
                    "413": _problem("Body over the size limit"),
                    "415": _problem("Not JSON"),
                    "422": _problem("Validation failed (the rejection is logged)"),
                    "503": _problem("The decision log is unavailable; retry (Retry-After)"),
                },
            }
        },
        "/v1/decisions/{decision_id}": {
            "get": {
                "summary": "One logged decision, with its inputs",
                "tags": ["audit"],
                "security": [{"bearer": ["decisions:read"]}],
                "parameters": [
                    {
                        "name": "decision_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Decision"}, "The decision record"),
                    **AUTH_ERRORS,
                    "404": _problem("No such decision"),
                },
            }
        },
        "/v1/decisions/{decision_id}/review": {
            "post": {
                "summary": "Record the final outcome of a referred decision (human review)",
                "tags": ["review"],
                "security": [{"bearer": ["decisions:review"]}],
                "parameters": [DECISION_ID],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/ReviewRequest"}
                        }
                    },
                },
                "responses": {
                    "201": _json({"$ref": "#/components/schemas/Review"}, "The review"),
                    "400": _problem("Malformed JSON"),
                    **AUTH_ERRORS,
                    "404": _problem("No such decision"),
                    "409": _problem("Not a referral, or already reviewed"),
                    "415": _problem("Not JSON"),
                    "422": _problem("A member is missing or invalid"),
                },
            }
        },
        "/v1/reviews": {
            "get": {
                "summary": "The review queue: referrals awaiting review (oldest first), or done",
                "tags": ["review"],
                "security": [{"bearer": ["decisions:review"]}],
                "parameters": [
                    _query(
                        "status",
                        {"enum": ["pending", "done"], "default": "pending"},
                        "pending: not yet reviewed, oldest first; done: latest review first",
                    ),
                    _query("cursor", {"type": "string"}, "next_cursor of the previous page"),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size"),
                ],
                "responses": {
                    "200": _json(
                        {"$ref": "#/components/schemas/ReviewPage"}, "A page of the queue"
                    ),
                    "400": _problem("Bad query parameter"),
                    **AUTH_ERRORS,
                },
            }
        },
        "/v1/reviews/report": {
            "get": {
                "summary": "Override rates of reviewed referrals, per reason code",
                "tags": ["review"],
                "security": [{"bearer": ["decisions:read"]}],
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/ReviewReport"}, "The report"),
                    **AUTH_ERRORS,
                },
            }
        },
        "/v1/decisions/{decision_id}/outcome": {
            "post": {
                "summary": "Record how the loan of a granted decision turned out",
                "tags": ["outcomes"],
                "security": [{"bearer": ["outcomes:write"]}],
                "parameters": [DECISION_ID],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["status", "date"],
                                "properties": {
                                    "status": {"enum": ["repaid", "defaulted"]},
                                    "date": {"type": "string", "format": "date"},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/LoanOutcome"}, "Already recorded"),
                    "201": _json({"$ref": "#/components/schemas/LoanOutcome"}, "Recorded"),
                    **AUTH_ERRORS,
                    "404": _problem("No such decision"),
                    "409": _problem("Another outcome is recorded, or the loan was not granted"),
                    "422": _problem("A member is missing or invalid"),
                },
            }
        },
        "/v1/outcomes": {
            "post": {
                "summary": "Record many loan outcomes, all or nothing (JSON list or CSV)",
                "tags": ["outcomes"],
                "security": [{"bearer": ["outcomes:write"]}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/OutcomeRow"},
                            }
                        },
                        "text/csv": {
                            "schema": {
                                "type": "string",
                                "description": "header decision_id,status,date; one row a line",
                            }
                        },
                    },
                },
                "responses": {
                    "200": _json(
                        {"$ref": "#/components/schemas/OutcomeBatchResult"}, "Every row recorded"
                    ),
                    "400": _problem("Malformed JSON or CSV"),
                    **AUTH_ERRORS,
                    "409": _problem("A concurrent upload recorded some rows; retry"),
                    "413": _problem("Too many rows or too large a body"),
                    "415": _problem("Neither JSON nor CSV"),
                    "422": _problem("Invalid rows, each named (/index/field); none recorded"),
                },
            }
        },
        "/v1/decisions/{decision_id}/notice": {
            "get": {
                "summary": "The adverse-action notice of a declined or referred decision",
                "tags": ["audit"],
                "security": [{"bearer": ["decisions:read"]}],
                "parameters": [
                    DECISION_ID,
                    _query("format", {"enum": ["html", "pdf"]}, "default: from Accept, else html"),
                ],
                "responses": {
                    "200": {
                        "description": "The notice",
                        "content": {
                            "text/html": {"schema": {"type": "string"}},
                            "application/pdf": {
                                "schema": {"type": "string", "contentMediaType": "application/pdf"}
                            },
                        },
                    },
                    "400": _problem("Bad format parameter"),
                    **AUTH_ERRORS,
                    "404": _problem("No such decision, or no adverse action (no notice)"),
                },
            }
        },
        "/v1/decisions/{decision_id}/replay": {
            "post": {
                "summary": "Replay one decision with its logged model and policy versions",
                "description": "Re-runs validation, recomputable enrichment, scoring with the "
                "logged model version, explanation and the logged policy version, and compares "
                "the result with the record (docs/auditors.md, Replay). No body; writes nothing.",
                "tags": ["audit"],
                "security": [{"bearer": ["decisions:read"]}],
                "parameters": [DECISION_ID],
                "responses": {
                    "200": _json(
                        {"$ref": "#/components/schemas/ReplayReport"},
                        "reproduced true, false with the differences, or null with a reason",
                    ),
                    **AUTH_ERRORS,
                    "404": _problem("No such decision"),
                },
            }
        },
        "/v1/decisions/{decision_id}/evidence": {
            "get": {
                "summary": "A self-contained evidence bundle (docs/auditors.md)",
                "description": "The record, its Merkle inclusion proof, its checkpoint, the "
                "model version and policy; check offline with `loangate decisions verify "
                "--bundle FILE`.",
                "tags": ["audit"],
                "security": [{"bearer": ["decisions:read"]}],
                "parameters": [DECISION_ID],
                "responses": {
                    "200": _json({"type": "object"}, "The evidence bundle"),
                    **AUTH_ERRORS,
                    "404": _problem("No such decision"),
                    "409": _problem("Logged but not sealed yet: retry after Retry-After"),
                },
            }
        },
        "/v1/integrity": {
            "get": {
                "summary": "Verify the tamper-evident decision log now",
                "description": "Read-only; unsealed rows inside the window count as pending.",
                "tags": ["audit"],
                "security": [{"bearer": ["decisions:read"]}],
                "responses": {
                    "200": _json({"type": "object"}, "The report: ok, first_problem, ..."),
                    **AUTH_ERRORS,
                },
            }
        },
        "/v1/pipelines": {
            "get": {
                "summary": "Configured pipelines and their stages",
                "tags": ["pipelines"],
                "security": bearer,
                "responses": {"200": _json({"type": "object"}, "Pipelines"), **AUTH_ERRORS},
            }
        },
        "/v1/pipelines/{pipeline}": {
            "get": {
                "summary": "One pipeline with its input schema",
                "tags": ["pipelines"],
                "security": bearer,
                "parameters": [
                    {
                        "name": "pipeline",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": _json({"type": "object"}, "A pipeline"),
                    **AUTH_ERRORS,
                    "404": _problem("Unknown pipeline"),
                },
            }
        },
        "/v1/plugins": {
            "get": {
                "summary": "Loaded plugins and their components",
                "tags": ["ops"],
                "security": bearer,
                "responses": {"200": _json({"type": "object"}, "Plugins"), **AUTH_ERRORS},
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness",
                "tags": ["ops"],
                "responses": {"200": _json({"type": "object"}, "Alive")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness (database and models)",
                "tags": ["ops"],
                "responses": {
                    "200": _json({"type": "object"}, "Ready"),
                    "503": _json({"type": "object"}, "Not ready"),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "tags": ["ops"],
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
            }
        },
        "/v1/pipelines/{pipeline}/mismo": _mapped_xml(
            "Decide one MISMO 3.4 loan file", "docs/integration/mismo.md"
        ),
        "/v1/pipelines/{pipeline}/idoc": _mapped_xml(
            "Decide one SAP IDoc (XML-HTTP port); the answer echoes DOCNUM",
            "docs/integration/idoc.md",
        ),
        "/soap/{pipeline}": {
            "parameters": [
                {"name": "pipeline", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "get": {
                "summary": "The pipeline's WSDL (?wsdl): SOAP 1.1 and 1.2 bindings",
                "description": "See docs/integration/soap.md. Faults are SOAP faults, not "
                "problem+json.",
                "tags": ["soap"],
                "responses": {
                    "200": {"description": "WSDL 1.1", "content": {"text/xml": {}}},
                    "500": {
                        "description": "Client fault: no such pipeline",
                        "content": {"text/xml": {}},
                    },
                },
            },
            "post": {
                "summary": "A SOAP request: ScoreApplication or GetDecision",
                "description": "An OAuth bearer token or a WS-Security UsernameToken; "
                "SOAPAction (1.1) or the action parameter (1.2) names the operation.",
                "tags": ["soap"],
                "security": [{"bearer": ["decisions:create"]}, {}],  # {}: WS-Security
                "requestBody": {
                    "required": True,
                    "content": {"text/xml": {}, "application/soap+xml": {}},
                },
                "responses": {
                    "200": {
                        "description": "The response envelope",
                        "content": {"text/xml": {}, "application/soap+xml": {}},
                    },
                    "400": {"description": "SOAP 1.2 Sender fault", "content": _SOAP_TYPES},
                    "413": {
                        "description": "Client/Sender fault: body over the size limit",
                        "content": _SOAP_TYPES,
                    },
                    "429": {
                        "description": "Client/Sender fault: the client is over its rate "
                        "limit; nothing done (Retry-After)",
                        "headers": {"Retry-After": RETRY_AFTER_HEADER},
                    },
                    "500": {
                        "description": "SOAP 1.1 fault, or a SOAP 1.2 Receiver fault",
                        "content": _SOAP_TYPES,
                    },
                },
            },
        },
    }
    paths.update(batches_api.openapi_paths())
    paths.update(models_api.openapi_paths())
    paths.update(monitoring_api.openapi_paths())
    paths.update(comparisons_api.openapi_paths())
    paths.update(metrics.openapi_paths())
    paths.update(audit_api.openapi_paths())
    # Routes that plugins' blueprints add; the gateway's own descriptions win a clash.
    for contributed in state.extras["plugin_manager"].hook.register_openapi_paths():
        for path, item in (contributed or {}).items():
            paths.setdefault(path, item)
    _add_rate_limited(paths)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "loangate",
            "version": current_app.extensions["loangate"].extras.get("version", "0.1.0"),
            "description": "Governed credit decisions for legacy loan systems.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "oauth2",
                    "flows": {
                        "clientCredentials": {
                            "tokenUrl": "/oauth/token",
                            "scopes": dict(SCOPES),
                        }
                    },
                }
            },
        },
    }


def _add_rate_limited(paths: dict[str, Any]) -> None:
    """Every operation behind a bearer token (it answers 401 and 403; the token endpoint
    answers no 403) may answer 429 too: the per-client rate limit applies wherever a
    caller is authenticated, plugins' routes included."""
    for item in paths.values():
        for operation in item.values():
            responses = operation.get("responses") if isinstance(operation, dict) else None
            if isinstance(responses, dict) and {"401", "403"} <= responses.keys():
                responses.setdefault("429", rate_limited())


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 document."""
    return json_response(build_spec())
