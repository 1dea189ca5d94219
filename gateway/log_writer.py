"""The decision log's write path: rows straight to the DB-API, and commits shared by threads.

A decision's write is its record plus its companion rows (:data:`gateway.decision_log.Companion`)
in one transaction. Two things make that cheap on the request path:

* :class:`RowWriter` keeps one DB-API connection and renders each (table, columns) INSERT once,
  with the column types' own bind processors, so a write is a few ``executemany`` calls and a
  commit: no statement compilation, no per-execute SQLAlchemy bookkeeping, and on PostgreSQL
  (psycopg's pipeline mode) one network round trip for every statement and the commit.
* :class:`GroupCommitter` lets concurrent request threads share one transaction and one flush
  (the fsync that dominates a durable commit): a writer thread takes whatever was handed to it
  while the previous commit was flushing and commits it together. Every thread is answered only
  after the commit that holds its own rows; nobody waits for a timer.
"""

from __future__ import annotations

import os
import queue
import select
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import structlog
from sqlalchemy import Engine, Table, insert

log = structlog.get_logger(__name__)

#: Rows of one table, all with the same columns.
Rows = tuple[Table, list[dict[str, Any]]]


class LogUnavailable(Exception):
    """The log could not be written or read (database down, disk full...)."""


class RowConflict(Exception):
    """A unique or foreign-key constraint refused a row (raised by :class:`RowWriter`)."""


@dataclass(frozen=True)
class _Statement:
    """An INSERT rendered for one dialect and column set, with its parameter builder."""

    sql: str
    params: Callable[[Mapping[str, Any]], Any]


def _table_order(table: Table) -> int:
    """Position of ``table`` in its metadata's dependency order (parents first)."""
    return table.metadata.sorted_tables.index(table)


def _idle_socket_quiet(conn: Any) -> bool:
    """False if the server has written to (or closed) an idle kept connection.

    Between transactions the server sends nothing, so a readable socket means it has gone
    (or sent something unasked): a non-blocking poll, no round trip. Connections without a
    server socket (SQLite) are always quiet.
    """
    pgconn = getattr(getattr(conn, "driver_connection", None), "pgconn", None)
    if pgconn is None:
        return True
    try:
        poller = select.poll()
        poller.register(pgconn.socket, select.POLLIN)
        return not poller.poll(0)
    except Exception:  # psycopg already knows the connection is lost
        return False


class RowWriter:
    """Inserts rows of several tables in one transaction through a DB-API connection it keeps.

    Not thread-safe by itself: one thread writes at a time (the :class:`GroupCommitter`'s
    writer thread, or callers serialised by :attr:`lock`).
    """

    def __init__(self, engine: Engine, keep: bool = False) -> None:
        self.engine = engine
        #: Keep the connection checked out between writes (a server process) rather than
        #: give it back to the pool after each (tests, the CLI: apps that come and go).
        self.keep = keep
        self.lock = threading.Lock()
        self._statements: dict[tuple[Table, tuple[str, ...]], _Statement] = {}
        self._order: dict[Table, int] = {}
        self._conn: Any = None  # a pool connection this writer keeps checked out
        self._pid = os.getpid()
        dialect = engine.dialect
        self._positional = dialect.paramstyle in ("qmark", "numeric", "format")
        self._pipeline = dialect.driver == "psycopg"
        dbapi = dialect.loaded_dbapi
        self._integrity_error: type[Exception] = dbapi.IntegrityError
        self._dbapi_error: type[Exception] = dbapi.Error

    def statement(self, table: Table, columns: tuple[str, ...]) -> _Statement:
        """The INSERT of ``columns`` into ``table``, rendered once per column set."""
        key = (table, columns)
        found = self._statements.get(key)
        if found is not None:
            return found
        dialect = self.engine.dialect
        defaults: dict[str, Any] = {}
        for column in table.columns:
            if column.key in columns or column.default is None:
                continue
            if not column.default.is_scalar:
                raise TypeError(f"{table.name}.{column.key} needs a value: its default is computed")
            defaults[column.key] = column.default.arg  # type: ignore[attr-defined]
        keys = (*columns, *defaults)
        compiled = insert(table).compile(dialect=dialect, column_keys=list(keys))
        names = list(compiled.positiontup or ()) if self._positional else list(keys)
        # Values the driver cannot take as they are (e.g. datetimes on SQLite), by position.
        processors = [
            (i, proc)
            for i, name in enumerate(names)
            if (proc := table.c[name].type.dialect_impl(dialect).bind_processor(dialect))
        ]
        pick = itemgetter(*names)
        single = len(names) == 1

        def values(row: Mapping[str, Any]) -> list[Any]:
            full = {**defaults, **row} if defaults else row
            picked = pick(full)
            out = [picked] if single else list(picked)
            for i, proc in processors:
                if out[i] is not None:
                    out[i] = proc(out[i])
            return out

        if self._positional:
            params: Callable[[Mapping[str, Any]], Any] = values
        elif not processors and not defaults:
            params = dict  # the row as it is: named parameters, no conversion needed
        else:

            def params(row: Mapping[str, Any]) -> Any:
                return dict(zip(names, values(row), strict=True))

        built = _Statement(str(compiled), params)
        self._statements[key] = built
        return built

    def write(self, groups: Iterable[Rows]) -> None:
        """Insert every group's rows and commit, parents before children.

        Raises :class:`RowConflict` when a constraint refuses a row (nothing is written), and
        :class:`LogUnavailable` for any other database failure (nothing is written).
        """
        batches: dict[tuple[Table, tuple[str, ...]], list[dict[str, Any]]] = {}
        for table, rows in groups:
            for row in rows:
                batches.setdefault((table, tuple(row)), []).append(row)
        ordered = sorted(batches.items(), key=lambda item: self._rank(item[0][0]))
        work = [
            (stmt.sql, [stmt.params(row) for row in rows])
            for stmt, rows in ((self.statement(*key), rows) for key, rows in ordered)
        ]
        conn = self._connection()
        try:
            cursor = conn.cursor()
            try:
                if self._pipeline:
                    with conn.driver_connection.pipeline():
                        for sql, params in work:
                            cursor.executemany(sql, params)
                        conn.commit()
                else:
                    for sql, params in work:
                        cursor.executemany(sql, params)
                    conn.commit()
            finally:
                cursor.close()
            if not self.keep:
                self.close()
        except self._integrity_error as exc:
            self._rollback()
            if not self.keep:
                self.close()
            raise RowConflict(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
        except (self._dbapi_error, OSError) as exc:
            self._discard()
            raise LogUnavailable(type(exc).__name__) from exc

    def _rank(self, table: Table) -> int:
        rank = self._order.get(table)
        if rank is None:
            rank = self._order[table] = _table_order(table)
        return rank

    def _connection(self) -> Any:
        if self._pid != os.getpid():  # a forked child must not share its parent's socket
            self._conn, self._pid = None, os.getpid()
        if self._conn is not None and not _idle_socket_quiet(self._conn):
            # The server closed the kept connection while it sat idle (a database restart):
            # take a fresh one now rather than fail the decision about to be written.
            self._discard()
        if self._conn is None:
            try:
                self._conn = self.engine.raw_connection()
            except Exception as exc:  # the pool wraps the driver's errors
                raise LogUnavailable(type(exc).__name__) from exc
        return self._conn

    def _rollback(self) -> None:
        try:
            self._conn.rollback()
        except Exception:  # a broken connection: start afresh next time
            self._discard()

    def _discard(self) -> None:
        """Drop the kept connection (it may be dead): the next write checks out a new one."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()
            except Exception:
                log.warning("decision_log_connection_discard_failed")

    def close(self) -> None:
        """Give the kept connection back to the pool."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


@dataclass
class _Pending:
    groups: list[Rows]
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class GroupCommitter:
    """Commits the rows of concurrent threads together, each thread answered after its commit.

    :meth:`write` hands the rows to one writer thread and blocks until they are committed.
    The writer commits everything handed over while its previous commit ran, up to
    ``max_batch`` writes. If a shared transaction is refused by a constraint, its writes are
    retried one by one, so only the write at fault gets the error.
    """

    def __init__(self, writer: RowWriter, max_batch: int = 64) -> None:
        self.writer = writer
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        #: Number of commits and of writes they held (for tests and metrics).
        self.commits = 0
        self.writes = 0

    def write(self, groups: Sequence[Rows]) -> None:
        """Commit ``groups`` (in a transaction shared with other threads' writes); raises
        what :meth:`RowWriter.write` would for these rows alone."""
        self._ensure_thread()
        pending = _Pending(list(groups))
        self._queue.put(pending)
        pending.done.wait()
        if pending.error is not None:
            raise pending.error

    def _ensure_thread(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="loangate-group-commit", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._commit(batch)

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            self.writer.write([group for pending in batch for group in pending.groups])
            self.commits += 1
            self.writes += len(batch)
        except RowConflict as exc:
            if len(batch) == 1:
                batch[0].error = exc
            else:  # find the write at fault: the others commit on their own
                for pending in batch:
                    try:
                        self.writer.write(pending.groups)
                        self.commits += 1
                        self.writes += 1
                    except Exception as own:
                        pending.error = own
        except Exception as exc:  # the database is down: every write of the batch failed
            for pending in batch:
                pending.error = exc
        finally:
            for pending in batch:
                pending.done.set()
