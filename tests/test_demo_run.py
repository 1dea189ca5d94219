"""The README's run command: ``loangate serve --demo`` prints a demo API client and the
console's address with a first admin, and both work against the server it starts."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.servers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _read_until(proc: subprocess.Popen[str], marker: str, timeout: float) -> str:
    """stdout up to and including the line holding ``marker``."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        lines.append(line)
        if marker in line:
            return "".join(lines)
    raise AssertionError(f"{marker!r} never printed:\n{''.join(lines)[-3000:]}")


def test_serve_demo_prints_a_client_and_a_console_sign_in(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "LOANGATE_DATABASE__URL": f"sqlite:///{tmp_path / 'demo.db'}",
        "LOANGATE_MODELS__DIR": str(tmp_path / "models"),
        "LOANGATE_INSTANCE": str(tmp_path / "instance"),
    }
    cmd = [sys.executable, "-m", "gateway.cli", "serve", "--demo"]
    proc = subprocess.Popen(
        [*cmd, "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        out = _read_until(proc, "sign in as", timeout=300)
        base = f"http://127.0.0.1:{port}"
        assert f"console:            {base}/console/" in out
        admin = re.search(r"sign in as (\S+) with the password (\S+)", out)
        client = re.search(r"demo client_id:\s+(\S+)\s+demo client_secret:\s+(\S+)", out)
        assert admin and client, out
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "the demo server never became ready"
            time.sleep(0.3)

        token = requests.post(
            f"{base}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(client.group(1), client.group(2)),
            timeout=30,
        )
        assert token.status_code == 200

        with requests.Session() as browser:
            form = browser.get(f"{base}/console/sign-in", timeout=30).text
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
            assert csrf
            signed_in = browser.post(
                f"{base}/console/sign-in",
                data={"csrf_token": csrf.group(1), "name": admin[1], "password": admin[2]},
                timeout=30,
            )
            assert signed_in.status_code == 200 and signed_in.url.endswith("/console/decisions")
            assert f"{admin[1]} (admin)" in signed_in.text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # no database-specific path
def test_the_demo_admin_is_made_once(app: object) -> None:
    from gateway.console.cli import ensure_demo_admin
    from gateway.console.users import get_user

    state = app.extensions["loangate"]  # type: ignore[attr-defined]
    first = ensure_demo_admin(state)
    assert ensure_demo_admin(state) == first  # the same sign-in at every run
    assert (state.instance_path / "demo-console-admin.json").stat().st_mode & 0o777 == 0o600
    found = get_user(state.engine, first["name"])
    assert found is not None and found.role == "admin"
