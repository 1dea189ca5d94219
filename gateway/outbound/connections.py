"""The registry of named outgoing connections, built from ``connections:`` at start."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError
from gateway.outbound.soap import SoapConnection


class Connections:
    """Outgoing connections by name: ``connections.get("core-banking")``."""

    def __init__(self, connections: Mapping[str, SoapConnection] | None = None) -> None:
        self._connections = dict(connections or {})

    def get(self, name: str) -> SoapConnection:
        """The connection called ``name``; a :class:`ConfigError` naming the known ones."""
        connection = self._connections.get(name)
        if connection is None:
            known = ", ".join(sorted(self._connections)) or "none configured"
            raise ConfigError(f"unknown connection {name!r} (known: {known})")
        return connection

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._connections))

    def __len__(self) -> int:
        return len(self._connections)

    def describe(self) -> list[dict[str, Any]]:
        """Every connection's settings and state, secrets left out."""
        return [self._connections[name].describe() for name in self]

    def close(self) -> None:
        """Release every connection's threads and sockets."""
        for connection in self._connections.values():
            connection.close()


def build_connections(
    config: Mapping[str, Any],
    config_dir: Path,
    environ: Mapping[str, str] | None = None,
) -> Connections:
    """Every connection of the ``connections:`` section (already schema-checked).

    Each WSDL is read here, once; a connection that cannot be built refuses to start
    with its key named.
    """
    built: dict[str, SoapConnection] = {}
    try:
        for name, settings in (config or {}).items():
            built[name] = SoapConnection(name, settings, config_dir, environ)
    except ConfigError:
        for connection in built.values():
            connection.close()
        raise
    return Connections(built)
