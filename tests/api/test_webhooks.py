"""Webhooks: CRUD, and a real receiver that fails twice, then gets the signed event once."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from core.webhooks import decrypt_secret, deliver_due, verify_signature
from models.webhooks import Webhook
from tests.support import wait_for

V1 = "/api/v1"


class Receiver:
    """A local HTTP server answering 500 to the first ``failures`` POSTs, then 204."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append({"headers": dict(self.headers), "body": body})
                self.send_response(500 if len(outer.received) <= outer.failures else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(failures=2)
    try:
        yield server
    finally:
        server.stop()


def test_crud_never_shows_the_secret_again_and_refuses_other_schemes(api, anon) -> None:
    for url in ("ftp://example.com/x", "file:///etc/passwd", "javascript:alert(1)", "http://"):
        bad = api.post(f"{V1}/webhooks", json={"url": url})
        assert bad.status_code == 422, (url, bad.text)
    unknown = api.post(f"{V1}/webhooks", json={"url": "https://x.test/h", "events": ["nope"]})
    assert unknown.status_code == 422 and "unknown events" in unknown.text
    created = api.post(
        f"{V1}/webhooks",
        json={"url": "https://receiver.test/hook", "events": ["deletion_request.completed"]},
    )
    assert created.status_code == 201, created.text
    hook = created.json()
    assert hook["secret"].startswith("whsec_")
    fetched = api.get(f"{V1}/webhooks/{hook['id']}").json()
    assert "secret" not in fetched and "secret_encrypted" not in fetched
    assert all("secret" not in h for h in api.get(f"{V1}/webhooks").json()["data"])
    rotated = api.post(f"{V1}/webhooks/{hook['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["secret"] != hook["secret"] and rotated.json()["id"] == hook["id"]
    assert "secret" not in api.get(f"{V1}/webhooks/{hook['id']}").json()
    assert api.post(f"{V1}/webhooks/wh_missing/rotate-secret").status_code == 404
    patched = api.patch(f"{V1}/webhooks/{hook['id']}", json={"active": False})
    assert patched.status_code == 200 and patched.json()["active"] is False
    assert api.patch(f"{V1}/webhooks/{hook['id']}", json={"url": "gopher://x"}).status_code == 422
    engineer = api.post(
        f"{V1}/keys", json={"name": f"e-{uuid.uuid4().hex[:6]}", "role": "engineer"}
    )
    headers = {"Authorization": f"Bearer {engineer.json()['key']}"}
    assert anon.get(f"{V1}/webhooks", headers=headers).status_code == 403
    assert api.delete(f"{V1}/webhooks/{hook['id']}").status_code == 204
    assert api.get(f"{V1}/webhooks/{hook['id']}").status_code == 404


def test_signed_delivery_retried_with_backoff_until_it_lands(
    api, app, prod_settings, receiver
) -> None:
    created = api.post(
        f"{V1}/webhooks",
        json={"url": receiver.url, "events": ["deletion_request.completed"]},
    ).json()
    secret = created["secret"]
    factory = app.state.session_factory
    with factory() as session:
        stored = session.get(Webhook, created["id"])
        assert stored is not None and secret not in stored.secret_encrypted
        assert decrypt_secret(prod_settings, stored.secret_encrypted) == secret
    try:
        subject = f"nobody-{uuid.uuid4().hex[:8]}"
        filed = api.post(
            f"{V1}/deletion-requests",
            json={"scope": {"subject_ids": [subject]}, "legal_basis": "gdpr_art17"},
        ).json()
        assert filed["status"] == "completed"
        # The outbox row was written with the state change, before anything was sent.
        pending = api.get(f"{V1}/webhooks/{created['id']}/deliveries").json()["data"]
        assert [d["state"] for d in pending] == ["pending"]
        fast = prod_settings.model_copy(
            update={"webhook_backoff_seconds": 0.05, "webhook_max_attempts": 5}
        )
        def received() -> int:
            deliver_due(factory, fast)
            return len(receiver.received)

        # A worker's own sweeper may take a turn too.
        wait_for(received, 90, "3 delivery attempts", until=lambda n: n >= 3, interval=0.1)
        assert len(receiver.received) == 3
        for call in receiver.received:
            headers = {k.lower(): v for k, v in call["headers"].items()}
            assert verify_signature(
                secret, headers["x-expunge-timestamp"], call["body"], headers["x-expunge-signature"]
            )
            assert not verify_signature(
                "wrong",
                headers["x-expunge-timestamp"],
                call["body"],
                headers["x-expunge-signature"],
            )
            assert subject.encode() not in call["body"]
        payload = json.loads(receiver.received[-1]["body"])
        assert payload["event"] == "deletion_request.completed"
        assert payload["request"] == {
            "id": filed["id"],
            "status": "completed",
            "legal_basis": "gdpr_art17",
            "due_at": payload["request"]["due_at"],
        }
        [delivery] = api.get(f"{V1}/webhooks/{created['id']}/deliveries").json()["data"]
        assert delivery["state"] == "delivered" and delivery["attempts"] == 3
        assert delivery["delivered_at"] and delivery["last_status"] == 204
        # Delivered once: later sweeps send nothing more.
        deliver_due(factory, fast)
        assert len(receiver.received) == 3
        retry = api.post(f"{V1}/webhooks/{created['id']}/deliveries/{delivery['id']}/retry")
        assert retry.status_code == 409

        # After a rotation the next delivery is signed with the new secret only.
        rotated = api.post(f"{V1}/webhooks/{created['id']}/rotate-secret").json()["secret"]
        api.post(
            f"{V1}/deletion-requests",
            json={
                "scope": {"subject_ids": [f"nobody-{uuid.uuid4().hex[:8]}"]},
                "legal_basis": "ccpa",
            },
        )
        wait_for(received, 90, "the 4th delivery", until=lambda n: n >= 4, interval=0.1)
        headers = {k.lower(): v for k, v in receiver.received[3]["headers"].items()}
        stamp, signature = headers["x-expunge-timestamp"], headers["x-expunge-signature"]
        body = receiver.received[3]["body"]
        assert verify_signature(rotated, stamp, body, signature)
        assert not verify_signature(secret, stamp, body, signature)
    finally:
        api.delete(f"{V1}/webhooks/{created['id']}")


def test_a_job_that_ends_is_announced_with_ids_only(
    api, app, prod_settings, receiver, worker, mnist_small
) -> None:
    created = api.post(
        f"{V1}/webhooks", json={"url": receiver.url, "events": ["job.succeeded", "job.failed"]}
    ).json()
    try:
        model = api.post(
            f"{V1}/models",
            json={
                "name": f"hooked-{uuid.uuid4().hex[:6]}",
                "architecture": {"name": "small_cnn", "num_classes": 10, "width": 8},
            },
        ).json()
        job = api.post(
            f"{V1}/jobs",
            json={
                "kind": "train",
                "model_id": model["id"],
                "dataset_id": mnist_small["id"],
                "params": {"epochs": 1, "max_train_samples": 64},
            },
        ).json()
        fast = prod_settings.model_copy(
            update={"webhook_backoff_seconds": 0.05, "webhook_max_attempts": 5}
        )

        def received() -> int:
            deliver_due(app.state.session_factory, fast)
            return len(receiver.received)

        job_url = f"{V1}/jobs/{job['id']}"

        def what() -> str:
            return f"3 delivery attempts; the job: {api.get(job_url).json()}"

        wait_for(received, 180, what, until=lambda n: n >= 3)
        assert len(receiver.received) == 3, api.get(job_url).json()
        payload = json.loads(receiver.received[-1]["body"])
        finished = api.get(f"{V1}/jobs/{job['id']}").json()
        assert payload["event"] == "job.succeeded" and finished["state"] == "succeeded"
        assert payload["job"] == {
            "id": job["id"],
            "kind": "train",
            "state": "succeeded",
            "model_id": model["id"],
            "dataset_id": mnist_small["id"],
            "model_version_id": None,
            "result_version_id": finished["result_version_id"],
        }
        # Only the end is announced, once, and only to receivers that asked for it.
        [delivery] = api.get(f"{V1}/webhooks/{created['id']}/deliveries").json()["data"]
        assert delivery["event"] == "job.succeeded" and delivery["state"] == "delivered"
    finally:
        api.delete(f"{V1}/webhooks/{created['id']}")
