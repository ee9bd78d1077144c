"""Worker-trained judges and the attack, in-process against Postgres and the S3 server.

A tiny ddpm on the objects × styles set: the evaluate job trains the label judge and the
object and style judges on the real styled images, caches them under ``judges/``, reports
their held-out accuracy, the per-factor metrics of an erased style, and the attack's
success rate; a second evaluation reuses the cached judges."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from api.jobs.schemas import EvaluateJobCreate, TrainJobCreate
from api.jobs.service import create_evaluate_job, create_train_job
from contracts.ddpm import DiffusionArchitecture
from core.datasets.builtin import FASHION_STYLES, style_labels
from tests.support.runner import TINY8, TRAIN, commit_job, run_job
from workers.engine.data import ImageArrays
from workers.engine.diffusion.judge import judge_from_bytes
from workers.jobs.diffusion import judge_halves

STYLED8 = {**TINY8, "num_classes": 60}
JUDGE = {"samples_per_class": 1, "num_inference_steps": 2, "real_images": 60}


@pytest.fixture(scope="module")
def styled(api) -> dict:
    response = api.post(
        "/api/v1/datasets",
        json={"name": "styles-small", "source": {"name": "fashion_styles", "limit": 360}},
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_a_style_is_judged_by_trained_judges(api, app, prod_settings, styled) -> None:
    DiffusionArchitecture.model_validate(STYLED8)
    model = api.post(
        "/api/v1/models",
        json={"name": f"styles-{uuid.uuid4().hex[:8]}", "architecture": STYLED8},
    )
    assert model.status_code == 201, model.text
    train = TrainJobCreate(
        kind="train", model_id=model.json()["id"], dataset_id=styled["id"], params=TRAIN
    )
    version_id = run_job(prod_settings, app, commit_job(prod_settings, create_train_job, train))
    version_id = version_id.result_version_id
    striped = style_labels("striped")
    body = EvaluateJobCreate(
        kind="evaluate",
        model_version_id=version_id,
        forget={"labels": striped},
        judge={**JUDGE, "attack_steps": 2},
    )
    first = run_job(
        prod_settings, app, commit_job(prod_settings, create_evaluate_job, body)
    ).metrics
    judge = first["judge"]
    assert judge["kind"] == "trained" and judge["cached"] is False
    assert 0.0 <= judge["heldout_accuracy"] <= 1.0 and judge["heldout_count"] > 0
    assert set(judge["factors"]) == {"object", "style"}
    # Two label judges (a small CNN and an MLP on disjoint halves of the train split)
    # and the two factor judges.
    judges = first["judges"]
    assert [j["architecture"] for j in judges] == ["small_cnn", "mlp"]
    assert [j["data"] for j in judges] == ["train half a", "train half b"]
    halves = [j["train_count"] for j in judges]
    assert abs(halves[0] - halves[1]) <= 60  # at most one image apart per class
    store = app.state.store
    keys = list(store.list(f"judges/{styled['id']}"))
    assert len(keys) == 4 and {j["key"] for j in judges} <= set(keys)
    assert judge_from_bytes(store.get_bytes(judge["key"])).arch.num_classes == 60
    assert judge_from_bytes(store.get_bytes(judges[1]["key"])).arch.name == "mlp"
    cells = first["evaluation"]["cells"]
    assert len(cells) == 2 * 2 and {c["judge"] for c in cells} == {j["cell_name"] for j in judges}
    evaluation = first["evaluation"]
    style = evaluation["factors"]["style"]
    assert style["erased_values"] == [FASHION_STYLES.index("striped")]
    assert 0.0 <= style["forget_rate"] <= 1.0
    assert evaluation["factors"]["object"]["erased_values"] == []
    assert 0.0 <= evaluation["factors"]["object"]["accuracy_retained"] <= 1.0
    attack = evaluation["attack"]
    assert attack["steps"] == 2 and 0.0 <= attack["attack_success_rate"] <= 1.0

    second = run_job(
        prod_settings, app, commit_job(prod_settings, create_evaluate_job, body)
    ).metrics
    assert second["judge"]["cached"] is True and second["judge"]["key"] == judge["key"]
    assert all(j["cached"] for j in second["judges"])
    assert second["judge"]["heldout_accuracy"] == judge["heldout_accuracy"]


def test_judge_halves_are_disjoint_stratified_and_order_free() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), [8, 7, 2, 10, 3])
    images = ImageArrays(
        images=rng.integers(0, 255, (len(labels), 4, 4, 1), dtype=np.uint8),
        labels=labels,
        sample_ids=[f"s{i}" for i in range(len(labels))],
    )
    first, second = judge_halves(images)
    assert not set(first.sample_ids) & set(second.sample_ids)
    assert sorted(first.sample_ids + second.sample_ids) == sorted(images.sample_ids)
    for label, count in enumerate([8, 7, 2, 10, 3]):
        a, b = (int((half.labels == label).sum()) for half in (first, second))
        assert a + b == count and abs(a - b) <= 1
    shuffled = images.subset(rng.permutation(len(labels)))
    again, _ = judge_halves(shuffled)
    assert set(again.sample_ids) == set(first.sample_ids)
