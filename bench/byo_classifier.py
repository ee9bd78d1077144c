"""Bring-your-own classifier benchmark: a torchvision ResNet-50 on an RGB set, on a CPU.

    python -m bench.byo_classifier                   # the documented run (~5 min, 1 thread)
    python -m bench.byo_classifier --model timm:resnet18d --no-write

The same layout as ``bench.unlearning``: one original is trained, the exact ``retrain``
reference runs on the retain set with the same recipe, and each approximate method runs
from the same original; all are evaluated with ``workers.engine.forgetting`` on the same
sets (UA, RA, TA, MIA, Avg. Gap to retrain, wall time, speed-up, peak memory).

The RGB set is synthetic (nothing is downloaded): CIFAR-10's shape, 10 classes of 32x32
colour images, each class a fixed random colour layout plus strong per-pixel noise and a
random shift, so the network has to learn something and overfit a little. It measures
that the methods run on a full-size library architecture and what they cost there,
not CIFAR-10 accuracy.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

from bench.report import BENCHMARKS_MD, machine_line, markdown_table, measure, write_section
from bench.unlearning import evaluate
from contracts.classifier import ArchitectureConfig, TrainParams
from workers.engine.data import ImageArrays
from workers.engine.forgetting import EvaluationSets, comparison
from workers.engine.training import train_classifier
from workers.engine.unlearning import UnlearnData, get_method

SECTION = "byo_classifier"
NUM_CLASSES = 10
# Small budgets for a 10-epoch recipe on ~1000 images (the methods' own defaults target
# ResNet-18 on CIFAR-10 with 182 epochs); "seed" and "device" are set per run.
METHODS: dict[str, dict[str, Any]] = {
    "retrain": {},
    "finetune": {"epochs": 1, "lr": 0.02},
    "l1_sparse": {"epochs": 1, "lr": 0.02, "alpha": 5e-4},
    "neggrad_plus": {"epochs": 1, "lr": 0.01, "retain_weight": 0.98},
    "salun": {"epochs": 1, "lr": 1e-3, "retain_weight": 9, "mask_fraction": 0.5},
    "ssd": {"full_set_samples": 500, "selection_weighting": 10},
}


def synthetic_rgb(n: int, seed: int, prefix: str) -> ImageArrays:
    """CIFAR-10-shaped colour images: a per-class 4x4 colour layout, noise and a shift."""
    layouts = np.random.default_rng(1234).uniform(0, 255, size=(NUM_CLASSES, 4, 4, 3))
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % NUM_CLASSES
    rng.shuffle(labels)
    base = np.repeat(np.repeat(layouts[labels], 8, axis=1), 8, axis=2)
    images = base + rng.normal(0, 40, size=base.shape)
    for i, (dy, dx) in enumerate(rng.integers(-2, 3, size=(n, 2))):
        images[i] = np.roll(images[i], (int(dy), int(dx)), axis=(0, 1))
    return ImageArrays(
        images=np.clip(images, 0, 255).astype(np.uint8),
        labels=labels.astype(np.int64),
        sample_ids=[f"{prefix}-{i}" for i in range(n)],
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="torchvision:resnet50", help="library:model")
    parser.add_argument("--train", type=int, default=1000, help="training images")
    parser.add_argument("--test", type=int, default=500, help="test images")
    parser.add_argument("--size", type=int, default=32, help="image side")
    parser.add_argument("--epochs", type=int, default=10, help="recipe epochs")
    parser.add_argument("--methods", help="comma list (retrain always runs)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--markdown", type=Path, default=BENCHMARKS_MD, help="page to update")
    parser.add_argument("--no-write", action="store_true", help="print only")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    library, _, model = args.model.partition(":")
    arch = ArchitectureConfig(
        name=library,  # type: ignore[arg-type]
        model=model,
        num_classes=NUM_CLASSES,
        in_channels=3,
        input_size=(args.size, args.size),
        normalize_mean=[0.5, 0.5, 0.5],
        normalize_std=[0.25, 0.25, 0.25],
    )
    recipe = TrainParams(
        epochs=args.epochs, batch_size=32, lr=0.05, lr_schedule="cosine", device=args.device
    )
    train = synthetic_rgb(args.train, seed=1, prefix="train")
    test = synthetic_rgb(args.test, seed=2, prefix="test")
    forget_mask = train.labels == 0
    forget, retain = train.subset(forget_mask), train.subset(~forget_mask)
    sets = EvaluationSets.build(forget, retain, test, [0])
    data = UnlearnData(forget, retain, sets.test, [0])
    data_no_test = UnlearnData(forget, retain, None, [0])
    wanted = set(args.methods.split(",")) if args.methods else set(METHODS)
    rows = [m for m in METHODS if m == "retrain" or m in wanted]

    print(f"training the original {args.model} on {len(train)} RGB images", flush=True)
    trained = measure(lambda: train_classifier(arch, recipe, train), args.device)
    original = trained.value.state_dict
    results: dict[str, dict[str, float]] = {
        "original": evaluate(arch, original, sets, 0, args.device, False)
    }
    results["original"]["seconds"] = trained.seconds
    reference: dict[str, float] = {}
    for row in rows:
        params = {**METHODS[row], "seed": 0, "device": args.device}
        run_data = data_no_test if row == "retrain" else data
        m = measure(
            lambda row=row, params=params, run_data=run_data: get_method(row).run(
                arch, original, run_data, params, train_params=recipe
            ),
            args.device,
        )
        metrics = evaluate(arch, m.value.state_dict, sets, 0, args.device, False)
        if row == "retrain":
            reference = metrics
        metrics.update(comparison(metrics, reference))
        metrics.update(
            seconds=m.seconds,
            speedup=results.get("retrain", metrics)["seconds"] / m.seconds
            if row != "retrain"
            else 1.0,
            peak_mib=m.peak_mib,
        )
        results[row] = metrics
        print(
            f"  {row:14s} UA {100 * metrics['UA']:6.2f} RA {100 * metrics['RA']:6.2f} "
            f"TA {100 * metrics['TA']:6.2f} MIA {100 * metrics['MIA']:6.2f} "
            f"gap {100 * metrics['avg_gap']:5.2f} {m.seconds:7.1f}s",
            flush=True,
        )
    results["original"].update(comparison(results["original"], reference))
    body = render(args, arch, results, len(train), len(test))
    print(body)
    if not args.no_write:
        write_section(SECTION, body, args.markdown)
    return results


def render(
    args: argparse.Namespace,
    arch: ArchitectureConfig,
    results: dict[str, dict[str, float]],
    n_train: int,
    n_test: int,
) -> str:
    header = ("method", "UA", "RA", "TA", "MIA", "Avg. Gap", "time (s)", "speed-up", "peak MiB")
    table = []
    for row, r in results.items():
        table.append(
            (
                row,
                *(f"{100 * r[k]:.2f}" for k in ("UA", "RA", "TA", "MIA", "avg_gap")),
                f"{r['seconds']:.1f}",
                "–" if row == "original" else f"{r.get('speedup', 1.0):.1f}",
                "–" if row == "original" else f"{r.get('peak_mib', 0.0):.0f}",
            )
        )
    params = sum(p.numel() for p in torch.nn.Module.parameters(_meta_net(arch)))
    return "\n".join(
        [
            f"### Bring your own classifier: {args.model} on an RGB set",
            "",
            f"`python -m bench.byo_classifier --model {args.model} --train {args.train} "
            f"--test {args.test} --epochs {args.epochs}` — {machine_line(args.device)}.",
            "",
            f"{n_train} train / {n_test} test synthetic CIFAR-10-shaped images "
            f"({NUM_CLASSES} classes, {arch.input_size[0]}×{arch.input_size[1]} RGB), "
            f"{params / 1e6:.1f} M parameters built untrained by name; class-wise forgetting "
            f"of class 0; recipe SGD lr 0.05, cosine, {args.epochs} epochs, batch 32. "
            "Original's time is its training; UA = 1 - forget accuracy.",
            "",
            markdown_table(header, table),
        ]
    )


def _meta_net(arch: ArchitectureConfig) -> torch.nn.Module:
    from workers.engine.nets import build_network

    with torch.device("meta"):
        return build_network(arch)


if __name__ == "__main__":
    main()
