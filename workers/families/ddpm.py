"""Class-conditional pixel-space DDPMs: classes erased, generations judged."""

from __future__ import annotations

from workers.families.base import FamilyRuntime

DDPM = FamilyRuntime(
    family="ddpm",
    handlers={
        "train": "workers.jobs.diffusion:run_train_ddpm",
        "unlearn": "workers.jobs.diffusion:run_unlearn_ddpm",
        "evaluate": "workers.jobs.diffusion:run_evaluate_ddpm",
        "generate": "workers.jobs.generate:run_generate",
    },
)
