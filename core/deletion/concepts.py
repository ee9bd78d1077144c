"""What a concept request names, as the class labels of one model.

A concept is a class (a digit, a garment, a person of a face model), several classes at
once, or a name: a label name of the dataset the model learnt from ("Sneaker", "person
07"), or one factor of a dataset whose labels combine factors — a style of the objects ×
styles set ("striped": every object in that style) or an object in every style. Names
are matched without regard to case; an unknown one is a 422 that lists what is known.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts import get_family
from core.datasets.builtin import FASHION_MNIST_LABELS, FASHION_STYLES, label_factors
from core.errors import Unprocessable
from models import Dataset, DatasetVersion, Model, ModelVersion

# Names of the factor values, per factor, for datasets whose labels combine factors.
FACTOR_NAMES = {"object": FASHION_MNIST_LABELS, "style": FASHION_STYLES}


@dataclass(frozen=True)
class Concept:
    labels: list[int]
    name: str | None = None


def model_dataset(session: Session, model: Model) -> Dataset | None:
    """The dataset of the model's newest version that has lineage (None for uploads)."""
    dataset_version_id = session.scalar(
        select(ModelVersion.dataset_version_id)
        .where(ModelVersion.model_id == model.id, ModelVersion.dataset_version_id.is_not(None))
        .order_by(ModelVersion.version.desc())
        .limit(1)
    )
    if dataset_version_id is None:
        return None
    dsv = session.get(DatasetVersion, dataset_version_id)
    return session.get(Dataset, dsv.dataset_id) if dsv is not None else None


def known_names(dataset: Dataset) -> dict[str, list[int]]:
    """Every name a concept may use on this dataset → its labels (lower-cased keys)."""
    names: dict[str, list[int]] = {}
    factors = label_factors(dataset.source, dataset.label_names) or {}
    for factor, per_label in factors.items():
        for index, value in enumerate(FACTOR_NAMES.get(factor, [])):
            labels = [label for label, v in enumerate(per_label) if v == index]
            names.setdefault(value.lower(), labels)
    for label, name in enumerate(dataset.label_names):
        names[name.lower()] = [label]  # a full label name wins over a factor of the same name
    return names


def resolve_concept(
    session: Session,
    model: Model,
    *,
    label: int | None = None,
    labels: list[int] | None = None,
    name: str | None = None,
) -> Concept:
    family = get_family(model.family)
    if not family.takes("labels"):
        # A family without classes (a Stable Diffusion pipeline, a language model): a
        # concept request names classes, and its verdict is measured on them.
        instead = (
            f"erase a concept named by prompts with an unlearn job ({', '.join(family.methods)})"
            if family.prompted
            else f"file the request on its {' or '.join(family.scopes)}"
        )
        raise Unprocessable(
            f"model {model.name!r} is a {family.title}: it has no classes, so a concept "
            f"deletion request (classes, verified on them) cannot apply to it; {instead} "
            "instead",
            field="scope.concept.model_id",
        )
    classes = int(model.architecture.get("num_classes", 0))
    if name is not None:
        dataset = model_dataset(session, model)
        if dataset is None or not dataset.label_names:
            raise Unprocessable(
                f"model {model.name!r} has no training dataset with label names to look "
                f"{name!r} up in; name its classes by number instead (concept.labels)",
                field="scope.concept.name",
            )
        names = known_names(dataset)
        chosen = names.get(name.strip().lower())
        if chosen is None:
            shown = sorted(names)[:30]
            more = f" and {len(names) - len(shown)} more" if len(names) > len(shown) else ""
            raise Unprocessable(
                f"{name!r} is not a concept of model {model.name!r} (dataset "
                f"{dataset.name!r}); known names: {', '.join(shown)}{more}",
                field="scope.concept.name",
            )
        values, given = chosen, name.strip()
    else:
        values, given = ([label] if label is not None else list(labels or [])), None
    unknown = sorted({v for v in values if v >= classes})
    if unknown:
        which = ", ".join(map(str, unknown))
        raise Unprocessable(
            f"model {model.name!r} has {classes} classes (0–{max(classes - 1, 0)}); "
            f"{which} {'is' if len(unknown) == 1 else 'are'} not a concept it knows",
            field="scope.concept.labels" if labels else "scope.concept.label",
        )
    return Concept(labels=sorted(set(values)), name=given)
