"""The derived-features enricher: ratios, products, sums and differences of fields.

Settings: ``features: [{name, op, args: [a, b]}]`` (ops in :data:`gateway.derived.OPS`).
Each derived value is recorded as an enrichment with its formula as the source.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gateway.batch.columns import evolve, exact_floats
from gateway.components import Enricher, Services
from gateway.context import DecisionContext, Enrichment
from gateway.derived import OPS, derive_row
from gateway.hookspecs import hookimpl


class DerivedFeatures(Enricher):
    """Adds features computed from the validated application."""

    name = "derived"
    recomputable = True  # a pure function of the validated fields: replay re-runs it
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

    def enrich_many(self, ctxs: Sequence[DecisionContext]) -> list[DecisionContext]:
        """:meth:`enrich` over a chunk: each derived feature computed as one column.

        A ratio of two exact numbers is one numpy division (IEEE division of the same
        doubles, so the same floats as Python's ``a / b``); products, sums and differences
        stay Python arithmetic so integers stay integers. A cell of another type takes the
        single-request formula, which raises on it as :meth:`enrich` would.
        """
        features = [ctx.features for ctx in ctxs]
        added: list[tuple[str, list[Any]]] = []
        for d in self.derivations:
            a_name, b_name = d["args"]
            a = [f.get(a_name) for f in features]
            b = [f.get(b_name) for f in features]
            added.append((d["name"], _derive_column(d["op"], a, b)))
        names = [name for name, _ in added]
        sources = [self.sources[name] for name in names]
        out = []
        for i, ctx in enumerate(ctxs):
            values = [column[i] for _, column in added]
            out.append(
                evolve(
                    ctx,
                    features={**ctx.features, **dict(zip(names, values, strict=True))},
                    enrichments=(
                        *ctx.enrichments,
                        *(
                            Enrichment(k, v, src)
                            for k, v, src in zip(names, values, sources, strict=True)
                        ),
                    ),
                )
            )
        return out


def _derive_column(op: str, a: list[Any], b: list[Any]) -> list[Any]:
    """One derivation over a column: what :func:`gateway.derived.derive_row` gives per row."""
    fn = OPS[op]
    if op != "ratio":
        return [None if x is None or y is None else fn(x, y) for x, y in zip(a, b, strict=True)]
    xa, ma = exact_floats(a)
    xb, mb = exact_floats(b)
    fast = ma & mb & (xb != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        quotient = np.divide(xa, np.where(fast, xb, 1.0)).tolist()
    out: list[Any] = []
    for x, y, q, ok in zip(a, b, quotient, fast.tolist(), strict=True):
        if ok:
            out.append(q)
        else:  # missing, a zero divisor, or not an exact number: the per-row formula
            out.append(None if x is None or y is None else fn(x, y))
    return out


@hookimpl
def register_enrichers() -> list[type[Enricher]]:
    return [DerivedFeatures]
