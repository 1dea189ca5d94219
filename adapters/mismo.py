"""The ``mismo`` adapter: MISMO 3.4 loan files over REST (``POST /v1/pipelines/<p>/mismo``).

See docs/integration/mismo.md; the mapping is ``config/mappings/mismo-3.4.yaml`` by default.
"""

from __future__ import annotations

from flask import Blueprint, Response

from adapters.mapped import MappedXmlAdapter, decide_xml
from gateway.auth import require_scopes
from gateway.components import Adapter
from gateway.hookspecs import hookimpl

bp = Blueprint("mismo", __name__)


class MismoAdapter(MappedXmlAdapter):
    """MISMO 3.4 XML (``MESSAGE/DEAL_SETS/DEAL_SET/DEALS/DEAL``) through a mapping."""

    name = "mismo"
    default_mapping = "mappings/mismo-3.4.yaml"


@bp.post("/v1/pipelines/<pipeline>/mismo")
@require_scopes("decisions:create")
def create_from_mismo(pipeline: str) -> Response:
    """Decide one MISMO loan file through ``pipeline``."""
    return decide_xml(pipeline, MismoAdapter.name)


@hookimpl
def register_adapters() -> list[type[Adapter]]:
    return [MismoAdapter]


@hookimpl
def register_blueprints() -> list[Blueprint]:
    return [bp]
