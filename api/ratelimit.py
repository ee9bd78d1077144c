"""Per-API-key rate limits on the expensive endpoints (429 + Retry-After), on ``limits``.

Job submission, uploads, deletion-request filing and whole-log audit reads each cost far
more than a request: a worker hour, gigabytes of storage, a compliance workflow, a full
scan of the log. One runaway script must not crowd everyone else out, so each API key
gets, per group, at most ``N`` requests in any 60 seconds (a moving window: bursts of
``N``, ``N`` per minute sustained).

The counting is the ``limits`` library's moving-window strategy, not code of ours: its
Redis storage (atomic Lua scripts) when the broker is Redis, so every API process of a
deployment shares the windows; its memory storage in the embedded deployment, which has
a single API process. When Redis cannot be reached the limiter counts in memory for a
while instead of failing requests: limits are a guard rail, not a reason for a 503.

Each limited route declares it, ``dependencies=[rate_limit("jobs")]``: no copy of the
route table here. Route-level dependencies run before the endpoint's own (the key lookup,
the database session), and the window is keyed by a hash of the bearer token, so a key
over its limit costs no database query and a wrong token only drains its own window.
Requests without a bearer token are not limited here (they are refused with 401 next).
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter

from core.settings import Settings

log = logging.getLogger("expunge.api.ratelimit")

REDIS_PREFIX = "expunge:ratelimit"
REDIS_RETRY_SECONDS = 10.0
WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Group:
    """A set of endpoints that share one window per key."""

    name: str
    label: str  # for the 429 message
    per_minute: float

    @property
    def item(self) -> RateLimitItem:
        """``N`` per 60 s; a fractional ``N`` (0.5/min) becomes one per 120 s."""
        amount = max(1, math.floor(self.per_minute))
        seconds = max(1, round(WINDOW_SECONDS * amount / self.per_minute))
        return RateLimitItemPerSecond(amount, seconds, namespace="expunge")


GROUP_LABELS = {
    "jobs": "job submissions",
    "uploads": "uploads and dataset registrations",
    "deletion_requests": "deletion-request filings",
    "audit": "whole-log audit reads (verify, export, signing a checkpoint)",
}


def groups_from(settings: Settings) -> dict[str, Group]:
    """The configured groups; a limit of 0 (or less) switches that group off."""
    per_minute = {
        "jobs": settings.rate_limit_jobs_per_minute,
        "uploads": settings.rate_limit_uploads_per_minute,
        "deletion_requests": settings.rate_limit_deletion_requests_per_minute,
        "audit": settings.rate_limit_audit_per_minute,
    }
    return {
        name: Group(name, GROUP_LABELS[name], limit)
        for name, limit in per_minute.items()
        if limit > 0
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


class Limiter:
    """``limits``' moving window on one storage; memory while a Redis storage is away."""

    def __init__(self, storage: Storage) -> None:
        self._primary = MovingWindowRateLimiter(storage)
        self._memory = MovingWindowRateLimiter(MemoryStorage())
        self._remote = not isinstance(storage, MemoryStorage)
        self._down_until = 0.0
        self._lock = threading.Lock()

    def take(self, group: Group, key: str) -> float:
        """Count one request; 0.0 if allowed, else the seconds until one would be."""
        if self._remote and time.monotonic() >= self._down_until:
            try:
                return self._take(self._primary, group, key)
            except StorageError as exc:  # keep limiting, in memory, for a while
                log.warning("rate limiter: Redis unavailable (%s); limiting in memory", exc)
                with self._lock:
                    self._down_until = time.monotonic() + REDIS_RETRY_SECONDS
        return self._take(self._memory if self._remote else self._primary, group, key)

    @staticmethod
    def _take(limiter: MovingWindowRateLimiter, group: Group, key: str) -> float:
        item = group.item
        if limiter.hit(item, group.name, key):
            return 0.0
        reset = limiter.get_window_stats(item, group.name, key).reset_time
        return max(reset - time.time(), 0.001)


def open_limiter(settings: Settings) -> Limiter:
    """Redis storage when the deployment's broker is Redis, memory otherwise."""
    if settings.broker_url.startswith(("redis://", "rediss://")):
        storage: Storage = RedisStorage(
            settings.broker_url,
            key_prefix=REDIS_PREFIX,
            wrap_exceptions=True,
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
        )
        return Limiter(storage)
    return Limiter(MemoryStorage())


class RateLimited(Exception):
    """A key over its group's limit; answered 429 by the handler ``install`` adds."""

    def __init__(self, group: Group, retry_after: int) -> None:
        super().__init__(group.name)
        self.group = group
        self.retry_after = retry_after


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def rate_limit(group: str) -> Any:
    """The route dependency that counts a request against ``group`` for its API key."""
    if group not in GROUP_LABELS:
        raise ValueError(f"unknown rate-limit group {group!r}; one of {sorted(GROUP_LABELS)}")

    def limit(request: Request) -> None:  # sync: FastAPI runs it in its thread pool
        state = request.app.state
        limiter: Limiter | None = getattr(state, "rate_limiter", None)
        configured: Group | None = getattr(state, "rate_limit_groups", {}).get(group)
        token = _bearer(request)
        if limiter is None or configured is None or token is None:
            return
        digest = hashlib.sha256(token.encode()).hexdigest()[:32]
        wait = limiter.take(configured, digest)
        if wait > 0:
            raise RateLimited(configured, max(1, math.ceil(wait)))

    limit.rate_limit_group = group  # type: ignore[attr-defined]
    return Depends(limit)


def limited_operations(app: FastAPI) -> set[tuple[str, str]]:
    """(METHOD, path) of every route that declares a rate limit, for the OpenAPI 429s."""
    found: set[tuple[str, str]] = set()
    for route in iter_route_contexts(app.routes):  # included routers too, with prefixes
        declared = getattr(route, "dependencies", None) or []
        if route.path_format and any(
            hasattr(dep.dependency, "rate_limit_group") for dep in declared
        ):
            found.update((method, route.path_format) for method in route.methods or ())
    return found


async def _answer(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RateLimited)
    group = exc.group
    body = {
        "detail": (
            f"rate limit reached: at most {group.per_minute:g} {group.label} per minute "
            f"per API key; retry in {exc.retry_after} s"
        ),
        "code": "rate_limited",
        "retry_after": exc.retry_after,
    }
    return JSONResponse(body, status_code=429, headers={"Retry-After": str(exc.retry_after)})


def install(app: FastAPI, settings: Settings, limiter: Limiter | None = None) -> None:
    """Give the app its limiter (none when switched off) and the 429 handler."""
    app.add_exception_handler(RateLimited, _answer)
    app.state.rate_limit_groups = groups_from(settings) if settings.rate_limit_enabled else {}
    if settings.rate_limit_enabled:
        app.state.rate_limiter = limiter or open_limiter(settings)
    else:
        app.state.rate_limiter = None
