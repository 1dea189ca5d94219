"""The API against its own description: schemathesis drives every documented operation.

The gateway serves ``/openapi.json`` (:mod:`gateway.api.openapi`); schemathesis loads it from
the app in process (WSGI, no server), generates requests for every operation (valid ones, and
invalid ones in negative mode) and sends them with a real access token that holds every scope.
Each response must pass: no server error, a documented status code, a documented content type,
a body that matches the documented schema, and documented headers.

SOAP routes answer a fault with HTTP 500 by protocol (SOAP 1.1, WS-I Basic Profile R1126), so
for them "no server error" is replaced by "every fault is a well-formed Client/Sender fault".

Bounded for CI (6 examples per operation and mode, derandomized): about 15 s a database. A
longer run, e.g. before a release: ``LOANGATE_SCHEMATHESIS_EXAMPLES=200 pytest
tests/test_api_conformance.py`` (docs/operations.md, API conformance and decoder fuzzing).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from lxml import etree
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from adapters.soap.xml import SOAP11_ENV, SOAP12_ENV
from gateway.auth.scopes import SCOPES
from tests.conftest import fetch_token

EXAMPLES = int(os.environ.get("LOANGATE_SCHEMATHESIS_EXAMPLES", "6"))

#: Routes left out, each with why. Everything else in the document is exercised, those with
#: side effects included: the app is fresh per test, and none of them can harm the others —
#: decisions (REST, SOAP, MISMO, IDoc, Salesforce) only add records; reviews, outcomes and
#: replays name random decision ids (404); the token endpoint gets random client credentials;
#: model promotion and rollback name random models (404), so the champion stays.
EXCLUDED: dict[str, str] = {}
#: Routes whose ``{pipeline}`` stays random (a 404): an accepted upload starts a background
#: job thread that would outlive the app under test (tests/test_batch_jobs*.py cover uploads).
UNKNOWN_PIPELINE_ONLY = {"POST /v1/pipelines/{pipeline}/batches"}
#: The configured pipeline half the requests of the other ``{pipeline}`` routes go to.
PIPELINE = "credit-risk"
REQUEST_ID = re.compile(r"[0-9a-f]{32}")

#: Routes whose faults are SOAP 1.1 envelopes with HTTP 500 (SOAP 1.2 Receiver faults too).
SOAP_ROUTES = {
    "GET /soap/{pipeline}",
    "POST /soap/{pipeline}",
    "POST /v1/pipelines/{pipeline}/salesforce",
}

CONFORMANCE = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def soap_fault_is_a_client_fault(ctx: Any, response: Any, case: Any) -> bool | None:
    """A SOAP route's 5xx is a SOAP fault envelope, and a Client/Sender one: the caller holds
    a valid token, so nothing it sends may make the gateway fail (a Server fault)."""
    if response.status_code < 500:
        return None
    try:
        root = etree.fromstring(response.content)
    except etree.XMLSyntaxError as exc:
        raise AssertionError(f"a {response.status_code} that is no SOAP envelope: {exc}") from None
    fault = root.find(f"{{{SOAP11_ENV}}}Body/{{{SOAP11_ENV}}}Fault")
    if fault is not None:
        code = fault.findtext("faultcode") or ""
    else:
        code = root.findtext(f".//{{{SOAP12_ENV}}}Fault/{{{SOAP12_ENV}}}Code/{{{SOAP12_ENV}}}Value")
        code = code or ""
    local = code.rsplit(":", 1)[-1]
    if local not in {"Client", "Sender", "VersionMismatch", "MustUnderstand"}:
        raise AssertionError(f"a {local or 'missing'} fault for a caller's request: {code!r}")
    return True


def checks_for(label: str) -> list[Callable[..., bool | None]]:
    if label in SOAP_ROUTES:
        return [soap_fault_is_a_client_fault, *CONFORMANCE]
    return [not_a_server_error, *CONFORMANCE]


def negatable(document: dict[str, Any], method: str, path: str) -> bool:
    """Whether negative mode can make a request of this operation invalid in a way the
    server sees: a string path parameter cannot be made "not a string" (hypothesis would
    search in vain), nor can a body with no schema."""
    item = document["paths"][path]
    operation = item[method.lower()]
    for param in [*item.get("parameters", ()), *operation.get("parameters", ())]:
        if param["in"] != "path" or param.get("schema") != {"type": "string"}:
            return True
    content = (operation.get("requestBody") or {}).get("content", {})
    return any(media.get("schema") for media in content.values())


def run_operation(
    operation: Any, mode: GenerationMode, headers: dict[str, str], failures: list[str]
) -> None:
    """``EXAMPLES`` requests of ``mode`` to ``operation``; each failure appended as text."""
    checks = checks_for(operation.label)
    real_pipeline = "{pipeline}" in operation.path and operation.label not in UNKNOWN_PIPELINE_ONLY

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,  # the same requests on every run: a CI failure reproduces
        database=None,
        deadline=None,  # a first request per route warms caches: timing is not the point
        phases=[Phase.explicit, Phase.generate],  # failures are collected, not shrunk
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
        ],
    )
    @given(case=operation.as_strategy(generation_mode=mode), real=st.booleans())
    def exercise(case: Any, real: bool) -> None:
        if real and real_pipeline:  # else a random name: every request would be a 404
            case.path_parameters = {**case.path_parameters, "pipeline": PIPELINE}
        try:
            case.call_and_validate(headers=headers, checks=checks)
        except FailureGroup as exc:
            # request ids differ between otherwise equal failures
            failures.append(REQUEST_ID.sub("…", f"{operation.label} [{mode.value}]\n{exc}"))

    try:
        exercise()
    except Unsatisfiable:
        # Negative mode and an operation with nothing to make invalid (no parameters, no
        # body): there is no such request to send.
        assert mode is GenerationMode.NEGATIVE, operation.label


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_conforms_to_the_openapi_document(
    app: Flask, client: FlaskClient, mode: GenerationMode
) -> None:
    token = fetch_token(app, client, *SCOPES)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    document = client.get("/openapi.json").get_json()
    headers = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    ran = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # an Err: the document does not load
        operation = result.ok()
        if operation.label in EXCLUDED:
            continue
        if mode is GenerationMode.NEGATIVE and not negatable(
            document, operation.method, operation.path
        ):
            continue
        run_operation(operation, mode, headers, failures)
        ran.append(operation.label)
    # the document lists every route (test_api_audit pins that)
    assert len(ran) >= (40 if mode is GenerationMode.POSITIVE else 20), ran
    distinct = list(dict.fromkeys(failures))
    assert not distinct, f"{len(distinct)} failing requests:\n\n" + "\n\n".join(distinct[:20])


def test_what_the_fuzzing_found_stays_fixed(app: Flask, client: FlaskClient) -> None:
    """Requests schemathesis once answered with a 500 or off the document."""
    headers = {"Authorization": f"Bearer {fetch_token(app, client, *SCOPES)}"}
    # No pipeline can be named so: the fault once failed to render (an invalid namespace URI).
    for path in ("/soap/is%20required", "/soap/%03x"):
        for resp in (client.get(path), client.post(path, data=b"<a/>", content_type="text/xml")):
            assert resp.status_code == 500 and resp.mimetype == "text/xml", resp.data
            assert soap_fault_is_a_client_fault(None, resp_view(resp), None)
            assert b"<lg:code>not-found</lg:code>" in resp.data
    # A version past the registry's integer column once overflowed in the database driver.
    huge = "/v1/models/german-credit/versions/99999999999999999999"
    assert client.get(huge, headers=headers).status_code == 404
    changed = client.post(f"{huge}/stage", json={"stage": "archived"}, headers=headers)
    assert changed.status_code == 404
    assert client.get("/v1/models/german-credit/versions/1", headers=headers).status_code == 200
    # The key set is served as application/jwk-set+json, and documented so.
    jwks = client.get("/.well-known/jwks.json")
    documented = client.get("/openapi.json").get_json()["paths"]["/.well-known/jwks.json"]
    assert jwks.mimetype in documented["get"]["responses"]["200"]["content"]


def resp_view(resp: Any) -> Any:
    """A Werkzeug test response as the check reads it (``status_code``, ``content``)."""
    return schemathesis.Response.from_any(resp)
