"""The audit log over REST: roles, events, checkpoints and proofs, verification, export;
and the tamper test: a row edited or deleted by hand in PostgreSQL is reported at its
exact position, and an export verifies offline with the CLI until it is tampered with."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from cli import cli
from core import migrate
from core.audit import log
from core.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from core.db import make_engine
from core.settings import Settings
from core.signing import CHECKPOINT_CONTEXT, public_key_id, signed_message, verify
from tests.core.audit.tamper import raw_sql
from tests.services import ADMIN_KEY, postgres_database

V1 = "/api/v1/audit"


def _append(app, n: int, entity_id: str, action: str = "job.created") -> list[int]:  # type: ignore[no-untyped-def]
    with app.state.session_factory() as session:
        seqs = [
            log.append(session, "key_test", action, "job", entity_id, {"i": i}).seq
            for i in range(n)
        ]
        session.commit()
    return seqs


def _key(api: TestClient, role: str) -> dict[str, str]:
    created = api.post("/api/v1/keys", json={"name": f"audit-{role}", "role": role})
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['key']}"}


def test_admin_and_compliance_read_the_log_others_do_not(api, anon) -> None:
    compliance, engineer, viewer = (_key(api, r) for r in ("compliance", "engineer", "viewer"))
    for path in ("/events", "/verify", "/checkpoints", "/export"):
        assert anon.get(V1 + path, headers=compliance).status_code == 200, path
        assert anon.get(V1 + path, headers=engineer).status_code == 403, path
        assert anon.get(V1 + path, headers=viewer).status_code == 403, path
        assert anon.get(V1 + path).status_code == 401, path
    assert anon.post(V1 + "/checkpoints", headers=viewer).status_code == 403
    # The public key is public.
    key = anon.get(V1 + "/public-key")
    assert key.status_code == 200 and key.text.startswith("-----BEGIN PUBLIC KEY-----")
    assert key.headers["x-expunge-key-id"] == public_key_id(key.text)


def test_events_filter_and_paginate(api, app) -> None:
    seqs = _append(app, 5, "job_pages")
    _append(app, 2, "job_pages", action="job.cancelled")
    page = api.get(V1 + "/events", params={"entity_id": "job_pages", "limit": 3}).json()
    assert [e["seq"] for e in page["data"]] == [seqs[-1] + 2, seqs[-1] + 1, seqs[-1]]
    rest = api.get(
        V1 + "/events", params={"entity_id": "job_pages", "cursor": page["next_cursor"]}
    ).json()
    assert [e["seq"] for e in rest["data"]] == seqs[-2::-1] and rest["next_cursor"] is None
    asc = api.get(
        V1 + "/events",
        params={"entity_id": "job_pages", "action": "job.created", "order": "asc"},
    ).json()
    assert [e["seq"] for e in asc["data"]] == seqs
    event = asc["data"][2]
    assert event["payload"] == {"i": 2} and event["entity_type"] == "job"
    assert event["at"].endswith("+00:00") and len(event["hash"]) == 64
    assert api.get(V1 + "/events", params={"limit": 0}).status_code == 422
    assert api.get(V1 + "/events", params={"cursor": -1}).status_code == 422


def test_checkpoints_and_proofs_verify_with_the_public_key(api, app) -> None:
    public = api.get(V1 + "/public-key").text
    first_seqs = _append(app, 3, "job_proofs")
    first = api.post(V1 + "/checkpoints")
    assert first.status_code == 201, first.text
    assert api.post(V1 + "/checkpoints").json()["id"] == first.json()["id"]  # unchanged head
    _append(app, 4, "job_proofs")
    second = api.post(V1 + "/checkpoints").json()
    listed = api.get(V1 + "/checkpoints").json()["data"]
    assert listed[0]["id"] == second["id"]

    for cp in (first.json(), second):
        document = {k: cp[k] for k in ("tree_size", "root_hash", "at", "key_id")}
        message = signed_message(CHECKPOINT_CONTEXT, document)
        assert verify(public, message, base64.b64decode(cp["signature"]))

    seq = first_seqs[1]
    proof = api.get(
        V1 + "/proofs/inclusion", params={"seq": seq, "tree_size": second["tree_size"]}
    ).json()
    assert proof["root_hash"] == second["root_hash"] and proof["checkpoint"]["id"] == second["id"]
    leaf = leaf_hash(bytes.fromhex(proof["event_hash"]))
    path = [bytes.fromhex(h) for h in proof["proof"]]
    assert verify_inclusion(
        leaf, seq, second["tree_size"], path, bytes.fromhex(second["root_hash"])
    )

    consistency = api.get(
        V1 + "/proofs/consistency",
        params={"first": first.json()["tree_size"], "second": second["tree_size"]},
    ).json()
    assert verify_consistency(
        first.json()["tree_size"],
        second["tree_size"],
        bytes.fromhex(first.json()["root_hash"]),
        bytes.fromhex(second["root_hash"]),
        [bytes.fromhex(h) for h in consistency["proof"]],
    )


def test_proof_errors_are_typed(api, app) -> None:
    _append(app, 1, "job_errors")
    size = api.get(V1 + "/verify").json()["size"]
    missing = api.get(V1 + "/proofs/inclusion", params={"seq": size + 10})
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    small = api.get(V1 + "/proofs/inclusion", params={"seq": size - 1, "tree_size": size - 1})
    assert small.status_code == 422 and small.json()["field"] == "tree_size"
    big = api.get(V1 + "/proofs/inclusion", params={"seq": 0, "tree_size": size + 1})
    assert big.status_code == 422
    backwards = api.get(V1 + "/proofs/consistency", params={"first": size, "second": 1})
    assert backwards.status_code == 422 and backwards.json()["field"] == "first"
    assert api.get(V1 + "/proofs/inclusion", params={"seq": "x"}).status_code == 422


def test_the_shared_log_verifies(api) -> None:
    report = api.get(V1 + "/verify").json()
    assert report["ok"] is True and report["first_bad_seq"] is None, report


# --------------------------------------------------------------------------- tampering


@pytest.fixture
def own_app(prod_settings: Settings) -> Iterator[tuple[TestClient, Settings]]:
    """An app on a database of its own: these tests break its log on purpose."""
    from api.app import create_app

    with postgres_database() as url:
        settings = prod_settings.model_copy(update={"database_url": url})
        migrate.upgrade(settings)
        app = create_app(settings, run_sweeper=False)
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        with TestClient(app, headers=headers) as client:
            yield client, settings
        from core.db import get_engine

        get_engine(settings).dispose()


def _export(client: TestClient, path: Path) -> Path:
    response = client.get(V1 + "/export")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    path.write_bytes(response.content)
    return path


def _cli_verify(export: Path, key: Path) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli, ["audit", "verify", str(export), "--public-key", str(key)], obj={}
    )
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("statement", "first_bad", "words"),
    [
        ("UPDATE audit_events SET payload = '{\"i\":-1}' WHERE seq = 4", 4, "altered"),
        ("DELETE FROM audit_events WHERE seq = 7", 7, "missing"),
    ],
    ids=["edited", "deleted"],
)
def test_a_hand_edit_is_found_at_its_exact_position_and_exports_show_it(
    own_app, tmp_path: Path, statement: str, first_bad: int, words: str
) -> None:
    client, settings = own_app
    app = client.app
    _append(app, 6, "job_a")
    assert client.post(V1 + "/checkpoints").status_code == 201
    _append(app, 6, "job_b")
    assert client.post(V1 + "/checkpoints").status_code == 201
    key = tmp_path / "key.pem"
    key.write_text(client.get(V1 + "/public-key").text)

    before = _export(client, tmp_path / "before.jsonl")
    assert client.get(V1 + "/verify").json()["ok"] is True
    code, output = _cli_verify(before, key)
    assert code == 0 and output.startswith("OK"), output

    raw_sql(make_engine(settings.database_url), statement)
    report = client.get(V1 + "/verify").json()
    assert report["ok"] is False and report["first_bad_seq"] == first_bad, report
    assert words in report["reason"]

    # The export taken before still verifies; one taken after does not, at the same place.
    assert _cli_verify(before, key)[0] == 0
    after = _export(client, tmp_path / "after.jsonl")
    code, output = _cli_verify(after, key)
    assert code == 1 and f"first bad position: {first_bad}" in output, output

    # Editing the file itself is caught too (line 3 is event 2: event 0 is the bootstrap
    # key's creation, then job_a's).
    lines = before.read_text().splitlines(keepends=True)
    assert '"i":1' in lines[3]
    lines[3] = lines[3].replace('"i":1', '"i":3')
    edited = tmp_path / "edited.jsonl"
    edited.write_text("".join(lines))
    code, output = _cli_verify(edited, key)
    assert code == 1 and "first bad position: 2" in output, output


def test_the_cli_exports_through_the_api_with_a_fresh_checkpoint(
    own_app, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = own_app
    _append(client.app, 3, "job_cli")
    out = tmp_path / "audit.jsonl"
    key = tmp_path / "key.pem"
    # The CLI's typed client speaks HTTP; hand it the app's in-process transport.
    from core import client as client_module

    def in_process(*, base_url: str, headers: dict[str, str], timeout: float) -> TestClient:
        return TestClient(client.app, base_url=base_url, headers=headers)

    monkeypatch.setattr(client_module.httpx, "Client", in_process)
    args = ["--url", "http://testserver", "--key", ADMIN_KEY, "audit"]
    result = CliRunner().invoke(cli, [*args, "export", "-o", str(out)], obj={})
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, [*args, "public-key", "-o", str(key)], obj={})
    assert result.exit_code == 0, result.output
    monkeypatch.undo()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    # The bootstrap admin key's creation, then the three.
    assert "checkpoint" in lines[-2] and lines[-2]["checkpoint"]["tree_size"] == 4
    code, output = _cli_verify(out, key)
    assert code == 0 and "covering the first 4 events" in output, output
