"""The registry of named outgoing connections, built from ``connections:`` at start."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar, overload

from gateway.errors import ConfigError
from gateway.outbound.rest import RestConnection
from gateway.outbound.soap import SoapConnection

#: Any kind of outgoing connection.
Connection = SoapConnection | RestConnection
C = TypeVar("C", SoapConnection, RestConnection)


class Connections:
    """Outgoing connections by name: ``connections.get("core-banking")``."""

    def __init__(self, connections: Mapping[str, Connection] | None = None) -> None:
        self._connections = dict(connections or {})

    @overload
    def get(self, name: str) -> SoapConnection: ...

    @overload
    def get(self, name: str, kind: type[C]) -> C: ...

    def get(self, name: str, kind: type[Any] = SoapConnection) -> Any:
        """The connection called ``name``, of class ``kind`` (default SOAP).

        A :class:`ConfigError` names the known ones when there is none by that name,
        and says what it is when it is of another kind.
        """
        connection = self._connections.get(name)
        if connection is None:
            known = ", ".join(sorted(self._connections)) or "none configured"
            raise ConfigError(f"unknown connection {name!r} (known: {known})")
        if not isinstance(connection, kind):
            raise ConfigError(
                f"connection {name!r} is a {connection.kind} connection, not {kind.kind}"
            )
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

    Each WSDL is read here, once (a ``type: rest`` connection has none); a connection
    that cannot be built refuses to start with its key named.
    """
    built: dict[str, Connection] = {}
    try:
        for name, settings in (config or {}).items():
            if settings.get("type") == "rest":
                built[name] = RestConnection(name, settings, config_dir, environ)
            else:
                built[name] = SoapConnection(name, settings, config_dir, environ)
    except ConfigError:
        for connection in built.values():
            connection.close()
        raise
    return Connections(built)
