"""Promotion without a restart: scorers follow a stage of a model in every process.

A scorer configured with ``stage: champion`` (or ``challenger``) registers a
:class:`Follower` with its registry. Each server process runs a
:class:`RefreshThread` that asks the database, every ``models.refresh_seconds``, which
version is newest at each followed stage (one query on a small table); when it
changed, the new version is verified, loaded and compiled *off* the request path and
then handed to the follower, which swaps it in with one reference assignment. A
request in flight finishes with the version it started with; the next one uses the
new one; none fails. A version a pipeline cannot use (another model kind than its
explainers explain, a protected attribute) is refused by the follower and reported,
and the process keeps the version it has.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from flask import Flask

from gateway.state import gateway_state

if TYPE_CHECKING:
    from gateway.registry import LoadedModel, ModelRegistry

log = structlog.get_logger(__name__)

#: Checks a candidate version for a follower: a list of reasons it cannot be used.
Check = Callable[["LoadedModel"], list[str]]


@dataclass
class Follower:
    """A scorer's wish to use the newest version of ``name`` at ``stage``."""

    name: str
    stage: str
    version: int
    switch: Callable[[LoadedModel], None]
    check: Check


class StageFollowers:
    """The followers of one registry, and the refresh that moves them."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self._followers: list[Follower] = []
        self._lock = threading.Lock()

    def follow(self, follower: Follower) -> None:
        """Keep ``follower`` on the newest version at its stage from now on."""
        with self._lock:
            self._followers.append(follower)

    def problems(self, loaded: LoadedModel, stage: str) -> list[str]:
        """Why followers of ``stage`` in this process could not use ``loaded`` (empty: fine)."""
        with self._lock:
            followers = [
                f for f in self._followers if (f.name, f.stage) == (loaded.info.name, stage)
            ]
        return [p for f in followers for p in f.check(loaded)]

    def refresh(self) -> int:
        """Move every follower whose stage has a new version; returns how many moved."""
        with self._lock:
            followers = list(self._followers)
        if not followers:
            return 0
        heads = self.registry.stage_heads()
        moved = 0
        for follower in followers:
            info = heads.get((follower.name, follower.stage))
            if info is None or info.version == follower.version:
                continue  # no version at the stage (keep serving) or no change
            loaded = self.registry.load(info)
            problems = follower.check(loaded)
            if problems:
                log.error(
                    "model_switch_refused",
                    model=info.name,
                    version=info.version,
                    stage=follower.stage,
                    problems=problems,
                )
                follower.version = info.version  # report once, keep the version in use
                continue
            follower.switch(loaded)
            log.info(
                "model_switched",
                model=info.name,
                stage=follower.stage,
                from_version=follower.version,
                to_version=info.version,
            )
            follower.version = info.version
            moved += 1
        return moved


class RefreshThread(threading.Thread):
    """Refreshes a registry's followers every ``interval`` seconds until stopped."""

    def __init__(self, followers: StageFollowers, interval: float) -> None:
        super().__init__(name="loangate-model-refresh", daemon=True)
        self.followers = followers
        self.interval = interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            try:
                self.followers.refresh()
            except Exception as exc:  # a database blip must not end the thread
                log.warning("model_refresh_failed", error=type(exc).__name__)

    def stop(self) -> None:
        self._stop_event.set()


def start_model_refresh(app: Flask) -> RefreshThread:
    """Start following promotions in the background for ``app`` (server processes)."""
    state = gateway_state(app)
    interval = float(state.config["models"].get("refresh_seconds", 1))
    thread = RefreshThread(state.extras["registry"].followers, interval)
    thread.start()
    atexit.register(thread.stop)
    state.extras["model_refresh"] = thread
    return thread
