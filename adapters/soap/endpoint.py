"""HTTP endpoints of the SOAP adapter: ``GET /soap/<pipeline>?wsdl`` and ``POST /soap/<pipeline>``.

A request goes: size cap → hardened parse → envelope → operation (body element, checked against
SOAPAction / the ``action`` parameter) → authentication (OAuth bearer token in the HTTP header,
else a WS-Security UsernameToken) and the operation's scope → the shared decision path
(:meth:`gateway.decisions.DecisionService.decide`, adapter ``soap``) → a response envelope.
Every error on the way is a SOAP fault (:mod:`adapters.soap.faults`); nothing is logged as a
decision before the caller is authenticated, as on the REST path.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import orjson
import structlog
from flask import Blueprint, Flask, Response, g, request
from flask.blueprints import BlueprintSetupState
from lxml import etree
from werkzeug.exceptions import RequestEntityTooLarge

from adapters.soap import wsdl
from adapters.soap.adapter import WSA_NAMESPACES, SoapAdapter, SoapBinding
from adapters.soap.faults import SoapFault, client_fault, from_problem, render, server_fault
from adapters.soap.wssecurity import WSSE, WsSecurity, digest_key_file, find_token
from adapters.soap.xml import Envelope, NotAnEnvelope, XMLRefused, envelope, parse
from gateway.auth import authenticate
from gateway.auth.tokens import Principal
from gateway.decision_log import LogUnavailable
from gateway.errors import Problem, log_unavailable
from gateway.personal.views import document_for_caller
from gateway.rate_limits import enforce as enforce_rate_limit
from gateway.state import gateway_state

log = structlog.get_logger(__name__)

bp = Blueprint("soap", __name__)

SOAP11_TYPE = "text/xml"
SOAP12_TYPE = "application/soap+xml"
ACCEPTED_TYPES = (SOAP11_TYPE, SOAP12_TYPE, "application/xml")


@dataclass
class SoapService:
    """The SOAP subsystem of an app: one binding per pipeline that lists the ``soap`` adapter."""

    bindings: Mapping[str, SoapBinding]
    wssecurity: WsSecurity


def init_app(app: Flask) -> SoapService:
    """Bind the ``soap`` adapter of every pipeline that uses it; keep the result in
    ``state.extras["soap"]``. Runs when the blueprint is registered (after the pipelines and
    :func:`gateway.auth.init_app`)."""
    state = gateway_state(app)
    bindings = {}
    for name, pipeline in state.extras["pipelines"].items():
        adapter = pipeline.adapters.get("soap")
        if isinstance(adapter, SoapAdapter):
            bindings[name] = adapter.bind(pipeline)
    leeway = state.extras["auth"].settings.leeway_seconds
    wss = WsSecurity(state.engine, leeway, digest_key_file(state.instance_path))
    service = SoapService(bindings, wss)
    state.extras["soap"] = service
    return service


@bp.record_once
def _on_register(setup: BlueprintSetupState) -> None:
    init_app(cast(Flask, setup.app))


def _service() -> SoapService:
    service: SoapService = gateway_state().extras["soap"]
    return service


#: What a pipeline's name may be (config.py): only such a name makes a namespace URI.
PIPELINE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def _not_found(pipeline: str) -> Response:
    # Any other name (spaces, control characters...) is no valid URI nor safe XML text.
    named = PIPELINE_NAME.fullmatch(pipeline) is not None
    fault = client_fault(
        f"No SOAP endpoint for pipeline {pipeline!r}." if named else "No such SOAP endpoint.",
        "not-found",
        404,
    )
    return _fault_response(fault, _version_hint(), wsdl.namespace(pipeline if named else "unknown"))


@bp.get("/soap/<pipeline>")
def get_wsdl(pipeline: str) -> Response:
    """The pipeline's WSDL (``?wsdl``), with its address set to this endpoint's URL."""
    binding = _service().bindings.get(pipeline)
    if binding is None:
        return _not_found(pipeline)
    text = binding.wsdl_for(request.base_url)
    return Response(text, mimetype="text/xml", headers={"Cache-Control": "public, max-age=300"})


@bp.post("/soap/<pipeline>")
def call(pipeline: str) -> Response:
    """One SOAP request: ``ScoreApplication`` or ``GetDecision``."""
    binding = _service().bindings.get(pipeline)
    if binding is None:
        return _not_found(pipeline)
    version, operation = _version_hint(), "ScoreApplication"
    try:
        body = read_body()
        env = read_envelope(body)
        version = env.version
        operation = binding.operation(env, _action(version))
        _check_must_understand(env, binding.tns)
        principal = _authenticate(env, wsdl.OPERATION_SCOPES[operation])
        if operation == "ScoreApplication":
            return _score(binding, env, principal)
        return _get_decision(binding, env, principal)
    except SoapFault as fault:
        return _fault_response(fault, version, binding.tns, operation)
    except Problem as problem:
        return _fault_response(from_problem(problem), version, binding.tns, operation)
    except Exception as exc:  # the last line: a Server fault, never a traceback
        log.exception("soap_unhandled_error", error=type(exc).__name__, pipeline=pipeline)
        return _fault_response(server_fault(), version, binding.tns, operation)


def read_body(
    accepted: tuple[str, ...] = ACCEPTED_TYPES,
    limit: int | None = None,
    expected: str = "Send SOAP 1.1 as text/xml or SOAP 1.2 as application/soap+xml.",
) -> bytes:
    """The request body of a SOAP call, as a Client fault when it is not one we take:
    415 for another media type, 413 past ``limit`` (default: ``server.max_body_bytes``)."""
    mimetype = request.mimetype or ""
    if mimetype not in accepted:
        raise client_fault(expected, "unsupported-media-type", 415)
    if limit is not None:
        request.max_content_length = limit  # this route's cap, in place of the server's
    try:
        # Werkzeug stops reading past the cap (MAX_CONTENT_LENGTH), chunked bodies too.
        return request.get_data(cache=False)
    except RequestEntityTooLarge:
        raise client_fault(
            "The request body exceeds the size limit.", "payload-too-large", 413
        ) from None


def read_envelope(body: bytes) -> Envelope:
    """The envelope of ``body`` (hardened parser), or the Client fault saying why not."""
    try:
        return envelope(parse(body))
    except NotAnEnvelope as exc:
        if exc.version_mismatch:
            raise client_fault(str(exc), "version-mismatch", special="VersionMismatch") from None
        raise client_fault(str(exc)) from None
    except XMLRefused as exc:
        raise client_fault(str(exc)) from None


def _version_hint() -> str:
    """The SOAP version the Content-Type announces (for faults before the envelope is read)."""
    return "1.2" if (request.mimetype or "") == SOAP12_TYPE else "1.1"


def _action(version: str) -> str | None:
    """SOAPAction (1.1) or the ``action`` parameter of the Content-Type (1.2), unquoted."""
    if version == "1.1":
        raw = request.headers.get("SOAPAction")
    else:
        raw = request.mimetype_params.get("action")
    if raw is None:
        return None
    return raw.strip().strip('"') or None


def _check_must_understand(env: Envelope, tns: str) -> None:
    """A MustUnderstand fault for a mandatory header entry the gateway does not process."""
    attr = f"{{{env.env_ns}}}mustUnderstand"
    understood = {WSSE, tns, *WSA_NAMESPACES}
    for entry in env.header:
        if entry.get(attr) in ("1", "true") and etree.QName(entry).namespace not in understood:
            raise client_fault(
                f"Header {etree.QName(entry).text} is not understood.",
                "must-understand",
                special="MustUnderstand",
            )


def _authenticate(env: Envelope, scope: str) -> Principal:
    """The bearer token if one is sent, else the WS-Security UsernameToken."""
    if "Authorization" in request.headers:
        try:
            return authenticate([scope])
        except Problem as problem:
            raise from_problem(problem) from None
    token = find_token(env.header)
    if token is None:
        raise client_fault(
            "Authentication required: an OAuth bearer token in the Authorization header, "
            "or a WS-Security UsernameToken.",
            "unauthorized",
            401,
        )
    principal = _service().wssecurity.authenticate(token, secure=_secure_channel())
    if scope not in principal.scopes:
        raise client_fault(f"This operation requires the scope {scope}.", "insufficient-scope", 403)
    g.principal = principal
    enforce_rate_limit(principal.client_id)  # a 429 Client fault past the client's limit
    return principal


def _secure_channel() -> bool:
    """TLS (directly or at a trusted proxy), or a loopback caller."""
    if request.is_secure:
        return True
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False


def _score(binding: SoapBinding, env: Envelope, principal: Principal) -> Response:
    service = gateway_state().extras["decisions"]
    headers: dict[str, str] = {}
    try:
        key = binding.idempotency_key(env)
    except Problem:
        key = None  # reported by the decoder below, as a logged rejection
    if key is not None:
        headers["Idempotency-Key"] = key
    # The body element alone identifies the request: a retry may carry a fresh
    # WS-Security nonce, or come over the other SOAP version, and still be a replay.
    identity = etree.tostring(env.payload, method="c14n", exclusive=True)
    result = service.decide(
        binding.pipeline,
        "soap",
        identity,
        headers,
        principal.client_id,
        g.request_id,
        decoder=lambda: binding.decode_application(env),
    )
    if result.problem is not None:
        raise result.problem
    payload = binding.response(env.version, "ScoreApplication", result.document, result.replayed)
    return _envelope_response(payload, env.version, 200)


def _get_decision(binding: SoapBinding, env: Envelope, principal: Principal) -> Response:
    decision_id = binding.decision_id(env)
    state = gateway_state()
    stored = state.extras["decision_log"].get(decision_id)
    if stored is None:
        raise client_fault(f"No decision with id {decision_id!r}.", "not-found", 404)
    # Personal values opened for a caller with pii:read, masked otherwise.
    document: dict[str, Any] = document_for_caller(orjson.loads(stored.document))
    try:  # a read of the log is on the access trail before it is answered, or not answered
        state.extras["access_trail"].record(
            actor=principal.client_id,
            channel="soap",
            action="GetDecision",
            params={"decision_id": decision_id},
            result_count=1,
            request_id=g.get("request_id"),
        )
    except LogUnavailable:
        raise log_unavailable(state.config["database"]["retry_after_seconds"]) from None
    payload = binding.response(env.version, "GetDecision", document)
    return _envelope_response(payload, env.version, 200)


def _envelope_response(payload: bytes, version: str, status: int) -> Response:
    mimetype = SOAP11_TYPE if version == "1.1" else SOAP12_TYPE
    return Response(payload, status=status, mimetype=mimetype)


def _fault_response(
    fault: SoapFault, version: str, tns: str, operation: str = "ScoreApplication"
) -> Response:
    if not fault.client:
        log.warning("soap_server_fault", code=fault.code)
    payload, status, headers = render(fault, version, tns, operation, g.get("request_id"))
    return Response(payload, status=status, headers=headers, mimetype=_mimetype(version))


def _mimetype(version: str) -> str:
    return SOAP11_TYPE if version == "1.1" else SOAP12_TYPE
