"""A small typed client of the Expunge REST API.

Imports only httpx and the standard library, so programs can use it without torch or
the server's dependencies. The CLI's client commands are built on it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

TERMINAL = {"succeeded", "failed", "cancelled"}


class ExpungeAPIError(Exception):
    def __init__(self, status: int, detail: Any, code: str | None = None) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.code = code


class ExpungeClient:
    def __init__(
        self, base_url: str | None = None, api_key: str | None = None, timeout: float = 60.0
    ) -> None:
        self.base_url = (base_url or os.environ.get("EXPUNGE_URL", "http://127.0.0.1:8000")).rstrip(
            "/"
        )
        self.api_key = api_key or os.environ.get("EXPUNGE_API_KEY")
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self.http = httpx.Client(
            base_url=self.base_url + "/api/v1", headers=headers, timeout=timeout
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ExpungeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------------------
    def _check(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                body = response.json()
                detail, code = body.get("message") or body.get("detail"), body.get("code")
            except ValueError:
                detail, code = response.text, None
            raise ExpungeAPIError(response.status_code, detail, code)
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.content

    def get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return self._check(self.http.get(path, params=clean))

    def post(
        self, path: str, body: Any = None, idempotency_key: str | None = None, **kw: Any
    ) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self._check(self.http.post(path, json=body, headers=headers, **kw))

    def delete(self, path: str) -> Any:
        return self._check(self.http.delete(path))

    # -- resources ---------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self.get("/health")

    def create_key(self, name: str, role: str) -> dict[str, Any]:
        return self.post("/keys", {"name": name, "role": role})

    def dataset_sources(self) -> list[dict[str, Any]]:
        return self.get("/datasets/sources")

    def create_dataset(
        self, name: str, builtin: str, limit: int | None = None, description: str = ""
    ) -> dict[str, Any]:
        source: dict[str, Any] = {"type": "builtin", "name": builtin, "limit": limit}
        return self.post("/datasets", {"name": name, "description": description, "source": source})

    def upload_dataset(self, name: str, archive: Path, **form: Any) -> dict[str, Any]:
        with Path(archive).open("rb") as fh:
            data = {"name": name, **{k: str(v) for k, v in form.items() if v is not None}}
            return self._check(
                self.http.post(
                    "/datasets/upload", data=data, files={"file": (Path(archive).name, fh)}
                )
            )

    def datasets(self, **params: Any) -> dict[str, Any]:
        return self.get("/datasets", **params)

    def dataset(self, dataset_id: str) -> dict[str, Any]:
        return self.get(f"/datasets/{dataset_id}")

    def samples(self, dataset_id: str, **params: Any) -> dict[str, Any]:
        return self.get(f"/datasets/{dataset_id}/samples", **params)

    def create_model(
        self, name: str, architecture: dict[str, Any], description: str = ""
    ) -> dict[str, Any]:
        return self.post(
            "/models", {"name": name, "architecture": architecture, "description": description}
        )

    def models(self, **params: Any) -> dict[str, Any]:
        return self.get("/models", **params)

    def model(self, model_id: str) -> dict[str, Any]:
        return self.get(f"/models/{model_id}")

    def upload_checkpoint(
        self, model_id: str, path: Path, metrics: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        with Path(path).open("rb") as fh:
            return self._check(
                self.http.post(
                    f"/models/{model_id}/versions",
                    data={"metrics": json.dumps(metrics or {})},
                    files={"checkpoint": (Path(path).name, fh)},
                )
            )

    def versions(self, model_id: str, **params: Any) -> dict[str, Any]:
        return self.get(f"/models/{model_id}/versions", **params)

    def version(self, version_id: str) -> dict[str, Any]:
        return self.get(f"/model-versions/{version_id}")

    def lineage(self, version_id: str) -> dict[str, Any]:
        return self.get(f"/model-versions/{version_id}/lineage")

    def download_checkpoint(self, version_id: str, target: Path) -> Path:
        with self.http.stream("GET", f"/model-versions/{version_id}/checkpoint") as response:
            if response.status_code >= 400:
                response.read()
                self._check(response)
            with Path(target).open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
        return Path(target)

    def submit_job(
        self, body: dict[str, Any], idempotency_key: str | None = None
    ) -> dict[str, Any]:
        return self.post("/jobs", body, idempotency_key=idempotency_key)

    def train(
        self, model_id: str, dataset_id: str, params: dict[str, Any] | None = None, **extra: Any
    ) -> dict[str, Any]:
        return self.submit_job(
            {
                "kind": "train",
                "model_id": model_id,
                "dataset_id": dataset_id,
                "params": params or {},
                **extra,
            }
        )

    def jobs(self, **params: Any) -> dict[str, Any]:
        return self.get("/jobs", **params)

    def job(self, job_id: str) -> dict[str, Any]:
        return self.get(f"/jobs/{job_id}")

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return self.post(f"/jobs/{job_id}/cancel")

    def job_logs(self, job_id: str) -> dict[str, Any]:
        return self.get(f"/jobs/{job_id}/logs")

    def job_metrics(self, job_id: str) -> dict[str, Any]:
        return self.get(f"/jobs/{job_id}/metrics")

    def job_events(self, job_id: str, after: int | None = None) -> Iterator[dict[str, Any]]:
        """Follow the job's Server-Sent Events until it ends."""
        headers = {"Last-Event-ID": str(after)} if after else {}
        with self.http.stream(
            "GET", f"/jobs/{job_id}/events", headers=headers, timeout=None
        ) as resp:
            if resp.status_code >= 400:
                resp.read()
                self._check(resp)
            event: dict[str, Any] = {}
            for line in resp.iter_lines():
                if not line:
                    if "data" in event:
                        event["data"] = json.loads(event["data"])
                        yield event
                        if event.get("event") == "end":
                            return
                    event = {}
                    continue
                if line.startswith(":"):
                    continue
                field, _, value = line.partition(":")
                event[field] = value.lstrip()

    def wait_for_job(self, job_id: str, timeout: float = 600, poll: float = 0.5) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["state"] in TERMINAL:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['state']} after {timeout}s")
            time.sleep(poll)

    # -- deletion requests -------------------------------------------------------------
    def put(self, path: str, body: Any = None) -> Any:
        return self._check(self.http.put(path, json=body))

    def set_deletion_policy(self, model_id: str, policy: dict[str, Any]) -> dict[str, Any]:
        """Fields left out keep the model family's defaults."""
        return self.put(f"/models/{model_id}/deletion-policy", policy)

    def file_deletion_request(
        self, scope: dict[str, Any], legal_basis: str = "gdpr_art17", reference: str = ""
    ) -> dict[str, Any]:
        return self.post(
            "/deletion-requests",
            {"scope": scope, "legal_basis": legal_basis, "requester_reference": reference},
        )

    def deletion_request(self, request_id: str) -> dict[str, Any]:
        return self.get(f"/deletion-requests/{request_id}")

    def approve_deletion_request(self, request_id: str) -> dict[str, Any]:
        """Needs a second person: the filer's own key gets 403."""
        return self.post(f"/deletion-requests/{request_id}/approve")

    def wait_for_deletion_request(
        self, request_id: str, timeout: float = 600, poll: float = 1.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            request = self.deletion_request(request_id)
            if request["status"] in ("completed", "failed", "rejected", "cancelled"):
                return request
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"request {request_id} still {request['status']} after {timeout}s"
                )
            time.sleep(poll)

    def certificate(self, request_id: str) -> dict[str, Any]:
        return self.get(f"/deletion-requests/{request_id}/certificate")

    def public_key(self) -> str:
        """The Ed25519 key certificates and audit checkpoints are signed with (PEM)."""
        key = self.get("/audit/public-key")
        return key.decode() if isinstance(key, bytes) else str(key)
