"""SQLAlchemy tables of the gateway's database.

Schema changes go through Alembic (``gateway/migrations``); these declarations and
the latest migration describe the same schema, which a test checks.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Decision(Base):
    """One logged decision (or rejection). Append-only.

    The queryable facts are columns; the whole decision document, serialised once,
    is ``document`` (JSON text), and is what the API returns.
    """

    __tablename__ = "decisions"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    pipeline: Mapped[str] = mapped_column(String(100))
    adapter: Mapped[str] = mapped_column(String(40))
    client_id: Mapped[str] = mapped_column(String(255))  # external IdP subjects can be long
    application_id: Mapped[str | None] = mapped_column(String(200))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(20))
    probability: Mapped[float | None] = mapped_column(Float)
    model_name: Mapped[str | None] = mapped_column(String(100))
    model_version: Mapped[int | None] = mapped_column(Integer)
    model_sha256: Mapped[str | None] = mapped_column(String(64))
    policy_version: Mapped[str | None] = mapped_column(String(50))
    document: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("client_id", "idempotency_key"),
        Index(None, "received_at"),
        Index(None, "pipeline", "id"),
        Index(None, "outcome", "id"),
        Index(None, "client_id", "id"),
        Index(None, "application_id"),
        Index(None, "model_name", "model_version"),
        # Sorting and filtering by probability (gateway.decision_query.sort_key): decisions
        # without one (rejections, errors) sort lowest, as -1.
        Index("ix_decisions_probability_key", func.coalesce(probability, -1.0), "id"),
    )


class ModelStageEvent(Base):
    """One stage change of a model version (registration, promotion, rollback). Append-only.

    ``from_stage`` is null for a registration. Rollback reads this history to find the
    champion before the current one.
    """

    __tablename__ = "model_stage_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    from_stage: Mapped[str | None] = mapped_column(String(20))
    to_stage: Mapped[str] = mapped_column(String(20))
    changed_by: Mapped[str] = mapped_column(String(255))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index(None, "name", "id"),)


class ShadowScore(Base):
    """What a shadow model would have decided, beside the champion's decision."""

    __tablename__ = "shadow_scores"

    decision_id: Mapped[str] = mapped_column(String(26), primary_key=True)
    label: Mapped[str] = mapped_column(String(100), primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    model_name: Mapped[str] = mapped_column(String(100))
    model_version: Mapped[int] = mapped_column(Integer)
    probability: Mapped[float] = mapped_column(Float)
    outcome: Mapped[str] = mapped_column(String(20))
    champion_probability: Mapped[float] = mapped_column(Float)
    champion_outcome: Mapped[str] = mapped_column(String(20))
    scored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index(None, "pipeline", "received_at"),)


class OAuthClient(Base):
    """An API client of the gateway's authorization server."""

    __tablename__ = "oauth_clients"

    client_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str] = mapped_column(String(300))
    scopes: Mapped[str] = mapped_column(Text)  # space-separated
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    disabled: Mapped[bool] = mapped_column(default=False)


class ConsoleUser(Base):
    """A person who signs in to the console (:mod:`gateway.console.users`)."""

    __tablename__ = "console_users"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str | None] = mapped_column(String(300))  # None: single sign-on only
    totp_secret: Mapped[str | None] = mapped_column(String(64))  # a second factor when set
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    disabled: Mapped[bool] = mapped_column(default=False)
    failed_sign_ins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ConsoleSession(Base):
    """A signed-in console session; the cookie holds its id, this table only the id's hash."""

    __tablename__ = "console_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(100))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index(None, "user_name"),)


class ModelVersion(Base):
    """A registered model version: its artifact, checksum, stage and metadata."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(40))
    stage: Mapped[str] = mapped_column(String(20))  # candidate | challenger | champion | archived
    artifact_path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    metadata_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(200))

    __table_args__ = (UniqueConstraint("name", "version"),)


class Review(Base):
    """A human review of a referred decision: a record linked to it, never a change to it.

    One per decision (``decision_id`` is unique); ``reviewer`` is the reviewing client
    (the token's subject).
    """

    __tablename__ = "reviews"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    decision_id: Mapped[str] = mapped_column(ForeignKey("decisions.id"))
    reviewer: Mapped[str] = mapped_column(String(255))
    final_outcome: Mapped[str] = mapped_column(String(10))
    justification: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("decision_id"),
        CheckConstraint("final_outcome IN ('approve', 'decline')", name="final_outcome"),
    )


class ReviewClaim(Base):
    """A reviewer working a referral (:mod:`gateway.review_claims`): one per decision, live
    until it expires, the review is recorded, or the reviewer lets it go."""

    __tablename__ = "review_claims"

    decision_id: Mapped[str] = mapped_column(ForeignKey("decisions.id"), primary_key=True)
    reviewer: Mapped[str] = mapped_column(String(255))
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReviewReason(Base):
    """The reason codes of a reviewed decision, indexed at review time for the report."""

    __tablename__ = "review_reasons"

    review_id: Mapped[str] = mapped_column(ForeignKey("reviews.id"), primary_key=True)
    code: Mapped[str] = mapped_column(String(40), primary_key=True)

    __table_args__ = (Index(None, "code"),)


class LoanOutcome(Base):
    """How a granted loan turned out (repaid or defaulted, and when): one per decision."""

    __tablename__ = "loan_outcomes"

    decision_id: Mapped[str] = mapped_column(ForeignKey("decisions.id"), primary_key=True)
    status: Mapped[str] = mapped_column(String(10))
    outcome_date: Mapped[date] = mapped_column(Date)
    recorded_by: Mapped[str] = mapped_column(String(255))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("status IN ('repaid', 'defaulted')", name="status"),
        Index(None, "outcome_date"),
    )


class WsseNonce(Base):
    """A WS-Security UsernameToken nonce seen recently: a replay across every worker fails."""

    __tablename__ = "wsse_nonces"

    client_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    nonce_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index(None, "expires_at"),)


class WsseDigestSecret(Base):
    """A client secret kept encrypted, for clients opted in to WS-Security PasswordDigest."""

    __tablename__ = "wsse_digest_secrets"

    client_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FeatureSet(Base):
    """One loaded version of a feature set: its schema and where it came from. Append-only."""

    __tablename__ = "feature_sets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    schema_json: Mapped[str] = mapped_column(Text)
    source_name: Mapped[str] = mapped_column(Text)
    source_sha256: Mapped[str] = mapped_column(String(64))
    row_count: Mapped[int] = mapped_column(Integer)
    loaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    loaded_by: Mapped[str] = mapped_column(String(200))

    __table_args__ = (UniqueConstraint("name", "version"),)


class FeatureValue(Base):
    """An entity's features in one feature-set version, valid from a time until the next row.

    The primary key doubles as the point-in-time index: (set, entity, valid_from) scanned
    backwards from the decision time finds the row in force.
    """

    __tablename__ = "feature_values"

    set_id: Mapped[int] = mapped_column(ForeignKey("feature_sets.id"), primary_key=True)
    entity_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    values_json: Mapped[str] = mapped_column(Text)


class DecisionSeal(Base):
    """A decision's place in the tamper-evident chain: its sequence number and record hash.

    Kept apart from ``decisions`` so sealing never updates a decision row. ``seq`` has no
    gaps; a missing number is a deleted seal, a seal without its decision a deleted row.
    """

    __tablename__ = "decision_seals"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    decision_id: Mapped[str] = mapped_column(String(26), unique=True)
    record_hash: Mapped[str] = mapped_column(String(64))
    checkpoint_id: Mapped[int] = mapped_column(Integer, index=True)


class DecisionCheckpoint(Base):
    """One sealed batch: the Merkle root of its record hashes, chained to the one before.

    ``hash`` = sha256 over (id, first_seq, last_seq, merkle_root, prev_hash, sealed_at);
    see :mod:`gateway.integrity.chain`. ``sealed_at`` is ISO 8601 text, hashed as stored.
    """

    __tablename__ = "decision_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    first_seq: Mapped[int] = mapped_column(BigInteger)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    merkle_root: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    sealed_at: Mapped[str] = mapped_column(String(40))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class BatchJob(Base):
    """A batch file uploaded over HTTP and decided in the background (``/v1/batches``).

    Any gateway process answers its status from this row; the process running it holds a
    lease (``lease_owner`` until ``lease_expires_at``) that it renews every chunk, and a
    job whose lease ran out is taken over and resumed (see :mod:`gateway.batch.jobs`).
    """

    __tablename__ = "batch_jobs"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(255))
    pipeline: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(10))
    format: Mapped[str] = mapped_column(String(10))
    output_format: Mapped[str] = mapped_column(String(10))
    copybook: Mapped[str | None] = mapped_column(String(100))
    mapping: Mapped[str | None] = mapped_column(String(100))
    encoding: Mapped[str] = mapped_column(String(10))
    input_bytes: Mapped[int] = mapped_column(BigInteger)
    input_sha256: Mapped[str] = mapped_column(String(64))
    rows_total: Mapped[int | None] = mapped_column(Integer)
    rows_done: Mapped[int] = mapped_column(Integer)
    decided: Mapped[int] = mapped_column(Integer)
    errors: Mapped[int] = mapped_column(Integer)
    failure: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="status"),
        Index(None, "status", "lease_expires_at"),
        Index(None, "client_id", "created_at"),
    )


class PolicyVersion(Base):
    """The settings a pipeline's policy ran with under one version. Append-only.

    Recorded when the gateway starts, so a logged decision's policy version can be
    rebuilt and replayed after the configuration has moved on (``gateway.replay``).
    """

    __tablename__ = "policy_versions"

    pipeline: Mapped[str] = mapped_column(String(100), primary_key=True)
    policy: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[str] = mapped_column(String(50), primary_key=True)
    config_json: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DecisionReason(Base):
    """A reason code of a logged decision: an index of the documents, for filters and
    aggregates. Written in the decision's own transaction (a decision-log companion,
    :mod:`gateway.reason_index`). Append-only."""

    __tablename__ = "decision_reasons"

    decision_id: Mapped[str] = mapped_column(ForeignKey("decisions.id"), primary_key=True)
    code: Mapped[str] = mapped_column(Text, primary_key=True)

    __table_args__ = (Index(None, "code", "decision_id"),)


class AccessTrailEntry(Base):
    """One read of decisions: who, when, through which route or command, with which
    query (normalised JSON, never a token or a personal value). Append-only."""

    __tablename__ = "access_trail"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(255))
    channel: Mapped[str] = mapped_column(String(10))  # api | soap | cli | console
    action: Mapped[str] = mapped_column(String(200))
    params: Mapped[str] = mapped_column(Text)
    result_count: Mapped[int | None] = mapped_column(Integer)
    request_id: Mapped[str | None] = mapped_column(String(100))

    __table_args__ = (Index(None, "at"), Index(None, "actor", "id"))


class SubjectKey(Base):
    """An applicant's data key, wrapped by a master key (see :mod:`gateway.personal`).

    Personal values in decision documents are encrypted under it; deleting the row
    crypto-shreds them. ``subject_ref`` is a keyed hash of the applicant's id, never the id.
    """

    __tablename__ = "subject_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    subject_ref: Mapped[str] = mapped_column(String(64), unique=True)
    wrapped_key: Mapped[str] = mapped_column(Text)
    master_key_id: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DecisionSubject(Base):
    """Which subject (keyed hash) and data key a decision's personal values belong to.

    Written in the decision's own transaction; answers "how many decisions does an
    erasure touch" and "whose latest decision is past retention" without reading documents.
    """

    __tablename__ = "decision_subjects"

    decision_id: Mapped[str] = mapped_column(String(26), primary_key=True)
    subject_ref: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(32), index=True)
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index(None, "subject_ref", "decided_at"),)


class SubjectErasure(Base):
    """One crypto-shredding: whose (keyed hash), when, by whom, why, and what it touched."""

    __tablename__ = "subject_erasures"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    subject_ref: Mapped[str] = mapped_column(String(64), index=True)
    erased_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    erased_by: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(String(20))
    keys_destroyed: Mapped[int] = mapped_column(Integer)
    decisions: Mapped[int] = mapped_column(Integer)


class CrmOutbox(Base):
    """A decision's write-back to the CRM record it came from, waiting or done.

    Inserted in the decision's own transaction (a :data:`gateway.decision_log.Companion`),
    so a committed CRM decision always has its row; the delivery workers update it
    (claim, attempts, result). ``status``: pending, delivered, failed (permanently) or
    superseded (a newer decision's write-back reached the record first).
    """

    __tablename__ = "crm_outbox"

    decision_id: Mapped[str] = mapped_column(String(26), primary_key=True)
    connection: Mapped[str] = mapped_column(String(63))
    object: Mapped[str] = mapped_column(String(100))
    record_id: Mapped[str] = mapped_column(String(200))
    payload: Mapped[str] = mapped_column(Text)  # JSON: the fields to write
    status: Mapped[str] = mapped_column(String(12))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claim_token: Mapped[str | None] = mapped_column(String(32))
    last_status: Mapped[int | None] = mapped_column(Integer)  # HTTP status of the last attempt
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'delivered', 'failed', 'superseded')", name="status"
        ),
        Index(None, "status", "next_attempt_at"),
        Index(None, "record_id", "object", "connection"),
    )


#: Feature slots of a ``decision_monitoring`` row (``f00`` ..), one per model feature.
MONITORING_SLOTS = 40
#: Protected-group slots (``g0`` ..), one per protected attribute of the pipeline.
MONITORING_GROUPS = 4

#: One row per logged decision for drift, performance and fairness monitoring, written in
#: the decision's own transaction (a decision-log companion, :mod:`gateway.monitoring.rows`).
#: Each slot holds a bin of the reference profile of ``model_name``/``model_version``
#: (negative codes: -1 missing or imputed, -2 unseen category or invalid, -3 not computed).
DecisionMonitoring = Table(
    "decision_monitoring",
    Base.metadata,
    Column("decision_id", String(26), primary_key=True),
    Column("pipeline", String(100), nullable=False),
    Column("model_name", String(100), nullable=True),
    Column("model_version", Integer, nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("status", String(10), nullable=False),
    Column("outcome", String(10), nullable=False),
    Column("probability", Float, nullable=True),
    Column("score_bin", SmallInteger, nullable=True),
    *(Column(f"f{i:02d}", SmallInteger, nullable=True) for i in range(MONITORING_SLOTS)),
    *(Column(f"g{i}", SmallInteger, nullable=True) for i in range(MONITORING_GROUPS)),
    Index(
        "ix_decision_monitoring_version_time",
        "pipeline",
        "model_name",
        "model_version",
        "received_at",
        "decision_id",
    ),
)


class MonitoringRun(Base):
    """One drift, performance or fairness run: its window, results (JSON) and alert count."""

    __tablename__ = "monitoring_runs"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    kind: Mapped[str] = mapped_column(String(12))
    pipeline: Mapped[str] = mapped_column(String(100))
    model_name: Mapped[str] = mapped_column(String(100))
    model_version: Mapped[int] = mapped_column(Integer)
    window: Mapped[str] = mapped_column(Text)  # JSON: {last} or {since, until}, and rows
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    results: Mapped[str] = mapped_column(Text)  # JSON
    alerts: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        CheckConstraint("kind IN ('drift', 'performance', 'fairness')", name="kind"),
        Index(None, "kind", "pipeline", "model_name", "started_at"),
    )
