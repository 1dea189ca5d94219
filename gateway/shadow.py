"""Shadow scoring: challengers score live requests off the response path.

A pipeline may declare shadows::

    shadow:
      - {model: german-credit, stage: challenger}       # follows the stage
      - {model: german-credit-scorecard, version: 3}     # or one fixed version

After a decision is committed and answered, its final context goes to this process's
:class:`ShadowRunner`, a bounded queue drained by one background thread in batches
(gathered for up to half a second, then written in one commit): each shadow model
scores the queued contexts as one frame (the compiled fast path), the pipeline's
policy turns each shadow probability into the outcome it would have given (without
reasons: no explainer runs), and the rows go to ``shadow_scores`` beside the
champion's probability and outcome. When the queue is full the sample is dropped and
counted, never waited for: the champion's latency does not depend on the shadows.
A shadow following a stage that has no version yet stays idle until one is promoted.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import structlog
from sqlalchemy import Engine, Table, insert

from gateway.compiled import sigmoid
from gateway.context import DecisionContext, Score
from gateway.model_switch import Follower
from gateway.registry import LoadedModel, ModelNotFound, ModelRegistry
from gateway.tables import ShadowScore

log = structlog.get_logger(__name__)

shadow_scores: Table = ShadowScore.__table__  # type: ignore[assignment]


class ShadowModel:
    """One shadow of a pipeline: a model version (following a stage, or fixed)."""

    def __init__(self, spec: Mapping[str, Any], registry: ModelRegistry) -> None:
        self.name: str = spec["model"]
        self.version: int | None = spec.get("version")
        self.stage: str | None = None if self.version else spec.get("stage", "challenger")
        self.label: str = spec.get("label") or f"{self.name}@{self.stage or self.version}"
        self.model: LoadedModel | None = None
        try:
            info = registry.get(self.name, version=self.version, stage=self.stage)
            self.model = registry.load(info)
        except ModelNotFound:
            if self.stage is None:
                raise  # a fixed version must exist
        if self.stage is not None:
            current = self.model.info.version if self.model else 0
            registry.followers.follow(
                Follower(self.name, self.stage, current, self._switch, lambda _m: [])
            )

    def _switch(self, loaded: LoadedModel) -> None:
        self.model = loaded

    def score(self, ctxs: Sequence[DecisionContext]) -> list[Score | None] | None:
        """Scores of ``ctxs`` (one frame; ``None`` for a row it cannot score), or ``None``
        while no version is there."""
        model = self.model
        if model is None:
            return None
        fields = list(model.compiled.fields)
        frame = pd.DataFrame.from_records(
            [[ctx.features.get(f) for f in fields] for ctx in ctxs], columns=fields
        )
        try:
            logits: list[float | None] = model.compiled.logit_frame(frame).tolist()  # type: ignore[attr-defined]
        except Exception:  # a row the shadow cannot read: score the others one by one
            logits = [_logit_or_none(model, ctx) for ctx in ctxs]
        return [
            None if z is None else Score(probability=sigmoid(z), logit=z, model=model.ref)
            for z in logits
        ]

    def describe(self) -> dict[str, Any]:
        model = self.model
        return {
            "label": self.label,
            "model": self.name,
            "stage": self.stage,
            "version": model.info.version if model else None,
        }


class ShadowRunner:
    """This process's queue of decided contexts for the shadows, and its thread."""

    def __init__(
        self,
        engine: Engine,
        queue_size: int = 10000,
        batch: int = 1000,
        linger_seconds: float = 0.5,
    ) -> None:
        self.engine = engine
        self.batch = batch
        #: How long the thread gathers a batch after its first item: one shadow commit per
        #: interval, not per request, so the champion's commits rarely wait behind it.
        self.linger_seconds = linger_seconds
        #: Samples dropped because the queue was full (logged every 1,000).
        self.dropped = 0
        self._queue: queue.Queue[tuple[Any, DecisionContext]] = queue.Queue(queue_size)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, pipeline: Any, ctx: DecisionContext) -> None:
        """Queue a decided context (never blocks: a full queue drops and counts it)."""
        self._ensure_thread()
        try:
            self._queue.put_nowait((pipeline, ctx))
        except queue.Full:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("shadow_samples_dropped", dropped=self.dropped)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued so far is written (tests, shutdown)."""
        done = self._queue.all_tasks_done
        with done:
            return done.wait_for(lambda: self._queue.unfinished_tasks == 0, timeout)

    def _ensure_thread(self) -> None:
        # Started on first use, so it is created in the process that uses it (after fork).
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="loangate-shadow", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            until = time.monotonic() + self.linger_seconds
            while len(items) < self.batch:
                wait = until - time.monotonic()
                try:
                    items.append(
                        self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
            try:
                self._write(items)
            except Exception as exc:  # a bad batch or a database blip loses the sample only
                log.warning("shadow_scoring_failed", error=type(exc).__name__, rows=len(items))
            finally:
                for _ in items:
                    self._queue.task_done()

    def _write(self, items: list[tuple[Any, DecisionContext]]) -> None:
        by_pipeline: dict[str, tuple[Any, list[DecisionContext]]] = {}
        for pipeline, ctx in items:
            by_pipeline.setdefault(pipeline.name, (pipeline, []))[1].append(ctx)
        rows: list[dict[str, Any]] = []
        now = datetime.now(UTC)
        for pipeline, ctxs in by_pipeline.values():
            for shadow in pipeline.shadows:
                rows.extend(shadow_rows(pipeline, shadow, ctxs, now))
        if rows:
            with self.engine.begin() as conn:
                conn.execute(insert(shadow_scores), rows)


def _logit_or_none(model: LoadedModel, ctx: DecisionContext) -> float | None:
    try:
        return model.compiled.logit(ctx.features)
    except Exception:
        return None


def shadow_rows(
    pipeline: Any, shadow: ShadowModel, ctxs: Sequence[DecisionContext], now: datetime
) -> list[dict[str, Any]]:
    """The ``shadow_scores`` rows of ``shadow`` on decided contexts ``ctxs``."""
    scores = shadow.score(ctxs)
    if scores is None:
        return []
    rows = []
    for ctx, score in zip(ctxs, scores, strict=True):
        if score is None or ctx.score is None or ctx.decision is None:
            continue
        shadowed = ctx.evolve(score=score, explanation=None, decision=None)
        outcome = pipeline.policy.decide(shadowed).decision.outcome
        rows.append(
            {
                "decision_id": ctx.decision_id,
                "label": shadow.label,
                "pipeline": pipeline.name,
                "received_at": ctx.received_at,
                "model_name": score.model.name,
                "model_version": score.model.version,
                "probability": score.probability,
                "outcome": outcome,
                "champion_probability": ctx.score.probability,
                "champion_outcome": ctx.decision.outcome,
                "scored_at": now,
            }
        )
    return rows
