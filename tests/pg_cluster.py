"""A private, throwaway PostgreSQL cluster for fault tests that stop and restart the database.

The shared PostgreSQL at 127.0.0.1:5432 serves every other test concurrently, so it is never
stopped: a test that needs the database to go away gets its own cluster (``initdb`` in a
temporary folder, a free loopback port, ``fsync=on``), driven with ``pg_ctl``. PostgreSQL
refuses to run as root, so as root the binaries run as the ``postgres`` system user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.servers import free_port

PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
RUN_AS = "postgres"  # the system user the binaries run as when the tests run as root


def pg_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl`` (newest version), or ``None``."""
    found = [Path(p) for p in glob.glob(PG_BIN_GLOB) if (Path(p) / "initdb").is_file()]
    if found:
        return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def unavailable_reason() -> str | None:
    """Why a private cluster cannot be created here, or ``None`` if it can."""
    if pg_bin() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(RUN_AS)
        except KeyError:
            return f"running as root and there is no {RUN_AS!r} user to run initdb as"
        if shutil.which("runuser") is None:
            return "running as root and runuser is missing"
    return None


@dataclass
class PrivateCluster:
    """One initialised cluster: its folder, port and log; start and stop it with ``pg_ctl``."""

    root: Path
    port: int
    bin: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the cluster's ``postgres`` database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", RUN_AS, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {done.stdout}{done.stderr}{tail}")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c fsync=on -c synchronous_commit=on -c max_connections=60"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: roll back open transactions, cut every connection)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        """Stop the server if it runs and delete the cluster's folder."""
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError):  # already gone: only the folder is left
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def create_cluster() -> PrivateCluster:
    """``initdb`` a new cluster (trust auth on loopback) in a fresh temporary folder.

    The folder sits directly in the system temporary folder, owned by the user the server runs
    as: pytest's own temporary folders are private to the user running the tests.
    """
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    bindir = pg_bin()
    assert bindir is not None
    root = Path(tempfile.mkdtemp(prefix="loangate-pg-"))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(RUN_AS)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    cluster = PrivateCluster(root, free_port(), bindir)
    # --no-sync only skips initdb's final flush of the template files; the server itself
    # runs with fsync=on, so every commit the gateway makes is durable.
    cluster._run(
        "initdb", "-D", str(cluster.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
        "--no-sync", "--no-instructions",
    )  # fmt: skip
    return cluster
