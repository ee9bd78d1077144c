"""Causal language models (Hugging Face): fine-tuned on people's text, unlearned per person."""

from __future__ import annotations

from workers.families.base import FamilyRuntime

CAUSAL_LM = FamilyRuntime(
    family="causal_lm",
    handlers={
        "train": "workers.jobs.lm:run_train_lm",
        "unlearn": "workers.jobs.lm:run_unlearn_lm",
        "evaluate": "workers.jobs.lm:run_evaluate_lm",
        "generate": "workers.jobs.lm:run_generate_lm",
    },
)
