"""REST flows many tests walk: models, train jobs, keys, deletion requests, uploads."""

from __future__ import annotations

import csv
import importlib.util
import io
import uuid
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from core.deletion.certificate import CONTEXT
from core.signing import verify_document
from tests.support import wait_for

V1 = "/api/v1"
MNIST_CNN = {
    "name": "mnist_cnn",
    "num_classes": 10,
    "normalize_mean": [0.1307],
    "normalize_std": [0.3081],
}


def digit_recognizer_weights() -> Path:
    """The checkpoint that ships with ``digit-recognizer-py`` (skips the test without it)."""
    spec = importlib.util.find_spec("digit_recognizer")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("digit-recognizer-py is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "handwriting_model.pth"


def new_model(api: Any, arch: dict[str, Any] | None = None) -> dict[str, Any]:
    arch = arch or {"name": "small_cnn", "num_classes": 10, "width": 8}
    response = api.post(
        f"{V1}/models", json={"name": f"m-{uuid.uuid4().hex[:8]}", "architecture": arch}
    )
    assert response.status_code == 201, response.text
    return response.json()


def wait_job(api: Any, job_id: str, states: set[str], timeout: float = 240) -> dict[str, Any]:
    """The job once it is in one of ``states``."""
    return wait_for(
        lambda: api.get(f"{V1}/jobs/{job_id}").json(),
        timeout,
        f"job {job_id} to reach {sorted(states)}",
        until=lambda job: job["state"] in states,
        interval=0.3,
    )


def trained(api: Any, model_id: str, dataset_id: str, params: dict, worker: Any = None) -> dict:
    """Submit a train job and wait for it; the finished job (it must have succeeded)."""
    body = {"kind": "train", "model_id": model_id, "dataset_id": dataset_id, "params": params}
    submitted = api.post(f"{V1}/jobs", json=body)
    assert submitted.status_code == 201, submitted.text
    done = wait_job(api, submitted.json()["id"], {"succeeded", "failed", "cancelled"})
    assert done["state"] == "succeeded", (done, worker.log()[-2000:] if worker else "")
    return done


def key_headers(api: Any, role: str) -> dict[str, str]:
    """Authorization headers of a new key with ``role``."""
    created = api.post(f"{V1}/keys", json={"name": f"{role}-{uuid.uuid4().hex[:6]}", "role": role})
    assert created.status_code == 201
    return {"Authorization": f"Bearer {created.json()['key']}"}


def approver_headers(api: Any) -> dict[str, str]:
    """Authorization headers of a new compliance key (a second person who approves)."""
    created = api.post(
        f"{V1}/keys", json={"name": f"approver-{uuid.uuid4().hex[:6]}", "role": "compliance"}
    )
    return {"Authorization": f"Bearer {created.json()['key']}"}


def wait_request(api: Any, request_id: str, states: set[str], timeout: float = 300) -> dict:
    """The deletion request once its status is one of ``states`` (the sweeper advances it)."""
    return wait_for(
        lambda: api.get(f"{V1}/deletion-requests/{request_id}").json(),
        timeout,
        f"request {request_id} to reach {sorted(states)}",
        until=lambda current: current["status"] in states,
        interval=0.5,
    )


def advance_request(api: Any, request_id: str) -> dict:
    """Re-check the request's jobs (advance answers in any status); the request then.
    A refusal fails here with the API's answer, not later as a missing field."""
    response = api.post(f"{V1}/deletion-requests/{request_id}/advance")
    assert response.status_code == 200, response.text
    return response.json()


def finish_request(api: Any, request_id: str, timeout: float = 240) -> dict:
    """Advance the request until it is completed or failed; the request then."""
    return wait_for(
        lambda: advance_request(api, request_id),
        timeout,
        f"request {request_id} to finish",
        until=lambda current: current["status"] in ("completed", "failed"),
        interval=0.5,
    )


def finish_requests(api: Any, ids: list[str], timeout: float) -> dict[str, dict]:
    """Advance every request until each is completed or failed; them by id (on time-out
    the error says where each unfinished one stands, with its items' jobs)."""
    done: dict[str, dict] = {}

    def advance() -> dict[str, dict]:
        for request_id in ids:
            if request_id not in done:
                current = advance_request(api, request_id)
                if current["status"] in ("completed", "failed"):
                    done[request_id] = current
        return done

    return wait_for(
        advance,
        timeout,
        lambda: unfinished_requests(api, [i for i in ids if i not in done]),
        until=lambda finished: len(finished) == len(ids),
        interval=0.5,
    )


def unfinished_requests(api: Any, ids: list[str]) -> str:
    """Where unfinished requests stand, with their items' jobs, for the failure message."""
    lines = []
    for request_id in ids:
        request = api.get(f"{V1}/deletion-requests/{request_id}").json()
        lines.append(f"{request_id}: {request['status']}")
        for item in request["items"]:
            job = api.get(f"{V1}/jobs/{item['job_id']}").json() if item["job_id"] else {}
            lines.append(
                f"  item {item['state']} on {item['model_version_id']} "
                f"job={item['job_id']} {job.get('state')} {job.get('error')} "
                f"history={item['history'][-3:]}"
            )
    return "requests did not finish:\n" + "\n".join(lines)


def certificate_verifies(api: Any, anon: Any, request_id: str) -> dict:
    """The request's certificate, checked against the service's public key."""
    certificate = api.get(f"{V1}/deletion-requests/{request_id}/certificate").json()
    ok, why = verify_document(certificate, anon.get(f"{V1}/audit/public-key").text, CONTEXT)
    assert ok, why
    return certificate


def people_archive(tag: str) -> bytes:
    """A 4-class image set whose subjects exist in no other test (ids carry ``tag``)."""
    rng = np.random.default_rng(0)
    rows = [["path", "label", "subject_id", "split", "sample_id"]]
    members: dict[str, bytes] = {}
    for n in range(240):
        label, split = n % 4, "test" if n % 6 == 5 else "train"
        pixels = rng.integers(0, 60, (16, 16), dtype=np.uint8)
        row, col = divmod(label, 2)
        pixels[row * 8 : row * 8 + 8, col * 8 : col * 8 + 8] += 180
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, format="PNG")
        members[f"img/{n}.png"] = out.getvalue()
        rows.append([f"img/{n}.png", str(label), f"{tag}-p{n % 20}", split, f"{tag}-{n}"])
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("manifest.csv", text.getvalue())
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def upload_people(api: Any, tag: str) -> dict:
    """Upload ``people_archive(tag)`` as a dataset of its own."""
    uploaded = api.post(
        f"{V1}/datasets/upload",
        files={"file": ("people.zip", people_archive(tag), "application/zip")},
        data={"name": f"people-{tag}"},
    )
    assert uploaded.status_code == 201, uploaded.text
    return uploaded.json()
