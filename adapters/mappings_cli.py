"""``loangate mappings apply``: run a mapping file on a source document, without a server.

Prints what the gateway would hand the pipeline: the canonical fields, the fields left unfilled
(imputed or refused by the pipeline's missing-value policy), the application id and the
idempotency key; a mapping error prints the source path and exits 1.
"""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from gateway.hookspecs import hookimpl


@click.group("mappings")
def mappings_commands() -> None:
    """Declarative mappings (config/mappings/*.yaml)."""


@mappings_commands.command("apply")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--mapping", "mapping_file", required=True, help="Mapping file (in config/).")
@click.option(
    "--schema",
    default="schemas/credit-application.yaml",
    show_default=True,
    help="The pipeline's input schema (relative to config/), to check the targets against.",
)
def apply_mapping(source: Path, mapping_file: str, schema: str) -> None:
    """Map SOURCE (an XML or JSON document) and print the canonical application."""
    from adapters.soap.xml import XMLRefused, parse
    from gateway.components import Services
    from gateway.config import load_config
    from gateway.errors import ConfigError
    from gateway.mappings import MappingError, load_mapping
    from plugins.validators.schema import SchemaValidator

    try:
        _, config_dir = load_config()
        services = Services(config_dir, config_dir, None)  # type: ignore[arg-type]  # no models
        validator = SchemaValidator({"schema": schema}, services)
        mapping = load_mapping(mapping_file, config_dir, validator.input_schema())
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    body = source.read_bytes()
    try:
        record = parse(body) if mapping.source == "xml" else orjson.loads(body)
        result = mapping.apply(record)
    except (XMLRefused, orjson.JSONDecodeError) as exc:
        raise click.ClickException(f"{source}: {exc}") from None
    except MappingError as exc:
        raise click.ClickException(str(exc)) from None
    out = {
        "application_id": result.application_id,
        "idempotency_key": result.idempotency_key,
        "applicant": result.fields,
        "unfilled": list(result.unfilled),
    }
    click.echo(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())


@hookimpl
def register_commands() -> list[click.Command]:
    return [mappings_commands]
