"""Batched deletion requests against one by one: N subjects' requests on one version.

    .venv/bin/python bench/batching.py [--requests 8] [--writers 40] [--method finetune]

What the workflow runs for N approved requests on the same version, side by side in one
process on the same data: one by one, N unlearning runs (each with the policy's method,
forgetting one subject, each followed by the evaluation the workflow does to verify it);
batched (``batch_window_seconds`` > 0), one run forgetting the N subjects together, then
one evaluation. MNIST writers (synthetic subjects of 100 samples each), small_cnn,
``torch.set_num_threads(1)``. Reports job counts and wall time, and the ratio of each.
Writes the "deletion-batching" section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.report import machine_line, markdown_table, write_section  # noqa: E402
from bench.unlearning import arch_for, load_dataset  # noqa: E402
from contracts.classifier import TrainParams  # noqa: E402
from workers.engine.forgetting import EvaluationSets, NetworkPredictor, evaluate_forgetting  # noqa: E402
from workers.engine.training import train_classifier  # noqa: E402
from workers.engine.unlearning import UnlearnData, get_method  # noqa: E402


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(1)
    ds = load_dataset("mnist", args.writers, args.test_size)
    arch = arch_for(ds, "small_cnn", 8)
    recipe = TrainParams(epochs=args.epochs, batch_size=64, lr=0.05, lr_schedule="cosine")
    original = train_classifier(arch, recipe, ds.train).state_dict
    rng = np.random.default_rng(args.seed)
    chosen = list(rng.choice(np.unique(ds.subjects), args.requests, replace=False))
    method = get_method(args.method)
    params = {"epochs": 1, "lr": 0.02, "seed": args.seed}

    def job(subjects: list[str]) -> dict[str, float]:
        """One workflow job: unlearn, then the evaluation that verifies the result."""
        mask = np.isin(ds.subjects, subjects)
        forget, retain = ds.train.subset(mask), ds.train.subset(~mask)
        data = UnlearnData(forget, retain, None, None, "subject_ids")
        result = method.run(arch, original, data, params, train_params=recipe)
        sets = EvaluationSets.build(forget, retain, ds.test, None, retain_limit=500, seed=0)
        metrics = evaluate_forgetting(
            NetworkPredictor(arch, result.state_dict), sets, relearn=False, probe=False
        )
        return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}

    start = time.perf_counter()
    each = [job([subject]) for subject in chosen]
    one_by_one = time.perf_counter() - start
    start = time.perf_counter()
    batch = job(chosen)
    batched = time.perf_counter() - start
    return {
        "machine": machine_line(),
        "requests": args.requests,
        "train_samples": len(ds.train),
        "one_by_one_seconds": one_by_one,
        "batched_seconds": batched,
        "jobs_one_by_one": len(each),
        "jobs_batched": 1,
        "TA_one_by_one_last": each[-1].get("TA"),
        "TA_batched": batch.get("TA"),
    }


def markdown(args: argparse.Namespace, out: dict[str, Any]) -> str:
    n = out["requests"]
    rows = [
        [
            "one by one",
            str(out["jobs_one_by_one"]),
            f"{out['one_by_one_seconds']:.1f}",
            f"{100 * (out['TA_one_by_one_last'] or 0):.1f}",
        ],
        [
            "batched",
            "1",
            f"{out['batched_seconds']:.1f}",
            f"{100 * (out['TA_batched'] or 0):.1f}",
        ],
        [
            "ratio (one by one / batched)",
            f"{out['jobs_one_by_one']}×",
            f"{out['one_by_one_seconds'] / out['batched_seconds']:.1f}×",
            "",
        ],
    ]
    return "\n".join(
        [
            "## Deletion batching",
            "",
            f"`.venv/bin/python bench/batching.py --requests {n} --writers {args.writers}` "
            f"({out['machine']}). {n} subject requests on one version of small_cnn trained on "
            f"{out['train_samples']} MNIST samples ({args.writers} synthetic writers); each job "
            f"is the policy's `{args.method}` (1 epoch over the retain set) followed by the "
            "evaluation that verifies it, as the workflow runs them. Measured side by side in "
            "one process.",
            "",
            markdown_table(["N requests", "unlearning jobs", "wall s", "TA % (last job)"], rows),
            "",
            "A job's cost is dominated by the pass over the retain set, which barely shrinks "
            "when a few subjects leave it, so N requests cost about N times one request unless "
            "they share a run.",
        ]
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--writers", type=int, default=40)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--method", default="finetune")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", type=Path, default=None, help="page to write (default: docs)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    try:
        out = run(args)
    finally:
        torch.set_num_threads(threads)
    out["markdown"] = markdown(args, out)
    print(out["markdown"])
    if not args.no_write:
        if args.markdown:
            write_section("deletion-batching", out["markdown"], args.markdown)
        else:
            write_section("deletion-batching", out["markdown"])
    return out


if __name__ == "__main__":
    main()
