"""Once a request is closed its ids exist nowhere in clear: not in any text or JSON column
of any table of the database, not in any object of the store (Postgres + S3 + a worker).

A completed request is redacted as it closes; a rejected or cancelled one once the
deployment's retention period has passed (the sweeper does it; the test sets it to 0).
The certificate it gets is served as the exact RFC 8785 bytes whose sha256 is in
``X-Certificate-SHA256``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
import zipfile

import numpy as np
import pytest
import rfc8785
from PIL import Image
from sqlalchemy import JSON, MetaData, String, Text, cast, select

from core.db import get_engine
from core.jobs import sweep_once
from core.signing import CERTIFICATE_CONTEXT, CERTIFICATE_CONTEXTS, verify_document
from tests.support.rest import key_headers, new_model, trained, wait_job, wait_request

pytestmark = pytest.mark.integration
V1 = "/api/v1"


def _archive(subjects: list[str], tag: str) -> bytes:
    """A 4-class image set: ``subjects`` own 12 samples each, 20 others share the rest.
    Sample ids never contain a subject id, so a hit can only be the subject id itself."""
    rng = np.random.default_rng(1)
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
        owner = subjects[n // 12] if n // 12 < len(subjects) else f"other{n % 20}"
        rows.append([f"img/{n}.png", str(label), owner, split, f"{tag}x{n:04d}"])
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("manifest.csv", text.getvalue())
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _hits_in_database(settings, needles: list[str]) -> list[str]:  # type: ignore[no-untyped-def]
    """Every (table.column) of the live database whose text or JSON holds a needle.

    The tables come from the database itself (reflected), not from the models, so a table
    or column nobody thought of is searched too."""
    engine = get_engine(settings)
    metadata = MetaData()
    metadata.reflect(engine)
    hits = []
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for column in table.columns:
                if not isinstance(column.type, String | JSON):
                    continue
                text = column if isinstance(column.type, String) else cast(column, Text)
                for needle in needles:
                    found = conn.execute(
                        select(text).where(text.contains(needle, autoescape=True)).limit(1)
                    ).first()
                    if found is not None:
                        hits.append(f"{table.name}.{column.name}: {str(found[0])[:160]}")
    return hits


def _hits_in_store(store, needles: list[str]) -> list[str]:  # type: ignore[no-untyped-def]
    hits = []
    for key in store.list(""):
        data = store.get_bytes(key)
        for needle in needles:
            if needle in key or needle.encode("utf-8") in data:
                hits.append(key)
    return hits


def test_closed_requests_leave_no_id_in_clear(api, anon, app, worker, prod_settings) -> None:
    tag = uuid.uuid4().hex[:8]
    writer, rejected_one, cancelled_one = (f"writer-{tag}-0042", f"rej-{tag}-7", f"can-{tag}-9")
    store = app.state.store
    uploaded = api.post(
        f"{V1}/datasets/upload",
        files={
            "file": (
                "people.zip",
                _archive([writer, rejected_one, cancelled_one], tag),
                "application/zip",
            )
        },
        data={"name": f"redaction-{tag}"},
    )
    assert uploaded.status_code == 201, uploaded.text
    ds = uploaded.json()
    model = new_model(
        api, {"name": "small_cnn", "num_classes": 4, "width": 8, "input_size": [16, 16]}
    )
    fitted = trained(api, model["id"], ds["id"], {"epochs": 4, "lr": 0.05, "batch_size": 16})
    version_id = fitted["result_version_id"]
    # Someone measured the subject's forgetting by hand: that job names the id too.
    evaluated = api.post(
        f"{V1}/jobs",
        json={
            "kind": "evaluate",
            "model_version_id": version_id,
            "forget": {"subject_ids": [writer]},
        },
    )
    assert evaluated.status_code == 201, evaluated.text
    assert wait_job(api, evaluated.json()["id"], {"succeeded", "failed"})["state"] == "succeeded"
    webhook = api.post(f"{V1}/webhooks", json={"url": "http://127.0.0.1:9/never-listening"})
    assert webhook.status_code == 201, webhook.text

    filed = api.post(
        f"{V1}/deletion-requests",
        json={"scope": {"subject_ids": [writer]}, "legal_basis": "gdpr_art17"},
        headers={"Idempotency-Key": f"redaction-{tag}"},
    )
    assert filed.status_code == 201, filed.text
    request = filed.json()
    assert request["status"] == "awaiting_approval" and request["scope"]["subject_ids"] == [writer]
    comment = api.post(
        f"{V1}/deletion-requests/{request['id']}/comments",
        json={"text": f"{writer} called on Monday; {writer}."},
    )
    assert comment.status_code == 201, comment.text
    # Open: the people who decide read the id; a viewer already sees only the commitment.
    viewer = key_headers(api, "viewer")
    as_viewer = anon.get(f"{V1}/deletion-requests/{request['id']}", headers=viewer).json()
    assert as_viewer["scope"]["redacted"] and len(as_viewer["scope_commitments"]) == 1
    listed = anon.get(
        f"{V1}/deletion-requests", headers=viewer, params={"status": "awaiting_approval"}
    ).json()["data"]
    assert request["id"] in {r["id"] for r in listed}
    assert writer not in json.dumps(as_viewer) and writer not in json.dumps(listed)
    # The search can find the id while the request is open (so its silence later counts).
    assert any("deletion_requests.scope" in h for h in _hits_in_database(prod_settings, [writer]))

    approved = anon.post(
        f"{V1}/deletion-requests/{request['id']}/approve", headers=key_headers(api, "compliance")
    )
    assert approved.status_code == 200, approved.text
    done = wait_request(api, request["id"], {"completed", "failed"})
    assert done["status"] == "completed", done

    hits = _hits_in_database(prod_settings, [writer])
    assert not hits, hits
    assert not _hits_in_store(store, [writer])
    # A viewer sees the commitments, as the certificate states them.
    seen = anon.get(f"{V1}/deletion-requests/{request['id']}", headers=viewer).json()
    assert seen["scope"]["redacted"] and seen["scope"]["subject_ids"] == []
    response = anon.get(f"{V1}/deletion-requests/{request['id']}/certificate", headers=viewer)
    certificate = json.loads(response.content)
    assert seen["scope_commitments"] == certificate["request"]["scope"]["commitments"]
    assert seen["scope_commitments"] == as_viewer["scope_commitments"]
    assert writer not in response.text
    notes = api.get(f"{V1}/deletion-requests/{request['id']}/comments").json()["data"]
    commitment = seen["scope_commitments"][0]
    assert notes[0]["text"] == f"{commitment} called on Monday; {commitment}."

    # The served bytes are the canonical form, and the header is their digest.
    assert response.headers["content-type"].startswith("application/json")
    assert hashlib.sha256(response.content).hexdigest() == response.headers["X-Certificate-SHA256"]
    assert rfc8785.dumps(json.loads(response.content)) == response.content
    assert certificate["signature"]["context"] == CERTIFICATE_CONTEXT
    public_key = anon.get(f"{V1}/audit/public-key").text
    assert verify_document(certificate, public_key, CERTIFICATE_CONTEXTS) == (
        True,
        "signature valid",
    )

    # Rejected and cancelled: the ids stay while the retention period runs, then go.
    other = {}
    for subject in (rejected_one, cancelled_one):
        filed = api.post(
            f"{V1}/deletion-requests",
            json={"scope": {"subject_ids": [subject]}, "legal_basis": "ccpa"},
            headers={"Idempotency-Key": f"redaction-{uuid.uuid4().hex}"},
        )
        assert filed.status_code == 201 and filed.json()["status"] == "awaiting_approval", filed
        other[subject] = filed.json()["id"]
    rejected = api.post(
        f"{V1}/deletion-requests/{other[rejected_one]}/reject",
        json={"reason": f"{rejected_one} is not a customer of ours"},
    )
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected", rejected.text
    cancelled = api.post(f"{V1}/deletion-requests/{other[cancelled_one]}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"

    sweep_once(prod_settings, store)  # the default retention (30 days) has not passed
    still = _hits_in_database(prod_settings, [rejected_one, cancelled_one])
    assert any(rejected_one in h for h in still) and any(cancelled_one in h for h in still)

    sweep_once(prod_settings.model_copy(update={"closed_request_retention_seconds": 0}), store)
    hits = _hits_in_database(prod_settings, [rejected_one, cancelled_one])
    # What remains is the data set itself: a rejected request deletes nothing, so its
    # samples keep their subject id. Every copy the request made is gone.
    assert sorted(h.split(":")[0] for h in hits) == ["samples.subject_id"] * 2, hits
    assert not _hits_in_store(store, [rejected_one, cancelled_one])
    for subject, request_id in other.items():
        shown = api.get(f"{V1}/deletion-requests/{request_id}").json()
        assert shown["scope"]["redacted"] and len(shown["scope_commitments"]) == 1, shown
        assert subject not in json.dumps(shown)
