"""The prompt-conditioned families: our own ``text2image`` models (trained here on
captions made from labels) and uploaded ``stable_diffusion`` pipelines (never trained
here, so neither trained nor judged by the worker: they generate and have concepts
erased)."""

from __future__ import annotations

from workers.families.base import FamilyRuntime

TEXT2IMAGE = FamilyRuntime(
    family="text2image",
    handlers={
        "train": "workers.jobs.prompted:run_train_text2image",
        "unlearn": "workers.jobs.prompted:run_unlearn_prompted",
        "evaluate": "workers.jobs.prompted:run_evaluate_text2image",
        "generate": "workers.jobs.prompted:run_generate_prompted",
    },
)

STABLE_DIFFUSION = FamilyRuntime(
    family="stable_diffusion",
    handlers={
        "unlearn": "workers.jobs.prompted:run_unlearn_prompted",
        "generate": "workers.jobs.prompted:run_generate_prompted",
    },
)
