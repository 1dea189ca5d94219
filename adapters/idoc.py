"""The ``idoc`` adapter: SAP IDoc XML as an XML-HTTP port posts it.

Route: ``POST /v1/pipelines/<pipeline>/idoc``.

The root element is named after the IDoc type, then ``IDOC`` with the ``EDI_DC40`` control record
and the data segments. See docs/integration/idoc.md; the mapping is
``config/mappings/idoc-zloanapp01.yaml`` (customer type ZLOANAPP01) by default.
"""

from __future__ import annotations

from flask import Blueprint, Response

from adapters.mapped import MappedXmlAdapter, decide_xml
from gateway.auth import require_scopes
from gateway.components import Adapter
from gateway.hookspecs import hookimpl

bp = Blueprint("idoc", __name__)


class IdocAdapter(MappedXmlAdapter):
    """An IDoc (``<TYPE><IDOC><EDI_DC40/>segments...</IDOC></TYPE>``) through a mapping."""

    name = "idoc"
    default_mapping = "mappings/idoc-zloanapp01.yaml"


@bp.post("/v1/pipelines/<pipeline>/idoc")
@require_scopes("decisions:create")
def create_from_idoc(pipeline: str) -> Response:
    """Decide one IDoc through ``pipeline``; the answer echoes its DOCNUM."""
    return decide_xml(pipeline, IdocAdapter.name)


@hookimpl
def register_adapters() -> list[type[Adapter]]:
    return [IdocAdapter]


@hookimpl
def register_blueprints() -> list[Blueprint]:
    return [bp]
