"""NeurIPS 2023 Machine Unlearning Challenge score for several methods on a small model.

    python -m bench.forget_score                 # N = 32 models per side (~5 min on CPU)
    python -m bench.forget_score --models 64     # closer to the challenge (N = 512 there)

One original MLP is trained on scikit-learn's digits. The forget set is a fixed 10 %
random subset of the training set. N models are retrained from scratch on the retain
set (seeds 1..N); each method is run N times from the one original (method seeds
0..N-1). For every forget example, ``workers.engine.metrics.forget_score`` compares the
N unlearned and N retrained logit-scaled confidences with the challenge's single- and
double-threshold attacks, buckets the per-example ε, and scales the forget quality by
the RA and TA ratios (unlearned / retrained, means over models).

A ``retrain (another N)`` row scores N *further* retrained models against the reference
ones: the best score this N can give, since two sets of exact retrains still differ by
sampling noise. A method whose N runs barely differ (SSD: its only randomness is the
``full_set_samples`` draw) gives a near point mass, which the threshold attacks separate
easily from the retrained spread: the score rewards matching the retrained *distribution*.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

from bench.report import BENCHMARKS_MD, machine_line, markdown_table, write_section
from contracts.classifier import ArchitectureConfig, TrainParams
from core.datasets.builtin import load_builtin
from workers.engine.data import ImageArrays
from workers.engine.forgetting import NetworkPredictor
from workers.engine.metrics import accuracy, forget_score, logit_scaled_confidence
from workers.engine.training import train_classifier
from workers.engine.unlearning import UnlearnData, get_method

SECTION = "forget-score"

ARCH = ArchitectureConfig(name="mlp", num_classes=10, input_size=(8, 8), width=64)
RECIPE = TrainParams(
    epochs=10, batch_size=32, lr=0.1, optimizer="sgd", lr_schedule="cosine", seed=0
)

# The one place where this benchmark's method configs are chosen: a few short runs by
# hand on this MLP and forget set. They are tuned *for this benchmark* (tiny network,
# 10-epoch recipe), not the service defaults that GET /api/v1/methods lists.
FS_TUNED: dict[str, dict[str, Any]] = {
    "finetune": {"epochs": 2, "lr": 0.05, "batch_size": 32},
    "gradient_ascent": {"epochs": 2, "lr": 0.05, "batch_size": 32},
    "neggrad_plus": {"epochs": 2, "lr": 0.05, "retain_weight": 0.95, "batch_size": 32},
    "random_label": {"epochs": 3, "lr": 2e-3, "retain_weight": 3, "batch_size": 32},
    "salun": {"epochs": 3, "lr": 2e-3, "retain_weight": 3, "batch_size": 32},
    "l1_sparse": {"epochs": 2, "lr": 0.05, "alpha": 5e-4, "batch_size": 32},
    "scrub": {"epochs": 2, "max_epochs": 1, "lr": 0.05, "batch_size": 32},
    "bad_teacher": {"epochs": 2, "lr": 3e-4, "batch_size": 32},
    "opc": {"epochs": 3, "lr": 0.01, "contraction_weight": 0.01, "batch_size": 32},
    "ssd": {"selection_weighting": 20, "full_set_samples": 1000},
}
DEFAULT_METHODS = tuple(FS_TUNED)


@dataclass
class SideStats:
    """N models' logit-scaled confidences on the forget set, and their RA / TA."""

    confidences: np.ndarray  # N x M
    ra: list[float]
    ta: list[float]
    seconds: list[float]


def load_digits() -> tuple[ImageArrays, ImageArrays]:
    imported = load_builtin("digits")
    labels = np.array([r.label for r in imported.records], dtype=np.int64)
    split = np.array([r.split for r in imported.records])
    ids = [r.sample_id for r in imported.records]

    def part(name: str) -> ImageArrays:
        idx = np.flatnonzero(split == name)
        return ImageArrays(imported.images[idx], labels[idx], [ids[i] for i in idx])

    return part("train"), part("test")


def collect(state_dicts: Sequence[dict], forget, retain, test) -> tuple[np.ndarray, list, list]:
    confidences, ra, ta = [], [], []
    for sd in state_dicts:
        model = NetworkPredictor(ARCH, sd)
        confidences.append(logit_scaled_confidence(model.logits(forget), forget.labels))
        ra.append(accuracy(model.logits(retain), retain.labels))
        ta.append(accuracy(model.logits(test), test.labels))
    return np.stack(confidences), ra, ta


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=32, help="N models per side (>= 3)")
    parser.add_argument(
        "--methods", default=",".join(DEFAULT_METHODS), help="comma list of methods to score"
    )
    parser.add_argument("--forget-fraction", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--markdown", type=Path, default=BENCHMARKS_MD)
    parser.add_argument("--no-write", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.models < 3:
        raise SystemExit("--models must be at least 3 (the score needs ceil(ln(N-1)) > 0)")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", flush=True)

    methods = [m for m in args.methods.split(",") if m]
    for name in methods:
        get_method(name)  # fail fast on a typo
    n = args.models
    train, test = load_digits()
    rng = np.random.default_rng(0)
    forget_mask = np.zeros(len(train), dtype=bool)
    forget_mask[rng.choice(len(train), int(round(args.forget_fraction * len(train))), False)] = True
    forget, retain = train.subset(forget_mask), train.subset(~forget_mask)
    data = UnlearnData(forget, retain, test, scope="sample_ids")
    log(f"digits: {len(train)} train ({len(forget)} forget), {len(test)} test; N = {n}")

    original = train_classifier(ARCH, RECIPE, train).state_dict
    retrained, retrain_seconds = [], []
    for i in range(2 * n):
        t0 = time.perf_counter()
        recipe = RECIPE.model_copy(update={"seed": 1 + i})
        retrained.append(train_classifier(ARCH, recipe, retain).state_dict)
        retrain_seconds.append(time.perf_counter() - t0)
    log(f"trained the original and {2 * n} retrained models")
    ref_conf, ref_ra, ref_ta = collect(retrained[:n], forget, retain, test)
    reference = SideStats(ref_conf, ref_ra, ref_ta, retrain_seconds[:n])

    sides: dict[str, SideStats] = {}
    conf, ra, ta = collect(retrained[n:], forget, retain, test)
    sides["retrain (another N)"] = SideStats(conf, ra, ta, retrain_seconds[n:])
    for name in methods:
        method = get_method(name)
        states, seconds = [], []
        for seed in range(n):
            params = {**FS_TUNED.get(name, {}), "seed": seed, "device": "cpu"}
            t0 = time.perf_counter()
            states.append(method.run(ARCH, original, data, params, train_params=RECIPE).state_dict)
            seconds.append(time.perf_counter() - t0)
        conf, ra, ta = collect(states, forget, retain, test)
        sides[name] = SideStats(conf, ra, ta, seconds)
        log(f"{name}: {n} runs, mean {np.mean(seconds):.3f}s each")

    results = {}
    for name, side in sides.items():
        ra_ratio = float(np.mean(side.ra) / np.mean(reference.ra))
        ta_ratio = float(np.mean(side.ta) / np.mean(reference.ta))
        score = forget_score(side.confidences, reference.confidences, ra_ratio, ta_ratio)
        results[name] = {
            "score": score.score,
            "forget_quality": score.forget_quality,
            "ra_ratio": ra_ratio,
            "ta_ratio": ta_ratio,
            "median_epsilon": float(np.median(score.epsilons)),
            "capped": float(np.mean(score.epsilons >= 50.0)),
            "RA": float(np.mean(side.ra)),
            "TA": float(np.mean(side.ta)),
            "seconds": float(np.mean(side.seconds)),
            "speedup": float(np.mean(reference.seconds) / np.mean(side.seconds)),
        }
        log(f"{name}: score {score.score:.4f} (F {score.forget_quality:.4f})")
    elapsed = time.perf_counter() - started
    markdown = render(args, n, len(train), len(forget), len(test), reference, results, elapsed)
    print(markdown)
    if not args.no_write:
        write_section(SECTION, markdown, args.markdown)
        log(f"wrote {args.markdown}")
    return {"results": results, "markdown": markdown, "seconds": elapsed, "methods": methods}


def render(
    args: argparse.Namespace,
    n: int,
    n_train: int,
    n_forget: int,
    n_test: int,
    reference: SideStats,
    results: dict[str, dict[str, float]],
    elapsed: float,
) -> str:
    command = "python -m bench.forget_score" + ("" if n == 32 else f" --models {n}")
    rows = []
    for name, r in sorted(results.items(), key=lambda kv: -kv[1]["score"]):
        rows.append(
            [
                f"`{name}`",
                f"{r['score']:.4f}",
                f"{r['forget_quality']:.4f}",
                f"{r['ra_ratio']:.4f}",
                f"{r['ta_ratio']:.4f}",
                f"{r['median_epsilon']:.2f}",
                f"{100 * r['capped']:.1f}",
                f"{100 * r['RA']:.2f}",
                f"{100 * r['TA']:.2f}",
                f"{r['speedup']:.1f}",
            ]
        )
    header = [
        "method",
        "score",
        "forget quality F",
        "RA ratio",
        "TA ratio",
        "median ε",
        "% examples ε capped",
        "RA",
        "TA",
        "speed-up vs retrain",
    ]
    max_eps = math.ceil(math.log(n - 1))
    configs = "\n".join(f"- `{k}`: `{v}`" for k, v in FS_TUNED.items() if k in results)
    return "\n".join(
        [
            "## NeurIPS 2023 Machine Unlearning Challenge score",
            "",
            f"Command: `{command}` — N = {n} unlearned vs {n} retrained models (the "
            f"challenge used 512), whole run {elapsed / 60:.1f} min on {machine_line()}.",
            "",
            f"Model: MLP (2 × {ARCH.width} hidden units) on scikit-learn digits (8×8), "
            f"{n_train} train / {n_test} test; forget set: {n_forget} random training samples "
            f"(fixed). Recipe: SGD lr {RECIPE.lr}, cosine, {RECIPE.epochs} epochs, batch "
            f"{RECIPE.batch_size}. Retrained models: reference RA "
            f"{100 * np.mean(reference.ra):.2f}, TA {100 * np.mean(reference.ta):.2f}. "
            f"Per-example ε from single- and double-threshold attacks on the logit-scaled "
            f"confidence, buckets of 0.5, points 2^−k up to ε = ceil(ln(N−1)) = {max_eps}; "
            "score = F × RA ratio × TA ratio (higher is better, 1 is the maximum). Speed-up "
            "is the mean retrain time over the mean method time, in the same run.",
            "",
            markdown_table(header, rows),
            "",
            "`retrain (another N)` is the ceiling at this N: two sets of exact retrains still "
            "differ by sampling noise. The score rewards matching the *distribution* of "
            "retrained outputs: a method whose N runs barely differ (e.g. `ssd`, whose only "
            "randomness is the `full_set_samples` draw) is separated by the threshold attacks "
            "even when its mean is right. ε is capped at 50 for a perfect separation.",
            "",
            "Configs (tuned for this benchmark, one place: `FS_TUNED` in `bench/forget_score.py`):",
            "",
            configs,
        ]
    )


if __name__ == "__main__":
    main()
