"""Comments and attachments on a deletion request: allowed after completion, kept out of
the audit payloads, shown on the timeline, files typed, size-capped and downloadable."""

from __future__ import annotations

import uuid

V1 = "/api/v1"
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def _key(api, role: str) -> dict[str, str]:
    created = api.post(f"{V1}/keys", json={"name": f"{role}-{uuid.uuid4().hex[:6]}", "role": role})
    return {"Authorization": f"Bearer {created.json()['key']}"}


def _completed_request(api) -> dict:
    filed = api.post(
        f"{V1}/deletion-requests",
        json={"scope": {"subject_ids": [f"nobody-{uuid.uuid4().hex[:8]}"]}, "legal_basis": "ccpa"},
    ).json()
    assert filed["status"] == "completed"
    return filed


def test_comments_after_completion_without_text_in_the_audit_log(api, anon) -> None:
    request = _completed_request(api)
    url = f"{V1}/deletion-requests/{request['id']}/comments"
    secret_text = "Called Jane Roe at +44 20 7946 0000 to confirm the erasure"
    added = api.post(url, json={"text": secret_text})
    assert added.status_code == 201, added.text
    assert added.json()["author"] and added.json()["text"] == secret_text
    assert api.post(url, json={"text": "   "}).status_code == 422
    assert api.post(url, json={}).status_code == 422
    assert (
        api.post(f"{V1}/deletion-requests/dr_missing/comments", json={"text": "x"}).status_code
        == 404
    )
    listed = api.get(url).json()
    assert listed["count"] == 1 and listed["data"][0]["text"] == secret_text
    viewer = _key(api, "viewer")
    assert anon.get(url, headers=viewer).status_code == 403
    assert anon.post(url, headers=viewer, json={"text": "hi"}).status_code == 403

    events = api.get(f"{V1}/audit/events", params={"limit": 500}).text
    # The whole number: four digits alone turn up in the hex digests of other events.
    assert "Jane Roe" not in events and "7946 0000" not in events
    timeline = api.get(f"{V1}/deletion-requests/{request['id']}/timeline").json()
    [note] = [e for e in timeline if e["action"] == "deletion_request.comment_added"]
    assert note["payload"] == {"comment": added.json()["id"], "length": len(secret_text)}
    assert note["note"]["text"] == secret_text
    as_viewer = anon.get(f"{V1}/deletion-requests/{request['id']}/timeline", headers=viewer).json()
    [note] = [e for e in as_viewer if e["action"] == "deletion_request.comment_added"]
    assert "text" not in note["note"] and note["note"]["kind"] == "comment"


def test_attachments_typed_capped_stored_under_the_request_and_downloadable(
    api, app, prod_settings
) -> None:
    request = _completed_request(api)
    url = f"{V1}/deletion-requests/{request['id']}/attachments"
    added = api.post(url, files={"file": ("letter from J. Roe.pdf", PDF, "application/pdf")})
    assert added.status_code == 201, added.text
    attachment = added.json()
    assert attachment["size_bytes"] == len(PDF) and attachment["content_type"] == "application/pdf"
    download = api.get(f"{url}/{attachment['id']}")
    assert download.status_code == 200 and download.content == PDF
    assert download.headers["content-disposition"].startswith("attachment")
    assert download.headers["x-content-type-options"] == "nosniff"
    keys = list(app.state.store.list(f"deletion-requests/{request['id']}/"))
    assert keys == [f"deletion-requests/{request['id']}/attachments/{attachment['id']}"]

    html = api.post(url, files={"file": ("x.html", b"<script>", "text/html")})
    assert html.status_code == 422 and "attachments may be" in html.json()["detail"]
    fake = api.post(url, files={"file": ("x.pdf", b"MZ\x90\x00", "application/pdf")})
    assert fake.status_code == 422 and "not application/pdf" in fake.json()["detail"]
    binary = api.post(url, files={"file": ("x.txt", b"\xff\xfe\x00", "text/plain")})
    assert binary.status_code == 422
    assert api.post(url, files={"file": ("e.txt", b"", "text/plain")}).status_code == 422
    big = b"a" * (prod_settings.max_attachment_bytes + 1)
    assert api.post(url, files={"file": ("big.txt", big, "text/plain")}).status_code == 413
    assert api.get(f"{url}/dra_missing").status_code == 404

    listed = api.get(url).json()
    assert listed["count"] == 1 and listed["data"][0]["filename"] == "letter from J. Roe.pdf"
    events = api.get(f"{V1}/audit/events", params={"limit": 500}).text
    assert "J. Roe" not in events
    timeline = api.get(f"{V1}/deletion-requests/{request['id']}/timeline").json()
    [note] = [e for e in timeline if e["action"] == "deletion_request.attachment_added"]
    assert note["payload"]["sha256"] == attachment["sha256"]
    assert note["note"]["filename"] == attachment["filename"]
