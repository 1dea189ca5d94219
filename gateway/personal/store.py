"""Subject data keys in the database: get-or-create (race-safe, cached), read, destroy, re-wrap.

The write path (a decision for a returning subject) is served from a per-process LRU
cache and costs no round trip; a new subject costs one INSERT, committed before its
decision so a decision is never stored under a key that could be lost. The read path
never trusts the cache: it reads the key rows, so an erasure is seen at once.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from gateway.personal.crypto import MasterKeys, new_key
from gateway.tables import SubjectKey

keys_table: sa.Table = SubjectKey.__table__  # type: ignore[assignment]


class SubjectKeyStore:
    """Wrapped per-subject data keys in ``subject_keys``."""

    def __init__(
        self,
        engine: Engine,
        master: MasterKeys,
        cache_size: int = 10000,
        cache_seconds: float = 60.0,
    ) -> None:
        self.engine = engine
        self.master = master
        self.cache_size = cache_size
        #: How long a process may keep using a cached key: bounds how long a process that
        #: missed another's erasure keeps encrypting new decisions under the destroyed key
        #: (those decisions are then unreadable too: erasure errs on the side of erasing).
        self.cache_seconds = cache_seconds
        self._cache: OrderedDict[str, tuple[str, bytes, float]] = OrderedDict()
        self._lock = threading.Lock()

    # --- write path ------------------------------------------------------------------

    def key_for(self, subject_ref: str) -> tuple[str, bytes]:
        """``(key id, data key)`` of a subject, created on its first decision."""
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(subject_ref)
            if hit is not None and hit[2] > now:
                self._cache.move_to_end(subject_ref)
                return hit[0], hit[1]
        found = self._read(subject_ref) or self._create(subject_ref)
        with self._lock:
            self._cache[subject_ref] = (*found, now + self.cache_seconds)
            self._cache.move_to_end(subject_ref)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return found

    def _read(self, subject_ref: str) -> tuple[str, bytes] | None:
        c = keys_table.c
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(c.key_id, c.wrapped_key, c.master_key_id).where(
                    c.subject_ref == subject_ref
                )
            ).first()
        if row is None:
            return None
        return row.key_id, self.master.unwrap(
            row.master_key_id, row.wrapped_key, row.key_id, subject_ref
        )

    def new_row(self, subject_ref: str) -> tuple[dict[str, Any], bytes]:
        """A new data key for a subject, and its ``subject_keys`` row (not yet stored)."""
        key_id, data_key = secrets.token_hex(8), new_key()
        master_id, wrapped = self.master.wrap(data_key, key_id, subject_ref)
        row = {
            "key_id": key_id,
            "subject_ref": subject_ref,
            "wrapped_key": wrapped,
            "master_key_id": master_id,
            "created_at": datetime.now(UTC),
        }
        return row, data_key

    def _create(self, subject_ref: str) -> tuple[str, bytes]:
        row, data_key = self.new_row(subject_ref)
        key_id = row["key_id"]
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(keys_table), [row])
        except IntegrityError:
            # Another worker or host created this subject's key first: use theirs.
            theirs = self._read(subject_ref)
            if theirs is None:  # created and erased in between: extremely unlikely
                raise
            return theirs
        return key_id, data_key

    def keys_for(self, subject_refs: Iterable[str]) -> dict[str, tuple[str, bytes]]:
        """:meth:`key_for` for many subjects (a batch chunk): one query, one INSERT."""
        now = time.monotonic()
        found: dict[str, tuple[str, bytes]] = {}
        with self._lock:
            for ref in set(subject_refs):
                hit = self._cache.get(ref)
                if hit is not None and hit[2] > now:
                    found[ref] = hit[0], hit[1]
        wanted = sorted(set(subject_refs) - set(found))
        c = keys_table.c
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            with self.engine.connect() as conn:
                rows = conn.execute(
                    sa.select(c.key_id, c.subject_ref, c.wrapped_key, c.master_key_id).where(
                        c.subject_ref.in_(part)
                    )
                ).all()
            for row in rows:
                found[row.subject_ref] = (
                    row.key_id,
                    self.master.unwrap(
                        row.master_key_id, row.wrapped_key, row.key_id, row.subject_ref
                    ),
                )
        missing = [ref for ref in wanted if ref not in found]
        if missing:
            made: dict[str, tuple[str, bytes]] = {}
            rows_new = []
            for ref in missing:
                key_id, data_key = secrets.token_hex(8), new_key()
                master_id, wrapped = self.master.wrap(data_key, key_id, ref)
                made[ref] = key_id, data_key
                rows_new.append(
                    {
                        "key_id": key_id,
                        "subject_ref": ref,
                        "wrapped_key": wrapped,
                        "master_key_id": master_id,
                        "created_at": datetime.now(UTC),
                    }
                )
            try:
                with self.engine.begin() as conn:
                    conn.execute(sa.insert(keys_table), rows_new)
                found.update(made)
            except IntegrityError:  # some were created concurrently: one at a time then
                for ref in missing:
                    found[ref] = self._read(ref) or self._create(ref)
        with self._lock:
            for ref, (key_id, data_key) in found.items():
                self._cache[ref] = (key_id, data_key, now + self.cache_seconds)
                self._cache.move_to_end(ref)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return found

    def forget(self, subject_refs: Iterable[str]) -> None:
        """Drop subjects from this process's cache (after erasing them)."""
        with self._lock:
            for ref in subject_refs:
                self._cache.pop(ref, None)

    # --- read path -------------------------------------------------------------------

    def data_keys(self, key_ids: Iterable[str]) -> dict[str, bytes | None]:
        """The data keys with ``key_ids`` (one query); ``None`` for a destroyed key."""
        wanted = sorted(set(key_ids))
        if not wanted:
            return {}
        c = keys_table.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(c.key_id, c.subject_ref, c.wrapped_key, c.master_key_id).where(
                    c.key_id.in_(wanted)
                )
            ).all()
        found: dict[str, bytes | None] = dict.fromkeys(wanted)
        for row in rows:
            found[row.key_id] = self.master.unwrap(
                row.master_key_id, row.wrapped_key, row.key_id, row.subject_ref
            )
        return found

    # --- administration --------------------------------------------------------------

    def rewrap_all(self, batch: int = 1000) -> int:
        """Re-wrap every data key not under the active master key; the number re-wrapped.

        Decision documents are untouched (their values are under the data keys, which do
        not change). Afterwards the old master keys can be removed from the configuration.
        """
        c = keys_table.c
        done = 0
        while True:
            with self.engine.begin() as conn:
                rows = conn.execute(
                    sa.select(c.key_id, c.subject_ref, c.wrapped_key, c.master_key_id)
                    .where(c.master_key_id != self.master.active)
                    .limit(batch)
                ).all()
                for row in rows:
                    data_key = self.master.unwrap(
                        row.master_key_id, row.wrapped_key, row.key_id, row.subject_ref
                    )
                    master_id, wrapped = self.master.wrap(data_key, row.key_id, row.subject_ref)
                    conn.execute(
                        sa.update(keys_table)
                        .where(c.key_id == row.key_id, c.master_key_id == row.master_key_id)
                        .values(wrapped_key=wrapped, master_key_id=master_id)
                    )
            done += len(rows)
            if len(rows) < batch:
                return done
