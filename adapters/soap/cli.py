"""``loangate soap ...``: opting clients in to WS-Security PasswordDigest."""

from __future__ import annotations

import click

from adapters.soap.wssecurity import (
    digest_key_file,
    disable_password_digest,
    enable_password_digest,
)


@click.group("soap")
def soap_commands() -> None:
    """SOAP adapter administration."""


@soap_commands.command("enable-digest")
@click.argument("client_id")
@click.option(
    "--secret",
    prompt=True,
    hide_input=True,
    help="The client's current secret (prompted for, never echoed).",
)
def enable_digest(client_id: str, secret: str) -> None:
    """Let CLIENT_ID authenticate with a PasswordDigest UsernameToken.

    Its secret is then kept encrypted with the key in <instance>/keys/wsse-digest.key.
    """
    from gateway.app import open_state

    state = open_state()
    try:
        enable_password_digest(
            state.engine, digest_key_file(state.instance_path), client_id, secret
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{client_id}: PasswordDigest enabled")


@soap_commands.command("disable-digest")
@click.argument("client_id")
def disable_digest(client_id: str) -> None:
    """Forget CLIENT_ID's encrypted secret (PasswordDigest refused from now on)."""
    from gateway.app import open_state

    if not disable_password_digest(open_state().engine, client_id):
        raise click.ClickException(f"{client_id} had no PasswordDigest secret")
    click.echo(f"{client_id}: PasswordDigest disabled")
