"""Where a version's shadow models for the strong membership test (LiRA) are, torch-free.

The unlearn job trains them once per version (``workers/jobs/shadows.py``) and keeps only
their per-sample confidences, one ``.npz`` in the object store; the version's ``metrics``
record it under ``"shadow_models"`` so the plan can say whether they exist without
reading the store. A version made by unlearning reuses its parent's (recursively): its
training set is the parent's minus what was forgotten, so every later forget set of it
is among the samples the parent's shadows scored, and the recipe is the same.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from models import ModelVersion

RECORD = "shadow_models"


def uses_shadows(family: str, scope_kind: str, exact: bool) -> bool:
    """The strong test runs on approximate results of classifiers forgetting samples or
    subjects: an exact method needs no test, and a forgotten class has no unseen
    samples of its own to compare against (its accuracy says it all)."""
    return family == "classifier" and scope_kind != "labels" and not exact


def shadow_key(version_id: str, k: int) -> str:
    return f"shadows/{version_id}/lira-k{k}.npz"


def find_shadows(session: Session, version: ModelVersion, k: int) -> dict[str, Any] | None:
    """The record of a bank of at least ``k`` shadows on ``version`` or an ancestor it was
    unlearned from (``version_id`` says which), or None."""
    seen: set[str] = set()
    current: ModelVersion | None = version
    while current is not None and current.id not in seen:
        seen.add(current.id)
        record = (current.metrics or {}).get(RECORD)
        if isinstance(record, dict) and int(record.get("k", 0)) >= k and record.get("key"):
            return {**record, "version_id": current.id}
        if current.source != "unlearn" or not current.parent_version_id:
            return None
        current = session.get(ModelVersion, current.parent_version_id)
    return None


def shadow_plan(
    session: Session,
    version: ModelVersion,
    k: int,
    train_seconds: float | None,
    uses_shadows: bool,
) -> dict[str, Any] | None:
    """What the plan shows of the strong test: the one-off cost or the bank it reuses.

    A shadow trains on half the data with the version's recipe, so K of them cost about
    K/2 trainings; once paid, the test costs inference only, for every later request.
    """
    if not k or not uses_shadows:
        return None
    found = find_shadows(session, version, k)
    if found is not None:
        return {
            "k": k,
            "exists": True,
            "from_version_id": found["version_id"],
            "one_off_seconds": 0.0,
            "paid_seconds": found.get("seconds"),
            "requests_served": int(found.get("uses", 0)),
        }
    return {
        "k": k,
        "exists": False,
        "from_version_id": None,
        "one_off_seconds": round(train_seconds * k / 2, 1) if train_seconds else None,
        "paid_seconds": None,
        "requests_served": 0,
    }
