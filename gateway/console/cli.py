"""``loangate users ...``: the people who sign in to the console.

$ loangate users create --name alice --role auditor
Password for alice (12 characters or more): ...
$ loangate users create --name bob --role reviewer --generate-password --totp
password: ...            (shown once)
TOTP: otpauth://totp/... (add it to an authenticator app; shown once)
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pyotp

from gateway.console import sessions
from gateway.console.roles import ROLES
from gateway.console.users import UserError, create_user, get_user, list_users, set_disabled
from gateway.state import GatewayState

#: The demo's first admin, kept in the instance folder like the demo API client.
DEMO_ADMIN_FILE = "demo-console-admin.json"


def make_commands(get_state: Callable[[], GatewayState]) -> list[click.Command]:
    """The ``users`` command group, reading state from ``get_state()``."""

    @click.group("users")
    def users_group() -> None:
        """Manage the people who sign in to the console."""

    @users_group.command("create")
    @click.option("--name", required=True, help="The sign-in name.")
    @click.option("--role", required=True, type=click.Choice(list(ROLES)), help="What they may do.")
    @click.option("--generate-password", is_flag=True, help="Make a random password and print it.")
    @click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
    @click.option("--totp", is_flag=True, help="Also require a code from an authenticator app.")
    @click.option("--sso-only", is_flag=True, help="No password: single sign-on only.")
    def create(
        name: str,
        role: str,
        generate_password: bool,
        password_stdin: bool,
        totp: bool,
        sso_only: bool,
    ) -> None:
        """Create a user (asks for the password unless told otherwise)."""
        password: str | None
        if sso_only:
            password = None
        elif generate_password:
            password = secrets.token_urlsafe(18)
        elif password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = click.prompt(
                f"Password for {name} (12 characters or more)",
                hide_input=True,
                confirmation_prompt=True,
            )
        try:
            user, secret = create_user(get_state().engine, name, role, password, totp=totp)
        except UserError as exc:
            raise click.BadParameter(str(exc)) from None
        click.echo(f"user: {user.name} ({user.role})")
        if generate_password:
            click.echo(f"password: {password}")
        if secret:
            uri = pyotp.TOTP(secret).provisioning_uri(name=user.name, issuer_name="loangate")
            click.echo(f"TOTP: {uri}")
        if generate_password or secret:
            click.echo("Shown only now: hand it over safely.", err=True)

    @users_group.command("list")
    def list_() -> None:
        """List users (never their passwords or second-factor secrets)."""
        for u in list_users(get_state().engine):
            status = "disabled" if u.disabled else "active"
            factors = "+".join(
                f for f, on in (("password", u.has_password), ("totp", u.has_totp)) if on
            )
            click.echo(f"{u.name}\t{u.role}\t{status}\t{factors or 'sso'}")

    @users_group.command("disable")
    @click.argument("name")
    def disable(name: str) -> None:
        """Disable a user and end their sessions."""
        engine = get_state().engine
        if not set_disabled(engine, name):
            raise click.BadParameter(f"no user named {name!r}")
        ended = sessions.end_all(engine, name)
        click.echo(f"disabled {name}; {ended} session(s) ended")

    @users_group.command("enable")
    @click.argument("name")
    def enable(name: str) -> None:
        """Enable a disabled user."""
        if not set_disabled(get_state().engine, name, disabled=False):
            raise click.BadParameter(f"no user named {name!r}")
        click.echo(f"enabled {name}")

    return [users_group]


def ensure_demo_admin(state: Any) -> dict[str, str]:
    """The demo's first admin (name and password), created on first use and kept in the
    instance folder (mode 0600), so ``make run`` prints the same sign-in every time."""
    path = Path(state.instance_path) / DEMO_ADMIN_FILE
    if path.exists():
        creds: dict[str, str] = json.loads(path.read_text())
        if get_user(state.engine, creds["name"]) is not None:
            return creds
    name, password = "admin", secrets.token_urlsafe(18)
    while get_user(state.engine, name) is not None:  # an admin of the operator's own
        name = f"demo-admin-{secrets.token_hex(3)}"
    create_user(state.engine, name, "admin", password)
    creds = {"name": name, "password": password}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(creds, fh)
    return creds
