"""The Compare API: views stored by real unlearn / evaluate jobs, and jobs side by side."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.rest import new_model, wait_job


@pytest.fixture(scope="module")
def runs(api, worker, mnist_small) -> dict[str, dict]:
    """A small trained model, a class unlearned from it (with its retrain reference) and
    an evaluate job of the result against both."""
    model = new_model(api)
    train = api.post(
        "/api/v1/jobs",
        json={
            "kind": "train",
            "model_id": model["id"],
            "dataset_id": mnist_small["id"],
            "params": {"epochs": 1, "batch_size": 32, "lr": 0.05, "max_train_samples": 300},
        },
    ).json()
    train = wait_job(api, train["id"], {"succeeded", "failed"})
    assert train["state"] == "succeeded", train
    unlearn = api.post(
        "/api/v1/jobs",
        json={
            "kind": "unlearn",
            "model_version_id": train["result_version_id"],
            "method": "finetune",
            "forget": {"labels": [3]},
            "params": {"epochs": 1},
            "reference": "retrain",
        },
    ).json()
    reference = wait_job(api, unlearn["spec"]["reference_job_id"], {"succeeded", "failed"})
    unlearn = wait_job(api, unlearn["id"], {"succeeded", "failed"})
    assert reference["state"] == unlearn["state"] == "succeeded", (reference, unlearn)
    evaluate = api.post(
        "/api/v1/jobs",
        json={
            "kind": "evaluate",
            "model_version_id": unlearn["result_version_id"],
            "forget": {"labels": [3]},
            "reference_version_id": reference["result_version_id"],
        },
    ).json()
    evaluate = wait_job(api, evaluate["id"], {"succeeded", "failed"})
    assert evaluate["state"] == "succeeded", evaluate
    return {"train": train, "unlearn": unlearn, "reference": reference, "evaluate": evaluate}


def test_unlearn_job_stores_every_view(api, runs) -> None:
    job = runs["unlearn"]
    assert "views" in {a["name"] for a in job["artifacts"]}
    response = api.get(f"/api/v1/jobs/{job['id']}/views")
    assert response.status_code == 200, response.text
    views = response.json()
    assert views["job_id"] == job["id"] and views["num_classes"] == 10
    assert views["models"] == ["after", "before", "reference"]
    assert views["forget_labels"] == [3]
    # Class-wise: the forget set holds class 3 only; the test split keeps every class.
    forget_counts = views["class_counts"]["forget"]
    assert (
        forget_counts[3] == views["counts"]["forget"] > 0 and sum(forget_counts) == forget_counts[3]
    )
    for split in ("test", "forget"):
        for role in views["models"]:
            rows = np.asarray(views["confusion"][split][role]).sum(axis=1)
            assert rows.tolist() == views["class_counts"][split]
    assert len(views["class_accuracy"]["test"]["reference"]) == 10
    points = views["feature_map"]["points"]
    assert 0 < len(points) <= 500 and any(p["forget"] for p in points)
    assert all(p["before"] is not None for p in points)
    cka = views["cka"]
    assert len(cka["layers"]) == len(cka["to_original"]) == len(cka["to_reference"])
    attack = views["attack"]
    assert set(attack["roc"]) == {"after", "before", "reference"}
    risky = attack["at_risk"][0]
    assert risky["label"] == 3
    image = api.get(risky["image_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"


def test_evaluate_job_views_know_the_parent_and_the_reference(api, runs) -> None:
    views = api.get(f"/api/v1/jobs/{runs['evaluate']['id']}/views").json()
    assert views["models"] == ["after", "before", "reference"]
    assert views["cka"]["to_original"] and views["cka"]["to_reference"]


def test_jobs_without_views_are_404_with_the_reason(api, runs) -> None:
    train = api.get(f"/api/v1/jobs/{runs['train']['id']}/views")
    assert train.status_code == 404 and "only unlearn and evaluate" in train.json()["detail"]
    missing = api.get("/api/v1/jobs/job_nope/views")
    assert missing.status_code == 404 and "not found" in missing.json()["detail"]


def test_compare_lists_jobs_side_by_side(api, runs) -> None:
    ids = [runs["unlearn"]["id"], runs["reference"]["id"], runs["evaluate"]["id"]]
    response = api.get("/api/v1/compare", params={"jobs": ",".join([*ids, ids[0]])})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == 3 and [r["job_id"] for r in body["data"]] == ids
    finetune, retrain, evaluate = body["data"]
    assert finetune["method"] == "finetune" and retrain["method"] == "retrain" and retrain["exact"]
    assert finetune["reference_job_id"] == retrain["job_id"]
    assert 0 <= finetune["avg_gap"] <= 1 and finetune["speedup"] > 0
    assert finetune["UA"] == pytest.approx(runs["unlearn"]["metrics"]["evaluation"]["UA"])
    assert finetune["forget_kind"] == "labels" and finetune["has_views"]
    assert retrain["avg_gap"] is None and retrain["seconds"] > 0
    assert evaluate["kind"] == "evaluate" and evaluate["method"] is None
    assert evaluate["forget_kind"] == "labels" and evaluate["TA"] is not None


@pytest.mark.parametrize(
    ("jobs", "status", "words"),
    [
        (",", 422, "at least one job id"),
        (",".join(f"job_{i}" for i in range(21)), 422, "at most 20"),
        ("job_nope", 404, "job_nope"),
    ],
)
def test_compare_refuses_bad_lists(api, jobs: str, status: int, words: str) -> None:
    response = api.get("/api/v1/compare", params={"jobs": jobs})
    assert response.status_code == status and words in response.json()["detail"]


def test_compare_refuses_jobs_that_are_not_unlearning(api, runs) -> None:
    response = api.get("/api/v1/compare", params={"jobs": runs["train"]["id"]})
    assert response.status_code == 422 and "(train)" in response.json()["detail"]
