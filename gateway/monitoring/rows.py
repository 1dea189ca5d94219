"""The ``decision_monitoring`` row of each logged decision (a decision-log companion).

The row is written in the decision's own transaction, so every logged decision has one
and drift runs read small integers instead of parsing documents. Bins follow the
reference profile of the version that scored the decision; a rejected request is binned
against the pipeline scorer's current version, from the values the caller sent.

Bins come from clear values. The decision log stores personal values sealed
(:mod:`gateway.personal`); the decision service and the batch path hand companions the
document in clear, and the row keeps bins, never a value. Given a stored document
instead, a sealed value is opened with the subject's data key (:func:`personal_opener`),
which the sealing has just put in the key store's cache. A companion must never fail a
decision: any error leaves the decision without its monitoring row, with a warning.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Table

from gateway.monitoring.layout import (
    MISSING,
    NOT_COMPUTED,
    GroupLayout,
    VersionLayout,
    group_column,
    input_aliases,
)
from gateway.personal.crypto import is_envelope, open_envelope
from gateway.tables import DecisionMonitoring

log = structlog.get_logger(__name__)

decision_monitoring: Table = DecisionMonitoring

#: ``(document, member, field, sealed value) -> clear value``
Opener = Callable[[Mapping[str, Any], str, str, Any], Any]


class _PipelineInfo:
    """What binning needs of a pipeline, computed once."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.groups = GroupLayout.from_pipeline(pipeline)
        self.aliases = input_aliases(pipeline)
        properties = (pipeline.input_schema() or {}).get("properties") or {}
        self.inputs = frozenset(properties)

    def current_model(self) -> tuple[str, int] | None:
        """(name, version) the pipeline's scorer uses now, if it says."""
        model = getattr(self.pipeline.scorer, "model", None)
        info = getattr(model, "info", None)
        if info is None:
            return None
        return str(info.name), int(info.version)


class MonitoringRows:
    """Builds the monitoring row of a decision document; :meth:`companion` is the hook."""

    def __init__(
        self,
        registry: Any,
        pipelines: Mapping[str, Any],
        opener: Opener | None = None,
    ) -> None:
        self.registry = registry
        self.opener = opener
        self._pipelines = {name: _PipelineInfo(p) for name, p in pipelines.items()}
        self._layouts: dict[tuple[str, int], VersionLayout] = {}
        self._plans: dict[tuple[str, int], tuple[tuple[str, str, Callable[[Any], int]], ...]] = {}
        self._lock = threading.Lock()
        for info in self._pipelines.values():  # read now, not in a decision's transaction
            ref = info.current_model()
            if ref is not None:
                try:
                    self.layout(*ref)
                except Exception as exc:  # the first decision tries again
                    log.warning("monitoring_layout_unavailable", error=type(exc).__name__)

    def layout(self, name: str, version: int) -> VersionLayout:
        """The layout of a model version (read from the registry once per process)."""
        key = (name, version)
        found = self._layouts.get(key)
        if found is None:
            info = self.registry.get(name, version=version)
            found = VersionLayout.from_metadata(name, version, info.metadata)
            with self._lock:
                found = self._layouts.setdefault(key, found)
        return found

    def _plan(self, name: str, version: int) -> tuple[tuple[str, str, Callable[[Any], int]], ...]:
        """(column, feature, binning function) per monitored feature of a version."""
        key = (name, version)
        found = self._plans.get(key)
        if found is None:
            found = tuple((f.column, f.name, f.bin) for f in self.layout(name, version).features)
            self._plans[key] = found
        return found

    def companion(self, document: Mapping[str, Any]) -> list[tuple[Table, dict[str, Any]]]:
        """The decision's ``decision_monitoring`` row (a :data:`gateway.decision_log.Companion`)."""
        try:
            row = self.row(document)
        except Exception as exc:  # never fail a decision for its monitoring row
            log.warning(
                "monitoring_row_failed",
                decision_id=document.get("decision_id"),
                error=type(exc).__name__,
            )
            return []
        return [] if row is None else [(decision_monitoring, row)]

    def row(self, document: Mapping[str, Any]) -> dict[str, Any] | None:
        """The monitoring row of ``document`` (``None`` for a pipeline this process lacks)."""
        pinfo = self._pipelines.get(str(document.get("pipeline")))
        if pinfo is None:
            return None
        model = document.get("model")
        ref = (str(model["name"]), int(model["version"])) if model else pinfo.current_model()
        probability = document.get("probability_of_default")
        row: dict[str, Any] = {
            "decision_id": document["decision_id"],
            "pipeline": document["pipeline"],
            "model_name": ref[0] if ref else None,
            "model_version": ref[1] if ref else None,
            "received_at": datetime.fromisoformat(document["received_at"]),
            "status": str(document.get("status"))[:10],
            "outcome": str(document.get("outcome"))[:10],
            "probability": probability,
            "score_bin": None,
        }
        values = _Values(document, pinfo, self.opener)
        if ref is not None:
            layout, plan = self.layout(*ref), self._plan(*ref)
            if layout.score is not None and probability is not None:
                row["score_bin"] = layout.score.bin(probability)
            features, imputed = values.features, values.imputed
            if features:  # the pipeline ran: its features, imputed ones counted as missing
                for column, name, binner in plan:
                    value = features.get(name)
                    if value is None or name in imputed:
                        row[column] = MISSING
                    elif type(value) is dict:
                        row[column] = binner(values.open("features", name, value))
                    else:
                        row[column] = binner(value)
            else:
                for column, name, _binner in plan:
                    row[column] = values.bin(layout.features_by_name[name])
        for slot, name in enumerate(pinfo.groups.fields):
            row[group_column(slot)] = pinfo.groups.code(slot, values.clear(name))
        return row


class _Values:
    """A document's value of each field: from ``features``, else what the caller sent."""

    def __init__(self, document: Mapping[str, Any], pinfo: _PipelineInfo, opener: Opener | None):
        self.document = document
        self.pinfo = pinfo
        self.opener = opener
        self.features: Mapping[str, Any] = document.get("features") or {}
        self.application: Mapping[str, Any] = document.get("application") or {}
        self.imputed = frozenset(
            str(i.get("field")) for i in document.get("imputations") or () if isinstance(i, dict)
        )

    def open(self, member: str, name: str, value: Any) -> Any:
        if is_envelope(value):
            if self.opener is None:
                raise ValueError("a sealed value and no way to open it")
            return self.opener(self.document, member, name, value)
        return value

    def clear(self, name: str) -> Any:
        """The field's value in clear (features first), ``None`` if absent."""
        if name in self.features:
            return self.open("features", name, self.features[name])
        if name in self.application:
            value = self.open("application", name, self.application[name])
            return self.pinfo.aliases.get(name, {}).get(value, value)
        return None

    def bin(self, feature: Any) -> int:
        name = feature.name
        if name in self.imputed:
            return MISSING  # a validator filled it in: the caller did not send it
        if name in self.features:
            return int(feature.bin(self.open("features", name, self.features[name])))
        if self.features:
            return MISSING  # the pipeline ran and the feature stayed absent
        if name in self.pinfo.inputs:
            return int(feature.bin(self.clear(name)))
        return NOT_COMPUTED  # rejected before the feature existed (e.g. a derived one)


def personal_opener(personal: Any) -> Opener:
    """An :data:`Opener` with :class:`gateway.personal.PersonalData`'s key store."""

    def opener(document: Mapping[str, Any], member: str, name: str, value: Any) -> Any:
        meta = document.get("personal_data") or {}
        key_id, data_key = personal.keys.key_for(meta["subject"])
        if key_id != meta.get("key"):
            raise ValueError("the subject's key changed since the value was sealed")
        pointer = f"/{member}/" + name.replace("~", "~0").replace("/", "~1")
        return open_envelope(value, data_key, str(document["decision_id"]), pointer)

    return opener
