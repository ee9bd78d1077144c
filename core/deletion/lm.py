"""What a deletion request needs to know about a language-model (``causal_lm``) version.

A causal LM version's lineage is its **base** plus **the samples it was fine-tuned on**
(``config.base`` as the fine-tune recorded it, and the version's training mask). The
person's samples entered the model through the fine-tune only, unless the base itself
was trained on them; so:

- the exact path, ``retrain``, re-fine-tunes *that base* without the person, and is exact
  only if the base never saw them. A version whose base version is itself affected by
  the request (trained on the person, or fine-tuned from one that was) is retired
  instead, like a descendant: no re-fine-tune from that base can remove what it holds;
- the plan and the certificate say what the base is and why it never saw the person:
  a tiny llama built from a seed was trained on nothing; the built-in SmolLM2 is the
  published checkpoint, never trained on this deployment's datasets (by its sha256);
  a base version of this deployment is cleared by its own recorded lineage; an uploaded
  base version has none, and the statement says that nobody can tell.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.lineage import in_version
from models import DatasetVersion, Model, ModelVersion, Sample

LM_FAMILY = "causal_lm"


def is_lm(session: Session, version: ModelVersion) -> bool:
    model = session.get(Model, version.model_id)
    return model is not None and model.family == LM_FAMILY


def _base_version_id(version: ModelVersion) -> str | None:
    base = (version.config or {}).get("base") or {}
    return base.get("version_id") if isinstance(base, dict) else None


def inherits_affected_base(
    session: Session, affected: list[str], descendants: list[str]
) -> set[str]:
    """The affected causal_lm versions (not already descendants) whose base version is
    affected too: re-fine-tuning from that base would bring the person back."""
    touched = set(affected) | set(descendants)
    out: set[str] = set()
    for vid in affected:
        if vid in descendants:
            continue
        version = session.get(ModelVersion, vid)
        if version is None or not is_lm(session, version):
            continue
        if _base_version_id(version) in touched:
            out.add(vid)
    return out


def stops_at_holdout(params: Mapping[str, Any] | None) -> bool:
    """Whether method params ask for the ``stop_at_holdout`` rule: such a run needs
    calibration people set aside from the verdict's held-out ones."""
    return bool((params or {}).get("stop_at_holdout"))


def unverifiable_reason(
    session: Session, version: ModelVersion, calibration: bool = False
) -> str | None:
    """Why an approximate result on this causal_lm version could not be verified, or None.

    The verdict compares the forget people with held-out people (the dataset version's
    ``test`` split) and measures utility on facts about nobody (subject-less ``train``
    records); without them the unlearn job has no evaluation and the exact fallback runs
    anyway, so the plan goes there at once instead of paying for a run first. A method
    that stops by calibration people (``calibration``: the policy's ``stop_at_holdout``)
    needs two held-out people at least, one to stop by and one to be judged against."""
    dsv = (
        session.get(DatasetVersion, version.dataset_version_id)
        if version.dataset_version_id
        else None
    )
    if dsv is None:
        return None

    def samples(split: str, *where: Any) -> Any:
        """The dataset version's samples of ``split`` matching ``where``."""
        return select(Sample.subject_id).where(
            Sample.dataset_id == dsv.dataset_id,
            Sample.split == split,
            in_version(dsv.version),
            *where,
        )

    missing = []
    if not (dsv.split_counts or {}).get("test"):
        missing.append("no held-out people (test split) to compare the person with")
    elif calibration:
        held = session.scalars(
            samples("test", Sample.subject_id.is_not(None)).distinct().limit(2)
        ).all()
        if len(held) < 2:
            missing.append(
                "fewer than two held-out people: the method's stop_at_holdout rule needs "
                "one to stop by and another to judge against"
            )
    nobody = session.execute(samples("train", Sample.subject_id.is_(None)).limit(1)).first()
    if nobody is None:
        missing.append("no records about nobody (world facts) to measure utility on")
    if not missing:
        return None
    return (
        "an approximate result could not be verified on this dataset version ("
        + "; ".join(missing)
        + "): planned straight to the exact re-fine-tune from the base"
    )


def base_statement(
    session: Session, base: dict[str, Any], affected: set[str]
) -> tuple[str, bool | None]:
    """(sentence, never_saw) for a fine-tune's base: whether the base can have seen the
    person, as the lineage tells (None: nobody can tell)."""
    name = str(base.get("name") or "unknown")
    version_id = base.get("version_id")
    sha = base.get("sha256")
    if version_id:
        base_version = session.get(ModelVersion, version_id)
        if version_id in affected:
            return (
                f"the base version {version_id} was itself trained on the data (or "
                "fine-tuned from a version that was): this version was retired",
                False,
            )
        if base_version is None or base_version.training_mask is None:
            return (
                f"the base version {version_id} ({name}) has no recorded lineage (uploaded): "
                "nobody can tell whether it saw the data; only the fine-tune's samples are "
                "known",
                None,
            )
        return (
            f"the base version {version_id} ({name}) was never trained on the data: by its "
            "recorded lineage none of its training samples is in this request's scope, so the "
            "data entered only through the fine-tune",
            True,
        )
    if name == "tiny-llama":
        return (
            f"the base (a tiny llama initialised from seed {base.get('seed')}) was never "
            "trained on any data before the fine-tune: the data entered only through it",
            True,
        )
    if name == "smollm2-135m":
        return (
            "the base (the built-in SmolLM2-135M-Instruct as published"
            + (f", sha256 {sha}" if sha else "")
            + ") was never trained on this deployment's datasets: the data entered only "
            "through the fine-tune",
            True,
        )
    return (f"the base ({name}) has no recorded lineage: nobody can tell whether it saw the "
            "data", None)  # fmt: skip


def lineage(session: Session, version: ModelVersion, affected: set[str]) -> dict[str, Any] | None:
    """A causal_lm version's lineage as the plan and the certificate state it: its base,
    whether the base can have seen the data, and the fine-tune's dataset and sample count;
    None for other families."""
    if not is_lm(session, version):
        return None
    base = (version.config or {}).get("base") or {}
    statement, never_saw = base_statement(session, base, affected)
    dsv = (
        session.get(DatasetVersion, version.dataset_version_id)
        if version.dataset_version_id
        else None
    )
    training_set = version.training_set or (version.config or {}).get("training_set") or {}
    trained = training_set.get("count")
    return {
        "base": {k: base.get(k) for k in ("name", "version_id", "sha256") if k in base},
        "base_never_saw_the_data": never_saw,
        "base_statement": statement,
        "fine_tune": {
            "dataset_id": dsv.dataset_id if dsv else None,
            "dataset_version": dsv.version if dsv else None,
            "samples": trained,
        },
    }
