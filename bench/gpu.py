"""GPU-scale unlearning benchmark: one command, many processes sharing one GPU.

    bash bench/gpu.sh                          # on a machine with one GPU (the H200 run)
    python -m bench.gpu --scale tiny           # the same pipeline on CPU, ~1-2 minutes
    python -m bench.gpu --report DIR           # tables from DIR/raw.jsonl into BENCHMARKS.md

One process at a time leaves an H200 idle (a 28×28 ResNet-18 step is mostly Python and
batching), so a scheduler in this process hands *tasks* to ``--workers`` processes, each
with one or two torch threads, all on the same GPU. A task is one unit of work on one
dataset (full MNIST / Fashion-MNIST, 60 000 training images): train the original, retrain
on a scope's retain set, train one LiRA shadow model, run one method on one scope with the
service's defaults (``Params()`` of the method registry, read at run time, so a change of
defaults is what gets measured), run one candidate of the small tuning search on a
pseudo-forget set, run the tuned winner, or a slice of the NeurIPS-2023 score (N models
per side on scikit-learn digits). Tasks start when the tasks they need are done, in a
fixed priority (references first, then defaults, then the score, then tuning), and each
finished task is appended at once to ``OUT/raw.jsonl``; a hard deadline kills what is
still running and the report is written from what finished.

Tuning (documented here because it is this bench's own): for each method and scope, a few
candidate parameter sets that aim at ≤ 0.1 × a retrain (``grid()``) run on a *pseudo-forget
set* — training samples the original saw but the real request does not name (another 10 %
of samples, other writers, another class). The winner minimises a retrain-free score:
|forget accuracy − the original's test accuracy| + |loss-attack AUC − 0.5| (random and
subject scopes; a retrained model treats forget samples like test samples) or the share
of the class still recognised (class scope), plus twice any test-accuracy drop beyond
half a point; candidates slower than 0.1 × the original's training are used only if none
is faster. The winner then runs once on the real forget set.

The strong test is ``workers.engine.lira`` (offline LiRA): ``--shadows`` shadow models per
dataset, trained here as tasks of their own, and every evaluated model's logit-scaled
confidences on its forget and test samples; the verdicts are computed at the end. Where
that module is missing the tables say "strong test: not available".
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import pickle
import platform
import queue
import sys
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench.report import BENCHMARKS_MD, ROOT, markdown_table, write_section

SECTION = "unlearning-gpu-scale"
SCOPES = ("random", "subject", "classwise")
SCOPE_TITLES = {
    "random": "10 % random samples",
    "subject": "subjects (whole writers)",
    "classwise": "one class",
}
# Goals of issue #13, checked by the report.
STRONG_COST = 0.1  # "passes the strong test at ≤ 0.1 × the retrain's cost"
TA_POINTS = 1.0  # "with test accuracy within 1 point of the retrain's"
DEFAULT_COST = 0.5  # "no default parameter set costs more than 0.5 × a retrain"


# --------------------------------------------------------------------------- scales


@dataclass(frozen=True)
class GpuScale:
    """How big one run is; ``writers`` None = every training image (600 writers × 100)."""

    name: str
    datasets: tuple[str, ...]
    arch: str
    width: int
    writers: int | None
    test_size: int | None  # TA and the strong test's null (None = the whole test set)
    eval_test: int  # test samples of the MIA (its SVC grows ~quadratically)
    retain_eval: int
    forget_writers: int
    epochs: int
    batch_size: int
    lr: float
    workers: int
    threads: int
    deadline: float  # seconds after start: running tasks are killed, the report follows
    shadows: int
    fs_models: int  # N per side of the NeurIPS-2023 score
    fs_chunk: int  # models per score task
    seeds: int = 1


SCALES: dict[str, GpuScale] = {
    # One H200, 16 cores, 8 minutes in all: full datasets, full-width ResNet-18, 2 epochs.
    "gpu": GpuScale(
        name="gpu",
        datasets=("mnist", "fashion_mnist"),
        arch="resnet18",
        width=64,
        writers=None,
        test_size=None,
        eval_test=2000,
        retain_eval=2000,
        forget_writers=10,
        epochs=2,
        batch_size=128,
        lr=0.05,
        workers=12,
        threads=1,
        deadline=400.0,
        shadows=4,
        fs_models=32,
        fs_chunk=8,
    ),
    # This CPU: a few hundred samples, small CNN, 2 processes, one thread each.
    "tiny": GpuScale(
        name="tiny",
        datasets=("mnist", "fashion_mnist"),
        arch="small_cnn",
        width=8,
        writers=3,
        test_size=500,
        eval_test=200,
        retain_eval=200,
        forget_writers=1,
        epochs=8,
        batch_size=32,
        lr=0.05,
        workers=2,
        threads=1,
        deadline=110.0,
        shadows=2,
        fs_models=3,
        fs_chunk=3,
    ),
}

# The tuning grid: a few candidates per method, each aimed at ≤ 0.1 × a retrain. Iterative
# methods get their step budget (``budget_fraction`` of the original's training, where the
# method has one) at 0.05 / 0.1 and their default lr × 1 / × 3; the others a hand-made list.
GRID_SPECIAL: dict[str, list[dict[str, Any]]] = {
    "ssd": [{"selection_weighting": w} for w in (5.0, 20.0, 50.0)],
    "slug": [
        {"max_layers": 1, "search_iterations": 6, "retain_gradient_samples": 256},
        {"max_layers": 2, "search_iterations": 8, "retain_gradient_samples": 256},
        {"max_layers": 4, "search_iterations": 6, "retain_gradient_samples": 256},
    ],
}


def grid(method_name: str) -> list[dict[str, Any]]:
    """The candidates the tuning search tries for ``method_name`` (never empty)."""
    from workers.engine.unlearning import METHODS

    if method_name in GRID_SPECIAL:
        return [dict(c) for c in GRID_SPECIAL[method_name]]
    fields = METHODS[method_name].Params.model_fields
    lr = fields["lr"].default if "lr" in fields else None
    if "budget_fraction" in fields:
        budgets: list[dict[str, Any]] = [{"budget_fraction": 0.1}, {"budget_fraction": 0.05}]
    elif "epochs" in fields:
        budgets = [{"epochs": 1}]
    else:
        budgets = [{}]
    out = []
    for budget in budgets:
        for factor in (1.0, 3.0) if lr else (1.0,):
            candidate = dict(budget)
            if lr:
                candidate["lr"] = float(min(lr * factor, 10.0))
            out.append(candidate)
    # Three at most: a 0.1 budget at the default lr and at 3 × it, a 0.05 one at the default.
    return out[:3]


# --------------------------------------------------------------------------- tasks


@dataclass
class Task:
    """One unit of work; ``deps`` are task ids that must have succeeded first."""

    id: str
    kind: str
    args: dict[str, Any]
    priority: float
    deps: list[str] = field(default_factory=list)
    # Tasks that must have finished, whatever their outcome (the tuning candidates).
    after: list[str] = field(default_factory=list)


def _recipe(scale: GpuScale, seed: int, device: str) -> Any:
    from contracts.classifier import TrainParams

    return TrainParams(
        epochs=scale.epochs,
        batch_size=scale.batch_size,
        lr=scale.lr,
        lr_schedule="cosine",
        seed=seed,
        device=device,
    )


def method_rows(wanted: Sequence[str] | None) -> list[str]:
    """Every registered approximate method (or the ``wanted`` ones), by name."""
    from workers.engine.unlearning import METHODS

    names = sorted(n for n in METHODS if n != "retrain")
    if wanted:
        unknown = set(wanted) - set(names)
        if unknown:
            raise SystemExit(f"unknown methods {sorted(unknown)}; known: {names}")
        names = [n for n in names if n in wanted]
    return names


def fs_methods(wanted: Sequence[str] | None) -> list[str]:
    from bench.forget_score import FS_TUNED

    return [m for m in FS_TUNED if not wanted or m in wanted]


def build_tasks(
    scale: GpuScale,
    datasets: Sequence[str],
    methods: Sequence[str],
    scopes: dict[str, list[str]],
    strong: bool,
    tune: bool,
    score_methods: Sequence[str],
) -> list[Task]:
    """The whole run as tasks with priorities: references, defaults, the score, tuning."""
    from workers.engine.unlearning import METHODS

    tasks: list[Task] = []
    for d_index, ds in enumerate(datasets):
        for seed in range(scale.seeds):
            key = f"{ds}/s{seed}"
            base = {"dataset": ds, "seed": seed}
            orig = f"original:{key}"
            # Long references first: the original (everything waits on it), retrains,
            # shadows. Earlier datasets first so one dataset finishes whole.
            tasks.append(Task(orig, "original", base, 0 + d_index * 0.1))
            for scope in scopes[ds]:
                tasks.append(
                    Task(
                        f"retrain:{key}/{scope}",
                        "retrain",
                        {**base, "scope": scope},
                        1 + d_index * 0.1,
                    )
                )
                tasks.append(
                    Task(
                        f"evaluate_original:{key}/{scope}",
                        "evaluate_original",
                        {**base, "scope": scope},
                        2,
                        [orig],
                    )
                )
            if strong:
                for k in range(scale.shadows):
                    tasks.append(
                        Task(
                            f"shadow:{key}/{k}", "shadow", {**base, "index": k}, 1.5 + d_index * 0.1
                        )
                    )
            for scope in scopes[ds]:
                for m_index, name in enumerate(methods):
                    scope_name = SCOPE_NAMES[scope]
                    if scope_name not in METHODS[name].scopes:
                        continue
                    run = {**base, "scope": scope, "method": name}
                    tasks.append(
                        Task(
                            f"default:{key}/{scope}/{name}",
                            "method",
                            {**run, "mode": "default", "params": {}},
                            3 + d_index * 0.1 + m_index * 1e-3,
                            [orig],
                        )
                    )
                    if not tune:
                        continue
                    candidates = []
                    for c_index, params in enumerate(grid(name)):
                        cid = f"tune:{key}/{scope}/{name}/{c_index}"
                        candidates.append(cid)
                        tasks.append(
                            Task(
                                cid,
                                "method",
                                {**run, "mode": "tune", "candidate": c_index, "params": params},
                                5 + d_index * 0.1 + m_index * 1e-3,
                                [orig],
                            )
                        )
                    tasks.append(
                        Task(
                            f"tuned:{key}/{scope}/{name}",
                            "method",
                            {**run, "mode": "tuned", "params": None},
                            4 + d_index * 0.1,
                            [orig],
                            candidates,
                        )
                    )
    if score_methods:
        chunks = range(0, scale.fs_models, scale.fs_chunk)
        tasks.append(Task("fs_original", "fs_original", {}, 0.5))
        for side in ("reference", "another"):
            offset = 1 if side == "reference" else 1 + scale.fs_models
            for start in chunks:
                stop = min(start + scale.fs_chunk, scale.fs_models)
                tasks.append(
                    Task(
                        f"fs_retrain:{side}/{start}",
                        "fs_retrain",
                        {"side": side, "seeds": list(range(offset + start, offset + stop))},
                        3.5,
                        ["fs_original"],
                    )
                )
        for name in score_methods:
            for mode in ("default", "tuned"):
                for start in chunks:
                    stop = min(start + scale.fs_chunk, scale.fs_models)
                    tasks.append(
                        Task(
                            f"fs_method:{name}/{mode}/{start}",
                            "fs_method",
                            {"method": name, "mode": mode, "seeds": list(range(start, stop))},
                            3.6,
                            ["fs_original"],
                        )
                    )
    return tasks


SCOPE_NAMES = {"random": "sample_ids", "subject": "subject_ids", "classwise": "labels"}


# --------------------------------------------------------------------------- data


def pseudo_scenario(ds: Any, real: Any, kind: str, seed: int, forget_writers: int) -> Any:
    """A pseudo-forget set for tuning: samples the original saw, disjoint from ``real``."""
    from bench.unlearning import Scenario

    rng = np.random.default_rng(30_000 + seed)
    n = len(ds.train)
    free = np.flatnonzero(~real.forget_mask)
    if kind == "random":
        mask = np.zeros(n, dtype=bool)
        mask[rng.choice(free, min(n // 10, len(free) - 1), replace=False)] = True
        return Scenario(kind, "pseudo " + kind, mask, "sample_ids")
    if kind == "subject":
        writers = np.setdiff1d(np.unique(ds.subjects), np.unique(ds.subjects[real.forget_mask]))
        chosen = rng.choice(writers, min(forget_writers, max(len(writers) - 1, 1)), replace=False)
        return Scenario(kind, "pseudo " + kind, np.isin(ds.subjects, chosen), "subject_ids")
    label = (real.forget_labels[0] + 1 + int(rng.integers(ds.num_classes - 1))) % ds.num_classes
    mask = ds.train.labels == label
    return Scenario(kind, "pseudo " + kind, mask, "labels", [label])


def prepare_data(
    scale: GpuScale, datasets: Sequence[str], work: Path, log: Callable[[str], None]
) -> dict[str, dict[str, Any]]:
    """Load every dataset once, draw the scenarios, and pickle them for the workers."""
    from bench.unlearning import SCALES as BENCH_SCALES
    from bench.unlearning import load_dataset, make_scenarios
    from core.datasets.builtin import balanced_subset

    info: dict[str, dict[str, Any]] = {}
    bench_scale = replace(BENCH_SCALES["full"], forget_writers=scale.forget_writers)
    for name in datasets:
        ds = load_dataset(name, scale.writers, scale.test_size)
        per_seed = {}
        for seed in range(scale.seeds):
            real = {s.kind: s for s in make_scenarios(ds, bench_scale, SCOPES, seed)}
            pseudo = {
                kind: pseudo_scenario(ds, s, kind, seed, scale.forget_writers)
                for kind, s in real.items()
            }
            per_seed[seed] = {"real": real, "pseudo": pseudo}
        eval_idx = balanced_subset(ds.test.labels, scale.eval_test)
        with open(work / f"data-{name}.pkl", "wb") as handle:
            pickle.dump({"ds": ds, "scenarios": per_seed, "eval_idx": eval_idx}, handle, protocol=5)
        info[name] = {
            "train": len(ds.train),
            "test": len(ds.test),
            "forget": {
                kind: int(s.forget_mask.sum()) for kind, s in per_seed[0]["real"].items()
            },
        }
        log(f"{name}: {len(ds.train)} train / {len(ds.test)} test, forget {info[name]['forget']}")
    return info


# --------------------------------------------------------------------------- workers

_STATE: dict[str, Any] = {}


def _init_worker(work: str, scale: dict[str, Any], device: str) -> None:
    """Pool initializer: few threads, TF32 on (Hopper's fast fp32 path), shared config."""
    import torch

    torch.set_num_threads(scale["threads"])
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    _STATE.update(work=Path(work), scale=GpuScale(**scale), device=device, data={})
    if device.startswith("cuda"):
        try:  # an initializer that raises makes the pool respawn workers forever
            _warm_up(_STATE["scale"], device)
        except Exception as exc:
            print(f"worker {os.getpid()}: warm-up failed ({exc}); timings include start-up")


def _warm_up(scale: GpuScale, device: str) -> None:
    """One small training step here, so no task's timing pays for CUDA / cuDNN start-up."""
    import torch

    from contracts.classifier import ArchitectureConfig
    from workers.engine.nets import build_network

    arch = ArchitectureConfig(
        name=scale.arch, num_classes=10, in_channels=1, input_size=(28, 28), width=scale.width
    )
    net = build_network(arch).to(device)
    x = torch.randn(8, 1, 28, 28, device=device)
    y = torch.zeros(8, dtype=torch.long, device=device)
    torch.nn.functional.cross_entropy(net(x), y).backward()
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _data(name: str) -> dict[str, Any]:
    cache = _STATE["data"]
    if name not in cache:
        with open(_STATE["work"] / f"data-{name}.pkl", "rb") as handle:
            cache[name] = pickle.load(handle)
    return cache[name]


def _arch(ds: Any) -> Any:
    from bench.unlearning import arch_for

    scale: GpuScale = _STATE["scale"]
    return arch_for(ds, scale.arch, scale.width)


def _state_path(kind: str, dataset: str, seed: int) -> Path:
    return _STATE["work"] / f"{kind}-{dataset}-s{seed}.pt"


def _confidences(model: Any, arrays: Any) -> np.ndarray:
    from workers.engine.metrics import logit_scaled_confidence

    return logit_scaled_confidence(model.logits(arrays), arrays.labels).astype(np.float32)


def _sets(dataset: str, seed: int, scope: str, pseudo: bool = False) -> tuple[Any, Any, Any]:
    """Evaluation sets (MIA on a ``eval_test`` subset), the data, and the whole test set.

    The whole test set (less a forgotten class) gives TA and the strong test's null; the
    MIA's SVC is fitted on the smaller subset because its cost grows ~quadratically.
    """
    from workers.engine.forgetting import EvaluationSets
    from workers.engine.unlearning import UnlearnData

    data = _data(dataset)
    ds = data["ds"]
    scenario = data["scenarios"][seed]["pseudo" if pseudo else "real"][scope]
    forget = ds.train.subset(scenario.forget_mask)
    retain = ds.train.subset(~scenario.forget_mask)
    sets = EvaluationSets.build(
        forget,
        retain,
        ds.test.subset(data["eval_idx"]),
        scenario.forget_labels,
        retain_limit=_STATE["scale"].retain_eval,
        seed=seed,
    )
    test_full = ds.test
    if scenario.forget_labels:
        test_full = ds.test.subset(np.flatnonzero(~np.isin(ds.test.labels, scenario.forget_labels)))
    unlearn = UnlearnData(forget, retain, sets.test, scenario.forget_labels, scenario.scope)
    return (sets, test_full), unlearn, scenario


def _evaluate(
    task_id: str, arch: Any, state_dict: Any, sets: tuple[Any, Any], seed: int, strong: bool
) -> tuple[dict[str, float], str | None]:
    """UA/RA/MIA/loss AUC on the evaluation sets, TA on the whole test set; confidences."""
    from workers.engine.forgetting import NetworkPredictor, evaluate_forgetting
    from workers.engine.metrics import accuracy, logit_scaled_confidence

    eval_sets, test_full = sets
    # memo: the forget set's logits are reused for the strong test's confidences.
    model = NetworkPredictor(arch, state_dict, device=_STATE["device"], memo=True)
    raw = evaluate_forgetting(model, eval_sets, relearn=False, probe=False, seed=seed)
    metrics = {k: float(v) for k, v in raw.items() if isinstance(v, int | float)}
    logits = model.logits(test_full)
    metrics["TA_mia_subset"] = metrics["TA"]
    metrics["TA"] = accuracy(logits, test_full.labels)
    if not strong:
        return metrics, None
    path = _STATE["work"] / ("conf-" + task_id.replace("/", "_").replace(":", "_") + ".npz")
    np.savez(
        path,
        forget_ids=np.array(eval_sets.forget.sample_ids, dtype=str),
        forget=_confidences(model, eval_sets.forget),
        test_ids=np.array(test_full.sample_ids, dtype=str),
        test=logit_scaled_confidence(logits, test_full.labels).astype(np.float32),
    )
    return metrics, path.name


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """Run one task in a worker; never raises (a failure is a result)."""
    started = time.perf_counter()
    try:
        result = _run(task)
        result["status"] = "ok"
    except Exception as exc:  # a diverged method or an OOM is a result, not a crash
        result = {
            "status": "error",
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(limit=6),
        }
    result["task_seconds"] = time.perf_counter() - started
    result["pid"] = os.getpid()
    return result


def _run(task: dict[str, Any]) -> dict[str, Any]:
    import torch

    from bench.report import measure

    kind, a = task["kind"], task["args"]
    device = _STATE["device"]
    scale: GpuScale = _STATE["scale"]
    if kind.startswith("fs_"):
        return _run_score(kind, a)
    data = _data(a["dataset"])
    ds = data["ds"]
    arch = _arch(ds)
    recipe = _recipe(scale, a["seed"], device)
    strong = bool(task.get("strong"))
    if kind == "original":
        from bench.unlearning import predictor
        from workers.engine.metrics import accuracy
        from workers.engine.training import train_classifier

        m = measure(lambda: train_classifier(arch, recipe, ds.train), device)
        torch.save(m.value.state_dict, _state_path("original", a["dataset"], a["seed"]))
        logits = predictor(arch, m.value.state_dict, device).logits(ds.test)
        per_class = {
            str(c): accuracy(logits[ds.test.labels == c], ds.test.labels[ds.test.labels == c])
            for c in np.unique(ds.test.labels)
        }
        return {
            "seconds": m.seconds,
            "peak_mib": m.peak_mib,
            "TA": accuracy(logits, ds.test.labels),
            "per_class_TA": per_class,
            "train": len(ds.train),
        }
    if kind == "shadow":
        return _run_shadow(a, arch, recipe, ds)
    if kind == "evaluate_original":
        sets, _, _ = _sets(a["dataset"], a["seed"], a["scope"])
        original = torch.load(_state_path("original", a["dataset"], a["seed"]), weights_only=True)
        metrics, conf = _evaluate(task["id"], arch, original, sets, a["seed"], strong)
        return {"metrics": metrics, "confidences": conf}
    pseudo = a.get("mode") == "tune"
    sets, unlearn, _ = _sets(a["dataset"], a["seed"], a["scope"], pseudo=pseudo)
    from workers.engine.unlearning import get_method

    if kind == "retrain":
        # The exact retrain's cost is its training, timed alone: the registry's ``retrain``
        # also scores the forget set on CPU afterwards, which would inflate the reference.
        from workers.engine.training import train_classifier

        m = measure(lambda: train_classifier(arch, recipe, unlearn.retain), device)
        params: dict[str, Any] = {}
        method_metrics: dict[str, float] = {}
        estimate = 1.0
    else:
        method = get_method(a["method"])
        original = torch.load(_state_path("original", a["dataset"], a["seed"]), weights_only=True)
        params = dict(a["params"] or {})
        full = {**params, "seed": a["seed"], "device": device}
        m = measure(lambda: method.run(arch, original, unlearn, full, train_params=recipe), device)
        estimate = _estimated_cost(method, full, unlearn, recipe)
        method_metrics = {
            k: float(v) for k, v in m.value.metrics.items() if isinstance(v, int | float)
        }
    metrics, conf = _evaluate(
        task["id"], arch, m.value.state_dict, sets, a["seed"], strong and not pseudo
    )
    return {
        "seconds": m.seconds,
        "peak_mib": m.peak_mib,
        "params": params,
        "metrics": metrics,
        "confidences": conf,
        "forget_labels": unlearn.forget_labels,
        "method_metrics": method_metrics,
        "estimated_cost": estimate,
    }


def _estimated_cost(method: Any, params: dict[str, Any], unlearn: Any, recipe: Any) -> float | None:
    """The registry's own noise-free estimate (sample passes / a retrain's), where it has one."""
    budget = getattr(method, "budget", None)
    if not callable(budget):
        return None
    try:
        fraction = budget(params, len(unlearn.forget), len(unlearn.retain), recipe.epochs)
        return getattr(fraction, "cost_fraction", None)
    except Exception:  # an estimate is a nice-to-have: never fail the run for it
        return None


def _run_shadow(a: dict[str, Any], arch: Any, recipe: Any, ds: Any) -> dict[str, Any]:
    """One LiRA shadow: ``lira.membership_masks`` row ``index``, scored on train and test."""
    from bench.unlearning import predictor
    from workers.engine import lira
    from workers.engine.training import train_classifier

    scale: GpuScale = _STATE["scale"]
    device = _STATE["device"]
    masks = lira.membership_masks(len(ds.train), scale.shadows, a["seed"])
    i = a["index"]
    params = recipe.model_copy(update={"seed": recipe.seed + 1000 * (a["seed"] + 1) + i})
    started = time.perf_counter()
    result = train_classifier(arch, params, ds.train.subset(masks[i]))
    seconds = time.perf_counter() - started
    model = predictor(arch, result.state_dict, device)
    path = _STATE["work"] / f"shadow-{a['dataset']}-s{a['seed']}-{i}.npz"
    np.savez(
        path,
        members=masks[i],
        train=_confidences(model, ds.train),
        test=_confidences(model, ds.test),
    )
    return {"seconds": seconds, "file": path.name}


# --------------------------------------------------------------------------- the score


def _run_score(kind: str, a: dict[str, Any]) -> dict[str, Any]:
    """NeurIPS-2023 score pieces on digits (CPU: the MLP is too small for a GPU)."""
    import torch

    from bench import forget_score as fs
    from workers.engine.training import train_classifier
    from workers.engine.unlearning import UnlearnData, get_method

    train, test = fs.load_digits()
    rng = np.random.default_rng(0)
    forget_mask = np.zeros(len(train), dtype=bool)
    forget_mask[rng.choice(len(train), int(round(0.1 * len(train))), False)] = True
    forget, retain = train.subset(forget_mask), train.subset(~forget_mask)
    path = _STATE["work"] / "fs-original.pt"
    if kind == "fs_original":
        state = train_classifier(fs.ARCH, fs.RECIPE, train).state_dict
        torch.save(state, path)
        return {"train": len(train), "forget": len(forget), "test": len(test)}
    states, seconds = [], []
    if kind == "fs_retrain":
        for seed in a["seeds"]:
            t0 = time.perf_counter()
            recipe = fs.RECIPE.model_copy(update={"seed": seed})
            states.append(train_classifier(fs.ARCH, recipe, retain).state_dict)
            seconds.append(time.perf_counter() - t0)
    else:
        original = torch.load(path, weights_only=True)
        method = get_method(a["method"])
        data = UnlearnData(forget, retain, test, scope="sample_ids")
        tuned = fs.FS_TUNED.get(a["method"], {}) if a["mode"] == "tuned" else {}
        for seed in a["seeds"]:
            params = {**tuned, "seed": seed, "device": "cpu"}
            t0 = time.perf_counter()
            result = method.run(fs.ARCH, original, data, params, train_params=fs.RECIPE)
            states.append(result.state_dict)
            seconds.append(time.perf_counter() - t0)
    conf, ra, ta = fs.collect(states, forget, retain, test)
    return {
        "confidences": np.round(conf, 5).tolist(),
        "RA": ra,
        "TA": ta,
        "seconds": seconds,
    }


# --------------------------------------------------------------------------- tuning


def tuning_score(result: dict[str, Any], original: dict[str, Any], scope: str, label: int | None):
    """The retrain-free objective of the tuning search (lower is better); see the module doc."""
    m = result["metrics"]
    per_class = original["per_class_TA"]
    if scope == "classwise":
        ta_orig = float(np.mean([v for c, v in per_class.items() if int(c) != label]))
        forgetting = 100 * max(0.0, 0.99 - m["UA"])
    else:
        ta_orig = float(original["TA"])
        forgetting = 100 * abs((1 - m["UA"]) - ta_orig) + 100 * abs(m.get("loss_auc", 0.5) - 0.5)
    drop = 100 * max(0.0, ta_orig - m["TA"] - 0.005)
    return forgetting + 2 * drop


def choose_tuned(
    candidates: Sequence[dict[str, Any]],
    original: dict[str, Any],
    scope: str,
    label: int | None,
) -> dict[str, Any]:
    """The winner among finished candidates: cheap ones (≤ 0.1 × the original) first."""
    ok = [c for c in candidates if c.get("status") == "ok"]
    if not ok:
        raise RuntimeError("no tuning candidate finished")
    cheap = [c for c in ok if c["seconds"] <= STRONG_COST * original["seconds"]]
    pool = cheap or ok
    best = min(pool, key=lambda c: tuning_score(c, original, scope, label))
    return {
        "params": best["params"],
        "score": tuning_score(best, original, scope, label),
        "candidates": [
            {
                "params": c["params"],
                "score": tuning_score(c, original, scope, label),
                "seconds": c["seconds"],
            }
            for c in ok
        ],
    }


# --------------------------------------------------------------------------- the scheduler


def lira_available() -> str | None:
    """None when ``workers.engine.lira`` has what this bench uses, else why not."""
    try:
        from workers.engine import lira
    except Exception as exc:  # missing module, or one that fails to import
        return f"workers.engine.lira cannot be imported ({type(exc).__name__}: {exc})"
    missing = [n for n in ("membership_masks", "ShadowBank", "lira_test") if not hasattr(lira, n)]
    return f"workers.engine.lira lacks {', '.join(missing)}" if missing else None


class Recorder:
    """Appends one JSON line per event to ``raw.jsonl`` and keeps them for the report."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[dict[str, Any]] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def write(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        self.handle.write(json.dumps(record, default=_json_default) + "\n")
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def schedule(
    tasks: list[Task],
    scale: GpuScale,
    work: Path,
    device: str,
    recorder: Recorder,
    strong: bool,
    started: float,
    log: Callable[[str], None],
) -> dict[str, dict[str, Any]]:
    """Run ``tasks`` on a pool until done or the deadline; returns results by task id."""
    by_id = {t.id: t for t in tasks}
    pending = sorted(tasks, key=lambda t: t.priority)
    results: dict[str, dict[str, Any]] = {}
    in_flight: dict[str, float] = {}
    durations: dict[str, list[float]] = defaultdict(list)
    done: queue.Queue = queue.Queue()
    initargs = (str(work), asdict(scale), device)
    # Spawned workers read these when they import numpy / scikit-learn: without them each
    # of the N processes would start one BLAS / OpenMP thread per core.
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {n: os.environ.get(n) for n in names}
    os.environ.update({n: os.environ.get(n) or str(scale.threads) for n in saved})
    try:
        pool: Any = mp.get_context("spawn").Pool(
            scale.workers, initializer=_init_worker, initargs=initargs
        )
    except OSError as exc:  # no semaphores (/dev/shm) here: one process, no hard deadline
        log(f"cannot start worker processes ({exc}); running tasks in this process")
        pool = _InlinePool(initargs)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    deadline = started + scale.deadline

    def finish(task_id: str, result: dict[str, Any]) -> None:
        task = by_id[task_id]
        results[task_id] = result
        durations[task.kind].append(result.get("task_seconds", 0.0))
        timeline = {"finished_at": round(time.perf_counter() - started, 2)}
        if task_id in in_flight:
            timeline["started_at"] = round(in_flight[task_id] - started, 2)
        record = {"type": "task", "id": task_id, "kind": task.kind, **task.args, **result}
        recorder.write({**record, **timeline})

    try:
        while pending or in_flight:
            now = time.perf_counter()
            if now >= deadline:
                break
            # Drop tasks whose dependencies failed or were dropped.
            for task in list(pending):
                bad = [d for d in task.deps if d in results and results[d].get("status") != "ok"]
                if bad:
                    pending.remove(task)
                    finish(task.id, {"status": "skipped", "error": f"needs {bad[0]}"})
            ready = [
                t
                for t in pending
                if all(d in results and results[d].get("status") == "ok" for d in t.deps)
                and all(d in results for d in t.after)
            ]
            while ready and len(in_flight) < scale.workers:
                task = ready.pop(0)
                pending.remove(task)
                seen = durations.get(task.kind)
                estimate = float(np.median(seen)) if seen else 0.0
                if now + estimate > deadline:
                    finish(task.id, {"status": "skipped", "error": "would miss the deadline"})
                    continue
                payload = {"id": task.id, "kind": task.kind, "args": task.args, "strong": strong}
                if task.kind == "method" and task.args.get("mode") == "tuned":
                    try:
                        payload["args"] = {**task.args, "params": _tuned_params(task, results)}
                    except Exception as exc:  # no candidate finished: nothing to choose from
                        finish(task.id, {"status": "skipped", "error": str(exc)})
                        continue
                in_flight[task.id] = now
                pool.apply_async(
                    run_task,
                    (payload,),
                    callback=lambda r, tid=task.id: done.put((tid, r)),
                    error_callback=lambda e, tid=task.id: done.put(
                        (tid, {"status": "error", "error": f"{type(e).__name__}: {e}"})
                    ),
                )
            if not in_flight and not ready and pending:
                # Nothing runs and nothing can start: the rest waits on what never comes.
                for task in list(pending):
                    pending.remove(task)
                    finish(task.id, {"status": "skipped", "error": "dependencies never ran"})
                break
            try:
                task_id, result = done.get(timeout=min(1.0, max(deadline - now, 0.01)))
            except queue.Empty:
                continue
            finish(task_id, result)
            in_flight.pop(task_id, None)
            status = result.get("status")
            extra = f" {result.get('error')}" if status != "ok" else ""
            log(
                f"{task_id}: {status} in {result.get('task_seconds', 0):.1f}s "
                f"({len(results)}/{len(tasks)} done, {len(in_flight)} running){extra}"
            )
    finally:
        pool.terminate()
        pool.join()
    for task_id in list(in_flight):
        finish(task_id, {"status": "killed", "error": "still running at the deadline"})
    for task in pending:
        if task.id not in results:
            finish(task.id, {"status": "skipped", "error": "not started by the deadline"})
    return results


class _InlinePool:
    """The fallback where processes cannot be started: runs each task at once, here."""

    def __init__(self, initargs: tuple[Any, ...]) -> None:
        _init_worker(*initargs)

    def apply_async(self, fn: Callable, args: tuple, callback: Callable, error_callback) -> None:
        callback(fn(*args))

    def terminate(self) -> None:
        pass

    def join(self) -> None:
        pass


def _tuned_params(task: Task, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    a = task.args
    original = results[f"original:{a['dataset']}/s{a['seed']}"]
    candidates = [results[d] for d in task.after]
    labels = next((c["forget_labels"] for c in candidates if c.get("forget_labels")), None)
    label = int(labels[0]) if labels else None
    chosen = choose_tuned(candidates, original, a["scope"], label)
    task.args["tuning"] = chosen
    return chosen["params"]


# --------------------------------------------------------------------------- strong test


def strong_verdicts(
    results: dict[str, dict[str, Any]], tasks: Sequence[Task], work: Path, scale: GpuScale
) -> dict[str, dict[str, Any]]:
    """LiRA verdicts for every evaluated model whose dataset has ≥ 2 finished shadows."""
    from workers.engine import lira

    banks: dict[str, Any] = {}
    out: dict[str, dict[str, Any]] = {}
    for task in tasks:
        result = results.get(task.id, {})
        conf_file = result.get("confidences")
        if task.kind.startswith("fs_") or result.get("status") != "ok" or not conf_file:
            continue
        key = f"{task.args['dataset']}/s{task.args['seed']}"
        if key not in banks:
            banks[key] = _bank(lira, results, key, work)
        bank = banks[key]
        if bank is None:
            out[task.id] = {"error": "fewer than 2 shadow models finished"}
            continue
        with np.load(work / conf_file) as z:
            try:
                verdict = lira.lira_test(
                    bank,
                    [str(s) for s in z["forget_ids"]],
                    z["forget"],
                    [str(s) for s in z["test_ids"]],
                    z["test"],
                    seed=task.args["seed"],
                )
            except Exception as exc:  # a verdict that cannot be computed is reported
                out[task.id] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
        out[task.id] = {k: v for k, v in verdict.items() if k not in ("scores", "score_ids")}
    return out


def _bank(lira: Any, results: dict[str, dict[str, Any]], key: str, work: Path) -> Any:
    files = sorted(
        r["file"]
        for tid, r in results.items()
        if tid.startswith(f"shadow:{key}/") and r.get("status") == "ok"
    )
    if len(files) < 2:
        return None
    dataset = key.split("/")[0]
    with open(work / f"data-{dataset}.pkl", "rb") as handle:
        ds = pickle.load(handle)["ds"]
    members, conf, test_conf = [], [], []
    for name in files:
        with np.load(work / name) as z:
            members.append(z["members"])
            conf.append(z["train"])
            test_conf.append(z["test"])
    return lira.ShadowBank(
        sample_ids=list(ds.train.sample_ids),
        confidences=np.stack(conf),
        members=np.stack(members),
        test_ids=list(ds.test.sample_ids),
        test_confidences=np.stack(test_conf),
    )


# --------------------------------------------------------------------------- the report


def load_records(out: Path) -> list[dict[str, Any]]:
    with open(out / "raw.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _fmt(value: float | None, digits: int = 2, scale: float = 1.0) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value * scale:.{digits}f}"


def utilisation(path: Path) -> str | None:
    """Mean GPU utilisation and peak memory from bench/gpu.sh's nvidia-smi samples."""
    if not path.is_file():
        return None
    util, memory = [], []
    for line in path.read_text().splitlines()[1:]:
        parts = [p.strip() for p in line.split(",")]
        try:
            util.append(float(parts[1].split()[0]))
            memory.append(float(parts[2].split()[0]))
        except (IndexError, ValueError):
            continue
    if not util:
        return None
    busy = sum(u >= 50 for u in util) / len(util)
    return (
        f"GPU utilisation (nvidia-smi every 5 s, {len(util)} samples): mean {np.mean(util):.0f} %, "
        f"≥ 50 % in {100 * busy:.0f} % of samples; memory used at most {max(memory):.0f} MiB."
    )


def render(
    records: Sequence[dict[str, Any]], util: str | None = None
) -> tuple[str, dict[str, Any]]:
    """The markdown section and the goals (as data) from the raw records alone."""
    from workers.engine.forgetting import comparison
    from workers.engine.metrics import forget_score

    meta = next((r for r in records if r.get("type") == "meta"), {})
    end = next((r for r in records if r.get("type") == "end"), {})
    tasks = {r["id"]: r for r in records if r.get("type") == "task"}
    strong = {r["id"]: r["verdict"] for r in records if r.get("type") == "strong"}
    strong_note = meta.get("strong_unavailable") or next(
        (f"it failed: {r['error']}" for r in records if r.get("type") == "strong_error"), None
    )
    status_counts: dict[str, int] = defaultdict(int)
    for r in tasks.values():
        status_counts[r.get("status", "?")] += 1

    def ok(task_id: str) -> dict[str, Any] | None:
        r = tasks.get(task_id)
        return r if r and r.get("status") == "ok" else None

    def strong_cell(task_id: str) -> str:
        if strong_note:
            return "n/a"
        v = strong.get(task_id)
        if not v:
            return "–"
        if "error" in v:
            return "error"
        return f"{'pass' if v['passed'] else 'FAIL'} ({100 * v['tpr_at_1pct_fpr']:.1f})"

    goals: dict[str, Any] = {"strong": [], "default_cost": []}
    errors: list[str] = []
    sections: list[str] = []
    header = [
        "method",
        "params",
        "UA",
        "RA",
        "TA",
        "MIA",
        "Avg. Gap",
        "time (s)",
        "cost / retrain",
        "est. cost",
        "strong test (TPR@1%FPR)",
    ]
    for dataset in meta.get("datasets", []):
        for seed in range(meta.get("seeds", 1)):
            key = f"{dataset}/s{seed}"
            for scope in meta.get("scopes", {}).get(dataset, []):
                retrain = ok(f"retrain:{key}/{scope}")
                net = f"{meta.get('arch')} w{meta.get('width')}"
                title = f"### {dataset} · {net} · {SCOPE_TITLES[scope]}"
                sizes = meta.get("data", {}).get(dataset, {})
                lines = [
                    title,
                    "",
                    f"{sizes.get('train', '?')} train / {sizes.get('test', '?')} test images; "
                    f"forget set {sizes.get('forget', {}).get(scope, '?')} images.",
                    "",
                ]
                if retrain is None:
                    why = tasks.get(f"retrain:{key}/{scope}", {}).get("error", "did not finish")
                    lines.append(f"No retrain reference ({why}): no table.")
                    sections += [*lines, ""]
                    goals["strong"].append({"where": f"{dataset} / {scope}", "met": None})
                    continue
                ref = retrain["metrics"]
                ref_seconds = retrain["seconds"]
                rows = []
                orig_eval = ok(f"evaluate_original:{key}/{scope}")
                if orig_eval:
                    m = {**orig_eval["metrics"], **comparison(orig_eval["metrics"], ref)}
                    cell = strong_cell(orig_eval["id"])
                    rows.append(_row("original (do nothing)", "", m, None, None, cell))
                m = {**ref, **comparison(ref, ref)}
                cell = strong_cell(retrain["id"])
                rows.append(_row("retrain", "", m, ref_seconds, 1.0, cell, 1.0))
                passing, tuned_passing, closest, costly, est_costly = [], [], None, [], []
                defaults_ok = defaults_missing = 0
                runs = [
                    t
                    for t in tasks.values()
                    if t["kind"] == "method"
                    and t.get("mode") in ("default", "tuned")
                    and (t.get("dataset"), t.get("seed"), t.get("scope")) == (dataset, seed, scope)
                ]
                for r in sorted(runs, key=lambda t: (t["method"], t["mode"] != "default")):
                    default = r["mode"] == "default"
                    label = r["method"] if default else f"{r['method']} (tuned)"
                    if r.get("status") != "ok":
                        defaults_missing += default
                        why = r.get("status", "?")
                        if why == "error":
                            errors.append(f"- `{label}` on {dataset} / {scope}: {r.get('error')}")
                        rows.append([label, "", why, *["–"] * (len(header) - 3)])
                        continue
                    defaults_ok += default
                    m = {**r["metrics"], **comparison(r["metrics"], ref)}
                    cost = r["seconds"] / ref_seconds
                    params = "defaults" if default else _params_text(r.get("params"))
                    cell = strong_cell(r["id"])
                    rows.append(
                        _row(label, params, m, r["seconds"], cost, cell, r.get("estimated_cost"))
                    )
                    if default and cost > DEFAULT_COST:
                        costly.append(f"`{r['method']}` {cost:.2f}×")
                    estimate = r.get("estimated_cost")
                    if default and estimate is not None and estimate > DEFAULT_COST:
                        est_costly.append(f"`{r['method']}` {estimate:.2f}×")
                    d_ta = 100 * abs(m["TA"] - ref["TA"])
                    verdict = strong.get(r["id"], {})
                    passed = None
                    if verdict and "error" not in verdict:
                        passed = bool(verdict.get("passed"))
                    cheap_and_accurate = cost <= STRONG_COST and d_ta <= TA_POINTS
                    if passed and cheap_and_accurate:
                        (passing if default else tuned_passing).append(
                            f"`{label}` ({cost:.3f}×, ΔTA {d_ta:.2f})"
                        )
                    elif default and cheap_and_accurate and closest is None:
                        how = "n/a" if passed is None else "failed"
                        closest = f"`{label}` ({cost:.3f}×, ΔTA {d_ta:.2f}, strong test {how})"
                where = f"{dataset} / {SCOPE_TITLES[scope]}"
                if strong_note:
                    met = None
                    text = f"- {where}: **undetermined** (strong test not available)"
                    if closest:
                        text += f"; cheap and accurate enough: {closest}"
                elif passing:
                    met = True
                    text = f"- {where}: **met** by {', '.join(passing)}"
                else:
                    met = False
                    text = f"- {where}: **not met**" + (f"; closest: {closest}" if closest else "")
                if tuned_passing:
                    text += f" (tuned, not the goal's defaults: {', '.join(tuned_passing)})"
                goals["strong"].append({"where": where, "met": met, "text": text})
                goals["default_cost"].append(
                    {
                        "where": where,
                        "met": not costly and not defaults_missing if defaults_ok else None,
                        "costly": costly,
                        "estimated_costly": est_costly,
                        "ran": defaults_ok,
                        "missing": defaults_missing,
                    }
                )
                lines.append(markdown_table(header, rows))
                sections += [*lines, ""]
    score_md = _render_score(tasks, meta, forget_score)
    goal_lines = ["### Goals (issue #13)", ""]
    goal_lines.append(
        f"With the service defaults, at least one approximate method passes the strong "
        f"test at ≤ {STRONG_COST} × the retrain's cost with TA within {TA_POINTS:g} point "
        "of the retrain's, per scope:"
    )
    goal_lines += [g["text"] for g in goals["strong"] if "text" in g]
    goal_lines += [
        f"- {g['where']}: **no table** (its retrain did not finish)"
        for g in goals["strong"]
        if "text" not in g
    ]
    goal_lines.append("")
    goal_lines.append(f"No default parameter set costs more than {DEFAULT_COST} × a retrain:")
    for g in goals["default_cost"]:
        missing = f" ({g['missing']} default run(s) did not finish)" if g["missing"] else ""
        if g["estimated_costly"]:
            missing += f"; the registry's estimate is above too: {', '.join(g['estimated_costly'])}"
        if g["costly"]:
            goal_lines.append(f"- {g['where']}: **not met** — {', '.join(g['costly'])}{missing}")
        elif g["met"]:
            goal_lines.append(f"- {g['where']}: **met** ({g['ran']} methods ran)")
        else:
            goal_lines.append(f"- {g['where']}: **incomplete** — none above 0.5×{missing}")
    machine = meta.get("machine", "?")
    parts = [
        "## Classifier unlearning at GPU scale (one command, processes sharing one GPU)",
        "",
        f"Command: `{meta.get('command', 'bash bench/gpu.sh')}` — scale `{meta.get('scale')}`, "
        f"{meta.get('workers')} worker processes × {meta.get('threads')} torch thread(s) on "
        f"{machine}; wall time {end.get('seconds', float('nan')) / 60:.1f} min "
        f"(deadline {meta.get('deadline', 0):.0f} s). Tasks: "
        + ", ".join(f"{n} {s}" for s, n in sorted(status_counts.items()))
        + ".",
        "",
        f"Recipe: {meta.get('arch')} width {meta.get('width')}, SGD lr {meta.get('lr')} momentum "
        f"0.9 wd 5e-4, cosine, {meta.get('epochs')} epochs, batch {meta.get('batch_size')}, "
        f"seed(s) {list(range(meta.get('seeds', 1)))}. Datasets: "
        + ", ".join(meta.get("datasets", []))
        + (f" ({meta['datasets_note']})" if meta.get("datasets_note") else "")
        + ". Times are absolute wall-clock seconds"
        + (" on this GPU" if meta.get("device", "").startswith("cuda") else "")
        + ", measured while the other workers ran beside (so cost ratios carry that noise); "
        "cost / retrain = the method's time / the retrain's training time on the same "
        "scope, in the same run; est. cost = the registry's own estimate (sample passes "
        "over a retrain's, noise-free). `params: "
        "defaults` = the method registry's own defaults (what a deletion request uses); "
        "`(tuned)` = the winner of this bench's small search on a pseudo-forget set "
        "(`bench/gpu.py`, `grid()`). Strong test: "
        + (
            f"not available — {strong_note}."
            if strong_note
            else f"offline LiRA (`workers.engine.lira`) with {meta.get('shadows')} shadow "
            "models per dataset; cell = verdict (attack TPR at 1 % FPR, %)."
        ),
        *(["", util] if util else []),
        "",
        *goal_lines,
        "",
        *sections,
        score_md,
    ]
    if errors:
        parts += ["", "Failed runs:", "", *errors]
    return "\n".join(parts).rstrip() + "\n", goals


def _params_text(params: dict[str, Any] | None) -> str:
    if not params:
        return "defaults"
    return ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


def _row(
    label: str, params: str, m: dict[str, Any], seconds, cost, strong: str, estimate=None
) -> list[str]:
    return [
        label,
        params,
        _fmt(m.get("UA"), 2, 100),
        _fmt(m.get("RA"), 2, 100),
        _fmt(m.get("TA"), 2, 100),
        _fmt(m.get("MIA"), 2, 100),
        _fmt(m.get("avg_gap"), 2, 100),
        _fmt(seconds, 1),
        _fmt(cost, 3),
        _fmt(estimate, 3),
        strong,
    ]


def _render_score(tasks: dict[str, dict[str, Any]], meta: dict[str, Any], forget_score) -> str:
    """NeurIPS-2023 score table from the fs_* records (N per side, as many as finished)."""
    sides: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in tasks.values():
        if not r["kind"].startswith("fs_") or r["kind"] == "fs_original" or r.get("status") != "ok":
            continue
        side = ("reference", "") if r.get("side") == "reference" else (
            ("retrain (another N)", "") if r["kind"] == "fs_retrain" else (r["method"], r["mode"])
        )
        for key in ("confidences", "RA", "TA", "seconds"):
            sides[side][key] += r[key]
    ref = sides.get(("reference", ""))
    if (meta.get("fs_models") or 0) < 3:
        return ""  # not asked for
    if not ref or len(ref["RA"]) < 3:
        return "### NeurIPS-2023 score\n\nNot enough reference models finished.\n"
    ref_conf = np.asarray(ref["confidences"])
    rows = []
    for (name, mode), side in sorted(sides.items()):
        if name == "reference" or len(side["RA"]) < 3:
            continue
        conf = np.asarray(side["confidences"])
        ra_ratio = float(np.mean(side["RA"]) / np.mean(ref["RA"]))
        ta_ratio = float(np.mean(side["TA"]) / np.mean(ref["TA"]))
        n = min(len(conf), len(ref_conf))
        score = forget_score(conf[:n], ref_conf[:n], ra_ratio, ta_ratio)
        rows.append(
            (
                score.score,
                [
                    f"`{name}`" + (f" ({mode})" if mode else ""),
                    str(n),
                    f"{score.score:.4f}",
                    f"{score.forget_quality:.4f}",
                    f"{ra_ratio:.4f}",
                    f"{ta_ratio:.4f}",
                    f"{np.mean(side['seconds']) * 1000:.0f}",
                ],
            )
        )
    rows.sort(key=lambda x: -x[0])
    header = ["method", "N", "score", "forget quality F", "RA ratio", "TA ratio", "ms per run"]
    return "\n".join(
        [
            "### NeurIPS-2023 score (N models per side)",
            "",
            f"`bench/forget_score.py`'s setting (MLP on scikit-learn digits, fixed 10 % forget "
            f"set), run as tasks of this command on CPU workers: N = {meta.get('fs_models')} "
            "unlearned vs N retrained models; `(default)` = the service's defaults, `(tuned)` = "
            "`FS_TUNED`. Rows with fewer models finished than asked show their own N.",
            "",
            markdown_table(header, [r for _, r in rows]),
            "",
        ]
    )


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="gpu")
    parser.add_argument("--tiny", action="store_true", help="same as --scale tiny")
    parser.add_argument("--arch", help="network name (e.g. a ResNet-50 once the registry has one)")
    parser.add_argument("--width", type=int, help="network width")
    parser.add_argument(
        "--out", type=Path, help="results folder (default: $OUT, else test-output/bench-gpu)"
    )
    parser.add_argument(
        "--work", type=Path, help="scratch folder for weights (default /tmp/expunge-bench-gpu)"
    )
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cuda, cpu")
    parser.add_argument("--workers", type=int, help="worker processes (default: the scale's)")
    parser.add_argument("--threads", type=int, help="torch threads per worker")
    parser.add_argument("--deadline", type=float, help="seconds; kill what runs and report")
    parser.add_argument("--epochs", type=int, help="override the recipe's epochs")
    parser.add_argument("--datasets", help="comma list (default: the scale's, those present)")
    parser.add_argument("--methods", help="comma list of methods (default: every one)")
    parser.add_argument(
        "--scopes", default=",".join(SCOPES), help="comma list of random, subject, classwise"
    )
    parser.add_argument("--shadows", type=int, help="LiRA shadow models per dataset (0 = off)")
    parser.add_argument("--fs-models", type=int, help="N per side of the NeurIPS score (0 = off)")
    parser.add_argument("--no-tune", action="store_true", help="skip the tuning search")
    parser.add_argument("--report", type=Path, metavar="DIR", help="only render DIR/raw.jsonl")
    parser.add_argument("--markdown", type=Path, default=BENCHMARKS_MD, help="page to update")
    parser.add_argument("--write", action="store_true", help="write the section into --markdown")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.report:
        records = load_records(args.report)
        markdown, goals = render(records, utilisation(args.report / "gpu-util.csv"))
        if os.access(args.report, os.W_OK):  # the device tool's copies are read-only
            (args.report / "section.md").write_text(markdown)
        print(markdown)
        if args.write:
            write_section(SECTION, markdown, args.markdown)
            print(f"wrote section {SECTION!r} of {args.markdown}")
        return {"markdown": markdown, "goals": goals, "records": records}
    return run(args)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", flush=True)

    if args.tiny:
        args.scale = "tiny"
    scale = SCALES[args.scale]
    overrides = {
        k: v
        for k, v in {
            "workers": args.workers,
            "threads": args.threads,
            "deadline": args.deadline,
            "epochs": args.epochs,
            "shadows": args.shadows,
            "fs_models": args.fs_models,
            "arch": args.arch,
            "width": args.width,
        }.items()
        if v is not None
    }
    scale = replace(scale, **overrides)
    from contracts.classifier import ArchitectureConfig

    try:  # fail here, not in every task, on a network the registry does not have
        ArchitectureConfig(name=scale.arch, num_classes=10, input_size=(28, 28), width=scale.width)
    except ValueError as exc:
        raise SystemExit(f"--arch {scale.arch} / --width {scale.width}: {exc}") from exc
    cuda = torch.cuda.is_available()
    log(f"torch {torch.__version__}, torch.cuda.is_available() = {cuda}")
    device = ("cuda" if cuda else "cpu") if args.device == "auto" else args.device
    if device.startswith("cuda") and not cuda:
        raise SystemExit("--device cuda asked for, but torch.cuda.is_available() is False")
    out = args.out or Path(os.environ.get("OUT") or ROOT / "test-output" / "bench-gpu")
    out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(os.environ.get("EXPUNGE_GPU_WORK", "/tmp/expunge-bench-gpu"))
    work.mkdir(parents=True, exist_ok=True)

    fashion_dir = os.environ.get("EXPUNGE_FASHION_MNIST_DIR")
    from core.datasets import builtin

    if fashion_dir:
        builtin.FASHION_MNIST_DIR = Path(fashion_dir)  # a carried copy of Debian's files
    wanted = args.datasets.split(",") if args.datasets else list(scale.datasets)
    datasets, notes = [], []
    for name in wanted:
        source = builtin.BUILTIN_SOURCES.get(name)
        reason = source.unavailable_reason() if source else f"no built-in dataset {name!r}"
        if reason:
            notes.append(f"{name} skipped: {reason}")
            log(f"{name}: skipped ({reason})")
        else:
            datasets.append(name)
    if not datasets:
        raise SystemExit("no dataset available: " + "; ".join(notes))
    strong_reason = lira_available() if scale.shadows >= 2 else "--shadows below 2"
    strong = strong_reason is None
    log("strong test: " + ("workers.engine.lira" if strong else f"not available ({strong_reason})"))
    methods = method_rows(args.methods.split(",") if args.methods else None)
    wanted_methods = args.methods.split(",") if args.methods else None
    score_methods = fs_methods(wanted_methods) if scale.fs_models >= 3 else []
    data_info = prepare_data(scale, datasets, work, log)
    chosen = args.scopes.split(",")
    if set(chosen) - set(SCOPES):
        raise SystemExit(f"unknown scopes {sorted(set(chosen) - set(SCOPES))}; known: {SCOPES}")
    scopes = {name: [s for s in SCOPES if s in chosen] for name in datasets}
    tasks = build_tasks(scale, datasets, methods, scopes, strong, not args.no_tune, score_methods)
    command = "bash bench/gpu.sh"
    if args.scale != "gpu":
        command = f"python -m bench.gpu --scale {args.scale}"
    extra = [a for a in sys.argv[1:] if "bench" in sys.argv[0]]
    if extra and args.scale == "gpu":
        command += " " + " ".join(a for a in extra if not a.startswith("--out"))
    gpu_name = torch.cuda.get_device_name(0) if device.startswith("cuda") else None
    machine = (
        f"{'GPU ' + gpu_name if gpu_name else 'CPU only'}, {os.cpu_count()} CPU cores, torch "
        f"{torch.__version__}, Python {platform.python_version()}"
    )
    recorder = Recorder(out / "raw.jsonl")
    meta = {
        "type": "meta",
        "command": command,
        "scale": scale.name,
        "machine": machine,
        "device": device,
        "cuda_available": cuda,
        "datasets": datasets,
        "datasets_note": "; ".join(notes),
        "data": data_info,
        "scopes": scopes,
        "methods": methods,
        "strong_unavailable": strong_reason,
        "tasks": len(tasks),
        **{k: v for k, v in asdict(scale).items() if k not in ("name", "datasets")},
    }
    recorder.write(meta)
    log(f"{len(tasks)} tasks, {scale.workers} workers × {scale.threads} thread(s), {device}")
    results = schedule(tasks, scale, work, device, recorder, strong, started, log)
    if strong:
        try:
            verdicts = strong_verdicts(results, tasks, work, scale)
        except Exception as exc:  # an API change in lira must not cost the whole report
            log(f"strong test failed: {type(exc).__name__}: {exc}")
            recorder.write({"type": "strong_error", "error": f"{type(exc).__name__}: {exc}"})
            verdicts = {}
        for task_id, verdict in verdicts.items():
            recorder.write({"type": "strong", "id": task_id, "verdict": verdict})
    elapsed = time.perf_counter() - started
    recorder.write({"type": "end", "seconds": elapsed})
    recorder.close()
    try:
        markdown, goals = render(recorder.records, utilisation(out / "gpu-util.csv"))
    except Exception:
        log(f"the report failed; {out / 'raw.jsonl'} is complete: fix, then --report {out}")
        raise
    (out / "section.md").write_text(markdown)
    log(f"wrote {out / 'raw.jsonl'} and {out / 'section.md'} ({elapsed:.0f}s)")
    if args.write:
        write_section(SECTION, markdown, args.markdown)
        log(f"wrote section {SECTION!r} of {args.markdown}")
    return {"markdown": markdown, "goals": goals, "records": recorder.records, "out": out}


if __name__ == "__main__":
    main()
