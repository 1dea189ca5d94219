"""The ``feature-lookup`` enricher and the ``loangate features`` commands.

Settings::

    set: crm-profile              # a feature set loaded with `loangate features load`
    key_field: customer_id        # the application field holding the entity key
    features: [tenure_months, segment]          # or {feature: new field name}
    version: latest               # or a loaded version number, pinned

Per request: one indexed query for the row in force at the decision's receipt time.
Each added feature is recorded as an enrichment whose source names the set, the version
and the row's valid-from (``features:crm-profile@v3 valid_from=2026-01-01T00:00:00Z``).
An application without the key, or an entity without a row then, gets the features as
``None`` with a source saying why (``features:crm-profile@v3 missing(...)``): the
validators, which impute missing values, have already run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from gateway.components import Enricher, Services
from gateway.context import DecisionContext, Enrichment
from gateway.errors import ConfigError
from gateway.features import (
    DEFAULT_CHUNK_ROWS,
    BadRows,
    FeatureSchema,
    FeatureStore,
    count_rows,
    file_sha256,
    read_chunks,
)
from gateway.hookspecs import hookimpl

NAME = {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}


class FeatureLookup(Enricher):
    """Adds an entity's features, as they were at decision time, from the feature table."""

    name = "feature-lookup"
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["set", "key_field", "features"],
        "properties": {
            "set": {"type": "string", "minLength": 1, "maxLength": 100},
            "key_field": {"type": "string", "minLength": 1},
            "features": {
                "oneOf": [
                    {"type": "array", "items": NAME, "minItems": 1, "uniqueItems": True},
                    {
                        "type": "object",
                        "minProperties": 1,
                        "propertyNames": NAME,
                        "additionalProperties": {"type": "string", "pattern": NAME["pattern"]},
                    },
                ]
            },
            "version": {
                "oneOf": [{"const": "latest"}, {"type": "integer", "minimum": 1}],
                "description": "latest, or a pinned version number",
            },
        },
    }

    def __init__(self, config: Mapping[str, Any], services: Services) -> None:
        super().__init__(config, services)
        if services.engine is None:
            raise ConfigError("enricher feature-lookup: needs the gateway's database")
        features = self.config["features"]
        #: feature in the set -> field added to the application
        self.fields: dict[str, str] = (
            {f: f for f in features} if isinstance(features, list) else dict(features)
        )
        self.set = self.config["set"]
        self.key_field = self.config["key_field"]
        version = self.config.get("version", "latest")
        self.version: int | None = None if version == "latest" else int(version)
        self.store = FeatureStore(services.engine)

    def enrich(self, ctx: DecisionContext) -> DecisionContext:
        entity = ctx.features.get(self.key_field)
        label = f"features:{self.set}@" + (f"v{self.version}" if self.version else "latest")
        values: Mapping[str, Any] = {}
        if entity is None or entity == "":
            source = f"{label} missing(no {self.key_field})"
        else:
            found = self.store.lookup(self.set, str(entity), ctx.received_at, self.version)
            if found is None:
                source = f"{label} missing(version not loaded)"
            else:
                label = f"features:{self.set}@v{found.version}"
                if found.values is None or found.valid_from is None:
                    source = f"{label} missing(no row for the entity at decision time)"
                else:
                    values = found.values
                    stamp = found.valid_from.isoformat().replace("+00:00", "Z")
                    source = f"{label} valid_from={stamp}"
        added = {field: values.get(feature) for feature, field in self.fields.items()}
        enrichments = tuple(Enrichment(k, v, source) for k, v in added.items())
        return ctx.evolve(
            features={**ctx.features, **added}, enrichments=(*ctx.enrichments, *enrichments)
        )


@hookimpl
def register_enrichers() -> list[type[Enricher]]:
    return [FeatureLookup]


# --- command line ---------------------------------------------------------------


@click.group("features")
def features_group() -> None:
    """The feature table: load ERP/CRM exports, list loaded versions."""


@features_group.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--set", "set_name", required=True, help="feature set name (e.g. crm-profile)")
@click.option("--key", default=None, help="entity key column (default: the schema's)")
@click.option("--valid-from-column", default=None, help="valid-from column (default: the schema's)")
@click.option(
    "--schema",
    "schema_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="feature schema (YAML/JSON); without it, types are inferred from the first chunk",
)
@click.option("--chunk-size", default=DEFAULT_CHUNK_ROWS, show_default=True, type=click.IntRange(1))
def features_load(
    file: Path,
    set_name: str,
    key: str | None,
    valid_from_column: str | None,
    schema_file: Path | None,
    chunk_size: int,
) -> None:
    """Load FILE (CSV, or Parquet) as a new version of a feature set, all or nothing."""
    from gateway.cli import _state

    if schema_file is None and key is None:
        raise click.UsageError("without --schema, name the entity key column with --key")
    try:
        schema = FeatureSchema.from_file(schema_file) if schema_file else None
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    store = FeatureStore(_state().engine)
    total = count_rows(file)
    with click.progressbar(length=total, label=f"loading {file.name}", file=sys.stderr) as bar:
        try:
            result = store.load(
                set_name,
                read_chunks(file, chunk_size),
                schema,
                key=key,
                valid_from=valid_from_column,
                source_name=file.name,
                source_sha256=file_sha256(file),
                loaded_by=os.environ.get("USER", "cli"),
                progress=bar.update,
            )
        except (BadRows, ConfigError) as exc:
            raise click.ClickException(f"{file.name}: nothing loaded: {exc}") from exc
    click.echo(f"loaded {result.name} v{result.version}: {result.rows} rows")


@features_group.command("list")
@click.option("--set", "set_name", default=None, help="only this feature set")
def features_list(set_name: str | None) -> None:
    """Loaded feature-set versions, newest first."""
    from gateway.cli import _state

    for v in FeatureStore(_state().engine).versions(set_name):
        click.echo(
            f"{v['name']}\tv{v['version']}\t{v['row_count']} rows\t{v['source_name']}\t"
            f"sha256 {v['source_sha256'][:12]}\t{v['loaded_at']:%Y-%m-%d %H:%M}"
        )


@hookimpl
def register_commands() -> list[click.Command]:
    return [features_group]
