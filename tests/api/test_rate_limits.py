"""Per-key rate limits on expensive endpoints: 429 with Retry-After, shared through Redis.

Each test builds a fresh app with tiny limits on the session's real Postgres and Redis
and uses keys made for it, so its buckets are its own; the session's app keeps the
generous defaults.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from limits.storage import MemoryStorage, RedisStorage

from api.app import create_app
from api.ratelimit import Group, Limiter, limited_operations
from core.settings import Settings


@contextmanager
def limited_client(settings: Settings, **limits: Any) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update=limits), run_sweeper=False)
    with TestClient(app) as client:
        yield client


def new_key(api: Any, role: str) -> dict[str, str]:
    made = api.post("/api/v1/keys", json={"name": f"rl-{role}", "role": role})
    assert made.status_code == 201, made.text
    return {"Authorization": f"Bearer {made.json()['key']}"}


def test_job_submissions_over_the_limit_are_429_with_retry_after(api, prod_settings) -> None:
    engineer, other = new_key(api, "engineer"), new_key(api, "engineer")
    with limited_client(prod_settings, rate_limit_jobs_per_minute=2) as client:
        # An empty body is refused with 422 after the limiter: each still takes a token.
        for _ in range(2):
            assert client.post("/api/v1/jobs", json={}, headers=engineer).status_code == 422
        limited = client.post("/api/v1/jobs", json={}, headers=engineer)
        assert limited.status_code == 429
        retry_after = int(limited.headers["retry-after"])
        assert 1 <= retry_after <= 60  # 2 in any 60 s: the first one leaves the window
        body = limited.json()
        assert body["code"] == "rate_limited" and body["retry_after"] == retry_after
        assert "2 job submissions per minute" in body["detail"]
        # Per key: another key is untouched; reads are never limited.
        assert client.post("/api/v1/jobs", json={}, headers=other).status_code == 422
        for _ in range(5):
            assert client.get("/api/v1/jobs", headers=engineer).status_code == 200
        # Cancelling is not submitting.
        cancel = client.post("/api/v1/jobs/job_nope/cancel", headers=engineer)
        assert cancel.status_code == 404


UPLOADS, DELETIONS, AUDIT = (
    "rate_limit_uploads_per_minute",
    "rate_limit_deletion_requests_per_minute",
    "rate_limit_audit_per_minute",
)


@pytest.mark.parametrize(
    ("setting", "method", "path", "role"),
    [
        (UPLOADS, "POST", "/api/v1/datasets/upload", "engineer"),
        (UPLOADS, "POST", "/api/v1/models/mdl_nope/versions", "engineer"),
        (UPLOADS, "POST", "/api/v1/datasets", "engineer"),
        (DELETIONS, "POST", "/api/v1/deletion-requests", "compliance"),
        (DELETIONS, "POST", "/api/v1/deletion-requests/bulk", "compliance"),
        (AUDIT, "GET", "/api/v1/audit/verify", "compliance"),
        (AUDIT, "GET", "/api/v1/audit/export", "compliance"),
        (AUDIT, "POST", "/api/v1/audit/checkpoints", "compliance"),
    ],
)
def test_each_expensive_group_is_limited(api, prod_settings, setting, method, path, role) -> None:
    headers = new_key(api, role)
    with limited_client(prod_settings, **{setting: 1}) as client:
        first = client.request(method, path, headers=headers)
        assert first.status_code != 429
        second = client.request(method, path, headers=headers)
        assert second.status_code == 429, second.text
        assert 1 <= int(second.headers["retry-after"]) <= 60


def test_buckets_are_shared_by_api_processes_through_redis(api, prod_settings) -> None:
    """Two app instances (as two API hosts would be) draw from one bucket per key."""
    headers = new_key(api, "engineer")
    with (
        limited_client(prod_settings, rate_limit_jobs_per_minute=2) as one,
        limited_client(prod_settings, rate_limit_jobs_per_minute=2) as two,
    ):
        assert one.post("/api/v1/jobs", json={}, headers=headers).status_code == 422
        assert two.post("/api/v1/jobs", json={}, headers=headers).status_code == 422
        assert one.post("/api/v1/jobs", json={}, headers=headers).status_code == 429
        assert two.post("/api/v1/jobs", json={}, headers=headers).status_code == 429


def test_unauthenticated_and_disabled_are_not_limited(api, prod_settings) -> None:
    headers = new_key(api, "engineer")
    with limited_client(prod_settings, rate_limit_jobs_per_minute=1) as client:
        for _ in range(3):  # no key: refused as unauthenticated, never 429
            assert client.post("/api/v1/jobs", json={}).status_code == 401
    with limited_client(
        prod_settings, rate_limit_jobs_per_minute=1, rate_limit_enabled=False
    ) as client:
        for _ in range(3):
            assert client.post("/api/v1/jobs", json={}, headers=headers).status_code == 422


def test_memory_window_counts_per_key_and_frees_after_the_window() -> None:
    limiter = Limiter(MemoryStorage())
    group = Group("jobs", "job submissions", per_minute=3)
    assert all(limiter.take(group, "k") == 0.0 for _ in range(3))
    wait = limiter.take(group, "k")
    assert 59.0 < wait <= 60.0  # the oldest of the three leaves the window in ~60 s
    assert limiter.take(group, "other") == 0.0  # windows are per key


def test_fractional_limits_widen_the_window() -> None:
    limiter = Limiter(MemoryStorage())
    group = Group("audit", "x", per_minute=0.5)  # one per 120 s
    assert limiter.take(group, "k") == 0.0
    assert 119.0 < limiter.take(group, "k") <= 120.0


def test_unreachable_redis_falls_back_to_memory_limits() -> None:
    storage = RedisStorage(  # nothing listens on port 1
        "redis://127.0.0.1:1/0", wrap_exceptions=True, socket_connect_timeout=0.5
    )
    limiter = Limiter(storage)
    group = Group("jobs", "x", per_minute=1)
    assert limiter.take(group, "k") == 0.0
    assert limiter.take(group, "k") > 0.0


def test_limits_are_declared_on_exactly_the_expensive_routes(app) -> None:
    limited = limited_operations(app)
    prefix = "/api/v1"
    expected = {
        ("POST", "/jobs"),
        ("POST", "/datasets"),
        ("POST", "/datasets/upload"),
        ("POST", "/models/{model_id}/versions"),
        ("POST", "/deletion-requests/{request_id}/attachments"),
        ("POST", "/deletion-requests"),
        ("POST", "/deletion-requests/bulk"),
        ("GET", "/audit/verify"),
        ("GET", "/audit/export"),
        ("POST", "/audit/checkpoints"),
    }
    assert limited == {(method, prefix + path) for method, path in expected}
    # The limit is counted first: before the key lookup and the database session.
    for route in iter_route_contexts(app.routes):
        methods = route.methods or set()
        if any((method, route.path_format) in limited for method in methods):
            first = route.dependant.dependencies[0].call
            assert hasattr(first, "rate_limit_group"), route.path_format
