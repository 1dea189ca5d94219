"""The console's session cookie: its signing key and its attributes.

The key signs the cookie (which holds only a session id, :mod:`gateway.console.sessions`).
Every worker and host must share it: set it in the environment variable named by
``console.secret_key_env`` (``LOANGATE_CONSOLE_SECRET_KEY`` by default; a Kubernetes
Secret in production). Without it, the first process to start writes a random key to the
instance folder (mode 0600) and the others read it: enough for one host.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface

from gateway.state import GatewayState

KEY_FILE = "console-session.key"
DEFAULT_KEY_ENV = "LOANGATE_CONSOLE_SECRET_KEY"


class ConsoleSessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, marked Secure whenever the request came over TLS (directly or
    through a proxy's ``X-Forwarded-Proto``), or always with ``console.secure_cookies``."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def session_secret(state: GatewayState, settings: dict[str, Any]) -> str:
    """The cookie's signing key (see the module)."""
    from_env = os.environ.get(settings.get("secret_key_env") or DEFAULT_KEY_ENV, "")
    if from_env:
        return from_env
    return _instance_key(Path(state.instance_path) / KEY_FILE)


def _instance_key(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    try:
        os.link(tmp, path)  # atomic, and refused if another worker linked its key first
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


def configure_cookie(app: Flask, state: GatewayState, settings: dict[str, Any]) -> None:
    """Set the signing key and the cookie's attributes on ``app``."""
    app.secret_key = session_secret(state, settings)
    app.session_interface = ConsoleSessionInterface()
    app.config.update(
        SESSION_COOKIE_NAME="loangate_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",  # Strict would drop the cookie on the SSO callback
        SESSION_COOKIE_SECURE=bool(settings.get("secure_cookies", False)),
        SESSION_COOKIE_PATH="/console",
    )
