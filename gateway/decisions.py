"""The decision service: one path from an inbound request to a logged decision.

Every adapter calls :meth:`DecisionService.decide`. It decodes, checks the
idempotency key, runs the pipeline, builds the record, commits it, and only then
hands back what the caller is to be answered; events follow off the response path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

from gateway import ids
from gateway.components import Inbound
from gateway.context import DecisionContext
from gateway.decision_log import (
    DecisionLog,
    DuplicateIdempotencyKey,
    LogUnavailable,
    StoredDecision,
)
from gateway.errors import FieldError, Problem, log_unavailable, not_found, validation_failed
from gateway.events import EventDispatcher, Serialized
from gateway.idempotency import idempotency_key
from gateway.metrics import observe_decision
from gateway.personal import PersonalData
from gateway.pipeline import Pipeline, StageFailed
from gateway.record import build_document, row_for
from gateway.shadow import ShadowRunner

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Result:
    """What a caller is answered: the status, the logged document, and any problem."""

    status: int
    document: dict[str, Any]
    problem: Problem | None = None
    replayed: bool = False


def idempotency_conflict(key: str) -> Problem:
    return Problem(
        409,
        "idempotency-conflict",
        "Idempotency key reused with a different request",
        f"The Idempotency-Key {key!r} was already used for a different request body.",
    )


def internal_error() -> Problem:
    return Problem(500, "internal-error", "Internal error", "The decision could not be made.")


class DecisionService:
    """Runs pipelines and logs their decisions."""

    def __init__(
        self,
        pipelines: Mapping[str, Pipeline],
        decision_log: DecisionLog,
        events: EventDispatcher,
        retry_after: int = 2,
        personal: PersonalData | None = None,
        shadows: ShadowRunner | None = None,
    ) -> None:
        self.pipelines = pipelines
        self.log = decision_log
        self.events = events
        self.retry_after = retry_after
        #: Seals personal values before storage, opens them for a replayed answer.
        self.personal = personal
        #: Scores decided requests with the pipelines' shadow models, in the background.
        self.shadows = shadows

    def pipeline(self, name: str, adapter: str) -> Pipeline:
        """The pipeline ``name`` if it accepts ``adapter``; a 404 problem otherwise."""
        pipeline = self.pipelines.get(name)
        if pipeline is None:
            raise not_found(f"No pipeline named {name!r}.")
        if adapter not in pipeline.adapters:
            raise not_found(f"Pipeline {name!r} does not accept the {adapter!r} adapter.")
        return pipeline

    def decide(
        self,
        pipeline_name: str,
        adapter_name: str,
        body: bytes,
        headers: Mapping[str, str],
        client_id: str,
        request_id: str,
        decoder: Callable[[], Inbound] | None = None,
    ) -> Result:
        """Decide one request; raises a :class:`Problem` only when nothing was logged.

        ``decoder`` replaces ``adapter.decode(body, headers)`` for an adapter that has already
        parsed the request (SOAP reads its envelope for authentication first); ``body`` is
        then what identifies the request for idempotency.
        """
        pipeline = self.pipeline(pipeline_name, adapter_name)
        adapter = pipeline.adapters[adapter_name]
        # The pipeline is part of the request: the same key and body sent to another
        # pipeline is another request (409), not a replay.
        request_hash = hashlib.sha256(pipeline.name.encode() + b"\n" + body).hexdigest()
        received_at = datetime.now(UTC)
        problem: Problem | None = None
        try:
            inbound = decoder() if decoder else adapter.decode(body, headers)
        except Problem as exc:
            problem = exc
            # A decoder that knows which record it failed on says so in ``extra``, so that the
            # rejection is logged under that application id (e.g. a CRM record to update).
            app_id = exc.extra.pop("application_id", None)
            inbound = Inbound(
                fields={}, application_id=app_id, idempotency_key=_header_key(headers)
            )
        key = inbound.idempotency_key
        if key is not None:
            replay = self._replay(client_id, key, request_hash)
            if replay is not None:
                return replay
        ctx = DecisionContext(
            decision_id=ids.new_id(),
            request_id=request_id,
            pipeline=pipeline.name,
            adapter=adapter_name,
            client_id=client_id,
            received_at=received_at,
            application_id=inbound.application_id,
            idempotency_key=key,
            request_hash=request_hash,
            raw=inbound.fields if problem is None else {},
        )
        if problem is None:
            try:
                ctx = pipeline.run(ctx)
            except StageFailed as exc:
                ctx, problem = exc.ctx, internal_error()
            except Problem as exc:  # a stage refusing the request outright
                problem = exc
        if problem is None and ctx.errors:
            problem = validation_failed(ctx.errors)
        document = build_document(ctx, problem)
        try:
            # Scoring used the values in clear; only the stored record is sealed.
            stored = self.personal.protect(document) if self.personal else document
            payload = orjson.dumps(stored)
            # Companion rows are built from the clear document: they must hold no
            # personal value (bins, codes, ids), but may be derived from one.
            self.log.append(row_for(stored, request_hash, payload.decode()), document)
        except DuplicateIdempotencyKey:
            # A concurrent retry with the same key won the race: answer with its record.
            replay = self._replay(client_id, key or "", request_hash)
            if replay is None:
                raise log_unavailable(self.retry_after) from None
            return replay
        except LogUnavailable as exc:
            log.error("decision_log_unavailable", error=str(exc), pipeline=pipeline.name)
            raise log_unavailable(self.retry_after) from None
        self.events.emit("decision_logged", record=Serialized(payload))
        observe_decision(ctx, document["outcome"])
        if pipeline.shadows and self.shadows is not None and problem is None:
            self.shadows.submit(pipeline, ctx)  # off the response path, never waited for
        if problem is not None:
            problem.extra["decision_id"] = ctx.decision_id
        return Result(document["status_code"], document, problem)

    def _replay(self, client_id: str, key: str, request_hash: str) -> Result | None:
        try:
            stored: StoredDecision | None = self.log.find_by_key(client_id, key)
        except LogUnavailable:
            raise log_unavailable(self.retry_after) from None
        if stored is None:
            return None
        if stored.request_hash != request_hash:
            raise idempotency_conflict(key)
        document = stored.parsed()
        if self.personal is not None:  # the caller sent these values: answer them as before
            document = self.personal.reveal(document, can_read=True)
        problem = None
        if document["status"] != "decided":
            problem = Problem(
                document["status_code"],
                document["error"]["type"].rsplit("/", 1)[-1],
                document["error"]["title"],
                document["error"]["detail"],
                tuple(FieldError(**e) for e in document["errors"]),
                extra={"decision_id": document["decision_id"]},
            )
        return Result(stored.status_code, document, problem, replayed=True)


def _header_key(headers: Mapping[str, str]) -> str | None:
    """The ``Idempotency-Key`` header if well-formed, for a request that failed to decode."""
    try:
        return idempotency_key(headers)
    except Problem:
        return None
