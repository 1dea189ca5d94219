"""Policy versions: the settings each pipeline's policy ran with, kept for replay.

A decision records its policy's ``version``; the settings behind that version live in
config, which moves on. At start the gateway stores each pipeline's policy settings
under (pipeline, policy, version) in ``policy_versions``, with their sha256, so an old
version can be rebuilt later. A start whose settings differ from those already stored
under the same version is refused: a changed policy must get a new ``version``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from gateway.errors import ConfigError
from gateway.tables import PolicyVersion

log = structlog.get_logger(__name__)

policy_versions: sa.Table = PolicyVersion.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class StoredPolicy:
    """One recorded policy version: its component spec and the digest of its settings."""

    pipeline: str
    name: str
    version: str
    config: Mapping[str, Any]
    sha256: str

    @property
    def spec(self) -> dict[str, Any]:
        """The ``{name, config}`` spec the policy is built from."""
        return {"name": self.name, "config": dict(self.config)}


def canonical(settings: Mapping[str, Any]) -> str:
    """The settings as canonical JSON (sorted keys, no spaces): what is hashed and stored."""
    return json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)


def policy_version(spec: Mapping[str, Any]) -> str | None:
    """The ``version`` a policy spec declares (what its decisions record), if any."""
    version = (spec.get("config") or {}).get("version")
    return None if version is None else str(version)


class PolicyVersions:
    """Records and finds the settings behind policy versions."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, pipelines: Mapping[str, Mapping[str, Any]]) -> None:
        """Store each pipeline's policy settings under its version (config ``pipelines``).

        Raises :class:`ConfigError` naming the pipeline when its version is already stored
        with other settings. A database without the table (not migrated yet) is reported
        in the log and skipped: the decision log cannot be written there either.
        """
        for pipeline, spec in pipelines.items():
            policy = spec["policy"]
            version = policy_version(policy)
            if version is None:
                continue  # a policy without versions cannot be replayed by version
            text = canonical(policy.get("config") or {})
            digest = hashlib.sha256(text.encode()).hexdigest()
            try:
                stored = self._store(pipeline, policy["name"], version, text, digest)
            except DBAPIError as exc:
                log.warning("policy_versions_not_recorded", error=type(exc).__name__)
                return
            if stored.sha256 != digest:
                raise ConfigError(
                    f"pipelines.{pipeline}.policy.config: policy {policy['name']!r} version "
                    f"{version!r} is already recorded with other settings (sha256 "
                    f"{stored.sha256[:12]}…, now {digest[:12]}…); bump `version` when you "
                    "change a policy's settings, so that each decision names what decided it"
                )

    def _store(
        self, pipeline: str, name: str, version: str, text: str, digest: str
    ) -> StoredPolicy:
        found = self.get(pipeline, name, version)
        if found is not None:
            return found
        row = {
            "pipeline": pipeline,
            "policy": name,
            "version": version,
            "config_json": text,
            "sha256": digest,
            "recorded_at": datetime.now(UTC),
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(policy_versions), [row])
        except IntegrityError:
            pass  # another process starting at the same time stored it first: compare with it
        found = self.get(pipeline, name, version)
        assert found is not None, "a recorded policy version is readable"
        return found

    def get(self, pipeline: str, name: str, version: str) -> StoredPolicy | None:
        """The settings recorded for ``pipeline``'s policy ``name`` at ``version``."""
        c = policy_versions.c
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(c.config_json, c.sha256).where(
                    c.pipeline == pipeline, c.policy == name, c.version == version
                )
            ).first()
        if row is None:
            return None
        return StoredPolicy(pipeline, name, version, json.loads(row.config_json), row.sha256)
