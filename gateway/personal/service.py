"""The gateway's personal-data service: keys from config, protection, reading, erasure.

Built once per process from the ``personal_data`` config section
(:data:`gateway.personal.schema.SCHEMA`) and the pipelines' input schemas (each field's
``class``: ordinary, personal or protected).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
import structlog
from sqlalchemy import Engine, Table
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from gateway import ids
from gateway.decision_log import DecisionLog, LogUnavailable
from gateway.errors import ConfigError
from gateway.personal import documents
from gateway.personal.crypto import MasterKeys, parse_key, read_or_create_key_file, subject_ref
from gateway.personal.schema import DEFAULTS
from gateway.personal.store import SubjectKeyStore, keys_table
from gateway.tables import DecisionMonitoring, DecisionSubject, SubjectErasure

log = structlog.get_logger(__name__)

decision_subjects: Table = DecisionSubject.__table__  # type: ignore[assignment]
monitoring_rows: Table = DecisionMonitoring
erasures: Table = SubjectErasure.__table__  # type: ignore[assignment]

#: Most keys of own-subject decisions kept waiting for their decision's transaction.
PENDING_LIMIT = 10000
#: The id of the master key generated in the instance folder when none is configured.
LOCAL_MASTER_ID = "local"
DB_ERRORS = (DBAPIError, SQLAlchemyError, OSError)


@dataclass(frozen=True)
class Erasure:
    """What one erasure did: the subject's keyed hash, keys destroyed, decisions affected."""

    subject_ref: str
    keys_destroyed: int
    decisions: int


def _read_key(source: Mapping[str, str], where: str, config_dir: Path) -> bytes:
    if "env" in source:
        text = os.environ.get(source["env"])
        if not text:
            raise ConfigError(f"{where}: environment variable {source['env']} is not set")
        try:
            return parse_key(text, f"{where} ({source['env']})")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    path = config_dir / source["file"]
    try:
        return parse_key(path.read_text(encoding="ascii"), f"{where} ({path})")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def load_keys(
    settings: Mapping[str, Any], instance_path: Path, config_dir: Path
) -> tuple[MasterKeys, bytes]:
    """The master keys and the subject hash key from ``personal_data`` settings.

    Without configured master keys (the embedded default) both are generated once into
    ``<instance>/keys`` with a warning: production supplies its own, from a secret store.
    """
    where = "personal_data"
    entries = settings["master_keys"]
    if not entries:
        if settings["subject_hash_key"] is not None:
            raise ConfigError(f"{where}.subject_hash_key: set together with master_keys")
        folder = instance_path / "keys"
        master = read_or_create_key_file(folder / "pii-master.key")
        hash_key = read_or_create_key_file(folder / "pii-subject-hash.key")
        log.warning(
            "personal_data_local_keys",
            detail="personal data encrypted with keys generated in the instance folder; "
            "configure personal_data.master_keys and subject_hash_key in production",
        )
        return MasterKeys(LOCAL_MASTER_ID, {LOCAL_MASTER_ID: master}), hash_key
    if settings["subject_hash_key"] is None:
        # A generated per-host hash key would give one applicant a different id per host.
        raise ConfigError(f"{where}.subject_hash_key: required with master_keys")
    keys: dict[str, bytes] = {}
    for i, entry in enumerate(entries):
        if entry["id"] in keys:
            raise ConfigError(f"{where}.master_keys.{i}.id: {entry['id']!r} is used twice")
        keys[entry["id"]] = _read_key(entry, f"{where}.master_keys.{i}", config_dir)
    hash_key = _read_key(settings["subject_hash_key"], f"{where}.subject_hash_key", config_dir)
    return MasterKeys(entries[0]["id"], keys), hash_key


class PersonalData:
    """Seals personal values before a decision is stored; opens or masks them for readers."""

    def __init__(
        self,
        engine: Engine,
        master: MasterKeys,
        hash_key: bytes,
        settings: Mapping[str, Any] | None = None,
        pipelines: Mapping[str, Any] | None = None,
    ) -> None:
        self.settings = {**DEFAULTS, **(settings or {})}
        self.engine = engine
        self.hash_key = hash_key
        self.keys = SubjectKeyStore(
            engine, master, self.settings["key_cache_size"], self.settings["key_cache_seconds"]
        )
        #: Per pipeline: its personal fields (the subject field included) and protected ones.
        self.personal: dict[str, frozenset[str]] = {}
        self.protected: dict[str, frozenset[str]] = {}
        self.subject_field: dict[str, str | None] = {}
        for name, pipeline in (pipelines or {}).items():
            classes = field_classes(pipeline.input_schema())
            field = self.settings["subject_fields"].get(name, self.settings["subject_field"])
            self.subject_field[name] = field
            personal = {f for f, c in classes.items() if c == "personal"}
            self.personal[name] = frozenset(personal | ({field} if field else set()))
            self.protected[name] = frozenset(f for f, c in classes.items() if c == "protected")
        #: Keys of decisions that are their own subject, waiting to be written by
        #: :meth:`companion` in their decision's transaction (bounded: a failed append
        #: leaves its entry behind).
        self._pending: OrderedDict[str, dict[str, Any]] = OrderedDict()
        #: decision id -> (subject ref, key id) it was sealed under, until its companion runs
        self._sealed: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._in_transaction = False

    def attach(self, decision_log: DecisionLog) -> None:
        """Write each decision's subject row (and, for a decision that is its own subject,
        its key) in the decision's own transaction (a companion of ``decision_log``), and
        be the log's sealer of batch documents."""
        decision_log.companions.append(self.companion)
        decision_log.seal_many = self.protect_many
        self._in_transaction = True

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        instance_path: Path,
        config_dir: Path,
        engine: Engine,
        pipelines: Mapping[str, Any] | None = None,
    ) -> PersonalData:
        """The service for the gateway's ``personal_data`` settings."""
        settings = {**DEFAULTS, **(config.get("personal_data") or {})}
        master, hash_key = load_keys(settings, instance_path, config_dir)
        return cls(engine, master, hash_key, settings, pipelines)

    # --- writing ------------------------------------------------------------------------

    def subject_id(self, document: Mapping[str, Any]) -> str:
        """The subject a decision belongs to: its subject field, else the decision itself."""
        field = self.subject_field.get(document.get("pipeline") or "")
        application = document.get("application") or {}
        if field:
            value = application.get(field)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                return str(value)
        return str(document["decision_id"])

    def protect(self, document: dict[str, Any]) -> dict[str, Any]:
        """The document to store: every personal value sealed under its subject's key.

        Raises :class:`LogUnavailable` when the subject's key cannot be read or created,
        so the caller gets the same retryable error as for an unwritable log.
        """
        personal = self.personal.get(document.get("pipeline") or "", frozenset())
        if not personal:
            return document
        try:
            sealed = documents.protect(
                document, personal, self._key_for_document(document), self.subject_id(document)
            )
        except DB_ERRORS as exc:
            raise LogUnavailable(type(exc).__name__) from exc
        return self._remember(sealed)

    def _remember(self, sealed: dict[str, Any]) -> dict[str, Any]:
        """Note which subject and key ``sealed`` went under, for its companion row: the
        subject index then names the very key used, with no second lookup."""
        meta = sealed.get(documents.MEMBER)
        if isinstance(meta, dict):
            self._sealed[str(sealed["decision_id"])] = (meta["subject"], meta["key"])
            while len(self._sealed) > PENDING_LIMIT:
                self._sealed.popitem(last=False)
        return sealed

    def protect_many(self, stored: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """:meth:`protect` for a batch chunk: the subjects' keys got or made at once."""
        fields = [self.personal.get(d.get("pipeline") or "", frozenset()) for d in stored]
        ids_of = [self.subject_id(d) for d in stored]
        # Only records holding a personal value need a key (not, say, an empty rejection).
        # New keys, own-subject ones included, take one INSERT and commit per chunk.
        named = {
            sid: subject_ref(self.hash_key, sid)
            for d, f, sid in zip(stored, fields, ids_of, strict=True)
            if documents.locations(d, f)
        }
        try:
            keys = self.keys.keys_for(named.values())
        except DB_ERRORS as exc:
            raise LogUnavailable(type(exc).__name__) from exc

        def named_key(sid: str) -> tuple[str, str, bytes]:
            return named[sid], *keys[named[sid]]

        return [
            self._remember(documents.protect(d, f, named_key, sid))
            for d, f, sid in zip(stored, fields, ids_of, strict=True)
        ]

    def _key_for(self, subject_id: str) -> tuple[str, str, bytes]:
        ref = subject_ref(self.hash_key, subject_id)
        key_id, data_key = self.keys.key_for(ref)
        return ref, key_id, data_key

    def _key_for_document(self, document: Mapping[str, Any]) -> Any:
        """``key_for`` of :func:`documents.protect` for one document.

        A decision that is its own subject is new by construction: once attached to the
        decision log, its key is written with the decision (no extra round trip or
        commit), never before or without it.
        """
        decision_id = str(document["decision_id"])

        def key_for(subject_id: str) -> tuple[str, str, bytes]:
            if not (self._in_transaction and subject_id == decision_id):
                return self._key_for(subject_id)
            ref = subject_ref(self.hash_key, subject_id)
            row, data_key = self.keys.new_row(ref)
            self._pending[decision_id] = row
            while len(self._pending) > PENDING_LIMIT:
                self._pending.popitem(last=False)
            return ref, row["key_id"], data_key

        return key_for

    def companion(self, document: Mapping[str, Any]) -> list[tuple[Table, dict[str, Any]]]:
        """The ``decision_subjects`` row of a decision (a decision-log companion)."""
        rows: list[tuple[Table, dict[str, Any]]] = []
        decision_id = str(document["decision_id"])
        pending = self._pending.pop(decision_id, None)
        sealed = self._sealed.pop(decision_id, None)
        meta = document.get(documents.MEMBER)
        if pending is not None:  # a decision that is its own subject: its key too
            rows.append((keys_table, pending))
            ref, key_id = pending["subject_ref"], pending["key_id"]
        elif sealed is not None:  # sealed just now by protect: under this very key
            ref, key_id = sealed
        elif isinstance(meta, dict):  # the stored document
            ref, key_id = meta["subject"], meta["key"]
        else:  # the document in clear: its subject's key was just got (cached) by protect
            personal = self.personal.get(document.get("pipeline") or "", frozenset())
            if not documents.locations(document, personal):
                return []
            ref, key_id, _ = self._key_for(self.subject_id(document))
        row = {
            "decision_id": document["decision_id"],
            "subject_ref": ref,
            "key_id": key_id,
            "decided_at": datetime.fromisoformat(document["decided_at"]),
        }
        rows.append((decision_subjects, row))
        return rows

    # --- reading ------------------------------------------------------------------------

    def reveal(self, document: dict[str, Any], can_read: bool) -> dict[str, Any]:
        """What a reader sees of one stored document (see :func:`documents.reveal`)."""
        return self.reveal_many([document], can_read)[0]

    def reveal_many(self, stored: Sequence[dict[str, Any]], can_read: bool) -> list[dict[str, Any]]:
        """What a reader sees of stored documents; their keys are read in one query."""
        data_keys: Mapping[str, bytes | None] = {}
        if can_read:
            wanted = set().union(*(documents.key_ids(d) for d in stored)) if stored else set()
            try:
                data_keys = self.keys.data_keys(wanted)
            except DB_ERRORS as exc:
                raise LogUnavailable(type(exc).__name__) from exc
        return [
            documents.reveal(
                d,
                can_read=can_read,
                protected=self.protected.get(str(d.get("pipeline")), frozenset()),
                data_keys=data_keys,
            )
            for d in stored
        ]

    def reveal_payloads(self, payloads: Sequence[bytes], can_read: bool) -> list[bytes]:
        """:meth:`reveal_many` on stored JSON documents, as JSON."""
        shown = self.reveal_many([orjson.loads(p) for p in payloads], can_read)
        return [orjson.dumps(d) for d in shown]

    # --- erasure, retention, rotation ---------------------------------------------------

    def erase(self, subject_id: str, erased_by: str, reason: str = "request") -> Erasure:
        """Crypto-shred one subject (a subject field value, or a decision id).

        The subject's data key is deleted, so every personal value of its decisions is
        unrecoverable; the decision rows stay, byte for byte, and ``verify`` still passes.
        The erasure is logged (keyed hash, who, when, why, counts), never the subject id.
        """
        return self._erase_refs([subject_ref(self.hash_key, subject_id)], erased_by, reason)[0]

    def _erase_refs(self, refs: Iterable[str], erased_by: str, reason: str) -> list[Erasure]:
        done: list[Erasure] = []
        k, ds = keys_table.c, decision_subjects.c
        with self.engine.begin() as conn:
            for ref in refs:
                destroyed = conn.execute(sa.delete(keys_table).where(k.subject_ref == ref))
                count = conn.execute(
                    sa.select(sa.func.count())
                    .select_from(decision_subjects)
                    .where(ds.subject_ref == ref)
                ).scalar_one()
                # Monitoring rows keep binned values (an age's percentile): they go too. The
                # table is statistics, not the record; drift loses a row, the log nothing.
                conn.execute(
                    sa.delete(monitoring_rows).where(
                        monitoring_rows.c.decision_id.in_(
                            sa.select(ds.decision_id).where(ds.subject_ref == ref)
                        )
                    )
                )
                erasure = Erasure(ref, int(destroyed.rowcount or 0), int(count))
                conn.execute(
                    sa.insert(erasures).values(
                        id=ids.new_id(),
                        subject_ref=ref,
                        erased_at=datetime.now(UTC),
                        erased_by=erased_by[:255],
                        reason=reason,
                        keys_destroyed=erasure.keys_destroyed,
                        decisions=erasure.decisions,
                    )
                )
                done.append(erasure)
        self.keys.forget(e.subject_ref for e in done)
        log.info(
            "personal_data_erased",
            reason=reason,
            subjects=len(done),
            keys=sum(e.keys_destroyed for e in done),
        )
        return done

    def expired(self, now: datetime | None = None) -> list[str]:
        """Keyed hashes of subjects whose latest decision is older than the retention period."""
        days = self.settings["retention_days"]
        if days is None:
            return []
        cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
        k, ds = keys_table.c, decision_subjects.c
        recent = sa.select(ds.key_id).where(ds.key_id == k.key_id, ds.decided_at >= cutoff)
        stmt = sa.select(k.subject_ref).where(k.created_at < cutoff, ~recent.exists())
        with self.engine.connect() as conn:
            return [row.subject_ref for row in conn.execute(stmt)]

    def purge_expired(self, now: datetime | None = None, batch: int = 500) -> list[Erasure]:
        """Crypto-shred every subject past retention (``personal_data.retention_days``)."""
        refs = self.expired(now)
        done: list[Erasure] = []
        for start in range(0, len(refs), batch):
            done += self._erase_refs(refs[start : start + batch], "retention", "retention")
        return done

    def rotate(self) -> int:
        """Re-wrap every data key under the active (first) master key; the number re-wrapped."""
        return self.keys.rewrap_all()


def field_classes(input_schema: Mapping[str, Any] | None) -> dict[str, str]:
    """Each field's data class from a pipeline's input schema (``x-class``)."""
    properties = (input_schema or {}).get("properties") or {}
    return {name: str(spec.get("x-class", "ordinary")) for name, spec in properties.items()}
