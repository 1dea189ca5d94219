"""``loangate subjects``: erase an applicant, purge past retention, rotate the master key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from gateway.access_trail import os_user
from gateway.errors import ConfigError
from gateway.personal.crypto import DecryptionError
from gateway.personal.service import PersonalData


def make_commands(open_state: Callable[[], Any]) -> list[click.Command]:
    """The ``subjects`` command group, on the CLI's shared configuration path."""

    def service() -> PersonalData:
        state = open_state()
        try:
            return PersonalData.from_config(
                state.config, state.instance_path, state.config_dir, state.engine
            )
        except ConfigError as exc:
            raise click.ClickException(f"invalid configuration: {exc}") from exc

    @click.group("subjects")
    def subjects() -> None:
        """Applicants' personal data: erasure, retention, key rotation."""

    @subjects.command("erase")
    @click.argument("subject_id")
    @click.option(
        "--by",
        "erased_by",
        default=None,
        help="who asked for the erasure (recorded; default: the OS user)",
    )
    def erase(subject_id: str, erased_by: str | None) -> None:
        """Make SUBJECT_ID's personal data unrecoverable (crypto-shredding).

        SUBJECT_ID is the value of the pipeline's subject field (e.g. a customer number)
        or, for a decision logged without one, the decision id. Decision rows stay as
        they are, so `loangate verify` still passes.
        """
        try:
            done = service().erase(subject_id, erased_by or os_user())
        except SQLAlchemyError as exc:
            raise click.ClickException(f"database unavailable ({type(exc).__name__})") from exc
        click.echo(
            f"subject {done.subject_ref[:16]}…: {done.keys_destroyed} key(s) destroyed, "
            f"{done.decisions} decision(s) affected"
        )
        if not done.keys_destroyed:
            click.echo(
                "warning: no key found for this subject: it has no logged personal data, was "
                "erased already, or personal_data.subject_hash_key is not the gateway's",
                err=True,
            )

    @subjects.command("purge-expired")
    def purge_expired() -> None:
        """Erase every subject whose latest decision is past personal_data.retention_days.

        Meant for a daily cron job; does nothing when retention_days is null.
        """
        personal = service()
        if personal.settings["retention_days"] is None:
            click.echo("personal_data.retention_days is null: nothing expires")
            return
        try:
            done = personal.purge_expired()
        except SQLAlchemyError as exc:
            raise click.ClickException(f"database unavailable ({type(exc).__name__})") from exc
        click.echo(
            f"{len(done)} subject(s) erased, {sum(e.decisions for e in done)} decision(s) affected"
        )

    @subjects.command("rotate-keys")
    def rotate_keys() -> None:
        """Re-wrap every subject key under the first of personal_data.master_keys.

        Decision documents are untouched. Once it reports 0 keys left, the old master key
        can be removed from the configuration.
        """
        personal = service()
        try:
            count = personal.rotate()
        except DecryptionError as exc:
            raise click.ClickException(f"cannot unwrap a key: {exc}") from exc
        except SQLAlchemyError as exc:
            raise click.ClickException(f"database unavailable ({type(exc).__name__})") from exc
        click.echo(f"{count} key(s) re-wrapped under master key {personal.keys.master.active!r}")

    return [subjects]
