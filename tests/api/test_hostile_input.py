"""Hostile input at the API: injection, header injection, traversal, booby-trapped uploads.

Each answer must be a clear 4xx (or a 2xx that is provably harmless), never a 5xx, and
nothing may be written where it should not be. What is already proven elsewhere is not
repeated here:

- archive members with ``..`` through the API: tests/api/test_datasets.py
  (test_upload_with_traversal_is_422); every archive trap against the importer itself
  (``..``, absolute paths, tar/zip links, devices, zip bombs, size and count limits):
  tests/core/datasets/test_uploads.py;
- a pickle that would run code, through the API: tests/api/test_models.py
  (test_malicious_pickle_is_refused_and_never_run); truncated safetensors, full-module
  pickles and random bytes against the loader: tests/workers/engine/test_checkpoint.py;
- a dataset upload over the limit: tests/api/test_datasets.py (test_upload_over_limit_is_413);
- object keys with ``..``, absolute paths and odd characters: tests/core/test_storage.py;
- a tainted version's checkpoint download after a real deletion request:
  tests/integration/test_deletion_flow.py.
"""

from __future__ import annotations

import io
import json
import stat
import struct
import tarfile
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from PIL import Image

from api.app import API_PREFIX
from models import Job, JobEvent, ModelVersion
from models.base import new_id

INJECTIONS = [
    "' OR '1'='1",
    "'; DROP TABLE jobs; --",
    '" OR ""="',
    "%' OR 1=1 --",
    "1; SELECT pg_sleep(5)",
    "\\'; --",
    "ʼ OR 1=1 ‮",
    "a\x00b",  # Postgres text cannot hold NUL: must be a 4xx, not a database error
    "x" * 10_000,
]


def _png(value: int = 128) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (8, 8), color=value).save(buf, format="PNG")
    return buf.getvalue()


def _operations(app: Any) -> list[tuple[str, dict[str, Any]]]:
    spec = app.openapi()["paths"]
    return [(path, ops["get"]) for path, ops in spec.items() if "get" in ops]


# --------------------------------------------------------------------------- injection


def test_every_query_filter_survives_injection(app, api) -> None:
    """Every query parameter of every GET, each payload in turn: never a 5xx."""
    failures = []
    for path, op in _operations(app):
        if "{" in path:
            continue  # path parameters are covered below
        for param in op.get("parameters", []):
            if param["in"] != "query":
                continue
            for payload in INJECTIONS:
                response = api.get(path, params={param["name"]: payload})
                if response.status_code >= 500:
                    failures.append(f"{path}?{param['name']}={payload[:30]!r}: {response.text}")
    assert not failures, "\n".join(failures)
    # The tables are all still there.
    assert api.get(f"{API_PREFIX}/jobs").status_code == 200


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/jobs", "model_id"),
        ("/jobs", "dataset_id"),
        ("/audit/events", "action"),
        ("/audit/events", "entity_type"),
        ("/audit/events", "entity_id"),
        ("/deletion-requests", "status"),
    ],
)
def test_equality_filters_match_the_literal_text(api, path: str, param: str) -> None:
    """An injected tautology is a literal string: it matches nothing, it is not SQL."""
    for payload in INJECTIONS[:7]:
        response = api.get(API_PREFIX + path, params={param: payload})
        assert response.status_code in (200, 422), response.text
        if response.status_code == 200:
            assert response.json()["data"] == [], (path, param, payload)


def test_every_path_id_survives_injection(app, api) -> None:
    failures = []
    for path, _ in _operations(app):
        if "{" not in path:
            continue
        for payload in INJECTIONS:
            filled = path
            for name in ("{sample_id}", "{name}"):  # the last segment gets the payload
                if filled.count("{") > 1:  # ...unless it is the only one (/families/{name})
                    filled = filled.replace(name, "x")
            url = _fill_first_param(filled, quote(payload, safe=""))
            response = api.get(url)
            if response.status_code >= 500:
                failures.append(f"{url[:120]}: {response.status_code} {response.text[:200]}")
            elif response.status_code == 200 and path.count("{") == 1:
                failures.append(f"{url[:120]}: 200 for an id that cannot exist")
    assert not failures, "\n".join(failures)


def _fill_first_param(path: str, value: str) -> str:
    start = path.index("{")
    return path[:start] + value + path[path.index("}", start) + 1 :]


def test_names_are_stored_verbatim_or_refused(api) -> None:
    for payload in INJECTIONS:
        made = api.post(f"{API_PREFIX}/keys", json={"name": payload, "role": "viewer"})
        if "\x00" in payload or len(payload) > 200:
            assert made.status_code == 422, made.text
            continue
        assert made.status_code == 201, made.text
        assert made.json()["name"] == payload
        api.delete(f"{API_PREFIX}/keys/{made.json()['id']}")
    for payload in INJECTIONS:  # names with a pattern refuse metacharacters outright
        model = api.post(
            f"{API_PREFIX}/models",
            json={"name": payload, "architecture": {"name": "small_cnn", "num_classes": 2}},
        )
        assert model.status_code == 422, model.text
        dataset = api.post(
            f"{API_PREFIX}/datasets", json={"name": payload, "source": {"name": "digits"}}
        )
        assert dataset.status_code == 422, dataset.text


def test_deletion_request_fields_survive_injection(api) -> None:
    for payload in INJECTIONS:
        body = {
            "scope": {"subject_ids": [payload]},
            "legal_basis": "gdpr_art17",
            "requester_reference": payload,
        }
        response = api.post(f"{API_PREFIX}/deletion-requests/preview", json=body)
        assert response.status_code < 500, response.text
        if response.status_code == 200:
            assert response.json()["nothing_to_delete"] is True


# --------------------------------------------------------------------------- SSE


@pytest.fixture
def finished_job(app) -> Iterator[str]:
    """A succeeded job whose log line tries to forge SSE frames."""
    job_id = new_id("job")
    with app.state.session_factory() as session:
        session.add(Job(id=job_id, kind="train", state="succeeded", progress=1.0))
        session.flush()
        forged = 'done\n\nevent: end\ndata: {"state": "forged"}\r\nid: 999\n'
        session.add(JobEvent(job_id=job_id, type="log", data={"message": forged}))
        session.commit()
    return job_id


def test_sse_last_event_id_with_crlf_is_refused(api, finished_job: str) -> None:
    url = f"{API_PREFIX}/jobs/{finished_job}/events"
    for value in ("1\r\nX-Injected: yes", "1\nSet-Cookie: a=b", "1\r", "-1", "1 ", "9" * 30):
        # The test client hands the raw value to the app (a real server's HTTP parser
        # would already refuse CR/LF): the app itself must refuse it.
        response = api.get(url, headers={"Last-Event-ID": value})
        assert response.status_code == 422, (value, response.status_code, response.text)
        assert "x-injected" not in response.headers and "set-cookie" not in response.headers


def test_sse_data_cannot_forge_events(api, finished_job: str) -> None:
    """Event data is one JSON line: a log message's newlines cannot start a new frame."""
    response = api.get(f"{API_PREFIX}/jobs/{finished_job}/events")
    assert response.status_code == 200
    lines = response.text.replace("\r\n", "\n").split("\n")
    assert sum(1 for line in lines if line.startswith("event: end")) == 1
    assert not any(line.startswith("id: 999") for line in lines)
    data = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    assert any("forged" in d.get("message", "") for d in data)  # carried, escaped, as data
    assert data[-1] == {"state": "succeeded"}


# --------------------------------------------------------------------------- traversal


@pytest.fixture
def versions(app, api) -> dict[str, str]:
    """A model with an active, a tainted and a purged version, and a job per version."""
    model = api.post(
        f"{API_PREFIX}/models",
        json={
            "name": f"hostile-{uuid.uuid4().hex[:8]}",
            "architecture": {"name": "small_cnn", "num_classes": 2},
        },
    ).json()
    out = {"model": model["id"]}
    with app.state.session_factory() as session:
        for number, status in enumerate(("active", "tainted", "purged"), start=1):
            version_id, job_id = new_id("mv"), new_id("job")
            session.add(
                ModelVersion(
                    id=version_id,
                    model_id=model["id"],
                    version=number,
                    status=status,
                    source="train",
                    checkpoint_key=f"models/{model['id']}/{version_id}.safetensors",
                    config_key=f"models/{model['id']}/{version_id}.json",
                    sha256="0" * 64,
                    size_bytes=4,
                )
            )
            session.add(
                Job(
                    id=job_id,
                    kind="train",
                    state="succeeded",
                    model_id=model["id"],
                    result_version_id=version_id,
                    artifacts=[
                        {"name": "model.safetensors", "key": f"jobs/{job_id}/model.safetensors"}
                    ],
                )
            )
            out[status], out[f"{status}_job"] = version_id, job_id
        session.commit()
    return out


@pytest.mark.parametrize("status", ["tainted", "purged"])
def test_tainted_and_purged_weights_are_not_downloadable(api, versions, status: str) -> None:
    checkpoint = api.get(f"{API_PREFIX}/model-versions/{versions[status]}/checkpoint")
    assert checkpoint.status_code == 409 and status in checkpoint.json()["detail"]
    artifact = api.get(f"{API_PREFIX}/jobs/{versions[f'{status}_job']}/artifacts/model.safetensors")
    assert artifact.status_code == 409 and status in artifact.json()["detail"]


def test_artifact_names_cannot_traverse(api, versions) -> None:
    job = versions["active_job"]
    for name in (
        "../../etc/passwd",
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        ".hidden",
        "/etc/passwd",
        "model.safetensors%00.png",
        "a" * 500,
    ):
        response = api.get(f"{API_PREFIX}/jobs/{job}/artifacts/{name}")
        assert response.status_code in (404, 422), (name, response.status_code, response.text)
    # Only names the job lists are served: another job's object is not reachable by key.
    other = api.get(f"{API_PREFIX}/jobs/{job}/artifacts/grid.png")
    assert other.status_code == 404


def test_sample_and_attachment_ids_cannot_traverse(api, mnist_small) -> None:
    dataset = mnist_small["id"]
    for sample in ("../../../etc/passwd", "..%2F..%2Fshards%2F0", "%2e%2e/%2e%2e/x"):
        response = api.get(f"{API_PREFIX}/datasets/{dataset}/samples/{sample}/image")
        assert response.status_code in (404, 422), (sample, response.status_code)
    response = api.get(f"{API_PREFIX}/deletion-requests/dr_nope/attachments/..%2F..%2Fx")
    assert response.status_code in (404, 422)


# --------------------------------------------------------------------------- uploads


def _upload_dataset(api, name: str, filename: str, data: bytes, content_type: str) -> Any:
    return api.post(
        f"{API_PREFIX}/datasets/upload",
        data={"name": name},
        files={"file": (filename, data, content_type)},
    )


def _dataset_names(api) -> set[str]:
    return {
        d["name"] for d in api.get(f"{API_PREFIX}/datasets", params={"limit": 200}).json()["data"]
    }


def _zip(members: dict[Any, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


def _zip_bomb() -> bytes:
    """50 MiB of zeros in well under 1 MiB."""
    return _zip({"cat/ok.png": _png(), "cat/bomb.png": bytes(50 << 20)})


def _symlink_zip() -> bytes:
    info = zipfile.ZipInfo("cat/link.png")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return _zip({"cat/ok.png": _png(), info: b"/etc/passwd"})


def _symlink_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as archive:
        ok = _png()
        info = tarfile.TarInfo("cat/ok.png")
        info.size = len(ok)
        archive.addfile(info, io.BytesIO(ok))
        link = tarfile.TarInfo("cat/passwd.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    return buf.getvalue()


ABSOLUTE_TARGET = f"/tmp/expunge-hostile-{uuid.uuid4().hex}.png"
ZIP, BYTES = "application/zip", "application/octet-stream"


@pytest.mark.parametrize(
    ("case", "filename", "make", "content_type"),
    [
        ("absolute", "abs.zip", lambda: _zip({"c/ok.png": _png(), ABSOLUTE_TARGET: _png()}), ZIP),
        ("zip-symlink", "link.zip", _symlink_zip, ZIP),
        ("tar-symlink", "link.tar.gz", _symlink_tar, "application/gzip"),
        ("zip-bomb", "bomb.zip", _zip_bomb, ZIP),
        ("png-as-zip", "pets.zip", _png, ZIP),
        ("not-an-archive", "pets.exe", lambda: b"MZ\x90\x00" + bytes(100), "application/x-exe"),
        ("wrong-content-type", "pets.zip", lambda: b"<html>hi</html>", "text/html"),
        ("empty", "empty.zip", lambda: b"", ZIP),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 30 else "",
)  # fmt: skip
def test_booby_trapped_archives_are_refused(api, case, filename, make, content_type) -> None:
    name = f"hostile-{case}"
    response = _upload_dataset(api, name, filename, make(), content_type)
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], str) and response.json()["detail"]
    assert name not in _dataset_names(api)
    assert not Path(ABSOLUTE_TARGET).exists()


@pytest.fixture(params=["postgres", "sqlite"])
def form_api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """The API on both databases: Postgres refuses a NUL in text, SQLite would store it."""
    if request.param == "postgres":
        yield request.getfixturevalue("api")
        return
    from fastapi.testclient import TestClient

    from api.app import create_app
    from core import migrate
    from core.settings import Settings
    from tests.services import ADMIN_KEY

    settings = Settings(home=tmp_path / "home", bootstrap_admin_key=ADMIN_KEY)
    migrate.upgrade(settings)
    app = create_app(settings, run_sweeper=False)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        yield client


def test_form_text_with_nul_is_422_naming_the_field(form_api) -> None:
    """Multipart text fields are held to the JSON bodies' NUL rule on every database,
    with a 422 naming the field (Postgres's own refusal names none)."""
    archive = _zip({"cat/a.png": _png(), "dog/b.png": _png(7)})
    response = form_api.post(
        f"{API_PREFIX}/datasets/upload",
        data={"name": "nul-description", "description": "a\x00b"},
        files={"file": ("pets.zip", archive, ZIP)},
    )
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer.get("field") == "description" and "NUL" in answer["detail"], answer
    assert "nul-description" not in _dataset_names(form_api)


def test_upload_file_name_with_nul_is_422(form_api) -> None:
    """A file name is form text too (httpx escapes a NUL in it, so the form is raw)."""
    archive = _zip({"cat/a.png": _png(), "dog/b.png": _png(7)})
    boundary = b"expunge-nul-boundary"
    body = b"".join(
        [
            b"--" + boundary + b'\r\nContent-Disposition: form-data; name="name"\r\n\r\n',
            b"nul-file-name\r\n--" + boundary + b"\r\n",
            b'Content-Disposition: form-data; name="file"; filename="pe\x00ts.zip"\r\n',
            b"Content-Type: application/zip\r\n\r\n" + archive + b"\r\n",
            b"--" + boundary + b"--\r\n",
        ]
    )
    response = form_api.post(
        f"{API_PREFIX}/datasets/upload",
        content=body,
        headers={"Content-Type": "multipart/form-data; boundary=" + boundary.decode()},
    )
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer.get("field") == "file" and "file name" in answer["detail"], answer
    assert "nul-file-name" not in _dataset_names(form_api)


def test_every_form_route_checks_its_text(app) -> None:
    """A form route added later without ``FORM_TEXT`` would store NULs again on SQLite."""
    from fastapi import params
    from fastapi.routing import iter_route_contexts

    from api.schemas import form_text_checked

    form_routes, unchecked = [], []
    for route in iter_route_contexts(app.routes):  # included routers too, with prefixes
        body = getattr(route, "body_field", None)
        if body is None or not isinstance(body.field_info, params.Form):
            continue
        form_routes.append(route.path_format)
        if not any(dep.call is form_text_checked for dep in route.dependant.dependencies):
            unchecked.append(f"{sorted(route.methods or ())} {route.path_format}")
    assert len(form_routes) >= 4 and not unchecked, (form_routes, unchecked)


def test_upload_filename_cannot_traverse(api) -> None:
    """The client's file name is never a path on the server."""
    target = Path(f"/tmp/expunge-hostile-{uuid.uuid4().hex}.zip")
    response = _upload_dataset(
        api,
        "hostile-filename",
        f"../../../..{target}",
        _zip({"x/a.png": _png()}),
        "application/zip",
    )
    assert response.status_code in (201, 422), response.text
    assert not target.exists()


def _safetensors(truncate: int = 0) -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [16], "data_offsets": [0, 64]}}).encode()
    blob = struct.pack("<Q", len(header)) + header + bytes(64)
    return blob[: len(blob) - truncate] if truncate else blob


@pytest.mark.parametrize(
    ("case", "filename", "payload", "content_type"),
    [
        ("truncated", "w.safetensors", _safetensors(truncate=10), BYTES),
        ("huge-header-length", "w.safetensors", struct.pack("<Q", 1 << 62) + b"{}", BYTES),
        ("png", "w.safetensors", _png(), "image/png"),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 30 else "",
)  # fmt: skip
def test_bad_checkpoints_are_refused(api, versions, case, filename, payload, content_type) -> None:
    model = versions["model"]
    before = api.get(f"{API_PREFIX}/models/{model}/versions").json()["data"]
    response = api.post(
        f"{API_PREFIX}/models/{model}/versions",
        files={"checkpoint": (filename, payload, content_type)},
    )
    assert response.status_code == 422, response.text
    assert api.get(f"{API_PREFIX}/models/{model}/versions").json()["data"] == before


def test_checkpoint_over_the_limit_is_413(app, api, versions) -> None:
    limit = app.state.settings.max_upload_bytes
    app.state.settings.max_upload_bytes = 1000
    try:
        response = api.post(
            f"{API_PREFIX}/models/{versions['model']}/versions",
            files={"checkpoint": ("big.safetensors", bytes(5000), "application/octet-stream")},
        )
    finally:
        app.state.settings.max_upload_bytes = limit
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "payload_too_large"


def test_embedded_sqlite_refuses_out_of_range_numbers_too(tmp_path: Path) -> None:
    """The embedded default (SQLite) fails differently from Postgres on a 2**64 integer."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from core import migrate
    from core.settings import Settings
    from tests.services import ADMIN_KEY

    settings = Settings(home=tmp_path / "home", bootstrap_admin_key=ADMIN_KEY)
    migrate.upgrade(settings)
    app = create_app(settings, run_sweeper=False)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        huge = client.get(f"{API_PREFIX}/audit/events", params={"cursor": 2**64})
        assert huge.status_code == 422 and huge.json()["code"] == "invalid_value", huge.text
        for payload in INJECTIONS:
            assert client.get(f"{API_PREFIX}/jobs", params={"model_id": payload}).status_code < 500


# --------------------------------------------------------------------------- strict input
# Issue #12's findings, one by one: each was a 500, or silently accepted, before.
TRAIN = {"kind": "train", "model_id": "mdl_x", "dataset_id": "ds_x"}
CNN = {"name": "small_cnn", "num_classes": 2}


@pytest.mark.parametrize("family", [[], [[]], {}, {"x": 1}], ids=["list", "nested", "obj", "objx"])
def test_model_family_of_the_wrong_type_is_422(api, family: Any) -> None:
    response = api.post(
        f"{API_PREFIX}/models",
        json={
            "name": f"fam-{uuid.uuid4().hex[:8]}",
            "family": family,
            "architecture": {"name": "small_cnn", "num_classes": 2},
        },
    )
    assert response.status_code == 422, response.text
    assert "family" in response.json()["message"] and "classifier" in response.json()["message"]


def _bulk(api, data: bytes) -> Any:
    return api.post(
        f"{API_PREFIX}/deletion-requests/bulk", files={"file": ("requests.csv", data, "text/csv")}
    )


def _newest_request(api) -> str | None:
    listed = api.get(f"{API_PREFIX}/deletion-requests", params={"limit": 1}).json()["data"]
    return listed[0]["id"] if listed else None


@pytest.mark.parametrize(
    ("case", "data", "line"),
    [
        ("nul-byte", b"subject_id\nal\x00ice\n", 2),
        ("binary", b"subject_id\n" + bytes(range(256)), 3),  # 0x0a (line 3) before 0x80
        ("png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 1),
        ("huge-field", b"subject_id\nbob\n" + b"x" * 200_000, 3),  # past csv's field limit
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_bulk_csv_that_is_not_text_is_422_naming_the_line(api, case, data, line) -> None:
    response = _bulk(api, data)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(f"line {line}: "), response.text
    assert response.json()["field"] == "file"


def test_bulk_csv_in_latin1_is_refused_not_misread(api) -> None:
    """``müller`` in Latin-1 was filed as ``m\ufffdller``: nobody, done at once."""
    before = _newest_request(api)
    response = _bulk(api, f"subject_id\nm\u00fcller-{uuid.uuid4().hex[:6]}\n".encode("latin-1"))
    assert response.status_code == 422, response.text
    assert "line 2" in response.json()["detail"] and "UTF-8" in response.json()["detail"]
    assert _newest_request(api) == before  # nothing filed


@pytest.mark.parametrize("ending", ["\r", "\r\n"], ids=["cr-only", "crlf"])
def test_bulk_csv_with_any_line_ending_files_each_row(api, ending: str) -> None:
    """Classic Mac (CR-only) and Windows line ends are CSV too: one request per row."""
    subjects = [f"le-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    data = ending.join(["subject_id,legal_basis", *(f"{s},ccpa" for s in subjects)]) + ending
    response = _bulk(api, data.encode())
    assert response.status_code == 201, response.text
    filed = response.json()["data"]
    # Nobody's data is held, so each completes at once and its ids are redacted.
    assert [(r["legal_basis"], r["scope"].get("count")) for r in filed] == [("ccpa", 1)] * 2


def test_bulk_csv_with_a_short_row_is_422(api) -> None:
    response = _bulk(api, b"legal_basis,subject_id\nccpa\n")
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("line 2: ")


def test_bulk_csv_over_the_limit_is_413(api) -> None:
    from api.deletion_requests.router import BULK_CSV_MAX_BYTES

    response = _bulk(api, b"subject_id\n" + b"x" * BULK_CSV_MAX_BYTES)
    assert response.status_code == 413, response.text
    assert "split it" in response.json()["detail"]


def test_evaluate_job_with_half_a_million_splits_is_422(api) -> None:
    for count, words in ((500_000, "more than 100000 entries"), (3, "at most 2")):
        body = {"kind": "evaluate", "model_version_id": "mv_x", "splits": ["test"] * count}
        response = api.post(f"{API_PREFIX}/jobs", json=body)
        assert response.status_code == 422, response.text[:300]
        assert "splits" in response.json()["message"] and words in response.json()["message"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/keys", {"name": "a\x00b", "role": "viewer"}, "name"),
        (
            "/models",
            {
                "name": "nul-model",
                "description": "a\x00b",
                "architecture": {"name": "small_cnn", "num_classes": 2},
            },
            "description",
        ),
        (
            "/deletion-requests/preview",
            {
                "scope": {"subject_ids": ["someone"]},
                "legal_basis": "ccpa",
                "requester_reference": "ticket\x00 7",
            },
            "requester_reference",
        ),
        (
            "/deletion-requests",
            {"scope": {"subject_ids": ["a\x00"]}, "legal_basis": "ccpa"},
            "scope.subject_ids.0",
        ),
        (
            "/webhooks",
            {"url": "https://example.invalid/hook", "description": "x\x00"},
            "description",
        ),
        ("/keys", {"name\x00": "a", "role": "viewer"}, "name\x00"),
    ],
    ids=["key-name", "model-description", "reference", "subject", "webhook", "key-of-object"],
)  # fmt: skip
def test_nul_characters_are_refused_in_every_string(api, path, body, field) -> None:
    response = api.post(API_PREFIX + path, json=body)
    assert response.status_code == 422, response.text
    issue = response.json()["detail"][0]
    assert ".".join(str(p) for p in issue["loc"][1:]) == field
    assert "NUL" in issue["msg"] and "remove" in issue["msg"]


def test_comment_with_nul_is_refused(api) -> None:
    filed = api.post(
        f"{API_PREFIX}/deletion-requests",
        json={"scope": {"subject_ids": [f"nobody-{uuid.uuid4().hex[:8]}"]}, "legal_basis": "ccpa"},
    )
    assert filed.status_code == 201, filed.text
    response = api.post(
        f"{API_PREFIX}/deletion-requests/{filed.json()['id']}/comments", json={"text": "a\x00b"}
    )
    assert response.status_code == 422, response.text
    assert "NUL" in response.json()["message"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/jobs", {**TRAIN, "params": {"epochs": True}}, "params.epochs"),
        ("/jobs", {**TRAIN, "params": {"epochs": "3"}}, "params.epochs"),
        ("/jobs", {**TRAIN, "params": {"epochs": 1.5}}, "params.epochs"),
        ("/jobs", {**TRAIN, "sisa": {"shards": True}}, "sisa.shards"),
        ("/datasets", {"name": "s", "source": {"name": "digits", "limit": True}}, "source.limit"),
        ("/models", {"name": "s", "architecture": {**CNN, "num_classes": "9"}}, "num_classes"),
        ("/webhooks", {"url": "https://example.invalid/h", "active": 1}, "active"),
    ],
    ids=["bool-int", "str-int", "float-int", "sisa-bool", "limit-bool", "str-classes", "int-bool"],
)  # fmt: skip
def test_numbers_and_booleans_are_strict(api, path, body, field) -> None:
    response = api.post(API_PREFIX + path, json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["message"], response.text
    assert "send " in response.json()["message"]  # says what type to send


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/keys", {"name": "extra", "role": "viewer", "admin": True}),
        ("/models", {"name": "extra", "architecture": CNN, "admin": True}),
        ("/datasets", {"name": "extra", "source": {"name": "digits"}, "admin": True}),
        ("/datasets", {"name": "extra", "source": {"name": "digits", "admin": True}}),
    ],
    ids=["keys", "models", "datasets", "datasets-source"],
)  # fmt: skip
def test_unknown_fields_are_refused(api, path, body) -> None:
    response = api.post(API_PREFIX + path, json=body)
    assert response.status_code == 422, response.text
    assert "admin" in response.json()["message"]
    assert "unknown field; remove it" in response.json()["message"]


@pytest.mark.parametrize(
    "raw",
    [b'{"name": "k", ', b"{'name': 'k'}", b"", b'{"name": "k\xff"}'],
    ids=["cut", "quotes", "empty", "latin1"],
)
def test_malformed_json_is_400(api, raw: bytes) -> None:
    response = api.post(
        f"{API_PREFIX}/keys", content=raw, headers={"Content-Type": "application/json"}
    )
    if not raw:  # no body at all: the required body is missing, a validation error
        assert response.status_code == 422, response.text
        return
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "bad_request"
    assert "JSON" in response.json()["detail"]


def test_nan_is_not_a_number_here(api) -> None:
    raw = b'{"kind": "train", "model_id": "m", "dataset_id": "d", "params": {"lr": NaN}}'
    response = api.post(
        f"{API_PREFIX}/jobs", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert "finite number" in response.json()["message"]


def test_openapi_lists_429_and_503(app) -> None:
    from api.ratelimit import limited_operations

    limited = limited_operations(app)
    spec = app.openapi()
    missing = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            if "503" not in codes:
                missing.append(f"{method.upper()} {path}: 503")
            if (method.upper(), path) in limited and "429" not in codes:
                missing.append(f"{method.upper()} {path}: 429")
            if "requestBody" in operation and not {"400", "413", "422"} <= codes:
                missing.append(f"{method.upper()} {path}: 400/413/422")
    assert not missing, missing
    assert spec["paths"][f"{API_PREFIX}/jobs"]["post"]["responses"]["429"]["headers"]["Retry-After"]


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/keys", {"GET", "POST"}),
        ("/keys/key_x", {"DELETE"}),
        ("/webhooks/wh_x", {"GET", "PATCH", "DELETE"}),
        ("/models/m_x/deletion-policy", {"GET", "PUT"}),
        ("/deletion-requests", {"GET", "POST"}),
    ],
)
def test_options_allow_names_every_method_of_the_path(anon, path: str, methods: set[str]) -> None:
    response = anon.options(API_PREFIX + path)
    assert response.status_code == 204, response.text
    assert set(response.headers["allow"].split(", ")) == methods | {"OPTIONS"}


def test_wrong_method_405_allow_names_every_method(api) -> None:
    response = api.put(f"{API_PREFIX}/keys")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "POST", "OPTIONS"}


def test_every_json_body_is_strict(app) -> None:
    """A route added later with a plain pydantic body would skip all of the above."""
    from fastapi.routing import APIRoute
    from pydantic import BaseModel

    import api.app as app_module
    from api.schemas import RequestBody

    loose = []
    for name in dir(app_module):
        router = getattr(app_module, name)
        for route in getattr(router, "routes", []) if name.endswith("router") else []:
            if not isinstance(route, APIRoute) or route.body_field is None:
                continue
            info = route.body_field.field_info
            annotation = info.annotation
            members = getattr(annotation, "__args__", (annotation,))
            if any(getattr(m, "__name__", "").startswith("Body_") for m in members):
                continue  # a multipart form: files and form fields, no JSON
            strict_wrapped = any("strict_body" in repr(meta) for meta in info.metadata)
            for member in members:
                if not (isinstance(member, type) and issubclass(member, BaseModel)):
                    continue
                if not issubclass(member, RequestBody) and not strict_wrapped:
                    loose.append(f"{sorted(route.methods)} {route.path}: {member.__name__}")
    assert not loose, loose


@pytest.mark.parametrize("metrics", ['{"acc": NaN}', '{"acc": Infinity}', '{"note": "a\\u0000b"}'])
def test_reported_metrics_with_nan_or_nul_are_422(api, versions, metrics: str) -> None:
    """The multipart ``metrics`` field is JSON too, held to the same rules as a body."""
    response = api.post(
        f"{API_PREFIX}/models/{versions['model']}/versions",
        data={"metrics": metrics},
        files={"checkpoint": ("w.safetensors", _safetensors(), BYTES)},
    )
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "metrics" and "remove them" in response.json()["detail"]


def test_json_nested_too_deep_or_too_long_is_refused(api) -> None:
    """Bounds every body has, whatever its schema: nesting, list length, text length."""
    deep: Any = "x"
    for _ in range(200):
        deep = [deep]
    for params, words in (
        ({"deep": deep}, "nested deeper"),
        ({"many": list(range(100_001))}, "more than 100000"),
        ({"text": "x" * 100_001}, "over 100000"),
    ):
        response = api.post(f"{API_PREFIX}/jobs", json={**TRAIN, "params": params})
        assert response.status_code == 422, response.text[:300]
        assert words in response.json()["message"], response.text[:300]


def test_json_body_over_its_own_limit_is_413(api) -> None:
    from api.app import MAX_JSON_BODY_BYTES

    raw = b'{"name": "' + b"x" * MAX_JSON_BODY_BYTES + b'", "role": "viewer"}'
    response = api.post(
        f"{API_PREFIX}/keys", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413, response.text[:300]
    assert "send less" in response.json()["detail"]


def test_options_allow_matches_the_document_for_every_path(app, anon) -> None:
    """Every path of the OpenAPI document: ``Allow`` is exactly the documented methods of
    the templates the URL matches (``/keys/me`` is also ``/keys/{key_id}``, so DELETE is
    routed there, a 404 rather than a 405)."""
    import re

    paths = app.openapi()["paths"]
    templates = {
        p: re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(p)) + "$") for p in paths
    }
    wrong = []
    for path in paths:
        url = re.sub(r"\{[^}]+\}", "x", path)
        documented = {"OPTIONS"} | {
            m.upper() for p, ops in paths.items() if templates[p].match(url) for m in ops
        }
        response = anon.options(url)
        allowed = set(response.headers.get("allow", "").split(", "))
        if response.status_code != 204 or allowed != documented:
            wrong.append(f"{path}: {response.status_code} {sorted(allowed)} {sorted(documented)}")
    assert not wrong, wrong
