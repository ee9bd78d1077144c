from __future__ import annotations

import subprocess
import sys

from tests.services import REPO


def test_health_reports_each_backend(anon) -> None:
    body = anon.get("/api/v1/health").json()
    assert body["status"] == "ok", body
    for part in ("database", "queue", "storage"):
        assert body[part]["ok"] is True, body[part]
    assert body["outbox_backlog"] >= 0


def test_openapi_and_docs_are_served(anon) -> None:
    spec = anon.get("/api/v1/openapi.json").json()
    assert "/api/v1/jobs" in spec["paths"]
    ids = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert "jobs-create_job" in ids and "datasets-list_samples" in ids
    assert anon.get("/docs").status_code == 200


def test_missing_malformed_and_unknown_keys_are_401(anon) -> None:
    assert anon.get("/api/v1/jobs").status_code == 401
    bad = anon.get("/api/v1/jobs", headers={"Authorization": "Bearer nonsense"})
    assert bad.status_code == 401 and "malformed" in bad.json()["detail"]
    unknown = anon.get("/api/v1/jobs", headers={"Authorization": "Bearer exp_zzzz_yyyy"})
    assert unknown.status_code == 401


def test_keys_lifecycle_and_roles(api, anon) -> None:
    created = api.post("/api/v1/keys", json={"name": "viewer-1", "role": "viewer"})
    assert created.status_code == 201
    secret = created.json()["key"]
    viewer = {"Authorization": f"Bearer {secret}"}
    assert anon.get("/api/v1/jobs", headers=viewer).status_code == 200
    # A viewer can read but not write, and cannot manage keys.
    denied = anon.post("/api/v1/models", headers=viewer, json={})
    assert denied.status_code == 403 and "viewer" in denied.json()["detail"]
    assert anon.get("/api/v1/keys", headers=viewer).status_code == 403
    listed = api.get("/api/v1/keys").json()
    assert any(k["id"] == created.json()["id"] for k in listed["data"])
    assert all("key" not in k and "secret_hash" not in k for k in listed["data"])
    assert api.delete(f"/api/v1/keys/{created.json()['id']}").json()["revoked_at"]
    revoked = anon.get("/api/v1/jobs", headers=viewer)
    assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]


def test_unknown_role_is_422(api) -> None:
    response = api.post("/api/v1/keys", json={"name": "x", "role": "root"})
    assert response.status_code == 422 and "role" in response.json()["message"]


def test_api_process_never_imports_torch() -> None:
    code = (
        "import sys; import api.app, api.main; "
        "bad = [m for m in ('torch', 'safetensors') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    env_code = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "EXPUNGE_HOME": "/tmp/expunge-import-check"},
    )
    assert env_code.returncode == 0, env_code.stdout + env_code.stderr


def test_whoami_reports_role(api) -> None:
    me = api.get("/api/v1/keys/me").json()
    assert me["role"] == "admin" and me["name"] == "bootstrap-admin"
