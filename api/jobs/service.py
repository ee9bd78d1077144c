"""Job submission and control. Services never commit; the router commits, then dispatches."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.datasets import repository as datasets
from api.jobs import repository
from api.jobs.schemas import (
    EvaluateJobCreate,
    GenerateJobCreate,
    JudgeParams,
    TrainJobCreate,
    UnlearnJobCreate,
)
from api.methods.service import method_info, validate_params
from api.schemas import validate_strictly
from contracts import FamilyDeclaration, families, get_family
from contracts.ddpm import DiffusionTrainParams, GenerateParams
from contracts.family import ParamsKind
from contracts.text2image import PromptGenerateParams
from core.errors import Conflict, NotFound, Unprocessable
from core.jobs import new_job, queue_for, state_event
from core.jobspecs import new_unlearn_job, unlearn_spec
from core.lineage import resolve_forget, scope_hash, scope_kind
from models import Dataset, DatasetVersion, Job, Model, ModelVersion
from models.base import utcnow
from models.jobs import TERMINAL_STATES

GAP_KEYS = ("UA", "RA", "TA", "MIA")


def get_or_404(session: Session, job_id: str) -> Job:
    job = repository.get(session, job_id)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return job


def _dataset_version(
    session: Session, dataset_id: str, number: int | None, field: str
) -> tuple[Dataset, DatasetVersion]:
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise NotFound(f"dataset {dataset_id} not found")
    number = number or dataset.current_version
    version = datasets.version(session, dataset_id, number)
    if version is None:
        raise Unprocessable(f"dataset {dataset_id} has no version {number}", field=field)
    return dataset, version


def family_params(
    family: FamilyDeclaration, kind: ParamsKind, given: dict[str, Any]
) -> BaseModel | None:
    """``params`` of a ``kind`` job read with the schema ``family`` declares for it, as
    strictly as a request body; None (and no params allowed) when it declares none.

    A mistake is a 422 in the shape of any other body error (``params.<field>`` in
    ``message``, each issue in ``detail``), its text naming the schema it was read with.
    """
    schema = family.params_schema(kind)
    if schema is None:
        if given:
            raise Unprocessable(
                f"a {family.name} model's {kind} job takes no params (it declares no "
                f"{kind} params schema); drop params",
                field="params",
            )
        return None
    try:
        return validate_strictly(schema, given)
    except ValidationError as exc:
        note = f" (a {family.name} model's {kind} params are {schema.__name__})"
        raise RequestValidationError(
            [
                {
                    "type": error["type"],
                    "loc": ("body", "params", *error["loc"]),
                    "msg": error["msg"] + note,
                    "input": error.get("input"),
                }
                for error in exc.errors(include_url=False)
            ]
        ) from exc


def _device(params: BaseModel | None, default: str = "cpu") -> str:
    """The torch device a job's params ask for (the queue it goes to)."""
    device = getattr(params, "device", None)
    return device if isinstance(device, str) else default


def check_modality(family: FamilyDeclaration, dataset: Dataset, field: str) -> None:
    """A family reads one kind of data (its declaration's ``data``): an image classifier
    is not trained or measured on text, a language model not on images."""
    if family.data != "none" and dataset.modality != family.data:
        raise Unprocessable(
            f"dataset {dataset.name!r} holds {dataset.modality}, but {family.name} models "
            f"read {family.data}; choose a dataset of {family.data}",
            field=field,
        )


def create_train_job(session: Session, body: TrainJobCreate, created_by: str) -> Job:
    model = session.get(Model, body.model_id)
    if model is None:
        raise NotFound(f"model {body.model_id} not found")
    family = get_family(model.family)
    if not family.runs("train"):
        if family.uploadable:
            raise Unprocessable(
                f"{family.name} models are not trained here: upload "
                f"{' or '.join(family.uploadable.values())} as a version "
                "(POST /models/{id}/versions)",
                field="model_id",
            )
        raise Unprocessable(
            f"training {model.family!r} models is not supported yet", field="model_id"
        )
    dataset, version = _dataset_version(
        session, body.dataset_id, body.dataset_version, "dataset_version"
    )
    check_modality(family, dataset, "dataset_id")
    arch = _architecture(model)
    params = family_params(family, "train", body.params)
    assert params is not None  # a family that trains declares its train params
    num_classes = getattr(arch, "num_classes", None)
    if num_classes is not None and len(dataset.label_names) > num_classes:
        raise Unprocessable(
            f"dataset {dataset.name!r} has {len(dataset.label_names)} classes but the model's "
            f"architecture has num_classes={num_classes}; register a model with at least "
            f"{len(dataset.label_names)} classes",
            field="dataset_id",
        )
    if not version.split_counts.get("train"):
        raise Unprocessable(f"dataset {dataset.name!r} has no training samples", field="dataset_id")
    if body.sisa is not None and "sisa" not in family.methods:
        raise Unprocessable(
            f"SISA ensembles are for families that unlearn with 'sisa' "
            f"({', '.join(f.name for f in families() if 'sisa' in f.methods)}); "
            f"a {family.name} model is not one",
            field="sisa",
        )
    if (
        isinstance(params, DiffusionTrainParams)
        and params.batch_size > version.split_counts["train"]
    ):
        raise Unprocessable(
            f"params.batch_size {params.batch_size} is larger than the "
            f"{version.split_counts['train']} training images; lower it",
            field="params.batch_size",
        )
    if getattr(arch, "base", None) == "uploaded" and body.parent_version_id is None:
        raise Unprocessable(
            f"model {model.name!r} is an uploaded {model.family} model: it is fine-tuned "
            "from one of its uploaded versions; give parent_version_id",
            field="parent_version_id",
        )
    if body.sisa is not None and body.parent_version_id is not None:
        raise Unprocessable(
            "a SISA ensemble is trained from scratch; drop parent_version_id", field="sisa"
        )
    if body.parent_version_id is not None:
        parent = session.get(ModelVersion, body.parent_version_id)
        if parent is None or parent.model_id != model.id:
            raise Unprocessable(
                f"parent version {body.parent_version_id} is not a version of model {model.id}",
                field="parent_version_id",
            )
        if parent.status != "active":
            raise Conflict(
                f"parent version {parent.id} is {parent.status}; only active ones can be fine-tuned"
            )
    return new_job(
        session,
        "train",
        created_by,
        queue=queue_for(_device(params)),
        model_id=model.id,
        dataset_id=dataset.id,
        model_version_id=body.parent_version_id,
        params=params.model_dump(mode="json"),
        spec={
            "dataset_version": version.version,
            "dataset_version_id": version.id,
            "sisa": body.sisa.model_dump() if body.sisa else None,
        },
    )


def _architecture(model: Model) -> Any:
    """The model's architecture, read with its family's declared schema."""
    return get_family(model.family).architecture_schema.model_validate(model.architecture)


def _model_of(session: Session, mv: ModelVersion) -> Model:
    model = session.get(Model, mv.model_id)
    assert model is not None
    return model


def _check_classes(labels: list[int], arch: Any, field: str) -> None:
    bad = sorted({c for c in labels if not 0 <= c < arch.num_classes})
    if bad:
        raise Unprocessable(
            f"unknown class label(s) {bad[:10]}: the model has classes 0..{arch.num_classes - 1}",
            field=field,
        )


def _judged_names() -> str:
    return " and ".join(f.name for f in families() if f.judged)


def _judge_spec(name: str, judge: JudgeParams | None) -> dict[str, Any] | None:
    """The judge settings of a judged family's job (defaults when none are given);
    judge settings for any other family are refused, saying why."""
    family = get_family(name)
    if family.judged:
        return (judge or JudgeParams()).model_dump(mode="json")
    if judge is None:
        return None
    if family.runs("evaluate"):
        raise Unprocessable(
            f"judge settings are for {_judged_names()} models; a {name} is measured on "
            "real data",
            field="judge",
        )
    raise Unprocessable(f"there is no judge for {name} models yet; drop judge", field="judge")


def _training_lineage(mv: ModelVersion) -> str:
    if mv.training_mask is None or mv.dataset_version_id is None:
        raise Unprocessable(
            f"model version {mv.id} was uploaded, so Expunge does not know what it was trained "
            "on; unlearning needs that lineage. Train the model with an Expunge job instead.",
            field="model_version_id",
        )
    return mv.dataset_version_id  # type: ignore[return-value]


def create_unlearn_job(session: Session, body: UnlearnJobCreate, created_by: str) -> list[Job]:
    """The unlearning job, preceded by its retrain reference when one is asked for and
    none exists yet for the same version and scope (references are reused)."""
    mv = session.get(ModelVersion, body.model_version_id)
    if mv is None:
        raise NotFound(f"model version {body.model_version_id} not found")
    if mv.status != "active":
        raise Conflict(
            f"model version {mv.id} is {mv.status}; only active versions can be unlearned"
        )
    model = _model_of(session, mv)
    family = model.family
    declaration = get_family(family)
    if declaration.prompted and body.method != "retrain":
        return [_concept_unlearn_job(session, mv, model, body, created_by)]
    if declaration.prompted and body.forget.concept is not None:
        raise Unprocessable(
            "retrain forgets class labels, samples or subjects (it trains again on what "
            "remains); erase a concept named by prompts with esd, uce or concept_ablation",
            field="forget.concept",
        )
    if body.forget.concept is not None:
        raise Unprocessable(
            f"a concept scope (prompts) is for {_prompted_names()} models; "
            f"this {family} model takes class labels, not prompts",
            field="forget.concept",
        )
    info = method_info(body.method, family)
    scope = body.forget.as_dict()
    kind = scope_kind(scope)
    if not declaration.takes(kind):
        raise Unprocessable(
            f"a {family} model cannot forget {kind}; it takes "
            f"{', '.join(declaration.scopes)}",
            field="forget",
        )
    if kind not in info["scopes"]:
        raise Unprocessable(
            f"method {body.method!r} cannot forget {kind}; it supports "
            f"{', '.join(info['scopes'])}. Pick another method (see GET /api/v1/methods).",
            field="forget",
        )
    params = validate_params(body.method, body.params, family)
    judge = _judge_spec(family, body.judge)
    if declaration.judged and body.forget.labels:
        arch = _architecture(model)
        _check_classes(body.forget.labels, arch, "forget.labels")
        if len(set(body.forget.labels)) >= arch.num_classes:
            raise Unprocessable("cannot erase every class of the model", field="forget.labels")
    is_sisa = bool(mv.config.get("sisa"))
    if body.method == "sisa" and not is_sisa:
        raise Unprocessable(
            f"model version {mv.id} was not trained with SISA, so 'sisa' cannot unlearn it; "
            "use 'retrain' for exact unlearning, or train with {'sisa': {...}} first",
            field="method",
        )
    if is_sisa and body.method != "sisa":
        raise Unprocessable(
            f"model version {mv.id} is a SISA ensemble; use method 'sisa' (exact and cheap)",
            field="method",
        )
    _training_lineage(mv)
    dsv = session.get(DatasetVersion, mv.dataset_version_id)
    assert dsv is not None and mv.training_mask is not None
    trained_on = session.get(Dataset, dsv.dataset_id)
    assert trained_on is not None
    check_modality(declaration, trained_on, "model_version_id")
    resolution = resolve_forget(session, dsv.dataset_id, dsv.version, mv.training_mask, scope)
    if len(resolution.forget_positions) == 0:
        raise Unprocessable(
            f"the forget scope matches no sample that model version {mv.id} was trained on; "
            "check the ids (nothing to unlearn)",
            field="forget",
        )
    if resolution.retain_count == 0:
        raise Unprocessable(
            "the forget set is the whole training set: nothing would remain to learn from; "
            "retire the model version instead of unlearning it",
            field="forget",
        )
    spec = unlearn_spec(
        forget=scope,
        forget_kind=kind,
        forget_hash=scope_hash(scope),
        forget_count=len(resolution.forget_positions),
        dataset_version=dsv,
        evaluate=body.evaluate,
        exact=info["exact"],
        family=family,
        judge=judge,
    )
    jobs: list[Job] = []
    if body.reference == "retrain" and body.method != "retrain":
        reference = _reusable_reference(session, mv.id, spec["forget_hash"])
        if reference is None:
            reference = _unlearn_job(
                session, mv, "retrain", {}, {**spec, "exact": True}, created_by
            )
            jobs.append(reference)
        spec["reference_job_id"] = reference.id
    jobs.append(_unlearn_job(session, mv, body.method, params, spec, created_by))
    return jobs


def _concept_unlearn_job(
    session: Session, mv: ModelVersion, model: Model, body: UnlearnJobCreate, created_by: str
) -> Job:
    """Erase a concept from a prompt-conditioned version. No sample leaves the training
    set, so the lineage stays the parent's; an uploaded pipeline needs none."""
    concept = body.forget.concept
    if concept is None:
        raise Unprocessable(
            f"a {model.family} model forgets a concept named by prompts: give "
            'forget.concept = {"prompts": [...], "anchor": "..."}; it takes prompts, not '
            "class labels, samples or subjects",
            field="forget",
        )
    info = method_info(body.method, model.family)
    params = validate_params(body.method, body.params, model.family)
    judge = _judge_spec(model.family, body.judge)
    if body.reference is not None:
        raise Unprocessable(
            "a retrained reference is not available for concept erasure", field="reference"
        )
    if concept.anchor in concept.prompts:
        raise Unprocessable("the anchor is one of the erased prompts", field="forget.concept")
    scope = {"concept": concept.model_dump(mode="json")}
    canon = json.dumps(scope, sort_keys=True, separators=(",", ":"))
    dsv = session.get(DatasetVersion, mv.dataset_version_id) if mv.dataset_version_id else None
    spec = unlearn_spec(
        forget=scope,
        forget_kind="concept",
        forget_hash=hashlib.sha256(canon.encode()).hexdigest(),
        forget_count=0,
        dataset_version=dsv,
        evaluate=body.evaluate,
        exact=info["exact"],
        family=model.family,
        judge=judge,
    )
    return _unlearn_job(session, mv, body.method, params, spec, created_by)


def _unlearn_job(
    session: Session,
    mv: ModelVersion,
    method: str,
    params: dict[str, Any],
    spec: dict[str, Any],
    created_by: str,
) -> Job:
    return new_unlearn_job(session, mv, method, params, spec, created_by)


def _reusable_reference(session: Session, version_id: str, forget_hash: str) -> Job | None:
    candidates = session.scalars(
        select(Job).where(
            Job.model_version_id == version_id,
            Job.kind == "unlearn",
            Job.method == "retrain",
            Job.state.in_(("queued", "running", "succeeded", "lost")),
        )
    ).all()
    return next((j for j in candidates if j.spec.get("forget_hash") == forget_hash), None)


def comparison(session: Session, job: Job) -> dict[str, Any] | None:
    """Avg. Gap (mean |Δ| over UA, RA, TA, MIA) and cost against the retrained reference."""
    ref_id = job.spec.get("reference_job_id")
    if job.state != "succeeded" or not ref_id:
        return None
    ref = session.get(Job, ref_id)
    if ref is None or ref.state != "succeeded":
        return {"reference_job_id": ref_id, "reference_state": ref.state if ref else "missing"}
    mine, theirs = job.metrics.get("evaluation") or {}, ref.metrics.get("evaluation") or {}
    keys = [k for k in GAP_KEYS if k in mine and k in theirs]
    out: dict[str, Any] = {
        "reference_job_id": ref.id,
        "reference_version_id": ref.result_version_id,
    }
    if len(keys) == len(GAP_KEYS):
        out["avg_gap"] = sum(abs(mine[k] - theirs[k]) for k in keys) / len(keys)
        out["deltas"] = {k: mine[k] - theirs[k] for k in keys}
    seconds, ref_seconds = job.metrics.get("unlearn_seconds"), ref.metrics.get("unlearn_seconds")
    if seconds and ref_seconds:
        out["cost_ratio"] = seconds / ref_seconds
        out["speedup"] = ref_seconds / seconds
    return out


def _prompted_names() -> str:
    return " and ".join(f.name for f in families() if f.prompted)


def _check_judged_scope(model: Model, family: FamilyDeclaration, body: EvaluateJobCreate) -> None:
    """A judged version is judged on classes: forget.labels, or (a prompted family)
    forget.concept whose prompts the worker maps to the classes they are captions of."""
    forget = body.forget
    if forget is None or not (forget.labels or (family.prompted and forget.concept is not None)):
        raise Unprocessable(
            f"a {family.name} version is evaluated by judging generated images of every "
            "class; give forget.labels (the classes scored as erased: forget rate)"
            + (" or forget.concept.prompts" if family.prompted else ""),
            field="forget",
        )
    if forget.labels:
        arch = _architecture(model)
        _check_classes(forget.labels, arch, "forget.labels")
        if len(set(forget.labels)) >= arch.num_classes:
            raise Unprocessable("forget.labels cannot name every class", field="forget.labels")


def create_evaluate_job(session: Session, body: EvaluateJobCreate, created_by: str) -> Job:
    mv = session.get(ModelVersion, body.model_version_id)
    if mv is None:
        raise NotFound(f"model version {body.model_version_id} not found")
    if mv.status == "purged":
        raise Conflict(f"model version {mv.id} is purged; its checkpoint no longer exists")
    model = _model_of(session, mv)
    family = get_family(model.family)
    if not family.runs("evaluate"):
        instead = "; generate images and compare them instead" if family.runs("generate") else ""
        raise Unprocessable(
            f"evaluate jobs for {family.name} models are not built yet (there is no judge "
            f"for them){instead}",
            field="model_version_id",
        )
    params = family_params(family, "evaluate", body.params)
    if body.forget is not None and body.forget.concept is not None and not family.prompted:
        raise Unprocessable(
            f"this {model.family} model takes class labels, not prompts (concept scope)",
            field="forget.concept",
        )
    if family.judged:
        _check_judged_scope(model, family, body)
    judge = _judge_spec(model.family, body.judge)
    dataset_id = body.dataset_id
    if dataset_id is None:
        if mv.dataset_version_id is None:
            raise Unprocessable(
                "this version was uploaded, so it has no training dataset: give dataset_id",
                field="dataset_id",
            )
        dsv = session.get(DatasetVersion, mv.dataset_version_id)
        assert dsv is not None
        dataset_id = dsv.dataset_id
    dataset, version = _dataset_version(
        session, dataset_id, body.dataset_version, "dataset_version"
    )
    check_modality(family, dataset, "dataset_id" if body.dataset_id else "model_version_id")
    for split in body.splits if not family.judged else []:
        if not version.split_counts.get(split):
            raise Unprocessable(
                f"dataset {dataset.name!r} has no {split!r} samples", field="splits"
            )
    return new_job(
        session,
        "evaluate",
        created_by,
        queue=queue_for(_device(params, default=(judge or {}).get("device", "cpu"))),
        model_id=mv.model_id,
        dataset_id=dataset.id,
        model_version_id=mv.id,
        params=params.model_dump(mode="json") if params is not None else {},
        spec={
            "dataset_version": version.version,
            "dataset_version_id": version.id,
            "splits": body.splits,
            "forget": body.forget.as_dict() if body.forget else None,
            "reference_version_id": body.reference_version_id,
            "family": model.family,
            **({"judge": judge} if judge is not None else {}),
        },
    )


def create_generate_job(session: Session, body: GenerateJobCreate, created_by: str) -> Job:
    """Images (diffusion) or completions (causal_lm) from a version, with the generate
    params its family declares; refused up front for families that do not generate,
    unknown classes, and labels given to a prompt family or prompts to a labelled one."""
    mv = session.get(ModelVersion, body.model_version_id)
    if mv is None:
        raise NotFound(f"model version {body.model_version_id} not found")
    model = _model_of(session, mv)
    family = get_family(model.family)
    if not family.runs("generate"):
        first, *others = [f.name for f in families() if f.runs("generate")]
        raise Unprocessable(
            f"model version {mv.id} belongs to {model.family} model {model.name!r}; "
            f"generation needs a {first} model or another family that generates "
            f"({', '.join(others)})",
            field="model_version_id",
        )
    if mv.status in ("tainted", "purged"):
        raise Conflict(
            f"model version {mv.id} is {mv.status}: it cannot generate (it depends on data "
            "under a deletion request, or was purged)"
        )
    _check_conditioning(family, body.params)
    params = family_params(family, "generate", body.params)
    arch = _architecture(model)
    if isinstance(params, GenerateParams):
        _check_classes(params.labels, arch, "params.labels")
    if isinstance(params, GenerateParams | PromptGenerateParams):
        _check_diffusion_generate(model, arch, params)
    return new_job(
        session,
        "generate",
        created_by,
        queue=queue_for(_device(params)),
        model_id=mv.model_id,
        model_version_id=mv.id,
        params=params.model_dump(mode="json") if params is not None else {},
        spec={"grid_columns": body.grid_columns, "family": model.family},
    )


def _check_conditioning(family: FamilyDeclaration, given: dict[str, Any]) -> None:
    """Class labels given to a family generating from prompts, or prompts to one
    generating classes: said as such, not as a list of unknown fields."""
    schema = family.params_schema("generate")
    fields = set(schema.model_fields) if schema is not None else set()
    if "prompts" in given and "prompts" not in fields:
        raise Unprocessable(
            f"this family ({family.name}) takes class labels, not prompts: give params.labels",
            field="params.prompts",
        )
    if "labels" in given and "labels" not in fields and "prompts" in fields:
        raise Unprocessable(
            f"this family ({family.name}) takes prompts, not class labels: give "
            "params.prompts",
            field="params",
        )


def _check_diffusion_generate(
    model: Model, arch: Any, params: GenerateParams | PromptGenerateParams
) -> None:
    """An architecture that fixes the schedule and image size (ddpm, text2image) bounds
    the steps and refuses another size; an uploaded pipeline's folder decides both."""
    if not hasattr(arch, "num_train_timesteps"):
        return
    if params.num_inference_steps > arch.num_train_timesteps:
        raise Unprocessable(
            f"num_inference_steps {params.num_inference_steps} exceeds the model's "
            f"{arch.num_train_timesteps} training timesteps",
            field="params.num_inference_steps",
        )
    if isinstance(params, PromptGenerateParams) and params.height is not None:
        raise Unprocessable(
            f"a {model.family} model generates {arch.sample_size}x{arch.sample_size} images; "
            "drop height",
            field="params.height",
        )


MEDIA_TYPES = {
    ".png": "image/png",
    ".json": "application/json",
    ".txt": "text/plain",
    ".npz": "application/octet-stream",
    ".safetensors": "application/octet-stream",
}


def media_type(filename: str) -> str:
    suffix = "." + filename.rsplit(".", 1)[-1] if "." in filename else ""
    return MEDIA_TYPES.get(suffix, "application/octet-stream")


def find_artifact(session: Session, job: Job, name: str) -> dict[str, Any]:
    """The artifact the job lists under ``name``; weights of a tainted or purged result
    version stay unreachable here as through the checkpoint endpoint."""
    artifact = next((a for a in job.artifacts or [] if a.get("name") == name), None)
    if artifact is None or not artifact.get("key"):
        known = ", ".join(a["name"] for a in job.artifacts or [] if a.get("name")) or "none"
        raise NotFound(f"job {job.id} has no artifact {name!r} (it has: {known[:500]})")
    if job.result_version_id and artifact["key"].endswith(".safetensors"):
        version = session.get(ModelVersion, job.result_version_id)
        if version is not None and version.status in ("tainted", "purged"):
            raise Conflict(
                f"model version {version.id} is {version.status}: its weights cannot be "
                "downloaded (it depends on data under a deletion request, or was purged)"
            )
    return artifact


def cancel(session: Session, job: Job, actor: str = "system") -> Job:
    """Queued jobs stop at once; running ones are asked to stop at their next step."""
    if job.state in TERMINAL_STATES:
        raise Conflict(f"job {job.id} is already {job.state}")
    if repository.transition(
        session,
        job.id,
        ("queued", "lost"),
        state="cancelled",
        finished_at=utcnow(),
        cancel_requested=True,
    ):
        state_event(
            session, job.id, "cancelled", actor=actor, reason="cancelled before it started"
        )
    elif repository.transition(
        session, job.id, ("running",), state="cancelling", cancel_requested=True
    ):
        state_event(session, job.id, "cancelling", actor=actor)
    session.flush()
    session.refresh(job)
    return job
