"""Every endpoint × every role, plus no key, a revoked key and a malformed key.

The table below is the product's intent, written once: the least role each endpoint
needs. Routes are enumerated from the app itself, so a new endpoint without a line here
fails the test until someone decides who may call it. "Allowed" means the request got
past authentication and authorisation (any status but 401/403: a 404 for a dummy id or a
422 for an empty body is fine); "denied" means exactly 401 (who are you?) or 403 (not
you).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.routing import APIRoute

from api.app import API_PREFIX

ROLES = ("admin", "compliance", "engineer", "viewer")

# The least role per endpoint:
#   public      no key needed (health, the public signing key)
#   any         any valid key (every role reads models, datasets, jobs, requests)
#   engineer    admin or engineer: spends compute or storage (datasets, models, jobs)
#   compliance  admin or compliance: deletion decisions, deletion policy, the audit log
#   admin       admin only: API keys
WHO = {
    "public": set(ROLES),
    "any": set(ROLES),
    "engineer": {"admin", "engineer"},
    "compliance": {"admin", "compliance"},
    "admin": {"admin"},
}

INTENT: dict[tuple[str, str], str] = {
    ("GET", "/health"): "public",
    # keys
    ("GET", "/keys/me"): "any",
    ("POST", "/keys"): "admin",
    ("GET", "/keys"): "admin",
    ("DELETE", "/keys/{key_id}"): "admin",
    # datasets
    ("GET", "/datasets/sources"): "any",
    ("POST", "/datasets"): "engineer",
    ("POST", "/datasets/upload"): "engineer",
    ("GET", "/datasets"): "any",
    ("GET", "/datasets/{dataset_id}"): "any",
    ("GET", "/datasets/{dataset_id}/versions"): "any",
    ("GET", "/datasets/{dataset_id}/samples"): "any",
    ("GET", "/datasets/{dataset_id}/samples/{sample_id}/image"): "any",
    # models
    ("POST", "/models"): "engineer",
    ("GET", "/models"): "any",
    ("GET", "/models/{model_id}"): "any",
    ("POST", "/models/{model_id}/versions"): "engineer",
    ("GET", "/models/{model_id}/versions"): "any",
    ("GET", "/model-versions/{version_id}"): "any",
    ("GET", "/model-versions/{version_id}/lineage"): "any",
    ("GET", "/model-versions/{version_id}/sample-ids"): "any",
    ("GET", "/model-versions/{version_id}/checkpoint"): "any",
    ("GET", "/models/{model_id}/deletion-policy"): "any",
    # How a model forgets is a compliance decision, not an engineering one.
    ("PUT", "/models/{model_id}/deletion-policy"): "compliance",
    # A tuning job writes its winner into that policy: the same decision.
    ("POST", "/models/{model_id}/tune"): "compliance",
    # jobs
    ("POST", "/jobs"): "engineer",
    ("GET", "/jobs"): "any",
    ("GET", "/jobs/{job_id}"): "any",
    ("POST", "/jobs/{job_id}/cancel"): "engineer",
    ("GET", "/jobs/{job_id}/logs"): "any",
    ("GET", "/jobs/{job_id}/metrics"): "any",
    ("GET", "/jobs/{job_id}/events"): "any",
    ("GET", "/jobs/{job_id}/artifacts/{name}"): "any",
    ("GET", "/jobs/{job_id}/views"): "any",
    ("GET", "/compare"): "any",
    ("GET", "/methods"): "any",
    ("GET", "/families"): "any",
    ("GET", "/families/{name}"): "any",
    # deletion requests: compliance files and decides; everyone sees status and radius
    # (engineers need to know which versions are tainted and why).
    ("POST", "/deletion-requests"): "compliance",
    ("POST", "/deletion-requests/preview"): "compliance",
    ("POST", "/deletion-requests/bulk"): "compliance",
    ("GET", "/deletion-requests"): "any",
    ("GET", "/deletion-requests/{request_id}"): "any",
    ("GET", "/deletion-requests/{request_id}/timeline"): "any",
    ("POST", "/deletion-requests/{request_id}/approve"): "compliance",
    ("POST", "/deletion-requests/{request_id}/reject"): "compliance",
    ("POST", "/deletion-requests/{request_id}/cancel"): "compliance",
    ("POST", "/deletion-requests/{request_id}/extend"): "compliance",
    ("POST", "/deletion-requests/{request_id}/retry"): "compliance",
    ("POST", "/deletion-requests/{request_id}/advance"): "compliance",
    ("GET", "/deletion-requests/{request_id}/certificate"): "any",
    # Comments and attachments may carry the requester's personal data: compliance only.
    ("POST", "/deletion-requests/{request_id}/comments"): "compliance",
    ("GET", "/deletion-requests/{request_id}/comments"): "compliance",
    ("POST", "/deletion-requests/{request_id}/attachments"): "compliance",
    ("GET", "/deletion-requests/{request_id}/attachments"): "compliance",
    ("GET", "/deletion-requests/{request_id}/attachments/{attachment_id}"): "compliance",
    # webhooks: where deletion-request notifications go; compliance owns that workflow.
    ("GET", "/webhooks"): "compliance",
    ("POST", "/webhooks"): "compliance",
    ("GET", "/webhooks/{webhook_id}"): "compliance",
    ("PATCH", "/webhooks/{webhook_id}"): "compliance",
    ("DELETE", "/webhooks/{webhook_id}"): "compliance",
    ("GET", "/webhooks/{webhook_id}/deliveries"): "compliance",
    ("POST", "/webhooks/{webhook_id}/deliveries/{delivery_id}/retry"): "compliance",
    ("POST", "/webhooks/{webhook_id}/rotate-secret"): "compliance",
    # audit: evidence for compliance; the public key is public by design
    ("GET", "/audit/events"): "compliance",
    ("GET", "/audit/verify"): "compliance",
    ("POST", "/audit/checkpoints"): "compliance",
    ("GET", "/audit/checkpoints"): "compliance",
    ("GET", "/audit/proofs/inclusion"): "compliance",
    ("GET", "/audit/proofs/consistency"): "compliance",
    ("GET", "/audit/export"): "compliance",
    ("GET", "/audit/certificates/{request_id}/anchor"): "compliance",
    ("GET", "/audit/public-key"): "public",
}

# Required query parameters, so an allowed request is not refused before it is checked.
QUERY = {
    "/audit/proofs/inclusion": {"seq": 0},
    "/audit/proofs/consistency": {"first": 0},
    "/compare": {"jobs": "job_x"},
}
CALLERS = (*ROLES, "no key", "revoked key", "malformed key")


def _flat_routes(app: Any) -> list[Any]:
    """Every route with its full path (FastAPI >= 0.165 nests included routers)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: included routes are copied into app.routes
        return [r for r in app.routes if isinstance(r, APIRoute)]
    return [c for c in iter_route_contexts(app.routes) if isinstance(c.original_route, APIRoute)]


def api_routes(app: Any) -> set[tuple[str, str]]:
    """(method, path under /api/v1) of every route the app serves under the prefix."""
    found = set()
    for route in _flat_routes(app):
        if route.path.startswith(API_PREFIX + "/"):
            path = re.sub(r"\{(\w+):path\}", r"{\1}", route.path[len(API_PREFIX) :])
            found |= {(m, path) for m in route.methods if m != "HEAD"}
    return found


def test_every_route_has_a_declared_role(app) -> None:
    routes = api_routes(app)
    missing = sorted(routes - INTENT.keys())
    assert not missing, f"routes with no line in INTENT (decide who may call them): {missing}"
    stale = sorted(INTENT.keys() - routes)
    assert not stale, f"INTENT names routes the app no longer serves: {stale}"
    spec = app.openapi()["paths"]
    documented = {
        (m.upper(), p[len(API_PREFIX) :]) for p, ops in spec.items() for m in ops if m != "head"
    }
    assert documented <= routes, sorted(documented - routes)


@pytest.fixture(scope="module")
def callers(api) -> dict[str, dict[str, str]]:
    """Headers for each caller; one key per role, created once for the module."""
    out: dict[str, dict[str, str]] = {"no key": {}}
    for role in ROLES:
        made = api.post("/api/v1/keys", json={"name": f"matrix-{role}", "role": role})
        assert made.status_code == 201, made.text
        out[role] = {"Authorization": f"Bearer {made.json()['key']}"}
    revoked = api.post("/api/v1/keys", json={"name": "matrix-revoked", "role": "admin"}).json()
    assert api.delete(f"/api/v1/keys/{revoked['id']}").status_code == 200
    out["revoked key"] = {"Authorization": f"Bearer {revoked['key']}"}
    out["malformed key"] = {"Authorization": "Bearer not-an-expunge-key"}
    return out


def _call(client: Any, method: str, path: str, headers: dict[str, str]) -> int:
    url = API_PREFIX + re.sub(r"\{\w+\}", "zz_matrix_nope", path)
    kwargs: dict[str, Any] = {"headers": headers, "params": QUERY.get(path, {})}
    if method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = {}
    return client.request(method, url, **kwargs).status_code


@pytest.mark.parametrize("route", sorted(INTENT), ids=lambda r: f"{r[0]} {r[1]}")
def test_route_allows_exactly_the_intended_callers(anon, callers, route) -> None:
    method, path = route
    intent = INTENT[route]
    allowed = WHO[intent]
    wrong = []
    for caller in CALLERS:
        status = _call(anon, method, path, callers[caller])
        if intent == "public" or caller in allowed:
            ok = status not in (401, 403) and status < 500
            expected = "allowed (not 401/403/5xx)"
        elif caller in ROLES:
            ok, expected = status == 403, "403"
        else:
            ok, expected = status == 401, "401"
        if not ok:
            wrong.append(f"{caller}: got {status}, expected {expected}")
    assert not wrong, f"{method} {path} ({intent}): " + "; ".join(wrong)


def test_compliance_decisions_are_never_open_to_engineers() -> None:
    """The separation the product promises, read off the table itself."""
    for (method, path), intent in INTENT.items():
        if path.startswith(("/deletion-requests", "/audit", "/webhooks")) and method != "GET":
            assert "engineer" not in WHO[intent], (method, path)
        private = path.startswith(("/audit", "/webhooks")) or "/comments" in path
        if (private or "/attachments" in path) and path != "/audit/public-key":
            assert "engineer" not in WHO[intent] and "viewer" not in WHO[intent], path
        if path.startswith("/keys") and path != "/keys/me":
            assert WHO[intent] == {"admin"}, path
