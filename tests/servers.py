"""Real gunicorn servers for end-to-end tests: started on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from gateway import db
from gateway.auth.clients import create_client
from tests.conftest import register_demo_model


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    base: str
    proc: subprocess.Popen[bytes]
    db_url: str
    log: Path

    def token(self, *scopes: str) -> str:
        engine = db.make_engine(self.db_url)
        client_id, secret = create_client(engine, "e2e", list(scopes))
        engine.dispose()
        resp = requests.post(
            f"{self.base}/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
            },
            timeout=60,  # workers still booting share the cores
        )
        assert resp.status_code == 200, resp.text
        return str(resp.json()["access_token"])

    def kill(self) -> None:
        """SIGKILL the master and every worker at once (one process group)."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


def start_server(db_url: str, tmp: Path, workers: int = 2) -> Server:
    port = free_port()
    env = {
        **os.environ,
        "LOANGATE_DATABASE__URL": db_url,
        "LOANGATE_MODELS__DIR": str(tmp / "models"),
        "LOANGATE_INSTANCE": str(tmp / "instance"),
    }
    log = tmp / "server.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180  # a loaded machine starts 2-4 workers slowly
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {log.read_text()[-3000:]}")
        try:
            if requests.get(f"{base}/readyz", timeout=1).status_code == 200:
                return Server(base, proc, db_url, log)
        except requests.RequestException:  # not listening yet, or busy starting
            pass
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError(f"server not ready: {log.read_text()[-3000:]}")


def wait_for_workers(srv: Server, workers: int, timeout: float = 180) -> None:
    """Wait until ``workers`` worker processes have built their app (one ``gateway_ready``
    line each): ``/readyz`` answers as soon as the first one has."""
    deadline = time.monotonic() + timeout
    while srv.log.read_text().count('"event": "gateway_ready"') < workers:
        if time.monotonic() > deadline or srv.proc.poll() is not None:
            raise AssertionError(f"workers not ready: {srv.log.read_text()[-3000:]}")
        time.sleep(0.1)


def stop_server(srv: Server) -> None:
    """SIGTERM the server's process group; SIGKILL if it does not stop in 20 s."""
    if srv.proc.poll() is None:
        os.killpg(srv.proc.pid, signal.SIGTERM)
        try:
            srv.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(srv.proc.pid, signal.SIGKILL)


@contextmanager
def running_server(db_url: str, tmp: Path, trained: Any, workers: int = 2) -> Iterator[Server]:
    """A gateway with the demo model registered, on ``db_url``, stopped on exit."""
    register_demo_model(db_url, tmp / "models", trained)
    srv = start_server(db_url, tmp, workers)
    try:
        yield srv
    finally:
        stop_server(srv)
