"""The auditor console: a web interface to the decision log, served by the gateway.

People sign in (:mod:`~gateway.console.users`, :mod:`~gateway.console.sessions`) with a
role that maps onto the API's scopes (:mod:`~gateway.console.roles`); pages are rendered on
the server (:mod:`~gateway.console.blueprint` and its ``*_pages`` modules), charts as SVG
(:mod:`~gateway.console.charts`).
See docs/console.md.
"""

from gateway.console.blueprint import init_app

__all__ = ["init_app"]
