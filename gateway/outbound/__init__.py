"""Named outgoing connections to legacy services (Zato's model).

Each connection is declared once under ``connections:`` in the gateway config, built
when the gateway starts (its WSDL read then, never per request) and lent to
components by name through :class:`gateway.components.Services`. A call carries a
correlation id, runs within a wall-clock budget with bounded retries, and goes
through a circuit breaker and a TTL cache.

Modules: :mod:`.schema` (the config schema), :mod:`.connections` (the registry),
:mod:`.soap` (SOAP over zeep), :mod:`.rest` (JSON over HTTP,
OAuth client credentials), :mod:`.calls` (results and failures),
:mod:`.breaker`, :mod:`.cache`, :mod:`.retry`.
"""
