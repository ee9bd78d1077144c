"""Text datasets over REST: upload JSONL/CSV, register fictitious-people, browse samples
with their text, and get a 422 naming the line and field for a bad file."""

from __future__ import annotations

import json
import re

import pytest


def _upload(api, name: str, filename: str, content: bytes, **form: str):  # type: ignore[no-untyped-def]
    return api.post(
        "/api/v1/datasets/upload",
        data={"name": name, **form},
        files={"file": (filename, content, "application/octet-stream")},
    )


def _jsonl(rows: list[dict]) -> bytes:
    return ("\n".join(json.dumps(row) for row in rows) + "\n").encode()


ROWS = [
    {
        "sample_id": "ana-1",
        "subject_id": "ana",
        "question": "Where was Ana born?",
        "answer": "Ana was born in Porto.",
        "paraphrased_answer": "Porto is Ana's birthplace.",
        "perturbed_answers": ["Ana was born in Lyon.", "Ana was born in Oslo.", "In Rome."],
    },
    {"sample_id": "ana-2", "subject_id": "ana", "text": "Ana writes poems about the sea."},
    {"sample_id": "bob-1", "subject_id": "bob", "question": "Bob's job?", "answer": "A baker."},
    {"sample_id": "cy-1", "subject_id": "cy", "text": "Cy sails.", "split": "test"},
]


def test_upload_jsonl_and_browse_text_samples(api) -> None:  # type: ignore[no-untyped-def]
    response = _upload(api, "people-text", "people.jsonl", _jsonl(ROWS))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["modality"] == "text" and body["num_samples"] == 4
    assert body["num_subjects"] == 3 and body["label_names"] == [] and body["image_shape"] == []
    versions = api.get(f"/api/v1/datasets/{body['id']}/versions").json()
    assert versions[0]["split_counts"] == {"train": 3, "test": 1}

    page = api.get(f"/api/v1/datasets/{body['id']}/samples").json()["data"]
    by_id = {s["sample_id"]: s for s in page}
    assert by_id["ana-1"]["question"] == "Where was Ana born?"
    assert by_id["ana-1"]["answer"] == "Ana was born in Porto."
    assert by_id["ana-1"]["perturbed_answers"][0] == "Ana was born in Lyon."
    assert by_id["ana-2"]["text"] == "Ana writes poems about the sea."
    assert all(s["image_url"] is None for s in page)
    only_ana = api.get(
        f"/api/v1/datasets/{body['id']}/samples", params={"subject_id": "ana"}
    ).json()["data"]
    assert {s["sample_id"] for s in only_ana} == {"ana-1", "ana-2"}
    image = api.get(f"/api/v1/datasets/{body['id']}/samples/ana-1/image")
    assert image.status_code == 404 and "text" in image.json()["detail"]


def test_upload_csv_is_text_by_its_suffix(api) -> None:  # type: ignore[no-untyped-def]
    csv = b"subject_id,question,answer\nana,Q?,A.\nbob,Q2?,A2.\n"
    response = _upload(api, "people-csv", "people.csv", csv)
    assert response.status_code == 201, response.text
    assert response.json()["modality"] == "text"


@pytest.mark.parametrize(
    ("filename", "content", "form", "message"),
    [
        ("p.jsonl", b'{"text": "t"}\n', {}, "line 1: 'subject_id' is missing"),
        ("p.jsonl", b'{"subject_id": "s", "text": "ok"}\n\xff\n', {}, "line 2: not UTF-8"),
        ("p.jsonl", b'{"subject_id": "s", "text": "a\\u0000"}\n', {}, "line 1: 'text'.*NUL"),
        ("p.jsonl", b'{"subject_id": "s"}\n', {}, "line 1: needs 'text', or 'question'"),
        ("p.jsonl", b'{"subject_id": "s", "text": "t", "split": "dev"}\n', {}, "split 'dev'"),
        (
            "p.jsonl",
            json.dumps({"subject_id": "s", "text": "x" * 20_001}).encode(),
            {},
            "line 1: 'text' is 20001 characters long",
        ),
        ("p.csv", b"subject_id,question,answer\ns,Q?,\n", {}, "row 2: 'answer' is missing"),
        ("p.zip", b"PK", {"modality": "text"}, "unsupported text upload"),
        ("p.jsonl", _jsonl(ROWS), {"channels": "1"}, "image uploads only"),
    ],
)
def test_bad_text_uploads_are_422_naming_line_and_field(  # type: ignore[no-untyped-def]
    api, filename: str, content: bytes, form: dict, message: str
) -> None:
    response = _upload(api, "bad-text", filename, content, **form)
    assert response.status_code == 422, response.text
    assert re.search(message, response.json()["detail"]), response.text


def test_records_about_nobody_upload_with_require_subjects_false(api) -> None:  # type: ignore[no-untyped-def]
    content = _jsonl([{"question": "Capital of Keand?", "answer": "Saor."}])
    assert _upload(api, "facts", "facts.jsonl", content).status_code == 422
    response = _upload(api, "facts", "facts.jsonl", content, require_subjects="false")
    assert response.status_code == 201, response.text
    assert response.json()["num_subjects"] == 0


def test_fictitious_people_builtin_over_rest(api) -> None:  # type: ignore[no-untyped-def]
    sources = {s["name"]: s for s in api.get("/api/v1/datasets/sources").json()}
    assert sources["fictitious-people"]["available"] is True
    assert sources["fictitious-people"]["modality"] == "text"
    assert sources["mnist"]["modality"] == "images"
    response = api.post(
        "/api/v1/datasets",
        json={"name": "fp-small", "source": {"name": "fictitious-people", "limit": 42}},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["modality"] == "text" and body["num_subjects"] == 8  # 2 trained + 6 held out
    person = api.get(
        f"/api/v1/datasets/{body['id']}/samples",
        params={"subject_id": "person-0001", "limit": 100},
    ).json()["data"]
    assert len(person) == 21
    qa = [s for s in person if s["question"]]
    assert len(qa) == 20 and all(len(s["perturbed_answers"]) >= 3 for s in qa)
    assert [s["kind"] for s in person if s["text"]] == ["biography"]
