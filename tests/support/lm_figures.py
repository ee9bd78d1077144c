"""Evaluation figures of an LM unlearn job, as ``workers.jobs.lm`` stores them: a fine-tune
that memorised its people and the exact re-fine-tune that never saw them. Shared by the
verdict and certificate-rendering tests."""

from __future__ import annotations

from typing import Any

# A fine-tune that memorised its people: their answers are far likelier than held-out
# people's, its greedy answers recite them, every membership attack separates the groups.
ORIGINAL: dict[str, Any] = {
    "forget_prob": 0.62,
    "holdout_prob": 0.21,
    "forget_rouge": 0.91,
    "holdout_rouge": 0.35,
    "mia_loss": 0.99,
    "mia_zlib": 0.97,
    "mia_min_k": 0.98,
    "mia_min_k_pp": 0.96,
    "model_utility": 0.40,
}
# What the exact re-fine-tune shows: the forget people look like the held-out ones.
FORGOTTEN: dict[str, Any] = {
    "forget_prob": 0.23,
    "holdout_prob": 0.21,
    "forget_rouge": 0.38,
    "holdout_rouge": 0.35,
    "mia_loss": 0.58,
    "mia_zlib": 0.55,
    "mia_min_k": 0.61,
    "mia_min_k_pp": 0.44,
    "model_utility": 0.39,
}
