"""Batch files over HTTP: upload one as a job, follow its status, download its decisions.

- ``POST /v1/pipelines/<pipeline>/batches`` (``batches:create``): the body is the file
  (CSV, Parquet, COBOL fixed-width with ``?copybook=<name>``, MISMO XML or a ZIP of MISMO
  files), streamed to the instance folder under ``batch.max_upload_bytes``; 202 with
  ``Location: /v1/batches/<id>``. The job runs in a thread of the accepting process.
- ``GET /v1/batches/<id>`` and ``GET /v1/batches/<id>/output``: the client that submitted
  the job, or an auditor (``decisions:read``, who may read every decision anyway). Anyone
  else gets 404, as for a job that does not exist.

Copybooks and mappings are named, never given as paths: a name resolves to a file directly
in ``config/copybooks/`` or ``config/mappings/`` (:func:`gateway.batch.jobs.resolve_name`).
"""

from __future__ import annotations

import hashlib
import re

from flask import Blueprint, Response, g, request, send_file

from gateway import ids
from gateway.auth import authenticate, current_principal, require_scopes
from gateway.auth.resource import insufficient_scope
from gateway.batch.copybook import ENCODINGS
from gateway.batch.jobs import (
    COPYBOOK_SUFFIXES,
    MAPPING_SUFFIXES,
    Job,
    JobSpec,
    batch_settings,
    job_context,
    known_names,
    new_owner,
    open_copybook,
    open_mapping,
    start_job_thread,
)
from gateway.batch.runner import OUTPUT_FORMATS
from gateway.batch.uploads import check_upload
from gateway.errors import ConfigError, Problem, bad_request, not_found
from gateway.http import json_response
from gateway.state import gateway_state

from .access import audited
from .inputs import query_error, unsupported_media_type

bp = Blueprint("batches", __name__)

#: Content type of the body -> the file's format.
FORMATS_BY_TYPE = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "application/octet-stream": "fixed",
    "application/xml": "mismo",
    "text/xml": "mismo",
    "application/zip": "mismo",
    "application/x-zip-compressed": "mismo",
}
OUTPUT_TYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
QUERY_PARAMS = ("copybook", "mapping", "encoding", "output")
DEFAULT_MISMO_MAPPING = "mismo-3.4"
_JOB_ID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
BLOCK = 1 << 20
STRING = {"type": "string"}


def _format() -> str:
    mimetype = request.mimetype or ""
    fmt = FORMATS_BY_TYPE.get(mimetype) or ("mismo" if mimetype.endswith("+xml") else None)
    if fmt is None:
        raise unsupported_media_type("one of: " + ", ".join(sorted(FORMATS_BY_TYPE)))
    return fmt


@bp.post("/v1/pipelines/<pipeline>/batches")
@require_scopes("batches:create")
def create_batch(pipeline: str) -> Response:
    """Accept a batch file as a job: 202, ``Location: /v1/batches/<id>``."""
    state = gateway_state()
    built = state.extras["pipelines"].get(pipeline)
    if built is None:
        raise not_found(f"No pipeline named {pipeline!r}.")
    args = request.args
    for name in args:
        if name not in QUERY_PARAMS:
            raise query_error(name, "unknown parameter; allowed: " + ", ".join(QUERY_PARAMS))
    fmt = _format()
    encoding = args.get("encoding", "cp037")
    if encoding not in ENCODINGS:
        raise query_error("encoding", f"must be one of {', '.join(ENCODINGS)}")
    output_format = args.get("output", "csv")
    if output_format not in OUTPUT_FORMATS:
        raise query_error("output", f"must be one of {', '.join(OUTPUT_FORMATS)}")
    copybook_name = args.get("copybook")
    if fmt == "fixed" and copybook_name is None:
        raise query_error("copybook", "a fixed-width file needs a copybook (a name)")
    if fmt != "fixed" and copybook_name is not None:
        raise query_error("copybook", "only a fixed-width file takes a copybook")
    mapping_name = args.get("mapping") or (DEFAULT_MISMO_MAPPING if fmt == "mismo" else None)
    try:
        copybook = open_copybook(state.config_dir, copybook_name)
    except ValueError:
        known = ", ".join(known_names(state.config_dir / "copybooks", COPYBOOK_SUFFIXES))
        raise query_error("copybook", f"no such copybook; known: {known}") from None
    try:
        mapping = open_mapping(state.config_dir, mapping_name, built)
    except ValueError:
        known = ", ".join(known_names(state.config_dir / "mappings", MAPPING_SUFFIXES))
        raise query_error("mapping", f"no such mapping; known: {known}") from None
    except ConfigError as exc:  # a mapping that does not fit this pipeline's application
        raise query_error("mapping", str(exc)) from None
    if mapping is not None and mapping.source != ("xml" if fmt == "mismo" else "json"):
        wanted = "an XML mapping" if fmt == "mismo" else "a mapping of records (source: json)"
        raise query_error("mapping", f"this file needs {wanted}")

    ctx = job_context(state)
    cap = int(batch_settings(state.config)["max_upload_bytes"])
    job_id = ids.new_id()
    folder = ctx.store.folder(job_id)
    folder.mkdir(parents=True, exist_ok=False)
    try:
        size, sha = _receive(ctx.store.input_path(job_id), cap)
        if size == 0:
            raise bad_request("The request body is empty: send the batch file.")
        rows = check_upload(
            ctx.store.input_path(job_id),
            fmt,
            input_schema=built.input_schema(),
            copybook=copybook,
            mapping=mapping,
        )
        spec = JobSpec(pipeline, fmt, output_format, copybook_name, mapping_name, encoding)
        owner = new_owner()
        job = ctx.store.create(
            job_id,
            current_principal().client_id,
            spec,
            input_bytes=size,
            input_sha256=sha,
            rows_total=rows,
            owner=owner,
        )
    except BaseException:
        ctx.store.discard(job_id)
        raise
    start_job_thread(ctx, job_id, owner)
    location = f"/v1/batches/{job_id}"
    return json_response(job.status_document(), 202, {"Location": location})


def _receive(path: object, cap: int) -> tuple[int, str]:
    """Stream the body to ``path`` (never all in memory): (bytes, sha256); 413 over ``cap``."""
    request.max_content_length = cap  # this route's own cap, not server.max_body_bytes
    if request.content_length is not None and request.content_length > cap:
        raise _too_large(cap)
    digest = hashlib.sha256()
    size = 0
    stream = request.stream
    with open(path, "wb") as handle:  # type: ignore[call-overload]
        while block := stream.read(BLOCK):
            size += len(block)
            if size > cap:
                raise _too_large(cap)
            digest.update(block)
            handle.write(block)
        handle.flush()
    return size, digest.hexdigest()


def _too_large(cap: int) -> Problem:
    return Problem(
        413,
        "request-entity-too-large",
        "Request Entity Too Large",
        f"The batch file exceeds the upload limit of {cap} bytes (batch.max_upload_bytes).",
    )


def readable_job(job_id: str) -> Job:
    """The job, if the caller may read it: its submitter, or an auditor; else 404."""
    principal = authenticate(())
    may_submit, is_auditor = principal.has("batches:create"), principal.has("decisions:read")
    if not (may_submit or is_auditor):
        raise insufficient_scope(("batches:create",))
    job = job_context(gateway_state()).store.get(job_id) if _JOB_ID.fullmatch(job_id) else None
    if job is None or not (is_auditor or job.client_id == principal.client_id):
        raise not_found(f"No batch with id {job_id!r}.")
    g.principal = principal
    return job


@bp.get("/v1/batches/<batch_id>")
def get_batch(batch_id: str) -> Response:
    """A job's status: queued, running, done or failed, with its row counts."""
    return json_response(readable_job(batch_id).status_document())


@bp.get("/v1/batches/<batch_id>/output")
@audited  # a file of decisions: its download is a read of the log
def get_batch_output(batch_id: str) -> Response:
    """The job's decisions file (one line per input row), once the job is done."""
    job = readable_job(batch_id)
    if job.status != "done":
        raise Problem(
            409,
            "batch-not-done",
            "The batch is not done",
            f"The batch is {job.status}; its output exists once it is done.",
        )
    path = job_context(gateway_state()).store.output_path(job)
    if not path.is_file():  # done on another host whose instance folder this one lacks
        raise not_found("The output file is not on this server.")
    fmt = job.spec.output_format
    return send_file(
        path,
        mimetype=OUTPUT_TYPES[fmt],
        as_attachment=True,
        download_name=f"{job.id}.decisions.{fmt}",
    )


def openapi_paths() -> dict[str, object]:
    """The OpenAPI description of these routes (merged by :mod:`gateway.api.openapi`)."""
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}

    def err(text: str) -> dict[str, object]:
        return {"description": text, "content": problem}

    job_id = {"name": "batch_id", "in": "path", "required": True, "schema": {"type": "string"}}
    status_schema = {
        "type": "object",
        "required": ["batch_id", "status", "rows_done", "decided", "errors", "links"],
        "properties": {
            "batch_id": {"type": "string"},
            "pipeline": {"type": "string"},
            "status": {"enum": ["queued", "running", "done", "failed"]},
            "format": {"enum": ["csv", "parquet", "fixed", "mismo"]},
            "output_format": {"enum": list(OUTPUT_FORMATS)},
            "copybook": {"type": ["string", "null"]},
            "mapping": {"type": ["string", "null"]},
            "input_bytes": {"type": "integer"},
            "input_sha256": {"type": "string"},
            "rows_total": {"type": ["integer", "null"]},
            "rows_done": {"type": "integer"},
            "decided": {"type": "integer", "description": "rows approved, referred or declined"},
            "errors": {"type": "integer", "description": "rows rejected or failed"},
            "failure": {"type": ["string", "null"]},
            "attempts": {"type": "integer"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "finished_at": {"type": ["string", "null"], "format": "date-time"},
            "links": {
                "type": "object",
                "properties": {"self": {"type": "string"}, "output": {"type": "string"}},
            },
        },
    }
    status = {"description": "The job", "content": {"application/json": {"schema": status_schema}}}
    query = [
        {
            "name": "copybook",
            "in": "query",
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"},
            "description": "fixed-width files: a copybook's name in config/copybooks/",
        },
        {
            "name": "mapping",
            "in": "query",
            "schema": {"type": "string"},
            "description": "a mapping's name in config/mappings/ (MISMO: mismo-3.4 by default)",
        },
        {"name": "encoding", "in": "query", "schema": {"enum": list(ENCODINGS)}},
        {"name": "output", "in": "query", "schema": {"enum": list(OUTPUT_FORMATS)}},
    ]
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {
        "/v1/pipelines/{pipeline}/batches": {
            "post": {
                "summary": "Upload a batch file; it is decided in the background",
                "description": "See docs/integration/batch.md. The body is the file, "
                "streamed; 202 with Location: /v1/batches/{batch_id}.",
                "tags": ["batches"],
                "security": [{"bearer": ["batches:create"]}],
                "parameters": [
                    {"name": "pipeline", "in": "path", "required": True, "schema": STRING},
                    *query,
                ],
                "requestBody": {
                    "required": True,
                    "content": {media: binary for media in FORMATS_BY_TYPE},
                },
                "responses": {
                    "202": {**status, "headers": {"Location": {"schema": {"type": "string"}}}},
                    "400": err("Bad query parameter, unknown copybook or mapping, empty body"),
                    "401": err("Missing, expired or invalid access token"),
                    "403": err("The token lacks the required scope"),
                    "404": err("No such pipeline"),
                    "413": err("The file exceeds batch.max_upload_bytes"),
                    "415": err("Unsupported content type"),
                    "422": err("The file cannot be read as declared"),
                },
            }
        },
        "/v1/batches/{batch_id}": {
            "get": {
                "summary": "A batch job's status and progress",
                "description": "For the client that submitted it, or an auditor (decisions:read).",
                "tags": ["batches"],
                "security": [{"bearer": ["batches:create"]}, {"bearer": ["decisions:read"]}],
                "parameters": [job_id],
                "responses": {
                    "200": status,
                    "401": err("Missing, expired or invalid access token"),
                    "403": err("The token lacks the required scope"),
                    "404": err("No such job (or not the caller's)"),
                },
            }
        },
        "/v1/batches/{batch_id}/output": {
            "get": {
                "summary": "A done job's decisions file, one line per input row",
                "tags": ["batches"],
                "security": [{"bearer": ["batches:create"]}, {"bearer": ["decisions:read"]}],
                "parameters": [job_id],
                "responses": {
                    "200": {
                        "description": "The decisions (CSV or Parquet)",
                        "content": {media: binary for media in OUTPUT_TYPES.values()},
                    },
                    "401": err("Missing, expired or invalid access token"),
                    "403": err("The token lacks the required scope"),
                    "404": err("No such job (or not the caller's)"),
                    "409": err("The job is not done"),
                },
            }
        },
    }
