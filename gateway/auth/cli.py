"""``loangate clients ...`` and ``loangate keys ...`` commands.

The CLI owner adds them to the main group, giving a callable that builds the gateway state::

    for command in auth_cli.make_commands(load_state):
        main.add_command(command)

    $ loangate clients create --name "Core banking" --scopes decisions:create
    client_id:     lgc_...
    client_secret: ...   (shown once; store it now)
"""

from __future__ import annotations

from collections.abc import Callable

import click

from gateway.auth.clients import create_client, disable_client, list_clients
from gateway.auth.config import AuthSettings
from gateway.auth.keys import KeyStore
from gateway.auth.scopes import SCOPES
from gateway.state import GatewayState


def make_commands(get_state: Callable[[], GatewayState]) -> list[click.Command]:
    """The ``clients`` and ``keys`` command groups, reading state from ``get_state()``."""

    @click.group("clients")
    def clients() -> None:
        """Manage the API clients of the OAuth token endpoint."""

    @clients.command("create")
    @click.option("--name", required=True, help="Who the client is (shown in audits).")
    @click.option(
        "--scopes",
        "scopes",
        required=True,
        multiple=True,
        help=f"Scopes (repeat, or space/comma separated): {', '.join(sorted(SCOPES))}.",
    )
    def create(name: str, scopes: tuple[str, ...]) -> None:
        """Create a client and print its secret, once."""
        try:
            client_id, secret = create_client(get_state().engine, name, " ".join(scopes))
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        click.echo(f"client_id:     {client_id}")
        click.echo(f"client_secret: {secret}")
        click.echo(
            "The secret is shown only now and cannot be recovered; store it safely.", err=True
        )

    @clients.command("list")
    def list_() -> None:
        """List clients (never their secrets)."""
        for c in list_clients(get_state().engine):
            status = "disabled" if c.disabled else "active"
            click.echo(
                f"{c.client_id}\t{status}\t{c.created_at:%Y-%m-%d}\t{' '.join(sorted(c.scopes))}"
                f"\t{c.name}"
            )

    @clients.command("disable")
    @click.argument("client_id")
    def disable(client_id: str) -> None:
        """Disable a client: no new tokens (issued ones expire within the token TTL)."""
        if not disable_client(get_state().engine, client_id):
            raise click.ClickException(f"no client {client_id}")
        click.echo(f"disabled {client_id}")

    def _keystore() -> KeyStore:
        state = get_state()
        settings = AuthSettings.from_config(
            state.config.get("auth"), state.instance_path, state.config_dir
        )
        return KeyStore.from_settings(settings)

    @click.group("keys")
    def keys() -> None:
        """Manage the token signing keys."""

    @keys.command("list")
    def keys_list() -> None:
        """List key ids; the active one is marked."""
        store = _keystore()
        for kid in store.kids:
            click.echo(f"{kid}{'  (active)' if kid == store.active_kid else ''}")

    @keys.command("rotate")
    def keys_rotate() -> None:
        """Generate a new signing key; old keys keep verifying until retired."""
        try:
            click.echo(_keystore().rotate())
        except RuntimeError as exc:
            raise click.ClickException(str(exc)) from None

    @keys.command("retire")
    @click.argument("kid")
    def keys_retire(kid: str) -> None:
        """Stop accepting tokens signed by KID (wait one token TTL after a rotation)."""
        try:
            _keystore().retire(kid)
        except (KeyError, ValueError, RuntimeError) as exc:
            raise click.ClickException(f"cannot retire {kid}: {exc}") from None
        click.echo(f"retired {kid}")

    return [clients, keys]
