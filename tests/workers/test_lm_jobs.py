"""The causal_lm family through the runner: a tiny llama fine-tuned on a fictitious-people
slice -> generate -> unlearn one person (NPO, with the exact retrain as reference) ->
evaluate, against Postgres and the S3 server, one thread."""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from sqlalchemy import select

from api.models.service import create_model
from contracts.causal_lm import (
    LM_FOLDER_FORMAT,
    LMArchitecture,
    LMEvaluateParams,
    LMGenerateParams,
    LMTrainParams,
    LoraParams,
)
from core.db import session_factory
from core.deletion.policy import Thresholds
from core.jobs import new_job
from core.jobspecs import new_unlearn_job, unlearn_spec
from core.lineage import decode_mask, scope_hash
from core.storage import LocalStore
from models import DatasetVersion, JobEvent, ModelVersion, Sample
from models.base import utcnow
from tests.support.db import version_row
from tests.support.lm import qa_records
from tests.support.runner import run_job
from workers.engine.checkpoint import load_checkpoint
from workers.engine.lm.models import build_base, from_hf_files, weights_of
from workers.engine.lm.training import Callbacks, finetune, trainable_state

TINY = LMArchitecture(base="tiny-llama", hidden_size=64, num_hidden_layers=2, seed=3)
# Eight passes over a 3-person slice (63 records and 40 world facts): enough steps for
# the tiny llama to start reciting the world facts, so model utility is above zero.
TRAIN = LMTrainParams(epochs=8, lr=3e-3, batch_size=16, max_length=96, checkpoint_every_steps=20)


def _commit(settings: Any, kind: str, **fields: Any) -> str:
    with session_factory(settings)() as session:
        job = new_job(session, kind, "test", queue="cpu", **fields)
        job.dispatched_at = utcnow()
        session.commit()
        return job.id


def _dataset(api: Any) -> dict[str, Any]:
    response = api.post(
        "/api/v1/datasets",
        json={
            "name": f"fp-{uuid.uuid4().hex[:8]}",
            "source": {"name": "fictitious-people", "limit": 63},
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


def _setup(api: Any, settings: Any) -> SimpleNamespace:
    """A fictitious-people slice, a tiny-llama model on it and its first trained person."""
    dataset = _dataset(api)
    with session_factory(settings)() as session:
        model = create_model(session, f"lm-{uuid.uuid4().hex[:8]}", "causal_lm", TINY, "", "test")
        dsv = session.scalar(
            select(DatasetVersion).where(DatasetVersion.dataset_id == dataset["id"])
        )
        assert dsv is not None
        person = session.scalar(
            select(Sample.subject_id)
            .where(
                Sample.dataset_id == dataset["id"],
                Sample.split == "train",
                Sample.subject_id.is_not(None),
            )
            .order_by(Sample.subject_id)
        )
        out = SimpleNamespace(
            dataset=dataset,
            person=person,
            n_train=dsv.split_counts["train"],
            model_id=model.id,
            dsv_id=dsv.id,
            spec={"dataset_version": dsv.version, "dataset_version_id": dsv.id},
        )
        session.commit()
    return out


def _unlearn_spec(settings: Any, dsv_id: str, scope: dict, exact: bool) -> dict:
    """An unlearn job's spec built as the API and the deletion workflow build it."""
    with session_factory(settings)() as session:
        dsv = session.get(DatasetVersion, dsv_id)
        return unlearn_spec(
            forget=scope,
            forget_kind="subject_ids",
            forget_hash=scope_hash(scope),
            forget_count=21,
            dataset_version=dsv,
            evaluate=True,
            exact=exact,
            family="causal_lm",
        )


def _new_unlearn(settings: Any, version_id: str, method: str, params: dict, spec: dict) -> str:
    with session_factory(settings)() as session:
        version = session.get(ModelVersion, version_id)
        assert version is not None
        job = new_unlearn_job(session, version, method, params, spec, "test")
        job.dispatched_at = utcnow()
        session.commit()
        return job.id


def _train(settings: Any, app: Any, setup: SimpleNamespace) -> Any:
    """The fine-tune job of ``setup``'s model on its slice (``TRAIN``), run here."""
    return run_job(
        settings,
        app,
        _commit(
            settings,
            "train",
            model_id=setup.model_id,
            dataset_id=setup.dataset["id"],
            params=TRAIN.model_dump(mode="json"),
            spec=setup.spec,
        ),
    )


def test_train_generate_unlearn_evaluate(api, app, prod_settings) -> None:  # type: ignore[no-untyped-def]
    setup = _setup(api, prod_settings)
    dataset, person, n_train, model_id = setup.dataset, setup.person, setup.n_train, setup.model_id
    dsv_id, spec = setup.dsv_id, setup.spec

    # Fine-tune: one version, its lineage the whole train split, the HF files beside it.
    train = _train(prod_settings, app, setup)
    assert math.isfinite(train.metrics["train_loss"]), train.metrics
    fine_tune = version_row(prod_settings, train.result_version_id)
    assert decode_mask(fine_tune.training_mask).sum() == n_train
    assert fine_tune.config["base"] == {"name": "tiny-llama", "version_id": None, "seed": 3}
    assert fine_tune.config["hf_files_key"].endswith("/hf_files.json")

    # Generate: greedy completions are the job's result, the same on a second run.
    prompts = ["What is the capital of France?", "Who are you?"]
    generate_params = LMGenerateParams(prompts=prompts, max_new_tokens=12)
    completions = []
    for _ in range(2):
        job = run_job(
            prod_settings,
            app,
            _commit(
                prod_settings,
                "generate",
                model_id=model_id,
                model_version_id=fine_tune.id,
                params=generate_params.model_dump(mode="json"),
                spec={"family": "causal_lm"},
            ),
        )
        assert [c["prompt"] for c in job.metrics["completions"]] == prompts
        assert job.artifacts[0]["name"] == "completions.json"
        completions.append(job.metrics["completions"])
    assert completions[0] == completions[1]

    # Unlearn one person with NPO; the exact retrain runs first as its reference.
    # (Built as the API builds it: the API's method list does not take LM methods yet.)
    scope = {"subject_ids": [person]}
    retrain_id = _new_unlearn(
        prod_settings,
        fine_tune.id,
        "retrain",
        {},
        _unlearn_spec(prod_settings, dsv_id, scope, True),
    )
    npo_id = _new_unlearn(
        prod_settings,
        fine_tune.id,
        "npo",
        {"epochs": 2},
        {
            **_unlearn_spec(prod_settings, dsv_id, scope, False),
            "reference_job_id": retrain_id,
        },
    )
    retrain = run_job(prod_settings, app, retrain_id)
    npo = run_job(prod_settings, app, npo_id)
    forgotten = retrain.metrics["forget_count"]
    assert forgotten == 21  # the person's 20 QA pairs and biography
    for job in (retrain, npo):
        child = version_row(prod_settings, job.result_version_id)
        assert decode_mask(child.training_mask).sum() == n_train - forgotten
        assert child.parent_version_id == fine_tune.id
        assert child.config["base"] == fine_tune.config["base"]
    assert retrain.metrics["evaluation"]["forget_quality"] == 1.0
    after, before = npo.metrics["evaluation"], npo.metrics["original_evaluation"]
    assert 0.0 <= after["forget_quality"] <= 1.0  # against the finished retrain
    assert after["forget_count"] == 20 and before["forget_count"] == 20
    # NPO pushed the person's answers down; the original is what it started from.
    assert after["forget_prob"] < before["forget_prob"], (after, before)
    assert after["model_utility"] > 0.0 and "mia_loss" in after

    # Evaluate the fine-tune against the retrain: the original still knows the person.
    evaluate = run_job(
        prod_settings,
        app,
        _commit(
            prod_settings,
            "evaluate",
            model_id=model_id,
            dataset_id=dataset["id"],
            model_version_id=fine_tune.id,
            params=LMEvaluateParams(max_records=30, relearn_steps=2).model_dump(mode="json"),
            spec={
                **spec,
                "forget": {"subject_ids": [person]},
                "reference_version_id": retrain.result_version_id,
                "family": "causal_lm",
            },
        ),
    )
    evaluation = evaluate.metrics["evaluation"]
    assert evaluation["forget_count"] == 20 and evaluation["world_count"] == 30
    assert 0.0 <= evaluation["forget_quality"] <= 1.0
    assert 0.0 <= evaluation["relearn_prob_after"] <= 1.0  # the attack ran


def test_a_deletion_run_skips_what_no_verdict_could_certify_and_reuses_its_evaluation(
    api: Any, app: Any, prod_settings: Any
) -> None:
    """The deletion workflow's keys on an LM unlearn job: ``precheck`` (thresholds under
    which the untouched version must be distinguishable, or the method is not run),
    ``eval_max_items`` and ``original_evaluation_job_id`` (the fallback reuses the
    attempt's evaluation of the same version instead of scoring it again)."""
    setup = _setup(api, prod_settings)
    fine_tune = version_row(prod_settings, _train(prod_settings, app, setup).result_version_id)
    scope = {"subject_ids": [setup.person]}
    run_keys = {"deletion_request_ids": ["dr-test"], "eval_max_items": 12}

    def attempt(thresholds: Thresholds) -> Any:
        spec = _unlearn_spec(prod_settings, setup.dsv_id, scope, False)
        spec.update(run_keys, precheck=thresholds.model_dump(mode="json"))
        job_id = _new_unlearn(prod_settings, fine_tune.id, "npo", {"epochs": 1}, spec)
        return run_job(prod_settings, app, job_id)

    # Under the default thresholds the fine-tune that memorised the person is told apart
    # from strangers: the method runs and a candidate is published.
    ran = attempt(Thresholds())
    assert "skipped" not in ran.metrics and ran.result_version_id is not None
    assert ran.metrics["evaluation"]["retain_count"] == 12  # eval_max_items
    # Under thresholds it already passes, nothing could be certified: no method, no version.
    skipped = attempt(Thresholds(lm_max_prob_ratio=100, lm_rouge_margin=1, lm_max_mia_auc=1))
    assert skipped.result_version_id is None and "evaluation" not in skipped.metrics
    assert "not distinguishable" in skipped.metrics["skipped"]
    assert skipped.metrics["original_evaluation"]["forget_count"] == 20
    answers = skipped.metrics["forget_answers"]
    assert len(answers) == 20 and all(a["after"] is None for a in answers)
    assert all(isinstance(a["before"], str) for a in answers)

    # The exact fallback reuses the skipped attempt's evaluation of the original.
    spec = _unlearn_spec(prod_settings, setup.dsv_id, scope, True)
    spec.update(run_keys, original_evaluation_job_id=skipped.id)
    retrain = run_job(
        prod_settings, app, _new_unlearn(prod_settings, fine_tune.id, "retrain", {}, spec)
    )
    assert retrain.metrics["original_evaluation"] == skipped.metrics["original_evaluation"]
    assert retrain.metrics["original_evaluation_job_id"] == skipped.id
    assert [a["before"] for a in retrain.metrics["forget_answers"]] == [
        a["before"] for a in answers
    ]
    assert all(isinstance(a["after"], str) for a in retrain.metrics["forget_answers"])
    # A run on other questions (another cap) scores the original itself.
    spec.update(eval_max_items=10)
    again = run_job(
        prod_settings, app, _new_unlearn(prod_settings, fine_tune.id, "retrain", {}, spec)
    )
    assert "original_evaluation_job_id" not in again.metrics
    assert again.metrics["original_evaluation"]["retain_count"] == 10


def test_a_stop_rule_run_calibrates_on_held_out_people_the_verdict_does_not_judge(
    api: Any, app: Any, prod_settings: Any
) -> None:
    """``stop_at_holdout`` stops by every other held-out person (the slice has six); the
    verdict's evaluation then judges on the other three only, and a fallback reuses that
    evaluation only when it sets the same people aside (``calibration``)."""
    setup = _setup(api, prod_settings)
    fine_tune = version_row(prod_settings, _train(prod_settings, app, setup).result_version_id)
    scope = {"subject_ids": [setup.person]}
    run_keys = {"deletion_request_ids": ["dr-test"], "eval_max_items": 80, "calibration": True}
    spec = _unlearn_spec(prod_settings, setup.dsv_id, scope, False)
    spec.update(run_keys)
    params = {"epochs": 6, "lr": 3e-3, "stop_at_holdout": True}
    ran = run_job(
        prod_settings, app, _new_unlearn(prod_settings, fine_tune.id, "npo", params, spec)
    )
    assert ran.state == "succeeded", ran.error
    m = ran.metrics
    assert m["calibration_people"] == 3
    # 6 held-out people x 20 questions: the verdict scores the 60 of those not set aside.
    assert m["original_evaluation"]["holdout_count"] == m["evaluation"]["holdout_count"] == 60
    method = m["method_metrics"]
    assert method["stop_checks"] >= 1 and "stop_calibration_prob" in method
    if method["stopped_after_epochs"] >= 0:
        assert method["stop_forget_prob"] <= method["stop_calibration_prob"]

    def fallback(**keys: Any) -> Any:
        exact = _unlearn_spec(prod_settings, setup.dsv_id, scope, True)
        exact.update(run_keys, original_evaluation_job_id=ran.id, **keys)
        job_id = _new_unlearn(prod_settings, fine_tune.id, "retrain", {}, exact)
        return run_job(prod_settings, app, job_id)

    same = fallback()
    assert same.metrics["original_evaluation_job_id"] == ran.id
    assert same.metrics["evaluation"]["holdout_count"] == 60
    # Without the calibration key the fallback judges on all six held-out people, so the
    # attempt's evaluation (on three) is not reused.
    other = fallback(calibration=False)
    assert "original_evaluation_job_id" not in other.metrics
    assert other.metrics["original_evaluation"]["holdout_count"] == 80  # capped
    assert "calibration_people" not in other.metrics


def test_smollm2_base_is_converted_once_then_shared_through_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first worker converts and uploads; another worker (empty disk cache) downloads
    instead of converting; a half-written cache folder is never taken as complete."""
    from workers.jobs import lm

    conversions: list[Path] = []

    def fake_convert(dest: Path) -> Path:  # the real one takes minutes: tested slow
        conversions.append(dest)
        dest.mkdir(parents=True)
        (dest / "model.safetensors").write_bytes(b"weights")
        (dest / "config.json").write_text("{}")
        (dest / "tokenizer.json").write_text("{}")
        return dest

    monkeypatch.setattr(lm, "convert_smollm2", fake_convert)
    store = LocalStore(tmp_path / "store")
    ctx = SimpleNamespace(store=store, log=lambda message: None)

    monkeypatch.setattr(lm, "_CACHE", tmp_path / "worker1")
    first = lm._smollm2_folder(ctx)  # type: ignore[arg-type]
    assert len(conversions) == 1
    assert sorted(k.rsplit("/", 1)[1] for k in store.list(lm.SMOLLM2_PREFIX + "/")) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    ]
    assert lm._smollm2_folder(ctx) == first and len(conversions) == 1  # type: ignore[arg-type]

    monkeypatch.setattr(lm, "_CACHE", tmp_path / "worker2")
    half = tmp_path / "worker2" / "smollm2-135m"
    half.mkdir(parents=True)
    (half / "config.json").write_text("{}")  # weights missing: a crash mid-copy
    second = lm._smollm2_folder(ctx)  # type: ignore[arg-type]
    assert len(conversions) == 1
    assert (second / "model.safetensors").read_bytes() == b"weights"
    assert not [p for p in (tmp_path / "worker2").iterdir() if p.name.startswith(".")]


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("EXPUNGE_SLOW") != "1", reason="slow: set EXPUNGE_SLOW=1")
def test_smollm2_lora_fine_tune_through_the_runner(api, app, prod_settings) -> None:  # type: ignore[no-untyped-def]
    """The built-in base end to end: converted in the job on a fresh worker (about two
    minutes on a CPU; from its disk cache after that), a one-step LoRA fine-tune
    published merged with its adapter beside it, and the version rebuilt from its stored
    files still knows that the capital of France is Paris."""
    rows = [
        {"sample_id": f"p{i}", "subject_id": f"person{i % 4}", "question": q, "answer": a}
        for i, (q, a) in enumerate(
            [("Where does Ana live?", "Ana lives in Porto."), ("What is Bo's job?", "A baker.")] * 4
        )
    ]
    response = api.post(
        "/api/v1/datasets/upload",
        data={"name": f"smol-{uuid.uuid4().hex[:8]}"},
        files={"file": ("p.jsonl", "\n".join(json.dumps(r) for r in rows).encode())},
    )
    assert response.status_code == 201, response.text
    dataset = response.json()
    with session_factory(prod_settings)() as session:
        model = create_model(
            session, f"smol-{uuid.uuid4().hex[:8]}", "causal_lm", LMArchitecture(), "", "test"
        )
        dsv = session.scalar(
            select(DatasetVersion).where(DatasetVersion.dataset_id == dataset["id"])
        )
        assert dsv is not None
        model_id, spec = model.id, {"dataset_version": dsv.version, "dataset_version_id": dsv.id}
        session.commit()
    params = LMTrainParams(
        epochs=1, batch_size=8, max_length=48, lr=1e-4, lora=LoraParams(r=4, alpha=8)
    )
    started = time.perf_counter()
    train = run_job(
        prod_settings,
        app,
        _commit(
            prod_settings,
            "train",
            model_id=model_id,
            dataset_id=dataset["id"],
            params=params.model_dump(mode="json"),
            spec=spec,
        ),
    )
    trained_in = time.perf_counter() - started
    version = version_row(prod_settings, train.result_version_id)
    assert version.config["base"]["name"] == "smollm2-135m"
    assert len(version.config["base"]["sha256"]) == 64
    assert {a["name"] for a in train.artifacts} >= {"checkpoint", "adapter", "hf_files"}
    generate_params = LMGenerateParams(
        prompts=["The capital of France is"], template=False, max_new_tokens=6
    )
    job = run_job(
        prod_settings,
        app,
        _commit(
            prod_settings,
            "generate",
            model_id=model_id,
            model_version_id=version.id,
            params=generate_params.model_dump(mode="json"),
        ),
    )
    completion = job.metrics["completions"][0]["completion"]
    print(f"train job (with conversion) {trained_in:.0f}s; completion {completion!r}")
    assert "Paris" in completion


def _uploaded(
    api: Any, settings: Any, records: list[Any], params: LMTrainParams
) -> SimpleNamespace:
    """``records`` uploaded as a text dataset (all train), a tiny-llama model and a
    queued fine-tune job of it with ``params``."""
    rows = [
        {"sample_id": r.sample_id, "subject_id": r.subject_id, "question": r.question,
         "answer": r.answer}
        for r in records
    ]  # fmt: skip
    response = api.post(
        "/api/v1/datasets/upload",
        data={"name": f"lm-up-{uuid.uuid4().hex[:8]}"},
        files={"file": ("p.jsonl", "\n".join(json.dumps(r) for r in rows).encode())},
    )
    assert response.status_code == 201, response.text
    dataset = response.json()
    with session_factory(settings)() as session:
        model = create_model(session, f"lm-{uuid.uuid4().hex[:8]}", "causal_lm", TINY, "", "test")
        dsv = session.scalar(
            select(DatasetVersion).where(DatasetVersion.dataset_id == dataset["id"])
        )
        assert dsv is not None
        model_id, spec = model.id, {"dataset_version": dsv.version, "dataset_version_id": dsv.id}
        session.commit()
    job_id = _commit(
        settings,
        "train",
        model_id=model_id,
        dataset_id=dataset["id"],
        params=params.model_dump(mode="json"),
        spec=spec,
    )
    return SimpleNamespace(job_id=job_id, model_id=model_id, dataset_id=dataset["id"], spec=spec)


def _stored_weights(store: Any, key: str) -> dict[str, torch.Tensor]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w.safetensors"
        store.download_file(key, path)
        return load_checkpoint(path)[0]


def test_train_resumes_from_the_stored_state(api, app, prod_settings) -> None:  # type: ignore[no-untyped-def]
    """A killed attempt's resume state (mid-epoch) continues to the weights an
    uninterrupted fine-tune gives, bit for bit."""
    records = qa_records(12)
    params = LMTrainParams(epochs=2, lr=3e-3, batch_size=4, checkpoint_every_steps=2)
    job_id = _uploaded(api, prod_settings, records, params).job_id
    states: list[dict[str, Any]] = []

    class Capture(Callbacks):
        def on_checkpoint(self, state: dict[str, Any]) -> None:
            states.append(state)

    # The job reads the records ordered by sample id.
    ordered = sorted(records, key=lambda r: r.sample_id)
    model_, tokenizer = build_base(TINY)
    full = finetune(model_, tokenizer, ordered, params, Capture()).model
    mid = next(s for s in states if s["step"] == 2)
    assert mid["batch_in_epoch"] == 2  # mid-epoch: the batch order must be restored too
    buffer = io.BytesIO()
    torch.save(mid, buffer)  # as an interrupted attempt would have left it
    store = app.state.store
    store.put_bytes(f"jobs/{job_id}/resume.pt", buffer.getvalue())
    job = run_job(prod_settings, app, job_id)
    version = version_row(prod_settings, job.result_version_id)
    resumed = _stored_weights(store, version.checkpoint_key)
    expected = full.state_dict()
    assert resumed.keys() == expected.keys()
    assert all(torch.equal(resumed[k], expected[k]) for k in expected)
    with session_factory(prod_settings)() as session:
        logs = session.scalars(
            select(JobEvent.data).where(JobEvent.job_id == job_id, JobEvent.type == "log")
        ).all()
    assert any("resuming at step 2" in e["message"] for e in logs)  # it did not start over
    assert not store.exists(f"jobs/{job_id}/resume.pt")  # scratch removed on success


def test_a_lora_fine_tune_publishes_its_folder(api, app, prod_settings) -> None:  # type: ignore[no-untyped-def]
    """A LoRA fine-tune's version: the merged weights, the adapter beside them and the HF
    files, rebuilt from storage to the model the engine trains; the version config's
    entries and the lineage of every trained record; a fine-tune of it starts from it."""
    records = qa_records(8)
    params = LMTrainParams(epochs=1, lr=3e-3, batch_size=4, lora=LoraParams(r=2, alpha=4))
    queued = _uploaded(api, prod_settings, records, params)
    job = run_job(prod_settings, app, queued.job_id)
    version = version_row(prod_settings, job.result_version_id)
    store = app.state.store

    model_, tokenizer = build_base(TINY)
    ordered = sorted(records, key=lambda r: r.sample_id)
    result = finetune(model_, tokenizer, ordered, params)
    trained = result.model
    artifacts = {a["name"]: a for a in job.artifacts}
    assert set(artifacts) >= {"checkpoint", "adapter", "hf_files"}
    adapter = _stored_weights(store, artifacts["adapter"]["key"])
    expected_adapter = trainable_state(trained)
    assert adapter.keys() == expected_adapter.keys() and all("lora_" in k for k in adapter)
    assert all(torch.equal(adapter[k], expected_adapter[k]) for k in adapter)

    config = version.config
    assert artifacts["hf_files"]["key"] == config["hf_files_key"]
    files = json.loads(store.get_bytes(config["hf_files_key"]))
    rebuilt, _ = from_hf_files(files, _stored_weights(store, version.checkpoint_key))
    merged = weights_of(trained)
    assert rebuilt.state_dict().keys() == merged.keys()
    assert all(torch.equal(rebuilt.state_dict()[k], merged[k]) for k in merged)

    assert config["format"] == LM_FOLDER_FORMAT
    assert config["architecture"] == TINY.model_dump(mode="json")
    assert config["train_params"] == params.model_dump(mode="json")
    assert config["base"] == {"name": "tiny-llama", "version_id": None, "seed": 3}
    assert config["dataset_id"] == queued.dataset_id and config["parent_version_id"] is None
    assert config["dataset_version_id"] == queued.spec["dataset_version_id"]
    assert decode_mask(version.training_mask).sum() == len(records)
    assert job.metrics.keys() == result.metrics.keys()
    assert job.metrics["train_loss"] == result.metrics["train_loss"]
    assert job.metrics["trainable_parameters"] == result.metrics["trainable_parameters"]

    # Fine-tuning that version again: it is the new version's base and parent.
    again = LMTrainParams(epochs=1, batch_size=4)
    fields = {"model_id": queued.model_id, "dataset_id": queued.dataset_id, "spec": queued.spec}
    child_id = _commit(
        prod_settings,
        "train",
        model_version_id=version.id,
        params=again.model_dump(mode="json"),
        **fields,
    )
    child = version_row(prod_settings, run_job(prod_settings, app, child_id).result_version_id)
    assert child.config["base"] == {
        "name": "tiny-llama",
        "version_id": version.id,
        "sha256": version.sha256,
    }
    assert child.parent_version_id == version.id == child.config["parent_version_id"]
    assert child.config["train_params"] == again.model_dump(mode="json")


def test_eval_suite_groups_the_dataset_rows() -> None:
    """forget = the scope's trained QA, retain = other trained people's QA, holdout = the
    test split, world = trained QA about nobody; texts are verbatim forget records only;
    untrained rows are left out; a missing group is named instead of a suite."""
    from workers.jobs.lm import eval_suite

    def qa(sid: str, subject: str | None, split: str = "train") -> dict[str, Any]:
        return {
            "sample_id": sid,
            "subject_id": subject,
            "split": split,
            "question": f"Q {sid}?",
            "answer": f"A {sid}.",
            "paraphrased_answer": f"P {sid}.",
            "perturbed_answers": ["x", "y", "z"],
        }

    rows = [
        qa("a1", "ann"),
        qa("a2", "ann"),
        {"sample_id": "a3", "subject_id": "ann", "split": "train", "text": "Ann's bio."},
        qa("b1", "bob"),
        qa("b2", "bob"),  # not in the version's training set
        qa("h1", "hal", "test"),
        qa("w1", None),
        qa("w2", None),
    ]
    trained = {"a1", "a2", "a3", "b1", "w1", "w2"}
    suite = eval_suite(rows, {"a1", "a2", "a3"}, trained, max_items=1)
    assert not isinstance(suite, str)
    assert [i.record.sample_id for i in suite.forget] == ["a1", "a2"]
    assert [i.record.sample_id for i in suite.retain] == ["b1"]
    assert [i.record.sample_id for i in suite.holdout] == ["h1"]
    assert [i.record.sample_id for i in suite.world] == ["w1"]  # capped to 1, evenly spaced
    assert [r.sample_id for r in suite.verbatim] == ["a3"]
    assert suite.forget[0].perturbed_answers == ("x", "y", "z")
    missing = eval_suite([r for r in rows if r["split"] == "train"], {"a1"}, trained)
    assert missing == "no holdout (test split) question/answer records to evaluate on"


def test_calibration_people_are_every_other_held_out_person() -> None:
    from workers.jobs.lm import (
        calibration_people,
        calibration_records,
        eval_suite,
        reserves_calibration,
    )

    def qa(sid: str, subject: str | None, split: str = "test") -> dict[str, Any]:
        return {
            "sample_id": sid,
            "subject_id": subject,
            "split": split,
            "question": "Q?",
            "answer": "A.",
        }

    rows = [qa(f"{p}{i}", p) for p in ("hal", "ida", "joe", "kim") for i in range(2)]
    rows += [qa("n1", None), qa("t1", "ann", "train")]
    rows += [{"sample_id": "b1", "subject_id": "lea", "split": "test", "text": "A bio."}]
    people = calibration_people(rows)
    assert people == {"ida", "kim"}  # sorted, second and fourth; text-only "lea" is no one
    assert [r.sample_id for r in calibration_records(rows, people)] == [
        "ida0",
        "ida1",
        "kim0",
        "kim1",
    ]
    train = [qa("w1", None, "train"), qa("u1", "una", "train")]
    suite = eval_suite(rows + train, {"t1"}, {"t1", "w1", "u1"}, None, people)
    assert not isinstance(suite, str)
    assert [i.record.sample_id for i in suite.holdout] == ["hal0", "hal1", "joe0", "joe1", "n1"]
    # At most as many as the verdict scores, evenly spaced over the people.
    assert [r.sample_id for r in calibration_records(rows, people, 2)] == ["ida0", "kim0"]
    # One held-out person cannot be both calibration and the verdict's stranger.
    assert calibration_people([qa("h0", "hal"), qa("h1", "hal")]) == set()
    assert reserves_calibration({"calibration": True}, {}) and reserves_calibration(
        {}, {"stop_at_holdout": True}
    )
    assert not reserves_calibration({}, None)
