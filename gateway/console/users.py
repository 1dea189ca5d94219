"""Console users: accounts with a role, an argon2 password and an optional TOTP factor.

``loangate users create --name N --role auditor|reviewer|risk-officer|admin`` makes one
(:mod:`gateway.console.cli`). Passwords are hashed with argon2id (argon2-cffi's defaults,
RFC 9106's second recommended profile); the hash names its own parameters, so they can be
raised later and old hashes are re-hashed at the next sign-in. Failed sign-ins are counted
in the database, so every worker and host sees them: after :data:`FREE_FAILURES` in a row
the account is locked for a time that doubles with each further failure.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyotp
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine

from gateway.console.roles import ROLES
from gateway.db import aware
from gateway.tables import ConsoleUser

users: sa.Table = ConsoleUser.__table__  # type: ignore[assignment]

#: Failed sign-ins in a row allowed before the account is locked.
FREE_FAILURES = 5
#: The first lock; each further failure doubles it, up to :data:`MAX_LOCK`.
FIRST_LOCK = timedelta(seconds=30)
MAX_LOCK = timedelta(minutes=15)
NAME_MAX = 100

_hasher = PasswordHasher()
#: Verified against when the name is unknown, so an unknown name costs what a known one does.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class UserError(ValueError):
    """A user cannot be created or changed as asked (the message says why)."""


@dataclass(frozen=True)
class User:
    """A console user, without their password hash or second-factor secret."""

    name: str
    role: str
    created_at: datetime
    disabled: bool
    has_password: bool
    has_totp: bool
    locked_until: datetime | None = field(default=None, compare=False)


def _user(row: sa.Row) -> User:
    return User(
        name=row.name,
        role=row.role,
        created_at=aware(row.created_at),
        disabled=bool(row.disabled),
        has_password=row.password_hash is not None,
        has_totp=row.totp_secret is not None,
        locked_until=aware(row.locked_until) if row.locked_until else None,
    )


def check_name(name: str) -> str:
    """``name`` stripped; a :class:`UserError` if it is empty, too long or not printable."""
    name = name.strip()
    if not name or len(name) > NAME_MAX or not name.isprintable():
        raise UserError(f"a user name is 1 to {NAME_MAX} printable characters")
    return name


def check_role(role: str) -> str:
    """``role`` if it is a console role; a :class:`UserError` naming the roles otherwise."""
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    """``password`` if it is long enough (12 characters; length beats composition rules)."""
    if len(password) < 12:
        raise UserError("a password has at least 12 characters")
    return password


def create_user(
    engine: Engine, name: str, role: str, password: str | None, *, totp: bool = False
) -> tuple[User, str | None]:
    """Create a user; with ``totp``, also their second-factor secret, returned once.

    ``password`` None makes a single-sign-on-only account. A :class:`UserError` if the
    name is taken or a value is refused.
    """
    name, role = check_name(name), check_role(role)
    secret = pyotp.random_base32() if totp else None
    values = {
        "name": name,
        "role": role,
        "password_hash": _hasher.hash(check_password(password)) if password else None,
        "totp_secret": secret,
        "created_at": datetime.now(UTC),
        "disabled": False,
        "failed_sign_ins": 0,
        "locked_until": None,
    }
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(users).values(**values))
    except sa.exc.IntegrityError:
        raise UserError(f"a user named {name!r} exists") from None
    created = get_user(engine, name)
    assert created is not None
    return created, secret


def get_user(engine: Engine, name: str) -> User | None:
    """The user named ``name``, or None."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(users).where(users.c.name == name)).first()
    return _user(row) if row else None


def list_users(engine: Engine) -> list[User]:
    """Every user, by name."""
    with engine.connect() as conn:
        return [_user(r) for r in conn.execute(sa.select(users).order_by(users.c.name))]


def set_disabled(engine: Engine, name: str, disabled: bool = True) -> bool:
    """Disable (or enable) a user; False if there is none. Their sessions end at their
    next request (:mod:`gateway.console.sessions` checks the account every time)."""
    with engine.begin() as conn:
        done = conn.execute(
            sa.update(users).where(users.c.name == name).values(disabled=disabled)
        ).rowcount
    return bool(done)


def upsert_sso_user(engine: Engine, name: str, role: str) -> User:
    """The account of a person signed in through single sign-on, with the role the
    identity provider gave them this time (created without a password on first sign-in).
    A :class:`UserError` if the name is a local account's (one with a password)."""
    name, role = check_name(name), check_role(role)
    with engine.begin() as conn:
        local = conn.execute(
            sa.select(users.c.password_hash).where(users.c.name == name)
        ).scalar_one_or_none()
        if local is not None:  # a local account's name is not the provider's to take
            raise UserError(f"{name!r} is a local account")
        updated = conn.execute(
            sa.update(users).where(users.c.name == name).values(role=role)
        ).rowcount
        if not updated:
            conn.execute(
                sa.insert(users).values(
                    name=name,
                    role=role,
                    password_hash=None,
                    totp_secret=None,
                    created_at=datetime.now(UTC),
                    disabled=False,
                    failed_sign_ins=0,
                    locked_until=None,
                )
            )
    user = get_user(engine, name)
    assert user is not None
    return user


class SignInRefused(Exception):
    """A sign-in failed. The message is the same whatever the cause, on purpose."""

    def __init__(self, reason: str) -> None:
        super().__init__("Wrong name, password or code, or too many attempts: try again later.")
        self.reason = reason  # for the server's log: unknown, locked, password, code, disabled


def sign_in(engine: Engine, name: str, password: str, code: str = "") -> User:
    """The user, if ``password`` (and ``code``, when they have a second factor) are right;
    :class:`SignInRefused` otherwise. Counts failures and locks the account (see module)."""
    now = datetime.now(UTC)
    with engine.connect() as conn:
        row = conn.execute(sa.select(users).where(users.c.name == name[:NAME_MAX])).first()
    if row is None or row.password_hash is None:
        _verify(_DUMMY_HASH, password)  # the same cost as a known name
        raise SignInRefused("unknown")
    if row.locked_until is not None and aware(row.locked_until) > now:
        raise SignInRefused("locked")
    ok = _verify(row.password_hash, password)
    if ok and row.totp_secret is not None:
        ok = pyotp.TOTP(row.totp_secret).verify(code.strip(), valid_window=1)
        reason = "code"
    else:
        reason = "password"
    if not ok:
        _failed(engine, row.name, int(row.failed_sign_ins or 0) + 1, now)
        raise SignInRefused(reason)
    if row.disabled:
        raise SignInRefused("disabled")
    values: dict[str, object] = {"failed_sign_ins": 0, "locked_until": None}
    if _hasher.check_needs_rehash(row.password_hash):
        values["password_hash"] = _hasher.hash(password)
    with engine.begin() as conn:
        conn.execute(sa.update(users).where(users.c.name == row.name).values(**values))
    return _user(row)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _failed(engine: Engine, name: str, failures: int, now: datetime) -> None:
    locked = None
    if failures >= FREE_FAILURES:
        locked = now + min(FIRST_LOCK * 2 ** (failures - FREE_FAILURES), MAX_LOCK)
    with engine.begin() as conn:
        conn.execute(
            sa.update(users)
            .where(users.c.name == name)
            .values(failed_sign_ins=users.c.failed_sign_ins + 1, locked_until=locked)
        )
