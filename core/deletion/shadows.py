"""Where a version's shadow models for the strong membership test (LiRA) are, torch-free.

The unlearn job trains them once per version (``workers/jobs/shadows.py``) and keeps only
their per-sample confidences, one ``.npz`` in the object store; the version's ``metrics``
record it under ``"shadow_models"`` so the plan can say whether they exist without
reading the store. When a request deletes samples, their columns leave every bank
(``forget_in_banks``, called by the purge): what was derived from them goes with them.

A version made by unlearning reuses its parent's (recursively): its
training set is the parent's minus what was forgotten, so every later forget set of it
is among the samples the parent's shadows scored, and the recipe is the same.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts import get_family
from core.storage import ObjectStore
from models import ModelVersion

RECORD = "shadow_models"


def uses_shadows(family: str, scope_kind: str, exact: bool) -> bool:
    """The strong test runs on approximate results forgetting samples or subjects, for
    families whose unlearn job trains the shadows (``membership_shadows`` in their
    declaration: classifiers): an exact method needs no test, and a forgotten class has
    no unseen samples of its own to compare against (its accuracy says it all)."""
    return get_family(family).membership_shadows and scope_kind != "labels" and not exact


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
            "runs_served": int(found.get("uses", 0)),
        }
    return {
        "k": k,
        "exists": False,
        "from_version_id": None,
        "one_off_seconds": round(train_seconds * k / 2, 1) if train_seconds else None,
        "paid_seconds": None,
        "runs_served": 0,
    }


def forget_in_banks(session: Session, store: ObjectStore, sample_ids: set[str]) -> list[str]:
    """Rewrite every bank that scored any of ``sample_ids`` without them (train and test
    columns), under a new key recorded on its version; returns the old keys, for the
    caller to delete once its transaction commits (every version of them, on S3)."""
    if not sample_ids:
        return []
    doomed = np.array(sorted(sample_ids), dtype=str)
    old_keys = []
    rows = session.execute(select(ModelVersion.id, ModelVersion.metrics)).all()
    for version_id, metrics in rows:
        record = (metrics or {}).get(RECORD)
        if not isinstance(record, dict) or not record.get("key") or not store.exists(record["key"]):
            continue
        with np.load(io.BytesIO(store.get_bytes(record["key"])), allow_pickle=False) as z:
            data = {name: z[name] for name in z.files}
        keep = ~np.isin(data["sample_ids"], doomed)
        keep_test = ~np.isin(data["test_ids"], doomed)
        if keep.all() and keep_test.all():
            continue
        for name, mask in (("sample_ids", keep), ("test_ids", keep_test)):
            data[name] = data[name][mask]
        for name, mask in (
            ("confidences", keep),
            ("members", keep),
            ("test_confidences", keep_test),
        ):
            data[name] = data[name][:, mask]
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **data)
        blob = buffer.getvalue()
        new_key = (
            f"shadows/{version_id}/lira-k{record['k']}-{hashlib.sha256(blob).hexdigest()[:16]}.npz"
        )
        store.put_bytes(new_key, blob)
        removed = int((~keep).sum() + (~keep_test).sum())
        version = session.get(ModelVersion, version_id)
        assert version is not None
        version.metrics = {
            **(version.metrics or {}),
            RECORD: {
                **record,
                "key": new_key,
                "samples": int(keep.sum()),
                "test_samples": int(keep_test.sum()),
                "forgotten": int(record.get("forgotten", 0)) + removed,
            },
        }
        old_keys.append(record["key"])
    return old_keys
