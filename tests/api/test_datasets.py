from __future__ import annotations

import io
import zipfile

from PIL import Image


def test_builtin_sources_listed(api) -> None:
    sources = {s["name"]: s for s in api.get("/api/v1/datasets/sources").json()}
    assert {"mnist", "fashion_mnist", "orl_faces", "digits"} <= set(sources)
    assert sources["mnist"]["available"] is True


def test_register_mnist_slice_and_browse(api, mnist_small) -> None:
    ds = mnist_small
    assert ds["num_samples"] > 600 and ds["image_shape"] == [28, 28, 1]
    assert ds["num_subjects"] > 0
    page = api.get(f"/api/v1/datasets/{ds['id']}/samples", params={"label": 3, "limit": 5}).json()
    assert page["data"] and all(s["label"] == 3 for s in page["data"])
    assert page["next_cursor"]
    nxt = api.get(
        f"/api/v1/datasets/{ds['id']}/samples",
        params={"label": 3, "limit": 5, "cursor": page["next_cursor"]},
    ).json()
    assert not {s["sample_id"] for s in nxt["data"]} & {s["sample_id"] for s in page["data"]}

    subject = next(s["subject_id"] for s in page["data"] if s["subject_id"])
    by_subject = api.get(
        f"/api/v1/datasets/{ds['id']}/samples", params={"subject_id": subject}
    ).json()
    assert by_subject["data"] and all(s["subject_id"] == subject for s in by_subject["data"])

    image = api.get(page["data"][0]["image_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(image.content)).size == (28, 28)


def test_duplicate_name_is_409_and_unknown_source_422(api, mnist_small) -> None:
    dup = api.post("/api/v1/datasets", json={"name": "mnist-small", "source": {"name": "mnist"}})
    assert dup.status_code == 409
    bad = api.post("/api/v1/datasets", json={"name": "nope", "source": {"name": "imagenet"}})
    assert bad.status_code == 422 and "imagenet" in bad.json()["detail"]


def test_unknown_dataset_is_404_and_bad_cursor_422(api, mnist_small) -> None:
    assert api.get("/api/v1/datasets/ds_missing").status_code == 404
    bad = api.get(f"/api/v1/datasets/{mnist_small['id']}/samples", params={"cursor": "!!"})
    assert bad.status_code == 422


def _png(color: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (10, 10), color).save(buf, format="PNG")
    return buf.getvalue()


def test_upload_image_folder_archive(api) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for label, color in (("cat", 30), ("dog", 200)):
            for i in range(3):
                zf.writestr(f"train/{label}/{i}.png", _png(color))
            zf.writestr(f"test/{label}/t.png", _png(color))
    response = api.post(
        "/api/v1/datasets/upload",
        data={"name": "pets"},
        files={"file": ("pets.zip", buf.getvalue(), "application/zip")},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["label_names"] == ["cat", "dog"] and body["num_samples"] == 8
    sample = api.get(f"/api/v1/datasets/{body['id']}/samples").json()["data"][0]
    image = api.get(sample["image_url"])  # ids from archives hold "/": the route takes them
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"


def test_upload_with_traversal_is_422(api) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../evil/0.png", _png(1))
    response = api.post(
        "/api/v1/datasets/upload",
        data={"name": "evil"},
        files={"file": ("evil.zip", buf.getvalue(), "application/zip")},
    )
    assert response.status_code == 422, response.text
    assert api.get("/api/v1/datasets").json()["data"][0]["name"] != "evil"


def test_upload_over_limit_is_413(app, api) -> None:
    limit = app.state.settings.max_upload_bytes
    app.state.settings.max_upload_bytes = 1000
    try:
        response = api.post(
            "/api/v1/datasets/upload",
            data={"name": "big"},
            files={"file": ("big.zip", b"x" * 5000, "application/zip")},
        )
    finally:
        app.state.settings.max_upload_bytes = limit
    assert response.status_code == 413
