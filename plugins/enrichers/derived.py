"""The derived-features enricher: ratios, products, sums and differences of fields.

Settings: ``features: [{name, op, args: [a, b]}]`` (ops in :data:`gateway.derived.OPS`).
Each derived value is recorded as an enrichment with its formula as the source.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.components import Enricher, Services
from gateway.context import DecisionContext, Enrichment
from gateway.derived import OPS, derive_row
from gateway.hookspecs import hookimpl


class DerivedFeatures(Enricher):
    """Adds features computed from the validated application."""

    name = "derived"
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["features"],
        "properties": {
            "features": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name", "op", "args"],
                    "properties": {
                        "name": {"type": "string", "pattern": "^[a-z_][a-z0-9_]*$"},
                        "op": {"enum": sorted(OPS)},
                        "args": {
                            "type": "array",
                            "items": {"type": "string"},
                            "minItems": 2,
                            "maxItems": 2,
                        },
                    },
                },
            }
        },
    }

    def __init__(self, config: Mapping[str, Any], services: Services) -> None:
        super().__init__(config, services)
        self.derivations = tuple(self.config["features"])
        self.sources = {
            d["name"]: f"derived:{d['op']}({d['args'][0]},{d['args'][1]})" for d in self.derivations
        }

    def enrich(self, ctx: DecisionContext) -> DecisionContext:
        added = derive_row(ctx.features, self.derivations)
        enrichments = tuple(Enrichment(k, v, self.sources[k]) for k, v in added.items())
        return ctx.evolve(
            features={**ctx.features, **added}, enrichments=(*ctx.enrichments, *enrichments)
        )


@hookimpl
def register_enrichers() -> list[type[Enricher]]:
    return [DerivedFeatures]
