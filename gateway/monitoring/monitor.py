"""Monitoring runs: choose the scope and window, aggregate in SQL, grade, store, alert.

``loangate monitor run`` (cron, a Kubernetes CronJob) and the tests drive
:class:`Monitor`; the API only reads what runs stored (:mod:`gateway.monitoring.runs`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Engine

from gateway import ids
from gateway.monitoring import queries, runs
from gateway.monitoring.alerts import Alert, AlertSinks, Delivery
from gateway.monitoring.checks import Finding
from gateway.monitoring.drift import drift_results
from gateway.monitoring.fairness import fairness_results
from gateway.monitoring.layout import GroupLayout, group_column
from gateway.monitoring.performance import performance_results
from gateway.monitoring.queries import Scope, Window
from gateway.monitoring.rows import MonitoringRows

log = structlog.get_logger(__name__)


@dataclass
class RunOutcome:
    """A stored run, its alerts, and how their deliveries went."""

    run: dict[str, Any]
    alerts: list[Alert]
    deliveries: list[Delivery] = field(default_factory=list)


class Monitor:
    """Runs drift, performance and fairness checks over the monitoring rows."""

    def __init__(
        self,
        engine: Engine,
        rows: MonitoringRows,
        pipelines: Mapping[str, Any],
        settings: Mapping[str, Any],
        sinks: AlertSinks,
    ) -> None:
        self.engine = engine
        self.rows = rows
        self.pipelines = pipelines
        self.settings = settings
        self.sinks = sinks

    def default_window(self) -> Window:
        """The configured window: the last ``window.last`` decisions (within ``days``)."""
        w = self.settings["window"]
        since = datetime.now(UTC) - timedelta(days=w["days"]) if w.get("days") else None
        return Window(last=w["last"], since=since)

    def scopes(
        self, pipeline: str | None = None, model: tuple[str, int] | None = None
    ) -> list[Scope]:
        """Each pipeline (or ``pipeline``) with its scorer's current version (or ``model``)."""
        names = [pipeline] if pipeline else sorted(self.pipelines)
        out = []
        for name in names:
            if name not in self.pipelines:
                raise KeyError(f"no pipeline named {name!r}")
            ref = model or _current(self.pipelines[name])
            if ref is not None:
                out.append(Scope(name, ref[0], ref[1]))
        return out

    def run(
        self,
        kinds: Sequence[str],
        window: Window | None = None,
        pipeline: str | None = None,
        model: tuple[str, int] | None = None,
    ) -> list[RunOutcome]:
        """Run each of ``kinds`` for each scope; store every run, then send its alerts."""
        window = window or self.default_window()
        done = []
        for scope in self.scopes(pipeline, model):
            for kind in kinds:
                done.append(self.run_one(kind, scope, window))
        return done

    def run_one(self, kind: str, scope: Scope, window: Window) -> RunOutcome:
        """One run of ``kind`` over ``window`` of ``scope``: stored, and its alerts sent."""
        started = datetime.now(UTC)
        run_id = ids.new_id()
        layout = self.rows.layout(scope.model_name, scope.model_version)
        if kind not in runs.KINDS:
            raise ValueError(f"unknown monitoring kind {kind!r}")
        with self.engine.connect() as conn:
            bounds = queries.resolve(conn, scope, window)
            if kind == "drift":
                columns = [(f.column, f.bins) for f in layout.features]
                if layout.score is not None:
                    columns.append(("score_bin", layout.score.bins))
                counts = queries.bin_counts(conn, bounds, columns, self.settings["drift"]["sql"])
                # every row counts once in every column: no second scan for the size
                rows = sum(counts[columns[0][0]].values()) if columns else 0
                results, findings = drift_results(layout, counts, rows, self.settings["drift"])
            elif kind == "performance":
                rows = queries.window_size(conn, bounds)
                pairs = queries.outcome_pairs(conn, bounds)
                results, findings = performance_results(
                    layout, pairs, rows, self.settings["performance"]
                )
            else:
                rows = queries.window_size(conn, bounds)
                groups = GroupLayout.from_pipeline(self.pipelines[scope.pipeline])
                cols = [group_column(i) for i in range(len(groups.fields))]
                outcome_counts = queries.group_outcomes(conn, bounds, cols)
                results, findings = fairness_results(
                    groups, outcome_counts, rows, self.settings["fairness"]
                )
        if kind != "performance" and rows < self.settings["min_rows"]:
            # too few decisions to tell drift from noise: reported, never alerted
            results["note"] = f"fewer than {self.settings['min_rows']} decisions: not graded"
            findings = []
        alerts = [_alert(kind, scope, f, run_id) for f in findings if self.sinks.wanted(f.severity)]
        run = {
            "id": run_id,
            "kind": kind,
            "pipeline": scope.pipeline,
            "model": scope.model_name,
            "version": scope.model_version,
            "window": {**window.as_dict(), "rows": rows},
            "started_at": started.isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
            "alerts": len(alerts),
            "results": results,
        }
        runs.store(self.engine, run)
        log.info(
            "monitoring_run",
            run_id=run_id,
            kind=kind,
            pipeline=scope.pipeline,
            model=scope.model_name,
            version=scope.model_version,
            rows=rows,
            alerts=len(alerts),
        )
        summary = {k: v for k, v in run.items() if k != "results"}
        return RunOutcome(run, alerts, self.sinks.send(summary, alerts))


def _alert(kind: str, scope: Scope, finding: Finding, run_id: str) -> Alert:
    return Alert(
        kind=kind,
        pipeline=scope.pipeline,
        model=scope.model_name,
        version=scope.model_version,
        subject=finding.subject,
        statistic=finding.statistic,
        value=round(finding.value, 6),
        threshold=finding.threshold,
        severity=finding.severity,
        run_id=run_id,
    )


def _current(pipeline: Any) -> tuple[str, int] | None:
    info = getattr(getattr(pipeline.scorer, "model", None), "info", None)
    return None if info is None else (str(info.name), int(info.version))
