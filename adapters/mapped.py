"""XML adapters driven by a mapping file: the shared part of ``mismo`` and ``idoc``.

An adapter of this kind is configured with a mapping (``config: {mapping: mappings/x.yaml}``).
It parses the body with the hardened parser of the SOAP adapter (no DTD, no entities, no
network, size capped before reading), maps the document onto the canonical application
(:mod:`gateway.mappings`) and renders the decision back through the mapping's output section.
Fields the mapping cannot fill are left missing, so the pipeline's validators impute them and
the decision records them as imputed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from flask import Response, g, request

from adapters.soap.xml import XMLRefused, parse
from gateway.auth import current_principal
from gateway.components import Adapter, Inbound, Services
from gateway.errors import ConfigError, FieldError, Problem, bad_request, validation_failed
from gateway.http import answer_decision
from gateway.idempotency import check_key, idempotency_key
from gateway.mappings import MappingError, check_targets, load_mapping
from gateway.state import gateway_state

XML_TYPES = ("application/xml", "text/xml")
MAX_ID_LENGTH = 200


class MappedXmlAdapter(Adapter):
    """An XML document in, through a mapping; the mapping's output (XML) out."""

    media_type = "application/xml"
    #: The mapping used when the pipeline's settings name none.
    default_mapping: ClassVar[str] = ""
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"mapping": {"type": "string", "description": "mapping file"}},
    }

    def __init__(self, config: Mapping[str, Any], services: Services) -> None:
        super().__init__(config, services)
        self.mapping = load_mapping(
            self.config.get("mapping", self.default_mapping), services.config_dir
        )
        if self.mapping.source != "xml":
            raise ConfigError(f"mapping {self.mapping.name}: source must be xml for {self.name}")

    def check_input_schema(self, schema: Mapping[str, Any]) -> None:
        """Bind the mapping to the pipeline's input: unknown targets refuse to start."""
        self.mapping = check_targets(self.mapping, schema)

    def decode(self, body: bytes, headers: Mapping[str, str]) -> Inbound:
        key = idempotency_key(headers)
        try:
            root = parse(body)
        except XMLRefused as exc:
            raise bad_request(str(exc)) from None
        try:
            result = self.mapping.apply(root)
        except MappingError as exc:
            raise exc.problem() from None
        app_id = result.application_id
        if app_id is not None and len(app_id) > MAX_ID_LENGTH:
            where = self.mapping.application_id.where if self.mapping.application_id else ""
            raise validation_failed(
                (FieldError(where, "type", f"longer than {MAX_ID_LENGTH} characters"),)
            )
        if key is None and result.idempotency_key is not None:
            where = self.mapping.idempotency_key.where if self.mapping.idempotency_key else ""
            key = check_key(result.idempotency_key, where)
        return Inbound(fields=result.fields, application_id=app_id, idempotency_key=key)

    def encode(self, document: Mapping[str, Any]) -> bytes:
        rendered = self.mapping.render(document)
        assert isinstance(rendered, bytes)
        return rendered

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "mapping": self.mapping.name}


def decide_xml(pipeline: str, adapter: str) -> Response:
    """The HTTP side of an XML adapter: 201 with the mapped answer, or problem+json."""
    service = gateway_state().extras["decisions"]
    service.pipeline(pipeline, adapter)  # unknown pipeline or adapter: 404 before the body
    if (request.mimetype or "") not in XML_TYPES and not request.mimetype.endswith("+xml"):
        raise Problem(
            415, "unsupported-media-type", "Unsupported media type", "Send application/xml."
        )
    result = service.decide(
        pipeline,
        adapter,
        request.get_data(cache=False),
        request.headers,
        current_principal().client_id,
        g.request_id,
    )
    encoder = service.pipelines[pipeline].adapters[adapter]
    return answer_decision(
        result,
        lambda view, status, headers: Response(
            encoder.encode(view), status=status, headers=headers, mimetype=encoder.media_type
        ),
    )
