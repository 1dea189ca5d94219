"""SQLAlchemy tables of the gateway's database.

Schema changes go through Alembic (``gateway/migrations``); these declarations and
the latest migration describe the same schema, which a test checks.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
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
    )


class OAuthClient(Base):
    """An API client of the gateway's authorization server."""

    __tablename__ = "oauth_clients"

    client_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str] = mapped_column(String(300))
    scopes: Mapped[str] = mapped_column(Text)  # space-separated
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    disabled: Mapped[bool] = mapped_column(default=False)


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
