from __future__ import annotations

import uuid

import pytest


@pytest.fixture(scope="module")
def small_model(api) -> dict:
    response = api.post(
        "/api/v1/models",
        json={
            "name": f"jobs-{uuid.uuid4().hex[:6]}",
            "architecture": {"name": "small_cnn", "num_classes": 10, "width": 8},
        },
    )
    assert response.status_code == 201
    return response.json()


def _train(model, dataset, **params) -> dict:
    return {"kind": "train", "model_id": model["id"], "dataset_id": dataset["id"], "params": params}


def test_invalid_params_are_422_naming_the_field(api, small_model, mnist_small) -> None:
    response = api.post("/api/v1/jobs", json=_train(small_model, mnist_small, epochs=0))
    assert response.status_code == 422
    assert "params.epochs" in response.json()["message"]
    extra = api.post("/api/v1/jobs", json=_train(small_model, mnist_small, epoch=1))
    assert extra.status_code == 422 and "params.epoch" in extra.json()["message"]


def test_unknown_kind_and_unknown_ids(api, small_model, mnist_small) -> None:
    kind = api.post("/api/v1/jobs", json={"kind": "dance"})
    assert kind.status_code == 422
    missing_model = api.post(
        "/api/v1/jobs", json={**_train(small_model, mnist_small), "model_id": "mdl_x"}
    )
    assert missing_model.status_code == 404 and "mdl_x" in missing_model.json()["detail"]
    missing_ds = api.post(
        "/api/v1/jobs", json={**_train(small_model, mnist_small), "dataset_id": "ds_x"}
    )
    assert missing_ds.status_code == 404


def test_too_few_classes_is_422(api, mnist_small) -> None:
    model = api.post(
        "/api/v1/models",
        json={
            "name": f"two-{uuid.uuid4().hex[:6]}",
            "architecture": {"name": "mlp", "num_classes": 2},
        },
    ).json()
    response = api.post("/api/v1/jobs", json=_train(model, mnist_small))
    assert response.status_code == 422 and "num_classes" in response.json()["detail"]


def test_idempotent_submission(api, small_model, mnist_small) -> None:
    key = f"idem-{uuid.uuid4()}"
    body = _train(small_model, mnist_small, epochs=1, max_train_samples=64)
    first = api.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": key})
    again = api.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert again.headers.get("idempotent-replayed") == "true"
    other = api.post(
        "/api/v1/jobs", json={**body, "params": {"epochs": 2}}, headers={"Idempotency-Key": key}
    )
    assert other.status_code == 422 and "different request" in other.json()["detail"]
    api.post(f"/api/v1/jobs/{first.json()['id']}/cancel")


def test_queued_job_cancels_at_once_and_list_filters(idle_stack) -> None:
    """On a stack no worker serves, so the job is surely still queued when cancelled."""
    api, mnist_small = idle_stack.api, idle_stack.dataset
    small_model = idle_stack.new_model({"name": "small_cnn", "num_classes": 10, "width": 8})
    job = api.post(
        "/api/v1/jobs", json=_train(small_model, mnist_small, max_train_samples=64)
    ).json()
    assert job["state"] == "queued"
    cancelled = api.post(f"/api/v1/jobs/{job['id']}/cancel").json()
    assert cancelled["state"] == "cancelled"
    again = api.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 409
    listed = api.get(
        "/api/v1/jobs", params={"state": "cancelled", "model_id": small_model["id"]}
    ).json()
    assert job["id"] in {j["id"] for j in listed["data"]}
    assert all(j["state"] == "cancelled" for j in listed["data"])
    assert api.get("/api/v1/jobs", params={"state": "nonsense"}).status_code == 422
    logs = api.get(f"/api/v1/jobs/{job['id']}/logs").json()
    states = [e["data"]["state"] for e in logs["data"] if e["type"] == "state"]
    assert states == ["queued", "cancelled"]


def test_job_pages_do_not_overlap(api, small_model, mnist_small) -> None:
    ids = []
    for _ in range(5):
        job = api.post(
            "/api/v1/jobs", json=_train(small_model, mnist_small, max_train_samples=64)
        ).json()
        api.post(f"/api/v1/jobs/{job['id']}/cancel")
        ids.append(job["id"])
    seen: list[str] = []
    cursor = None
    while True:
        page = api.get(
            "/api/v1/jobs", params={"model_id": small_model["id"], "limit": 2, "cursor": cursor}
        ).json()
        seen += [j["id"] for j in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) and set(ids) <= set(seen)


def test_events_replay_for_a_late_subscriber(api, small_model, mnist_small) -> None:
    job = api.post(
        "/api/v1/jobs", json=_train(small_model, mnist_small, max_train_samples=64)
    ).json()
    api.post(f"/api/v1/jobs/{job['id']}/cancel")
    with api.stream("GET", f"/api/v1/jobs/{job['id']}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    # Cancelled, or succeeded when a session worker took the tiny job first: either way
    # the stream ends on the terminal state, and a resumed stream repeats only what follows.
    final = api.get(f"/api/v1/jobs/{job['id']}").json()["state"]
    assert final in ("cancelled", "succeeded")
    assert "event: state" in text and f'"state":"{final}"' in text and "event: end" in text
    first_id = int(text.split("id: ")[1].split()[0])
    with api.stream(
        "GET", f"/api/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": str(first_id)}
    ) as response:
        resumed = "".join(response.iter_text())
    assert f"id: {first_id}\r\n" not in resumed and f'"state":"{final}"' in resumed
