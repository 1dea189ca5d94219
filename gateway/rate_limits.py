"""Per-client rate limits: one budget per API client, shared by every worker.

Configuration (the ``rate_limits`` section; off unless ``enabled``)::

    rate_limits:
      enabled: true
      rate_per_second: 50          # sustained requests per second of one client
      burst: 100                   # requests a client may send at once after a quiet spell
      clients:                     # per-client overrides (client id -> limit)
        erp-batch-7f3a: {rate_per_second: 200, burst: 400}
      redis_url: null              # redis://host:6379/0: one budget across hosts
      key_prefix: "loangate:rl:"   # Redis keys: <prefix><client id>
      redis_timeout_ms: 50         # per Redis call; past it the request is let through

The algorithm is GCRA (the generic cell rate algorithm, a token bucket kept as one
timestamp per client, the *theoretical arrival time*): a request is admitted when the
client's TAT, pushed on by one emission interval, is no further ahead of now than the
burst allows. One float per client, updated in one step, whatever the store.

Two stores, one interface (:class:`RateStore`):

- :class:`RedisStore` (``redis_url`` set): one Lua script reads and writes the TAT
  atomically on the Redis server, on the server's clock, so every worker of every
  host draws from the same budget. When Redis cannot be reached the request is let
  through (fail open: a limiter outage must not become a gateway outage), a warning is
  logged, ``loangate_rate_limit_store_errors_total`` counts it, and Redis is left
  alone for a few seconds before it is tried again.
- :class:`LocalStore` (no ``redis_url``, the embedded default): a small fixed-size
  table in ``<instance>/rate-limits.bin``, memory-mapped by every worker of the host
  and updated under an exclusive ``flock``; the budget holds across the workers of
  one host (hosts behind one load balancer each grant it: use Redis there).

A limited request is answered before any work with ``429`` and ``Retry-After``
(whole seconds, at least 1) in the caller's protocol, logs one ``rate_limited`` line
(client id only) and counts in ``loangate_rate_limited_total``; no decision is logged
for it, as none was made.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import mmap
import os
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog
from flask import Flask

from gateway.errors import ConfigError, Problem
from gateway.state import gateway_state

log = structlog.get_logger(__name__)

_limit: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "rate_per_second": {"type": "number", "exclusiveMinimum": 0},
        "burst": {"type": "integer", "minimum": 1},
    },
}

#: JSON Schema of the ``rate_limits`` section (checked by :mod:`gateway.config`).
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "enabled": {"type": "boolean"},
        **_limit["properties"],
        "clients": {"type": "object", "additionalProperties": _limit},
        "redis_url": {"type": ["string", "null"], "pattern": "^(redis|rediss|unix)://"},
        "key_prefix": {"type": "string", "maxLength": 100},
        "redis_timeout_ms": {"type": "number", "exclusiveMinimum": 0, "maximum": 5000},
    },
}

DEFAULTS: dict[str, Any] = {
    "enabled": False,
    "rate_per_second": 50.0,
    "burst": 100,
    "clients": {},
    "redis_url": None,
    "key_prefix": "loangate:rl:",
    "redis_timeout_ms": 50,
}

#: The file of the local store, in the instance folder.
LOCAL_FILE = "rate-limits.bin"


@dataclass(frozen=True)
class Limit:
    """A client's limit: ``rate`` requests per second sustained, ``burst`` at once."""

    rate: float
    burst: int
    #: Seconds one request uses of the budget (the GCRA emission interval).
    interval: float = field(init=False, repr=False, compare=False)
    #: How far ahead of now a client's TAT may run: ``burst`` intervals.
    capacity: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Worked out once, not on every request.
        object.__setattr__(self, "interval", 1.0 / self.rate)
        object.__setattr__(self, "capacity", self.burst / self.rate)


class RateStore(Protocol):
    """Where the clients' TATs live. One call per request, atomic per key."""

    name: str

    def acquire(self, key: str, limit: Limit) -> float:
        """Take one request from ``key``'s budget: ``0.0`` when admitted, else the
        seconds until one more would be (nothing is taken then)."""
        ...


def gcra(tat: float | None, now: float, limit: Limit) -> tuple[float, float]:
    """``(new TAT, wait)`` of one request: admitted (wait 0, TAT moved on) or refused
    (TAT unchanged, wait > 0). ``None`` is a client with no state (a full budget)."""
    interval, capacity = limit.interval, limit.capacity
    if tat is None or tat < now:
        tat = now
    elif tat > now + capacity:
        tat = now + capacity  # the clock went back: never refuse for longer than a burst
    new_tat = tat + interval
    over = new_tat - now - capacity
    if over > 1e-9:
        return tat, over
    return new_tat, 0.0


class LocalStore:
    """GCRA state of one host's clients: a memory-mapped table shared by its workers.

    ``slots`` records of (16-byte digest of the key, TAT as a double), found by open
    addressing over at most :attr:`PROBES` slots. A record whose TAT has passed holds
    nothing a new one would not (a full budget), so any key may take its slot: the
    table never needs sweeping. Should every probed slot hold a live budget, the one
    nearest to full is taken over (its client gets a full budget back; with the
    default 8192 slots that needs thousands of clients active at once).

    Every process opens the file itself (the descriptor is never shared across
    ``fork``: ``flock`` would not tell the workers apart) and serialises its threads
    with a lock, its peers with ``flock``.
    """

    name = "local"
    MAGIC = b"LGRL0001"
    HEADER = struct.Struct("<8sI")
    RECORD = struct.Struct("<16sd")
    PROBES = 16
    _EMPTY = bytes(16)

    def __init__(
        self, path: Path, slots: int = 8192, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path)
        self.slots = slots
        self.clock = clock
        self._size = self.HEADER.size + slots * self.RECORD.size
        self._lock = threading.Lock()
        self._pid = -1
        self._fd = -1
        self._map: mmap.mmap | None = None
        #: key -> (digest, first slot): clients are few, hashing each request is not free
        self._keys: dict[str, tuple[bytes, int]] = {}

    def _open(self) -> mmap.mmap:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            header = os.pread(fd, self.HEADER.size, 0)
            if header != self.HEADER.pack(self.MAGIC, self.slots):
                # New, or laid out for another table size: start every budget afresh.
                os.ftruncate(fd, 0)
                os.ftruncate(fd, self._size)
                os.pwrite(fd, self.HEADER.pack(self.MAGIC, self.slots), 0)
            table = mmap.mmap(fd, self._size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        self._fd, self._map, self._pid = fd, table, os.getpid()
        return table

    def acquire(self, key: str, limit: Limit) -> float:
        known = self._keys.get(key)
        if known is None:
            digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
            known = (digest, int.from_bytes(digest[:8], "little") % self.slots)
            if len(self._keys) >= 100_000:
                self._keys.clear()
            self._keys[key] = known
        digest, start = known
        with self._lock:
            table = self._map if self._pid == os.getpid() else self._open()
            assert table is not None
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                now = self.clock()
                offset, tat = self._find(table, digest, start, now)
                new_tat, wait = gcra(tat, now, limit)
                if not wait:
                    self.RECORD.pack_into(table, offset, digest, new_tat)
                return wait
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _find(
        self, table: mmap.mmap, digest: bytes, start: int, now: float
    ) -> tuple[int, float | None]:
        """The offset of ``digest``'s record and its TAT, or of the slot to take (``None``)."""
        base, size, unpack = self.HEADER.size, self.RECORD.size, self.RECORD.unpack_from
        free: int | None = None
        oldest, oldest_tat = -1, math.inf
        for i in range(self.PROBES):
            offset = base + ((start + i) % self.slots) * size
            found, tat = unpack(table, offset)
            if found == digest:
                return offset, tat
            if free is None:
                if found == self._EMPTY or tat <= now:
                    free = offset
                elif tat < oldest_tat:
                    oldest, oldest_tat = offset, tat
        return (free if free is not None else oldest), None

    def close(self) -> None:
        """Unmap the table and close the file (this process)."""
        if self._map is not None and self._pid == os.getpid():
            self._map.close()
            os.close(self._fd)
        self._map, self._fd, self._pid = None, -1, -1


#: GCRA in one atomic step on the Redis server. KEYS[1]: the client's key; ARGV: interval
#: and capacity (seconds), and now (seconds) or '' for the server's clock. Returns the
#: wait as a string (a Lua number would be cut to an integer).
GCRA_LUA = """
local now
if ARGV[3] ~= '' then
  now = tonumber(ARGV[3])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local stored = redis.call('GET', KEYS[1])
local tat = now
if stored then tat = math.max(tonumber(stored), now) end
if tat > now + capacity then tat = now + capacity end
local new_tat = tat + interval
local over = new_tat - now - capacity
if over > 1e-9 then return tostring(over) end
redis.call('SET', KEYS[1], string.format('%.6f', new_tat),
           'PX', math.ceil((new_tat - now) * 1000) + 1000)
return '0'
"""


class RedisStore:
    """GCRA state in Redis: one budget per client across every worker and host.

    Fails open: while Redis cannot be reached every request is admitted; after a
    failure Redis is not asked again for ``retry_seconds`` (so an outage costs one
    timeout per worker per interval, not one per request).
    """

    name = "redis"

    def __init__(
        self,
        url: str,
        key_prefix: str = DEFAULTS["key_prefix"],
        timeout_ms: float = DEFAULTS["redis_timeout_ms"],
        clock: Callable[[], float] | None = None,
        retry_seconds: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        import redis

        self.prefix = key_prefix
        self.clock = clock  # None: the Redis server's clock (one clock for every host)
        self.retry_seconds = retry_seconds
        self._monotonic = monotonic
        self._down_until = 0.0
        timeout = timeout_ms / 1000.0
        self.client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._script = self.client.register_script(GCRA_LUA)
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)

    def acquire(self, key: str, limit: Limit) -> float:
        if self._down_until and self._monotonic() < self._down_until:
            return 0.0
        now = "" if self.clock is None else repr(self.clock())
        try:
            reply = self._script(
                keys=[self.prefix + key], args=[limit.interval, limit.capacity, now]
            )
        except self._errors as exc:
            self._down_until = self._monotonic() + self.retry_seconds
            _store_failed(self.name, exc)
            return 0.0
        self._down_until = 0.0
        return float(reply)

    def close(self) -> None:
        """Close this process's connections to Redis."""
        self.client.close()


def _store_failed(store: str, exc: BaseException) -> None:
    from gateway.metrics import RATE_LIMIT_STORE_ERRORS

    RATE_LIMIT_STORE_ERRORS.labels(store).inc()
    log.warning("rate_limit_store_unavailable", store=store, error=type(exc).__name__)


def retry_after_seconds(wait: float) -> int:
    """``Retry-After`` for a wait: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(wait))


def too_many_requests(retry_after: int) -> Problem:
    """429 for a client over its rate limit; retry after ``retry_after`` seconds."""
    return Problem(
        429,
        "rate-limited",
        "Too many requests",
        "This client is over its rate limit; retry after the Retry-After delay.",
        headers={"Retry-After": str(retry_after)},
    )


class RateLimiter:
    """The limits of one gateway: a default, per-client overrides, and their store."""

    def __init__(
        self, store: RateStore, default: Limit, overrides: Mapping[str, Limit] | None = None
    ) -> None:
        self.store = store
        self.default = default
        self.overrides = dict(overrides or {})

    def limit_for(self, client_id: str) -> Limit:
        """The limit of ``client_id``: its override, else the default."""
        return self.overrides.get(client_id, self.default)

    def check(self, client_id: str) -> None:
        """Take one request from ``client_id``'s budget, or raise the 429 :class:`Problem`."""
        wait = self.store.acquire(client_id, self.limit_for(client_id))
        if wait > 0:
            from gateway.metrics import RATE_LIMITED

            retry = retry_after_seconds(wait)
            RATE_LIMITED.labels(self.store.name).inc()
            log.info("rate_limited", client_id=client_id, retry_after=retry, pid=os.getpid())
            raise too_many_requests(retry)


def settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``rate_limits`` section of a validated configuration, over :data:`DEFAULTS`."""
    return {**DEFAULTS, **(config.get("rate_limits") or {})}


def build(config: Mapping[str, Any], instance_path: Path) -> RateLimiter | None:
    """The limiter the configuration asks for, or ``None`` when limits are off."""
    conf = settings(config)
    if not conf["enabled"]:
        return None
    default = Limit(float(conf["rate_per_second"]), int(conf["burst"]))
    overrides = {
        client: Limit(
            float(spec.get("rate_per_second", default.rate)), int(spec.get("burst", default.burst))
        )
        for client, spec in conf["clients"].items()
    }
    store: RateStore
    if conf["redis_url"]:
        try:
            store = RedisStore(conf["redis_url"], conf["key_prefix"], conf["redis_timeout_ms"])
        except ValueError as exc:  # never echo the URL: it may hold a password
            raise ConfigError("rate_limits.redis_url: not a valid Redis URL") from exc
    else:
        store = LocalStore(Path(instance_path) / LOCAL_FILE)
    return RateLimiter(store, default, overrides)


def init_app(app: Flask) -> RateLimiter | None:
    """Build the app's limiter into ``state.extras["rate_limiter"]`` (``None``: off)."""
    state = gateway_state(app)
    limiter = build(state.config, state.instance_path)
    state.extras["rate_limiter"] = limiter
    if limiter is not None:
        log.info(
            "rate_limits_on",
            store=limiter.store.name,
            rate_per_second=limiter.default.rate,
            burst=limiter.default.burst,
            overrides=len(limiter.overrides),
        )
    return limiter


def enforce(client_id: str) -> None:
    """Apply the current app's limit to an authenticated ``client_id`` (raises 429).

    Called once per request by each way a caller authenticates
    (:func:`gateway.auth.authenticate`, the SOAP adapter's WS-Security, the Salesforce
    endpoint's allow-list), before the request does any work.
    """
    limiter: RateLimiter | None = gateway_state().extras.get("rate_limiter")
    if limiter is not None:
        limiter.check(client_id)
