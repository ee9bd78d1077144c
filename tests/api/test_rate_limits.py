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
from fastapi.testclient import TestClient

from api.app import create_app
from api.ratelimit import Group, MemoryBackend, RedisBackend, match
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
        assert 1 <= retry_after <= 30  # 2 per minute: one token back within 30 s
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


def test_memory_bucket_refills_at_its_rate() -> None:
    now = [1000.0]
    backend = MemoryBackend(clock=lambda: now[0])
    group = Group("jobs", "job submissions", per_minute=6)  # burst 6, one every 10 s
    assert all(backend.take("k", group) == 0.0 for _ in range(6))
    assert backend.take("k", group) == pytest.approx(10.0)
    assert backend.take("other", group) == 0.0  # buckets are per key
    now[0] += 4.0
    assert backend.take("k", group) == pytest.approx(6.0)  # 0.4 of a token so far
    now[0] += 6.0
    assert backend.take("k", group) == 0.0
    now[0] += 3600.0  # idle for an hour: full again, but never more than the burst
    assert all(backend.take("k", group) == 0.0 for _ in range(6))
    assert backend.take("k", group) > 0.0


def test_memory_backend_forgets_the_oldest_keys() -> None:
    backend = MemoryBackend(max_buckets=3)
    group = Group("jobs", "x", per_minute=1)
    for name in "abcd":
        assert backend.take(name, group) == 0.0
    assert backend.take("a", group) == 0.0  # "a" was evicted: a fresh bucket
    assert backend.take("d", group) > 0.0


def test_unreachable_redis_falls_back_to_memory_limits() -> None:
    backend = RedisBackend("redis://127.0.0.1:1/0")  # nothing listens on port 1
    group = Group("jobs", "x", per_minute=1)
    assert backend.take("k", group) == 0.0
    assert backend.take("k", group) > 0.0


def test_route_matching() -> None:
    assert match("POST", "/api/v1/jobs") == "jobs"
    assert match("POST", "/api/v1/jobs/job_1/cancel") is None
    assert match("GET", "/api/v1/jobs") is None
    assert match("POST", "/api/v1/models/mdl_1/versions") == "uploads"
    assert match("POST", "/api/v1/models") is None
    assert match("POST", "/api/v1/deletion-requests/dr_1/approve") is None
    assert match("GET", "/api/v1/audit/export") == "audit"
    assert match("GET", "/api/v1/audit/events") is None
    assert match("POST", "/api/v1/audit/checkpoints") == "audit"
    assert match("GET", "/api/v1/audit/checkpoints") is None
