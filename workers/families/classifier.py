"""Image classifiers (the built-in networks, torchvision and timm architectures)."""

from __future__ import annotations

from workers.families.base import FamilyRuntime

CLASSIFIER = FamilyRuntime(
    family="classifier",
    handlers={
        "train": "workers.jobs.train:run_train",
        "unlearn": "workers.jobs.unlearn:run_unlearn",
        "evaluate": "workers.jobs.evaluate:run_evaluate",
        "tune": "workers.jobs.tune:run_tune",
    },
)
