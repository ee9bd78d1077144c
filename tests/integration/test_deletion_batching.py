"""Three requests on one version inside the model's batch window: one unlearning run, one
new version, three certificates that each point at that run and verify offline.

The data set is uploaded with subject ids of its own, so these requests touch no other
test's models (the built-in data sets share their subject ids between imports)."""

from __future__ import annotations

import csv
import io
import time
import uuid
import zipfile

import numpy as np
import pytest
from PIL import Image

from core.deletion.certificate import CONTEXT
from core.signing import verify_document
from tests.integration.test_training_flow import new_model, trained

pytestmark = pytest.mark.integration
V1 = "/api/v1"


def _stuck(api, ids: list[str]) -> str:
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


def _approver(api) -> dict[str, str]:
    created = api.post(
        f"{V1}/keys", json={"name": f"approver-{uuid.uuid4().hex[:6]}", "role": "compliance"}
    )
    return {"Authorization": f"Bearer {created.json()['key']}"}


def _people_archive(tag: str) -> bytes:
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


def upload_people(api, tag: str) -> dict:  # type: ignore[no-untyped-def]
    """Upload ``_people_archive(tag)`` as a dataset of its own."""
    uploaded = api.post(
        f"{V1}/datasets/upload",
        files={"file": ("people.zip", _people_archive(tag), "application/zip")},
        data={"name": f"people-{tag}"},
    )
    assert uploaded.status_code == 201, uploaded.text
    return uploaded.json()


def test_three_requests_one_run_three_certificates(api, anon, worker) -> None:
    tag = f"bt{uuid.uuid4().hex[:8]}"
    ds = upload_people(api, tag)
    model = new_model(
        api, {"name": "small_cnn", "num_classes": 4, "width": 8, "input_size": [16, 16]}
    )
    policy = api.put(f"{V1}/models/{model['id']}/deletion-policy", json={"batch_window_seconds": 4})
    assert policy.status_code == 200 and policy.json()["batch_window_seconds"] == 4
    fitted = trained(api, model["id"], ds["id"], {"epochs": 5, "lr": 0.05, "batch_size": 16})
    version_id = fitted["result_version_id"]
    subjects = [f"{tag}-p1", f"{tag}-p2", f"{tag}-p3"]

    approver = _approver(api)
    ids = []
    for subject in subjects:
        filed = api.post(
            f"{V1}/deletion-requests",
            json={"scope": {"subject_ids": [subject]}, "legal_basis": "gdpr_art17"},
        ).json()
        assert (
            filed["status"] == "awaiting_approval"
            and version_id in filed["blast_radius"]["versions"]
        ), filed
        ids.append(filed["id"])
    for request_id in ids:
        approved = anon.post(f"{V1}/deletion-requests/{request_id}/approve", headers=approver)
        assert approved.status_code == 200, approved.text
        [item] = approved.json()["items"]
        assert item["state"] == "waiting" and item["batch_until"] and item["job_id"] is None

    deadline = time.monotonic() + 200
    done: dict[str, dict] = {}
    while time.monotonic() < deadline and len(done) < 3:
        for request_id in ids:
            if request_id in done:
                continue
            current = api.post(f"{V1}/deletion-requests/{request_id}/advance").json()
            if current["status"] in ("completed", "failed"):
                done[request_id] = current
        time.sleep(0.5)
    assert len(done) == 3, _stuck(api, ids)
    assert {r["status"] for r in done.values()} == {"completed"}, done

    items = [r["items"][0] for r in done.values()]
    job_ids = {i["job_id"] for i in items}
    new_versions = {i["result_version_id"] for i in items}
    assert len(job_ids) == 1 and len(new_versions) == 1, items
    # Every run the items went through (the approximate one, and any fallback) was shared.
    started = [[h["job_id"] for h in i["history"] if h["event"] == "started"] for i in items]
    assert started[0] == started[1] == started[2]
    assert all(h["batch_size"] == 3 for i in items for h in i["history"] if h["event"] == "started")
    [new_version] = new_versions
    versions = api.get(f"{V1}/models/{model['id']}/versions").json()["data"]
    unlearned = [v for v in versions if v["parent_version_id"] == version_id]
    # A first attempt that failed verification leaves only a purged candidate behind: the
    # one version made from the original that anyone can use is the batch's result.
    assert [v["id"] for v in unlearned if v["status"] != "purged"] == [new_version]
    assert all(v["status"] == "purged" for v in unlearned if v["id"] != new_version)

    public_key = anon.get(f"{V1}/audit/public-key").text
    [run] = job_ids
    for request_id in ids:
        certificate = api.get(f"{V1}/deletion-requests/{request_id}/certificate").json()
        ok, why = verify_document(certificate, public_key, CONTEXT)
        assert ok, why
        [entry] = certificate["models"]
        assert entry["job_id"] == run and entry["batched_requests"] == 3
        assert entry["new_version_id"] == new_version and entry["old_version_id"] == version_id
    assert api.get(f"{V1}/audit/verify").json()["ok"]
