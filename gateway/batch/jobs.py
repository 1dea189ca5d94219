"""Batch jobs: files uploaded over HTTP, decided in the background, resumable anywhere.

A job is a row of ``batch_jobs`` (so every gateway process answers its status) and a folder
``<instance>/batches/<id>/`` holding the uploaded file and, once done, the output file. The
job runs through :func:`gateway.batch.runner.score_file`, the engine of ``loangate batch
score``, so each row is logged exactly once under the key ``batch:<file sha256>:<row>``.

Leases: whoever runs a job holds it (``lease_owner``) until ``lease_expires_at`` and renews
it after every chunk. A process that dies stops renewing; once the lease has run out any
process takes the job over (:meth:`JobStore.claim`, one conditional ``UPDATE``, so two
cannot both win) and resumes it: rows whose chunk had committed are read back from the log,
not decided again. Servers look for such jobs in the background (:class:`JobResumer`);
``loangate batch resume-jobs`` does it once, in the foreground.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import structlog
from sqlalchemy import Engine, Table, insert, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from gateway.batch.copybook import Copybook, CopybookError, load_copybook
from gateway.batch.runner import score_file
from gateway.db import aware
from gateway.events import EventDispatcher
from gateway.mappings import Mapping as MappingFile
from gateway.mappings import load_mapping
from gateway.pipeline import Pipeline
from gateway.tables import BatchJob

log = structlog.get_logger(__name__)

jobs = cast(Table, BatchJob.__table__)
STATUSES = ("queued", "running", "done", "failed")
#: Runs a job may start before it is marked failed (a job that kills its process, say).
MAX_ATTEMPTS = 5
DEFAULTS: dict[str, Any] = {
    "max_upload_bytes": 256 * 1024 * 1024,
    "lease_seconds": 60,
    "chunk_size": 5000,
    "dir": None,
}
#: Outcomes of a row that count as decided (the others are rejections and errors).
DECIDED = frozenset({"approve", "refer", "decline"})


def batch_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``batch`` section of the gateway configuration, with defaults."""
    return {**DEFAULTS, **(config.get("batch") or {})}


def now() -> datetime:
    return datetime.now(UTC)


def new_owner() -> str:
    """A lease holder's name: host, process, and a token unique to this run."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaseLost(Exception):
    """Another process took the job over (this one's lease had run out): stop quietly."""


@dataclass(frozen=True)
class JobSpec:
    """What an upload asked for: how to read the file, and with what."""

    pipeline: str
    format: str  # csv | parquet | fixed | mismo
    output_format: str  # csv | parquet
    copybook: str | None = None  # a name in config/copybooks/
    mapping: str | None = None  # a name in config/mappings/
    encoding: str = "cp037"


@dataclass(frozen=True)
class Job:
    """One job's row."""

    id: str
    client_id: str
    spec: JobSpec
    status: str
    input_bytes: int
    input_sha256: str
    rows_total: int | None
    rows_done: int
    decided: int
    errors: int
    failure: str | None
    attempts: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> Job:
        spec = JobSpec(
            row.pipeline, row.format, row.output_format, row.copybook, row.mapping, row.encoding
        )
        return cls(
            id=row.id,
            client_id=row.client_id,
            spec=spec,
            status=row.status,
            input_bytes=row.input_bytes,
            input_sha256=row.input_sha256,
            rows_total=row.rows_total,
            rows_done=row.rows_done,
            decided=row.decided,
            errors=row.errors,
            failure=row.failure,
            attempts=row.attempts,
            lease_owner=row.lease_owner,
            lease_expires_at=aware(row.lease_expires_at),
            created_at=aware(row.created_at),
            updated_at=aware(row.updated_at),
            finished_at=aware(row.finished_at),
        )

    def status_document(self) -> dict[str, Any]:
        """What ``GET /v1/batches/<id>`` answers."""
        links = {"self": f"/v1/batches/{self.id}"}
        if self.status == "done":
            links["output"] = f"/v1/batches/{self.id}/output"
        return {
            "batch_id": self.id,
            "pipeline": self.spec.pipeline,
            "status": self.status,
            "format": self.spec.format,
            "output_format": self.spec.output_format,
            "copybook": self.spec.copybook,
            "mapping": self.spec.mapping,
            "input_bytes": self.input_bytes,
            "input_sha256": self.input_sha256,
            "rows_total": self.rows_total,
            "rows_done": self.rows_done,
            "decided": self.decided,
            "errors": self.errors,
            "failure": self.failure,
            "attempts": self.attempts,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "links": links,
        }


class JobStore:
    """The ``batch_jobs`` table and the jobs' folders under ``root``."""

    def __init__(self, engine: Engine, root: Path, lease_seconds: float) -> None:
        self.engine = engine
        self.root = root
        self.lease = timedelta(seconds=lease_seconds)

    # --- files ------------------------------------------------------------------------

    def folder(self, job_id: str) -> Path:
        return self.root / job_id

    def input_path(self, job_id: str) -> Path:
        return self.folder(job_id) / "input"

    def output_path(self, job: Job) -> Path:
        return self.folder(job.id) / f"output.{job.spec.output_format}"

    def drop_input(self, job_id: str) -> None:
        """Remove a finished job's uploaded file (applications hold personal data; the
        output file keeps only decision ids, outcomes and reason codes)."""
        self.input_path(job_id).unlink(missing_ok=True)

    def discard(self, job_id: str) -> None:
        """Remove a job's folder (an upload refused after it was stored)."""
        shutil.rmtree(self.folder(job_id), ignore_errors=True)

    # --- rows -------------------------------------------------------------------------

    def create(
        self,
        job_id: str,
        client_id: str,
        spec: JobSpec,
        *,
        input_bytes: int,
        input_sha256: str,
        rows_total: int | None,
        owner: str,
    ) -> Job:
        """Record a queued job, leased to ``owner`` (the accepting process runs it)."""
        stamp = now()
        with self.engine.begin() as conn:
            conn.execute(
                insert(jobs).values(
                    id=job_id,
                    client_id=client_id,
                    pipeline=spec.pipeline,
                    status="queued",
                    format=spec.format,
                    output_format=spec.output_format,
                    copybook=spec.copybook,
                    mapping=spec.mapping,
                    encoding=spec.encoding,
                    input_bytes=input_bytes,
                    input_sha256=input_sha256,
                    rows_total=rows_total,
                    rows_done=0,
                    decided=0,
                    errors=0,
                    attempts=0,
                    lease_owner=owner,
                    lease_expires_at=stamp + self.lease,
                    created_at=stamp,
                    updated_at=stamp,
                )
            )
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str) -> Job | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        return Job.from_row(row) if row is not None else None

    def claim(self, job_id: str, owner: str) -> bool:
        """Take the job to run it: it is queued or running, and leased to ``owner`` or its
        lease has run out. Progress restarts from zero (the run re-reads logged rows)."""
        stamp = now()
        c = jobs.c
        with self.engine.begin() as conn:
            result = conn.execute(
                update(jobs)
                .where(
                    c.id == job_id,
                    c.status.in_(("queued", "running")),
                    or_(c.lease_owner == owner, c.lease_expires_at < stamp),
                )
                .values(
                    status="running",
                    lease_owner=owner,
                    lease_expires_at=stamp + self.lease,
                    attempts=c.attempts + 1,
                    rows_done=0,
                    decided=0,
                    errors=0,
                    updated_at=stamp,
                )
            )
        return result.rowcount == 1

    def progress(self, job_id: str, owner: str, rows: int, decided: int, errors: int) -> None:
        """Add a chunk's counts and renew the lease; :class:`LeaseLost` if it is not ours."""
        stamp = now()
        c = jobs.c
        with self.engine.begin() as conn:
            result = conn.execute(
                update(jobs)
                .where(c.id == job_id, c.lease_owner == owner, c.status == "running")
                .values(
                    rows_done=c.rows_done + rows,
                    decided=c.decided + decided,
                    errors=c.errors + errors,
                    lease_expires_at=stamp + self.lease,
                    updated_at=stamp,
                )
            )
        if result.rowcount != 1:
            raise LeaseLost(job_id)

    def finish(self, job_id: str, owner: str, status: str, failure: str | None = None) -> bool:
        """Mark the job ``done`` or ``failed`` (only by its lease holder)."""
        stamp = now()
        c = jobs.c
        with self.engine.begin() as conn:
            result = conn.execute(
                update(jobs)
                .where(c.id == job_id, c.lease_owner == owner, c.status == "running")
                .values(
                    status=status,
                    failure=failure,
                    lease_owner=None,
                    lease_expires_at=None,
                    updated_at=stamp,
                    finished_at=stamp,
                )
            )
        return result.rowcount == 1

    def release(self, job_id: str, owner: str, note: str) -> None:
        """Give the job back (e.g. the log was unavailable): any process may retry it now."""
        stamp = now()
        c = jobs.c
        with self.engine.begin() as conn:
            conn.execute(
                update(jobs)
                .where(c.id == job_id, c.lease_owner == owner)
                .values(lease_expires_at=stamp, failure=note, updated_at=stamp)
            )

    def resumable(self, limit: int = 100) -> list[str]:
        """Ids of queued or running jobs whose lease has run out, oldest first."""
        c = jobs.c
        stmt = (
            select(c.id)
            .where(
                c.status.in_(("queued", "running")),
                or_(c.lease_expires_at.is_(None), c.lease_expires_at < now()),
            )
            .order_by(c.created_at)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [row.id for row in conn.execute(stmt)]


# --- running a job ----------------------------------------------------------------------


def resolve_name(folder: Path, name: str, suffixes: Sequence[str]) -> Path | None:
    """The file ``folder/<name><suffix>`` for a caller's name, or ``None``.

    Names are plain (letters, digits, ``.``, ``_``, ``-``; no separator, no ``..``) and the
    file must lie directly in ``folder``: a caller never names a path.
    """
    if not name or len(name) > 100 or name.startswith(".") or ".." in name:
        return None
    if not all((ch.isalnum() and ch.isascii()) or ch in "._-" for ch in name):
        return None
    for suffix in suffixes:
        path = folder / f"{name}{suffix}"
        if path.is_file() and path.resolve().parent == folder.resolve():
            return path
    return None


def known_names(folder: Path, suffixes: Sequence[str]) -> list[str]:
    """The names :func:`resolve_name` accepts in ``folder``."""
    if not folder.is_dir():
        return []
    return sorted(
        p.name[: -len(s)]
        for p in folder.iterdir()
        for s in suffixes
        if p.is_file() and p.name.endswith(s)
    )


COPYBOOK_SUFFIXES = (".cpy", ".cbl", ".cob")
MAPPING_SUFFIXES = (".yaml", ".yml")


def open_copybook(config_dir: Path, name: str | None) -> Copybook | None:
    """The named copybook of ``config/copybooks/`` (``ValueError`` if it is gone or bad)."""
    if name is None:
        return None
    path = resolve_name(config_dir / "copybooks", name, COPYBOOK_SUFFIXES)
    if path is None:
        raise ValueError(f"no copybook named {name!r}")
    try:
        return load_copybook(path)
    except CopybookError as exc:
        raise ValueError(f"copybook {name}: {exc}") from None


def open_mapping(config_dir: Path, name: str | None, pipeline: Pipeline) -> MappingFile | None:
    """The named mapping of ``config/mappings/``, bound to the pipeline's input schema."""
    if name is None:
        return None
    path = resolve_name(config_dir / "mappings", name, MAPPING_SUFFIXES)
    if path is None:
        raise ValueError(f"no mapping named {name!r}")
    return load_mapping(path, config_dir, pipeline.input_schema())


@dataclass(frozen=True)
class JobContext:
    """What running a job needs from the gateway (no Flask app context)."""

    store: JobStore
    pipelines: Mapping[str, Pipeline]
    config_dir: Path
    chunk_size: int
    decision_log: Any = None
    events: EventDispatcher | None = None
    #: Seals each chunk's personal values before they are logged (the gateway's own).
    protect: Any = None


def run_job(ctx: JobContext, job_id: str, owner: str) -> str | None:
    """Claim and run one job to its end; its final status, or ``None`` if not claimed/lost."""
    store = ctx.store
    if not store.claim(job_id, owner):
        return None
    job = store.get(job_id)
    assert job is not None
    bound = log.bind(batch_id=job_id, pipeline=job.spec.pipeline)
    if job.attempts > MAX_ATTEMPTS:
        store.finish(job_id, owner, "failed", f"gave up after {MAX_ATTEMPTS} attempts")
        bound.warning("batch_job_gave_up", attempts=job.attempts)
        return "failed"
    bound.info("batch_job_started", attempt=job.attempts)

    def on_rows(rows: Sequence[dict[str, Any]]) -> None:
        decided = sum(1 for r in rows if r["outcome"] in DECIDED)
        store.progress(job_id, owner, len(rows), decided, len(rows) - decided)

    try:
        pipeline = ctx.pipelines.get(job.spec.pipeline)
        if pipeline is None:
            raise ValueError(f"the pipeline {job.spec.pipeline!r} is no longer configured")
        copybook = open_copybook(ctx.config_dir, job.spec.copybook)
        mapping = open_mapping(ctx.config_dir, job.spec.mapping, pipeline)
        sealed = {"protect": ctx.protect} if ctx.protect is not None else {}
        summary = score_file(
            pipeline,
            store.engine,
            store.input_path(job_id),
            fmt=job.spec.format,
            client_id=job.client_id,
            output=store.output_path(job),
            output_format=job.spec.output_format,
            chunk_size=ctx.chunk_size,
            copybook=copybook,
            encoding=job.spec.encoding,
            events=ctx.events,
            mapping=mapping,
            decision_log=ctx.decision_log,
            on_rows=on_rows,
            **sealed,
        )
    except LeaseLost:
        bound.warning("batch_job_lease_lost")
        return None
    except SQLAlchemyError as exc:
        # The log (or the jobs table) is unavailable: give the job back for a later retry.
        bound.error("batch_job_paused", error=type(exc).__name__)
        note = f"paused: the decision log was unavailable ({type(exc).__name__})"
        with contextlib.suppress(SQLAlchemyError):  # else the lease runs out by itself
            store.release(job_id, owner, note)
        return None
    except (ValueError, OSError) as exc:  # the file does not match its format, or is gone
        bound.warning("batch_job_failed", error=type(exc).__name__)
        store.finish(job_id, owner, "failed", str(exc)[:500])
        store.drop_input(job_id)
        return "failed"
    except Exception as exc:  # never a traceback to the caller; the log line has the type
        bound.exception("batch_job_failed", error=type(exc).__name__)
        store.finish(job_id, owner, "failed", "internal error while deciding the file")
        store.drop_input(job_id)
        return "failed"
    store.finish(job_id, owner, "done")
    store.drop_input(job_id)
    bound.info("batch_job_done", rows=summary.rows, decided=summary.decided)
    return "done"


def start_job_thread(ctx: JobContext, job_id: str, owner: str) -> threading.Thread:
    """Run a job in a daemon thread of this process (the accepting one)."""
    thread = threading.Thread(
        target=run_job, args=(ctx, job_id, owner), name=f"batch-{job_id}", daemon=True
    )
    thread.start()
    return thread


def resume_jobs(ctx: JobContext, limit: int = 100) -> list[tuple[str, str | None]]:
    """Claim and run, one after the other, every job whose lease has run out."""
    done = []
    for job_id in ctx.store.resumable(limit):
        done.append((job_id, run_job(ctx, job_id, new_owner())))
    return done


class JobResumer(threading.Thread):
    """A server process's background look for abandoned jobs, every half lease."""

    def __init__(self, ctx: JobContext, interval: float) -> None:
        super().__init__(name="batch-resumer", daemon=True)
        self.ctx, self.interval = ctx, interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                resume_jobs(self.ctx, limit=10)
            except SQLAlchemyError as exc:
                log.warning("batch_resumer_unavailable", error=type(exc).__name__)
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()


def job_context(state: Any) -> JobContext:
    """The :class:`JobContext` of a gateway's state (built once, kept in ``extras``)."""
    found: JobContext | None = state.extras.get("batch_jobs")
    if found is None:
        settings = batch_settings(state.config)
        root = Path(settings["dir"]) if settings["dir"] else state.instance_path / "batches"
        if not root.is_absolute():
            root = state.config_dir / root
        found = JobContext(
            store=JobStore(state.engine, root, settings["lease_seconds"]),
            pipelines=state.extras["pipelines"],
            config_dir=state.config_dir,
            chunk_size=settings["chunk_size"],
            decision_log=state.extras.get("decision_log"),
            events=state.extras.get("events"),
            protect=getattr(state.extras.get("personal_data"), "protect_many", None),
        )
        state.extras["batch_jobs"] = found
    return found


def start_resumer(state: Any) -> JobResumer:
    """Start the background resumer of a server process (``gateway.wsgi``)."""
    ctx = job_context(state)
    interval = max(1.0, batch_settings(state.config)["lease_seconds"] / 2)
    thread = JobResumer(ctx, interval)
    thread.start()
    state.extras["batch_resumer"] = thread
    return thread
