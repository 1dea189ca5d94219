"""Decision replay: re-run a logged decision through its logged model and policy versions.

:func:`init_app` records the policy versions of the configuration (refusing a changed
policy under an unchanged version), keeps a :class:`Replayer` in the gateway's state and
adds ``POST /v1/decisions/{id}/replay``. ``loangate decisions replay`` is the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import Flask

from gateway.components import Services
from gateway.plugin_manager import ComponentEntry
from gateway.replay.engine import Replayer, ReplayReport, logged_application
from gateway.replay.policies import PolicyVersions
from gateway.state import gateway_state

__all__ = ["PolicyVersions", "ReplayReport", "Replayer", "init_app", "logged_application"]


def init_app(
    app: Flask, catalog: Mapping[str, Mapping[str, ComponentEntry]], services: Services
) -> None:
    """Record policy versions, build the replayer (``extras["replayer"]``), add the route."""
    from gateway.replay import api

    state = gateway_state(app)
    specs = state.config["pipelines"]
    policies = PolicyVersions(state.engine)
    policies.record(specs)
    personal = state.extras.get("personal_data")  # seals personal values in stored documents
    opener = (lambda document: personal.reveal(document, can_read=True)) if personal else None
    state.extras["replayer"] = Replayer(
        state.extras["pipelines"], specs, catalog, services, policies, opener
    )
    app.register_blueprint(api.bp)
