"""The ``soap`` plugin: the adapter, its endpoints and its command, registered like any plugin."""

from __future__ import annotations

import click
from flask import Blueprint

from adapters.soap.adapter import SoapAdapter
from adapters.soap.cli import soap_commands
from adapters.soap.endpoint import bp
from gateway.components import Adapter
from gateway.hookspecs import hookimpl


@hookimpl
def register_adapters() -> list[type[Adapter]]:
    return [SoapAdapter]


@hookimpl
def register_blueprints() -> list[Blueprint]:
    return [bp]


@hookimpl
def register_commands() -> list[click.Command]:
    return [soap_commands]
