"""Per-API-key rate limits on the expensive endpoints (token buckets, 429 + Retry-After).

Job submission, uploads, deletion-request filing and whole-log audit reads each cost far
more than a request: a worker hour, gigabytes of storage, a compliance workflow, a full
scan of the log. One runaway script must not crowd everyone else out, so each API key
gets a token bucket per group: ``N`` requests per minute sustained, with a burst of one
minute's worth (``N``).

Buckets live in Redis when the broker is Redis, so every API process of a deployment
shares them (one Lua script refills and takes a token atomically, on Redis' clock). The
embedded deployment has a single API process, so there they live in its memory. When
Redis cannot be reached the limiter falls back to memory for a while instead of failing
requests: limits are a guard rail, not a reason for a 503.

The limiter runs as ASGI middleware before authentication, keyed by a hash of the bearer
token: it never touches the database, and an invalid token only drains its own bucket.
Requests without a bearer token are not limited here (they are refused with 401 next).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send

from core.settings import Settings

log = logging.getLogger("expunge.api.ratelimit")

API_PREFIX = "/api/v1"
REDIS_PREFIX = "expunge:ratelimit:"
MEMORY_MAX_BUCKETS = 50_000
REDIS_RETRY_SECONDS = 10.0


@dataclass(frozen=True)
class Group:
    """A set of endpoints that share one bucket per key."""

    name: str
    label: str  # for the 429 message
    per_minute: float

    @property
    def capacity(self) -> float:
        return max(self.per_minute, 1.0)

    @property
    def rate(self) -> float:
        """Tokens per second."""
        return self.per_minute / 60.0


# (method, path under /api/v1) → group name. Anchored: /jobs/{id}/cancel is not /jobs.
ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile(r"^/jobs/?$"), "jobs"),
    ("POST", re.compile(r"^/datasets/?$"), "uploads"),
    ("POST", re.compile(r"^/datasets/upload/?$"), "uploads"),
    ("POST", re.compile(r"^/models/[^/]+/versions/?$"), "uploads"),
    ("POST", re.compile(r"^/deletion-requests/[^/]+/attachments/?$"), "uploads"),
    ("POST", re.compile(r"^/deletion-requests/?$"), "deletion_requests"),
    ("POST", re.compile(r"^/deletion-requests/bulk/?$"), "deletion_requests"),
    ("GET", re.compile(r"^/audit/verify/?$"), "audit"),
    ("GET", re.compile(r"^/audit/export/?$"), "audit"),
    # Signing verifies the whole log first: as costly as a verify.
    ("POST", re.compile(r"^/audit/checkpoints/?$"), "audit"),
)


def groups_from(settings: Settings) -> dict[str, Group]:
    """The configured groups; a limit of 0 (or less) switches that group off."""
    configured = {
        "jobs": ("job submissions", settings.rate_limit_jobs_per_minute),
        "uploads": ("uploads and dataset registrations", settings.rate_limit_uploads_per_minute),
        "deletion_requests": (
            "deletion-request filings",
            settings.rate_limit_deletion_requests_per_minute,
        ),
        "audit": (
            "whole-log audit reads (verify, export, signing a checkpoint)",
            settings.rate_limit_audit_per_minute,
        ),
    }
    return {
        name: Group(name, label, per_minute)
        for name, (label, per_minute) in configured.items()
        if per_minute > 0
    }


# How a 429 looks in the OpenAPI document of every limited operation.
RATE_LIMITED_RESPONSE = {
    "description": "Over this API key's rate limit for the endpoint's group; retry after "
    "Retry-After seconds",
    "headers": {
        "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait"}
    },
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["detail", "code", "retry_after"],
                "properties": {
                    "detail": {"type": "string"},
                    "code": {"type": "string", "const": "rate_limited"},
                    "retry_after": {"type": "integer"},
                },
            }
        }
    },
}


def match(method: str, path: str) -> str | None:
    """The group a request belongs to, or None for an unlimited endpoint."""
    if not path.startswith(API_PREFIX + "/"):
        return None
    rest = path[len(API_PREFIX) :]
    for route_method, pattern, group in ROUTES:
        if method == route_method and pattern.match(rest):
            return group
    return None


class Backend(Protocol):
    def take(self, bucket: str, group: Group) -> float:
        """Take one token; 0.0 if allowed, else the seconds until one is available."""
        ...


class MemoryBackend:
    """Buckets in this process (the embedded deployment runs one API process)."""

    def __init__(
        self, max_buckets: int = MEMORY_MAX_BUCKETS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_buckets
        self._clock = clock

    def take(self, bucket: str, group: Group) -> float:
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(bucket, (group.capacity, now))
            tokens = min(group.capacity, tokens + (now - last) * group.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / group.rate
            self._buckets[bucket] = (tokens, now)
            while len(self._buckets) > self._max:  # forget the least recently used keys
                self._buckets.popitem(last=False)
        return wait


# Refill by the time elapsed on Redis' own clock (shared by every API host), take a token
# if there is one, and expire idle buckets once they would be full again anyway.
_TAKE = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return tostring(wait)
"""


class RedisBackend:
    """Buckets in Redis, shared by every API process; memory while Redis is away."""

    def __init__(self, url: str) -> None:
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._script = self._client.register_script(_TAKE)
        self._fallback = MemoryBackend()
        self._down_until = 0.0

    def take(self, bucket: str, group: Group) -> float:
        if time.monotonic() < self._down_until:
            return self._fallback.take(bucket, group)
        try:
            result = self._script(keys=[REDIS_PREFIX + bucket], args=[group.capacity, group.rate])
        except Exception as exc:  # any Redis failure: keep limiting, in memory, for a while
            log.warning("rate limiter: Redis unavailable (%s); limiting in memory", exc)
            self._down_until = time.monotonic() + REDIS_RETRY_SECONDS
            return self._fallback.take(bucket, group)
        return float(result.decode() if isinstance(result, bytes) else result)


def open_backend(settings: Settings) -> Backend:
    if settings.broker_url.startswith(("redis://", "rediss://")):
        return RedisBackend(settings.broker_url)
    return MemoryBackend()


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


class RateLimitMiddleware:
    """429 with ``Retry-After`` once a key has used up its bucket for an endpoint group."""

    def __init__(self, app: ASGIApp, settings: Settings, backend: Backend | None = None) -> None:
        self.app = app
        self.enabled = settings.rate_limit_enabled
        self.groups = groups_from(settings)
        self.backend = backend or (open_backend(settings) if self.enabled else MemoryBackend())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.enabled:
            await self.app(scope, receive, send)
            return
        name = match(scope["method"], scope["path"])
        group = self.groups.get(name) if name else None
        token = _bearer(scope) if group else None
        if group is None or token is None:
            await self.app(scope, receive, send)
            return
        digest = hashlib.sha256(token.encode()).hexdigest()[:32]
        wait = await anyio.to_thread.run_sync(self.backend.take, f"{group.name}:{digest}", group)
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        retry_after = max(1, math.ceil(wait))
        body = {
            "detail": (
                f"rate limit reached: at most {group.per_minute:g} {group.label} per minute "
                f"per API key; retry in {retry_after} s"
            ),
            "code": "rate_limited",
            "retry_after": retry_after,
        }
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"retry-after", str(retry_after).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})
