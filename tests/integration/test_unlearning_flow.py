"""Unlearning through REST on the production stack: methods, references, SISA, bad input."""

from __future__ import annotations

import pytest

from tests.support.rest import new_model, wait_job

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trained(api, worker, mnist_small) -> dict:
    model = new_model(api)
    job = api.post(
        "/api/v1/jobs",
        json={
            "kind": "train",
            "model_id": model["id"],
            "dataset_id": mnist_small["id"],
            "params": {"epochs": 3, "batch_size": 32, "lr": 0.05},
        },
    ).json()
    done = wait_job(api, job["id"], {"succeeded", "failed"})
    assert done["state"] == "succeeded", done
    return api.get(f"/api/v1/model-versions/{done['result_version_id']}").json()


def _subjects(api, dataset_id: str, n: int) -> list[str]:
    page = api.get(
        f"/api/v1/datasets/{dataset_id}/samples", params={"split": "train", "limit": 200}
    ).json()
    return sorted({s["subject_id"] for s in page["data"] if s["subject_id"]})[:n]


def test_methods_are_published(api) -> None:
    listed = api.get("/api/v1/methods", params={"family": "classifier"}).json()
    methods = {m["name"]: m for m in listed}
    assert {m["family"] for m in listed} == {"classifier"}
    assert {
        "retrain",
        "sisa",
        "salun",
        "finetune",
        "gradient_ascent",
        "boundary_shrink",
        "scrub",
        "bad_teacher",
        "ssd",
        "slug",
        "opc",
        "l1_sparse",
        "random_label",
        "neggrad_plus",
        "boundary_expanding",
    } <= set(methods)
    assert methods["retrain"]["exact"] and methods["sisa"]["exact"]
    assert not methods["salun"]["exact"] and "ICLR" in methods["salun"]["paper"]
    assert methods["boundary_expanding"]["scopes"] == ["labels"]
    props = methods["salun"]["params_schema"]["properties"]
    assert "epochs" in props and "default" in props["epochs"]


def test_subject_unlearning_with_reference(api, trained, mnist_small) -> None:
    subjects = _subjects(api, mnist_small["id"], 3)
    job = api.post(
        "/api/v1/jobs",
        json={
            "kind": "unlearn",
            "model_version_id": trained["id"],
            "method": "salun",
            "forget": {"subject_ids": subjects},
            "params": {"epochs": 2},
            "reference": "retrain",
        },
    )
    assert job.status_code == 201, job.text
    job = job.json()
    ref_id = job["spec"]["reference_job_id"]
    done = wait_job(api, job["id"], {"succeeded", "failed"})
    ref = wait_job(api, ref_id, {"succeeded", "failed"})
    assert done["state"] == "succeeded" and ref["state"] == "succeeded", (done, ref)

    ev = done["metrics"]["evaluation"]
    for key in ("UA", "RA", "TA", "MIA", "loss_auc", "relearn_accuracy"):
        assert 0.0 <= ev[key] <= 1.0, (key, ev)
    assert done["metrics"]["original_evaluation"]["UA"] <= ev["UA"] + 0.5
    comparison = api.get(f"/api/v1/jobs/{job['id']}").json()["comparison"]
    assert comparison["reference_job_id"] == ref_id and 0 <= comparison["avg_gap"] <= 1
    assert comparison["speedup"] > 0

    version = api.get(f"/api/v1/model-versions/{done['result_version_id']}").json()
    assert version["parent_version_id"] == trained["id"] and version["source"] == "unlearn"
    lineage = api.get(f"/api/v1/model-versions/{version['id']}/lineage").json()
    forgotten = done["metrics"]["forget_count"]
    trained_count = api.get(f"/api/v1/model-versions/{trained['id']}/lineage").json()
    assert lineage["training_set"]["count"] == trained_count["training_set"]["count"] - forgotten
    remaining = set(api.get(lineage["training_set"]["sample_ids_url"]).text.split())
    subject_samples = api.get(
        f"/api/v1/datasets/{mnist_small['id']}/samples", params={"subject_id": subjects[0]}
    ).json()["data"]
    assert not {s["sample_id"] for s in subject_samples} & remaining

    # The reference is reused by a second method on the same scope.
    again = api.post(
        "/api/v1/jobs",
        json={
            "kind": "unlearn",
            "model_version_id": trained["id"],
            "method": "finetune",
            "forget": {"subject_ids": list(reversed(subjects))},
            "params": {"epochs": 1},
            "reference": "retrain",
        },
    ).json()
    assert again["spec"]["reference_job_id"] == ref_id
    finished = wait_job(api, again["id"], {"succeeded", "failed"})
    assert finished["state"] == "succeeded", finished
    assert "js_forget" in finished["metrics"]["evaluation"]  # the reference was ready


def test_classwise_unlearning_and_evaluate_any_version(api, trained, mnist_small) -> None:
    job = api.post(
        "/api/v1/jobs",
        json={
            "kind": "unlearn",
            "model_version_id": trained["id"],
            "method": "boundary_shrink",
            "forget": {"labels": [3]},
            # The default budget (0.2 of a 3-epoch training) buys this tiny original 3
            # steps at the paper's lr 1e-5: too few to move it. The paper's 10 epochs
            # (3/4 of a retrain here) show the direction this test is about.
            "params": {"epochs": 10},
        },
    ).json()
    done = wait_job(api, job["id"], {"succeeded", "failed"})
    assert done["state"] == "succeeded", done
    ev = done["metrics"]["evaluation"]
    assert ev["UA"] > done["metrics"]["original_evaluation"]["UA"]
    assert "forget_test_accuracy" in ev

    evaluation = api.post(
        "/api/v1/jobs",
        json={
            "kind": "evaluate",
            "model_version_id": done["result_version_id"],
            "forget": {"labels": [3]},
            "reference_version_id": trained["id"],
        },
    ).json()
    measured = wait_job(api, evaluation["id"], {"succeeded", "failed"})
    assert measured["state"] == "succeeded", measured
    assert measured["metrics"]["evaluation"]["UA"] == pytest.approx(ev["UA"])
    assert "js_forget" in measured["metrics"]["evaluation"]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"method": "imagine", "forget": {"labels": [1]}}, "method", "choose one of"),
        (
            {"method": "boundary_expanding", "forget": {"sample_ids": ["mnist-train-00000"]}},
            "forget",
            "supports",
        ),
        ({"method": "sisa", "forget": {"labels": [1]}}, "method", "not trained with SISA"),
        ({"method": "salun", "forget": {"subject_ids": ["nobody"]}}, "forget", "matches no sample"),
        (
            {"method": "salun", "forget": {"labels": list(range(10))}},
            "forget",
            "whole training set",
        ),
        (
            {"method": "salun", "forget": {"labels": [1]}, "params": {"epochs": 0}},
            "params.epochs",
            "params.epochs",
        ),
        ({"method": "salun", "forget": {"labels": [1], "sample_ids": ["x"]}}, None, "exactly one"),
    ],
)
def test_bad_unlearning_requests_are_422(api, trained, body, field, words) -> None:
    response = api.post(
        "/api/v1/jobs", json={"kind": "unlearn", "model_version_id": trained["id"], **body}
    )
    assert response.status_code == 422, response.text
    payload = response.json()
    assert words in (payload.get("message") or payload["detail"])
    if field:
        assert payload.get("field") == field


def test_sisa_train_and_exact_unlearning(api, worker, mnist_small) -> None:
    model = new_model(api)
    job = api.post(
        "/api/v1/jobs",
        json={
            "kind": "train",
            "model_id": model["id"],
            "dataset_id": mnist_small["id"],
            "sisa": {"shards": 3, "slices": 2},
            "params": {"epochs": 1, "max_train_samples": 300},
        },
    ).json()
    done = wait_job(api, job["id"], {"succeeded", "failed"})
    assert done["state"] == "succeeded", done
    version = api.get(f"/api/v1/model-versions/{done['result_version_id']}").json()
    assert version["config"]["sisa"]["shards"] == 3
    names = {a["name"] for a in done["artifacts"]}
    assert "sisa_slices" in names

    ids = api.get(f"/api/v1/model-versions/{version['id']}/sample-ids").text.split()
    unlearn = api.post(
        "/api/v1/jobs",
        json={
            "kind": "unlearn",
            "model_version_id": version["id"],
            "method": "sisa",
            "forget": {"sample_ids": ids[:1]},
        },
    ).json()
    result = wait_job(api, unlearn["id"], {"succeeded", "failed"})
    assert result["state"] == "succeeded", result
    assert result["metrics"]["exact"] is True
    assert result["metrics"]["method_metrics"]["stage_fraction"] <= 2 / 6
    child = api.get(f"/api/v1/model-versions/{result['result_version_id']}/sample-ids").text.split()
    assert ids[0] not in child and len(child) == len(ids) - 1

    other = api.post(
        "/api/v1/jobs",
        json={
            "kind": "unlearn",
            "model_version_id": version["id"],
            "method": "salun",
            "forget": {"sample_ids": ids[:1]},
        },
    )
    assert other.status_code == 422 and "SISA ensemble" in other.json()["detail"]
