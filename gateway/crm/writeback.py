"""The write-back settings, and the companion that queues a write-back with its decision.

The companion runs inside the decision's transaction: it must never raise for a
document it does not like (that would refuse the decision), so a record id that cannot
name a CRM record is queued as ``failed`` with the reason, for the outbox report. A
decision without any record id (a message refused before its id was read) has nothing
to write back to and gets no row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from sqlalchemy import Table

from gateway.crm.schema import SOURCES
from gateway.decision_log import DecisionLog
from gateway.errors import ConfigError
from gateway.outbound.connections import Connections
from gateway.outbound.rest import RestConnection
from gateway.tables import CrmOutbox

log = structlog.get_logger(__name__)

outbox: Table = CrmOutbox.__table__  # type: ignore[assignment]

DEFAULT_FIELDS: dict[str, str] = {
    "Decision__c": "outcome",
    "Probability_Of_Default__c": "probability_of_default",
    "Decision_Id__c": "decision_id",
    "Reason_Codes__c": "reason_codes",
}
DEFAULT_PATH = "/services/data/{api_version}/sobjects/{object}/{record_id}"
#: A record id goes into a URL path: letters, digits, ``_`` and ``-`` only (Salesforce
#: ids are 15 or 18 letters and digits), so no id can reach another path.
RECORD_ID = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
assert set(DEFAULT_FIELDS.values()) <= set(SOURCES)


@dataclass(frozen=True)
class Delivery:
    """How the outbox is worked: polling, batch, backoff between attempts, give-up age."""

    in_server: bool = True
    interval_seconds: float = 2.0
    batch: int = 50
    backoff_seconds: float = 5.0
    max_backoff_seconds: float = 600.0
    jitter: float = 0.5
    max_age_hours: float = 72.0
    lease_seconds: float = 120.0


@dataclass(frozen=True)
class WritebackSettings:
    """The checked ``crm_writeback:`` section."""

    connection: str
    object: str
    adapters: frozenset[str] = frozenset({"salesforce"})
    statuses: frozenset[str] = frozenset({"decided", "rejected"})
    fields: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_FIELDS))
    api_version: str = "v61.0"
    path: str = DEFAULT_PATH
    reason_separator: str = ";"
    delivery: Delivery = Delivery()

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> WritebackSettings:
        """Settings from a schema-checked ``crm_writeback:`` section."""
        path = str(section.get("path", DEFAULT_PATH))
        if "{record_id}" not in path:
            raise ConfigError("crm_writeback.path: must contain {record_id}")
        try:
            path.format(api_version="v", object="o", record_id="r")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"crm_writeback.path: unknown placeholder {exc}") from None
        return cls(
            connection=str(section["connection"]),
            object=str(section["object"]),
            adapters=frozenset(section.get("adapters") or ("salesforce",)),
            statuses=frozenset(section.get("statuses") or ("decided", "rejected")),
            fields=dict(section.get("fields") or DEFAULT_FIELDS),
            api_version=str(section.get("api_version", "v61.0")),
            path=path,
            reason_separator=str(section.get("reason_separator", ";")),
            delivery=Delivery(**(section.get("delivery") or {})),
        )

    def record_path(self, record_id: str) -> str:
        """The path of ``record_id`` under the connection's ``base_url``."""
        return self.path.format(
            api_version=self.api_version, object=self.object, record_id=record_id
        )

    def payload(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """The CRM fields for a decision document, per :attr:`fields`."""
        return {name: self._value(source, document) for name, source in self.fields.items()}

    def _value(self, source: str, document: Mapping[str, Any]) -> Any:
        reasons = document.get("reason_codes") or []
        if source == "reason_codes":
            return self.reason_separator.join(str(r.get("code", "")) for r in reasons)
        if source == "reason_texts":
            return self.reason_separator.join(str(r.get("text", "")) for r in reasons)
        if source == "model":
            model = document.get("model") or {}
            return f"{model['name']} v{model['version']}" if model.get("name") else None
        if source == "policy_version":
            return (document.get("policy") or {}).get("version")
        return document.get(source)


class Writeback:
    """The configured write-back: its settings and the connection it writes through."""

    def __init__(self, settings: WritebackSettings, connection: RestConnection) -> None:
        self.settings = settings
        self.connection = connection

    def companion(self, document: Mapping[str, Any]) -> Iterable[tuple[Table, dict[str, Any]]]:
        """The outbox row of a decision from a CRM adapter (none for any other decision)."""
        s = self.settings
        if document.get("adapter") not in s.adapters or document.get("status") not in s.statuses:
            return ()
        record_id = document.get("application_id")
        if record_id is None:  # e.g. a message refused before its record id was read
            return ()
        now = datetime.now(UTC)
        row: dict[str, Any] = {
            "decision_id": document["decision_id"],
            "connection": self.connection.name,
            "object": s.object,
            "record_id": "",
            "payload": orjson.dumps(s.payload(document)).decode(),
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        if not isinstance(record_id, str) or not RECORD_ID.match(record_id):
            # Nothing to address: queued as failed, so the outbox report shows it.
            row.update(status="failed", last_error="no usable CRM record id in the decision")
            row["record_id"] = record_id[:200] if isinstance(record_id, str) else ""
            log.warning("crm_writeback_unaddressable", decision_id=document["decision_id"])
        else:
            row["record_id"] = record_id
        return ((outbox, row),)


def configure(config: Mapping[str, Any], connections: Connections) -> Writeback | None:
    """The write-back ``crm_writeback:`` describes, checked against the connections.

    ``None`` when the section is absent or disabled; a bad section refuses to start
    with its key named.
    """
    section = config.get("crm_writeback")
    if not section or not section.get("enabled", True):
        return None
    settings = WritebackSettings.from_config(section)
    try:
        connection = connections.get(settings.connection, RestConnection)
    except ConfigError as exc:
        raise ConfigError(f"crm_writeback.connection: {exc}") from None
    # A claim must outlive the slowest delivery (token, PATCH, refreshed PATCH, each
    # retried), or a second worker could take the row while the first still sends it.
    retry = connection.retry
    slowest = 3 * connection.timeout * retry.max_attempts + (
        (retry.max_attempts - 1) * retry.max_backoff_ms / 1000.0
    )
    if settings.delivery.lease_seconds <= slowest:
        raise ConfigError(
            f"crm_writeback.delivery.lease_seconds: must exceed {slowest:g} seconds, the "
            f"longest a delivery through connection {connection.name!r} can take"
        )
    return Writeback(settings, connection)


def install(
    config: Mapping[str, Any], connections: Connections, decision_log: DecisionLog
) -> Writeback | None:
    """:func:`configure`, then queue a write-back with every CRM decision ``decision_log`` logs."""
    writeback = configure(config, connections)
    if writeback is not None:
        decision_log.companions.append(writeback.companion)
    return writeback
