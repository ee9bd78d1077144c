"""Language-model unlearning benchmark: OpenUnlearning-style tables on ``fictitious-people``.

    python -m bench.llm                          # --scale cpu: SmolLM2-135M, small slice
    python -m bench.llm --scale tiny             # seconds: a tiny llama (the smoke test's)
    python -m bench.llm --scale gpu              # SmolLM2, 200 people, 1/5/10 %, on CUDA
    python -m bench.llm --people 12 --percents 10 --methods npo,simnpo   # a smaller run
    python -m bench.llm --methods simnpo,simnpo@stop \
        --method-params '{"simnpo@stop": {"stop_at_holdout": true}}'  # two settings side by side

In one process on one machine: fine-tune the base model (SmolLM2-135M-Instruct, or a tiny
llama) on the trained people's question/answer pairs and the world facts; then, per forget
split, re-fine-tune the base without the forget people (the exact ``retrain`` reference,
timed side by side) and run every registered approximate language-model method from the
fine-tune. Every model is judged by ``workers.engine.lm.evaluation`` on the same records:
forget quality (KS p-value of its forget-set truth ratios against the reference's), model
utility (TOFU's harmonic mean over retain people and world facts), forget-set probability
and ROUGE-L, the four membership attacks (forget people vs held-out people), extraction
strength, fluency and the relearning attack. Time is reported as a ratio to the
re-fine-tune's; absolute seconds only mean something from ``--scale gpu``'s machine.
Results go to a JSON file and to this benchmark's sections of ``docs/BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from bench.report import BENCHMARKS_MD, ROOT, machine_line, markdown_table, measure, write_section
from contracts.causal_lm import LMArchitecture, LMTrainParams
from core.datasets.fictitious import (
    FACT_KINDS,
    FictitiousWorld,
    QAPair,
    forget_split,
    generate_people,
)
from workers.engine.lm.data import TextRecord
from workers.engine.lm.evaluation import (
    EvalSettings,
    EvalSuite,
    LMEvaluation,
    QAItem,
    evaluate_lm,
)
from workers.engine.lm.models import build_base, convert_smollm2, load_folder
from workers.engine.lm.training import finetune
from workers.engine.lm.unlearning import LM_METHODS, get_lm_method
from workers.jobs.lm import calibration_half

SECTION = "llm"
DEFAULT_CACHE = Path(
    os.environ.get("EXPUNGE_BENCH_CACHE", Path.home() / ".cache" / "expunge-bench")
)

# The goal, at forget 5 %: the best approximate method reaches forget quality
# >= 0.1 with model utility >= 0.95 x the fine-tune's, at <= 0.2 x the re-fine-tune's cost.
GOALS = {"forget_quality": 0.1, "utility_ratio": 0.95, "cost_ratio": 0.2, "percent": 5}


@dataclass(frozen=True)
class Scale:
    """One size of the benchmark: the world slice, the fine-tune and what is evaluated."""

    base: str  # "smollm2-135m" or "tiny-llama"
    people: int
    held_out: int
    facts: int  # QA pairs per person: the first ``facts`` of FACT_KINDS
    world_facts: int
    biographies: bool
    percents: tuple[float, ...]
    epochs: int
    lr: float
    batch_size: int
    max_length: int
    method_lr: float  # every approximate method's lr (RMU: its own factor below)
    eval_retain: int  # retain QA items evaluated (seeded subset)
    eval_holdout: int  # held-out QA items (the membership attacks' non-members)
    max_new_tokens: int
    relearn_steps: int
    device: str = "cpu"
    threads: int = 1


SCALES: dict[str, Scale] = {
    "tiny": Scale(
        base="tiny-llama", people=10, held_out=4, facts=3, world_facts=6, biographies=False,
        percents=(10,), epochs=8, lr=3e-3, batch_size=8, max_length=96, method_lr=1e-3,
        eval_retain=8, eval_holdout=12, max_new_tokens=8, relearn_steps=2,
    ),
    "cpu": Scale(
        base="smollm2-135m", people=20, held_out=6, facts=3, world_facts=8, biographies=False,
        percents=(10,), epochs=3, lr=1e-4, batch_size=8, max_length=64, method_lr=5e-5,
        eval_retain=8, eval_holdout=16, max_new_tokens=20, relearn_steps=0,
    ),
    # The goal's forget 5 % on a CPU: 40 people x 10 QA, so the forget set (2 people) has
    # 20 questions, enough for the KS test of forget quality to tell a model that knows
    # them from one that never saw them; four methods, about 45 min on one thread.
    "cpu-fq": Scale(
        base="smollm2-135m", people=40, held_out=10, facts=10, world_facts=40,
        biographies=False, percents=(5,), epochs=4, lr=1e-4, batch_size=8, max_length=64,
        method_lr=5e-5, eval_retain=40, eval_holdout=40, max_new_tokens=20, relearn_steps=0,
    ),
    "gpu": Scale(
        base="smollm2-135m", people=200, held_out=40, facts=20, world_facts=260,
        biographies=True, percents=(1, 5, 10), epochs=5, lr=5e-5, batch_size=32,
        max_length=256, method_lr=2e-5, eval_retain=400, eval_holdout=800,
        max_new_tokens=48, relearn_steps=20, device="cuda", threads=4,
    ),
}  # fmt: skip

# Per-method lr factors on ``Scale.method_lr`` (RMU's steering loss works at its own scale).
METHOD_LR_FACTOR: dict[str, float] = {"rmu": 1.0}


# --------------------------------------------------------------------------- the world


@dataclass
class Slice:
    """The records of one benchmark world: what is trained on and what is evaluated."""

    world: FictitiousWorld
    train: list[TextRecord]
    items: dict[str, QAItem]  # QA items by sample id (trained people, held-out, world)
    held_out: list[QAItem]  # the membership attacks' non-members
    world_facts: list[QAItem]
    # Every other held-out person's QA: what a ``stop_at_holdout`` method stops by, never
    # judged on (as a deletion run sets them aside).
    calibration: list[QAItem] = field(default_factory=list)


def _item(qa: QAPair) -> QAItem:
    record = TextRecord(qa.qa_id, qa.subject_id, question=qa.question, answer=qa.answer)
    return QAItem(record, qa.paraphrased_answer, tuple(qa.perturbed_answers))


def build_slice(scale: Scale, seed: int) -> Slice:
    """The fictitious world cut to the scale: ``facts`` QA per person, optional biographies;
    the held-out people split in two, every other one (by id) kept for calibration."""
    world = generate_people(seed, n_people=scale.people, n_held_out=scale.held_out)
    kinds = set(FACT_KINDS[: scale.facts])
    items: dict[str, QAItem] = {}
    train: list[TextRecord] = []
    for person in world.people:
        for qa in person.qa:
            if qa.kind in kinds:
                items[qa.qa_id] = _item(qa)
                train.append(items[qa.qa_id].record)
        if scale.biographies:
            train.append(
                TextRecord(f"{person.person_id}-bio", person.person_id, text=person.biography)
            )
    world_facts = [_item(qa) for qa in world.world_facts[: scale.world_facts]]
    train += [item.record for item in world_facts]
    # The split a deletion run makes (``workers.jobs.lm.calibration_half``).
    reserved = calibration_half(p.person_id for p in world.held_out)

    def qa_of(calibration: bool) -> list[QAItem]:
        return [
            _item(qa)
            for p in world.held_out
            if (p.person_id in reserved) == calibration
            for qa in p.qa
            if qa.kind in kinds
        ]

    return Slice(world, train, items, qa_of(False), world_facts, qa_of(True))


def _sample(items: Sequence[Any], k: int, seed: int) -> list[Any]:
    return list(items) if len(items) <= k else random.Random(seed).sample(list(items), k)


def suite_for(sl: Slice, forget_ids: set[str], scale: Scale, seed: int) -> EvalSuite:
    """Forget people's QA (all), a seeded sample of retain QA and of held-out QA, the world
    facts; verbatim = the forget people's biographies when trained on, else their QA."""
    forget = [i for i in sl.items.values() if i.record.subject_id in forget_ids]
    retain = [i for i in sl.items.values() if i.record.subject_id not in forget_ids]
    verbatim = [r for r in sl.train if r.text is not None and r.subject_id in forget_ids]
    return EvalSuite(
        forget=forget,
        retain=_sample(retain, scale.eval_retain, seed),
        holdout=_sample(sl.held_out, scale.eval_holdout, seed + 1),
        world=sl.world_facts,
        verbatim=verbatim,
    )


# --------------------------------------------------------------------------- models


class Bases:
    """Fresh copies of the base model: every fine-tune and re-fine-tune starts from it."""

    def __init__(self, scale: Scale, cache: Path) -> None:
        if scale.base == "tiny-llama":
            self.model, self.tokenizer = build_base(LMArchitecture(base="tiny-llama"))
        else:
            folder = convert_smollm2(cache / "smollm2-135m")
            self.model, self.tokenizer = load_folder(folder)
        self.model.eval()

    def fresh(self) -> Any:
        return copy.deepcopy(self.model)


@dataclass
class Row:
    """One model of a table: how it was made, what it cost, how it scores."""

    name: str
    seconds: float
    peak_mib: float
    metrics: dict[str, float]
    note: str = ""
    error: str | None = None
    extra: dict[str, float] = field(default_factory=dict)


def method_of(entry: str) -> str:
    """The registered method of a ``--methods`` entry: ``simnpo@stop`` is ``simnpo`` run
    with the ``simnpo@stop`` overrides, so two settings of one method share a fine-tune and
    a re-fine-tune and are timed side by side."""
    return entry.split("@", 1)[0]


def method_params(entry: str, scale: Scale, overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The bench's params for a method: the scale's lr, batch and length, then the
    method's overrides, then (for ``name@variant``) the variant's."""
    name = method_of(entry)
    mine = {**overrides.get(name, {}), **overrides.get(entry, {})}
    if LM_METHODS[name].exact:
        return mine
    params: dict[str, Any] = {
        "device": scale.device,
        "lr": scale.method_lr * METHOD_LR_FACTOR.get(name, 1.0),
        "batch_size": scale.batch_size,
        "max_length": scale.max_length,
        "seed": 0,
    }
    fields = LM_METHODS[name].Params.model_fields
    params = {k: v for k, v in params.items() if k in fields}
    return {**params, **mine}


def run_percent(
    percent: float,
    sl: Slice,
    bases: Bases,
    original: Any,
    finetune_row: Row,
    recipe: LMTrainParams,
    scale: Scale,
    methods: Sequence[str],
    overrides: dict[str, dict[str, Any]],
    settings: EvalSettings,
    seed: int,
    log: Callable[[str], None],
    progress: Callable[[dict[str, Any]], None] = lambda table: None,
) -> dict[str, Any]:
    """One table: the fine-tune, the re-fine-tune and every method at one forget split.

    ``progress`` gets the table after every row, so a long run that is stopped keeps
    what it measured."""
    from workers.engine.lm.unlearning.base import LMUnlearnData

    forget_ids = set(forget_split(sl.world, percent))
    forget = [r for r in sl.train if r.subject_id in forget_ids]
    retain = [r for r in sl.train if r.subject_id not in forget_ids]
    calibration = [item.record for item in sl.calibration] or None
    data = LMUnlearnData(forget=forget, retain=retain, calibration=calibration)
    suite = suite_for(sl, forget_ids, scale, seed)
    tok = bases.tokenizer
    log(
        f"forget {percent} %: {len(forget_ids)} people, {len(forget)} forget / "
        f"{len(retain)} retain records"
    )

    def judge(model: Any, reference: Sequence[float] | None) -> LMEvaluation:
        return evaluate_lm(model, tok, suite, settings, reference_truth_ratios=reference)

    base = bases.fresh()  # copied outside the timing, as the methods' models are
    retrain = measure(
        lambda base=base: get_lm_method("retrain").run(
            base, tok, data, method_params("retrain", scale, overrides), train_params=recipe
        ),
        scale.device,
    )
    del base
    ref_eval = judge(retrain.value.model, None)
    ref_ratios = ref_eval.forget_truth_ratios
    ref_metrics = dict(ref_eval.metrics)
    ref_metrics["forget_quality"] = 1.0  # the reference against itself, by definition
    rows = [
        replace(finetune_row, metrics=judge(original, ref_ratios).metrics),
        Row("retrain", retrain.seconds, retrain.peak_mib, ref_metrics, note="exact"),
    ]
    del retrain
    table = {
        "percent": percent,
        "forget_people": sorted(forget_ids),
        "counts": {
            "forget_records": len(forget),
            "retain_records": len(retain),
            "eval_forget": len(suite.forget),
            "eval_retain": len(suite.retain),
            "eval_holdout": len(suite.holdout),
            "eval_world": len(suite.world),
        },
        "rows": rows,
        "methods": list(methods),
    }
    progress(table)
    log(f"  fine-tune: {brief(rows[0])}")
    log(f"  retrain: {rows[1].seconds:.0f}s, {brief(rows[1])}")
    for name in methods:
        params = method_params(name, scale, overrides)
        method = get_lm_method(method_of(name))
        model = copy.deepcopy(original)
        try:
            done = measure(
                lambda method=method, params=params, model=model: method.run(
                    model, tok, data, params, train_params=recipe
                ),
                scale.device,
            )
        except Exception as exc:  # one method failing must not lose the others' rows
            log(f"  {name}: FAILED {type(exc).__name__}: {exc}")
            traceback.print_exc()
            rows.append(Row(name, 0.0, 0.0, {}, error=f"{type(exc).__name__}: {exc}"))
            progress(table)
            continue
        result = done.value
        row = Row(
            name,
            done.seconds,
            done.peak_mib,
            judge(result.model, ref_ratios).metrics,
            note=", ".join(f"{k}={v}" for k, v in params.items() if k not in ("device", "seed")),
            extra={k: float(v) for k, v in result.metrics.items() if isinstance(v, int | float)},
        )
        rows.append(row)
        log(f"  {name}: {row.seconds:.0f}s, {brief(row)}")
        progress(table)
        del result, model, done
    return table


def brief(row: Row) -> str:
    m = row.metrics
    if not m:
        return f"failed: {row.error}"
    return (
        f"FQ {m.get('forget_quality', float('nan')):.3g}, MU {m['model_utility']:.3f}, "
        f"forget prob {m['forget_prob']:.3f}, MIA loss {m['mia_loss']:.2f}"
    )


# --------------------------------------------------------------------------- report

INTRO = """## Language models (TOFU-style, `fictitious-people`)

Produced by `python -m bench.llm` (one subsection per scale below; each run rewrites only
its own). In one process on one machine: the base model is fine-tuned on the trained
people of the seeded `fictitious-people` world (`core/datasets/fictitious.py`: invented
people, so no base model knows the facts) and its world facts; per forget split, the exact
`retrain` re-fine-tunes the base on the retain records with the same recipe, and every
approximate method of `workers/engine/lm/unlearning/` runs from the fine-tune. All are
judged by `workers/engine/lm/evaluation.py` on identical records:

* **FQ** (forget quality): KS-test p-value between the model's and the re-fine-tune's
  truth ratios on the forget people's questions (TOFU); high = indistinguishable from
  exact unlearning (the re-fine-tune itself: 1 by definition). With a few forget
  questions the test has little power: read it with the counts given.
* **MU** (model utility): harmonic mean of answer probability, ROUGE-L recall and truth
  ratio (max(0, 1 − R)) on retain people and on world facts (world probability
  normalised over the true and perturbed answers), as TOFU defines it without its real
  authors set. **MU ×ft**: over the fine-tune's.
* **P forget / ROUGE forget**: length-normalised answer probability and ROUGE-L recall of
  the greedy answer on the forget questions (should fall to the re-fine-tune's level).
* **MIA** columns: ROC AUC of LOSS, zlib, Min-K % (k = 40 %) and Min-K %++ separating the
  forget people's answers from held-out people's (≈ 0.5 for the re-fine-tune; the
  fine-tune's is the memorisation signal to remove; far below 0.5 = over-unlearned).
* **ES**: extraction strength on the forget answers (or biographies, when trained on).
* **Relearn P**: answer probability on half of the forget questions after a few
  fine-tuning steps on the other half (`relearn_attack`), to compare with the
  re-fine-tune's under the same attack.
* **Fluency NLL**: mean token NLL of the world-fact answers (lower = more fluent).
* **Time ×rt**: wall time over the re-fine-tune's, measured side by side; **peak MiB**:
  peak memory the call added (`bench/report.py`: RSS delta on CPU, a lower bound;
  `max_memory_allocated` on CUDA).
"""


def _f(value: float | None, digits: int = 2) -> str:
    if value is None or value != value:  # None or NaN
        return "–"
    if 0 < abs(value) < 10 ** (-digits):
        return f"{value:.0e}"
    return f"{value:.{digits}f}"


def render_table(table: dict[str, Any]) -> str:
    rows: list[Row] = table["rows"]
    finetune_row, reference = rows[0], rows[1]
    mu0 = finetune_row.metrics.get("model_utility")
    header = [
        "model", "FQ", "MU", "MU ×ft", "P forget", "ROUGE forget",
        "MIA loss", "MIA zlib", "MIA Min-K", "MIA Min-K++", "ES", "relearn P",
        "fluency NLL", "time s", "time ×rt", "peak MiB",
    ]  # fmt: skip
    body = []
    for row in rows:
        m = row.metrics
        if not m:
            body.append([f"`{row.name}`", f"failed: {row.error}"] + ["–"] * (len(header) - 2))
            continue
        name = "fine-tune" if row is finetune_row else f"`{row.name}`"
        body.append(
            [
                name,
                "ref" if row is reference else _f(m.get("forget_quality"), 3),
                _f(m["model_utility"], 3),
                _f(m["model_utility"] / mu0, 2) if mu0 else "–",
                _f(m["forget_prob"], 3),
                _f(m["forget_rouge"], 2),
                _f(m["mia_loss"]),
                _f(m["mia_zlib"]),
                _f(m["mia_min_k"]),
                _f(m["mia_min_k_pp"]),
                _f(m["extraction_strength"]),
                _f(m.get("relearn_prob_after"), 3),
                _f(m["fluency_nll"]),
                f"{row.seconds:.1f}",
                "–" if row is finetune_row else _f(row.seconds / reference.seconds, 3),
                f"{row.peak_mib:.0f}",
            ]
        )
    c = table["counts"]
    missing = [m for m in table.get("methods", []) if m not in {r.name for r in rows}]
    lines = [
        f"#### Forget {table['percent']:g} % ({len(table['forget_people'])} of the people: "
        f"{c['forget_records']} forget records, {c['retain_records']} retain records)",
        "",
        *(
            [f"**Partial run**: stopped before {', '.join(f'`{m}`' for m in missing)}.", ""]
            if missing
            else []
        ),
        f"Evaluated on {c['eval_forget']} forget questions, {c['eval_retain']} retain "
        f"questions, {c['eval_holdout']} held-out questions and {c['eval_world']} world facts.",
        "",
        markdown_table(header, body),
        "",
        *goal_lines(table),
    ]
    return "\n".join(lines)


def goal_lines(table: dict[str, Any]) -> list[str]:
    """The issue's goal checked on this table, said plainly, method by method."""
    rows: list[Row] = table["rows"]
    finetune_row, reference = rows[0], rows[1]
    mu0 = finetune_row.metrics.get("model_utility") or 0.0
    fq0 = finetune_row.metrics.get("forget_quality")
    lines = [
        f"Goal (issue 15, stated at forget {GOALS['percent']} %): FQ ≥ {GOALS['forget_quality']}, "
        f"MU ≥ {GOALS['utility_ratio']} × the fine-tune's, time ≤ {GOALS['cost_ratio']} × "
        "the re-fine-tune's.",
        "",
    ]
    measurable = fq0 is None or fq0 < GOALS["forget_quality"]
    if not measurable:
        lines.append(
            f"* **FQ not measurable here**: the untouched fine-tune already has FQ {_f(fq0, 3)} "
            "against the re-fine-tune (too few forget questions for the KS test to separate "
            "them), so FQ is left out of the checks below: they say MU and cost only."
        )
    met_all = []
    for row in rows[2:]:
        m = row.metrics
        if not m:
            lines.append(f"* `{row.name}`: failed ({row.error})")
            continue
        checks = {
            "MU": mu0 > 0 and m["model_utility"] >= GOALS["utility_ratio"] * mu0,
            "cost": row.seconds <= GOALS["cost_ratio"] * reference.seconds,
        }
        if measurable:
            checks = {"FQ": m.get("forget_quality", 0.0) >= GOALS["forget_quality"], **checks}
        missed = [k for k, v in checks.items() if not v]
        if not missed:
            met_all.append(row.name)
        lines.append(
            f"* `{row.name}`: "
            + (f"meets {', '.join(checks)}" if not missed else f"**misses {', '.join(missed)}**")
        )
    lines.append(
        f"* Meeting {'all three' if measurable else 'MU and cost'} here: "
        + (", ".join(f"`{n}`" for n in met_all) if met_all else "no method")
        + "."
    )
    return lines


def render(out: dict[str, Any], command: str) -> str:
    scale: Scale = out["scale"]
    recipe: LMTrainParams = out["recipe"]
    ft: Row = out["finetune"]
    lines = [
        f"### Scale `{out['scale_name']}`",
        "",
        f"Command: `{command}`. Machine: {out['machine']}. One seed ({out['seed']}). "
        f"Total wall time {out['wall_seconds'] / 60:.1f} min.",
        "",
        f"Base `{scale.base}`; world: {scale.people} trained people × {scale.facts} QA "
        f"({', '.join(FACT_KINDS[: scale.facts])})"
        + (" + a biography each" if scale.biographies else "")
        + f", {scale.world_facts} world facts, {scale.held_out} held-out people (every other "
        "one set aside to calibrate `stop_at_holdout`, the rest judged on). Fine-tune: "
        f"{out['counts']['train']} records, {recipe.epochs} epochs, lr {recipe.lr}, batch "
        f"{recipe.batch_size}, full weights, {ft.seconds:.0f} s. Methods: lr "
        f"{scale.method_lr}, epochs from the default budget (0.2 × the fine-tune's passes); "
        + (
            f"relearning attack {scale.relearn_steps} steps at the fine-tune's lr."
            if scale.relearn_steps
            else "no relearning attack at this scale (`--relearn-steps N` adds it)."
        ),
        "",
    ]
    for table in out["tables"]:
        lines += [render_table(table), ""]
    notes = sorted({f"`{r.name}` {r.note}" for t in out["tables"] for r in t["rows"][2:] if r.note})
    if notes:
        lines.append("Method settings: " + "; ".join(notes) + ".")
    return "\n".join(lines)


def to_json(out: dict[str, Any]) -> dict[str, Any]:
    return {
        "scale": out["scale_name"],
        "command": out.get("command"),
        "scale_config": asdict(out["scale"]),
        "recipe": out["recipe"].model_dump(mode="json"),
        "seed": out["seed"],
        "machine": out["machine"],
        "wall_seconds": out["wall_seconds"],
        "counts": out["counts"],
        "tables": [
            {**{k: v for k, v in t.items() if k != "rows"}, "rows": [asdict(r) for r in t["rows"]]}
            for t in out["tables"]
        ],
    }


def from_json(data: dict[str, Any]) -> dict[str, Any]:
    """The run ``to_json`` saved, ready for ``render`` again (``--report``)."""
    config = dict(data["scale_config"])
    config["percents"] = tuple(config["percents"])
    tables = [{**t, "rows": [Row(**r) for r in t["rows"]]} for t in data["tables"]]
    if not tables:
        raise SystemExit("the results file holds no table yet")
    return {
        "scale_name": data["scale"],
        "command": data.get("command") or f"python -m bench.llm --scale {data['scale']}",
        "scale": Scale(**config),
        "recipe": LMTrainParams.model_validate(data["recipe"]),
        "seed": data["seed"],
        "machine": data["machine"],
        "wall_seconds": data["wall_seconds"],
        "counts": data["counts"],
        "finetune": tables[0]["rows"][0],
        "tables": tables,
    }


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    parser.add_argument("--people", type=int, help="trained people (default: the scale's)")
    parser.add_argument("--facts", type=int, help="QA pairs per person (default: the scale's)")
    parser.add_argument("--percents", help="comma-separated forget percents (default: scale's)")
    parser.add_argument("--epochs", type=int, help="fine-tune epochs (default: the scale's)")
    parser.add_argument("--relearn-steps", type=int, help="0 turns the relearning attack off")
    parser.add_argument("--threads", type=int, help="torch threads (default: the scale's)")
    parser.add_argument("--device", help="torch device (default: the scale's)")
    parser.add_argument(
        "--methods",
        default="",
        help="comma-separated approximate methods (default: all); name@variant runs the "
        "method again with --method-params' name@variant settings",
    )
    parser.add_argument(
        "--method-params",
        default="{}",
        help='JSON {"method": {param: value}} over the bench\'s settings; a key '
        '"method@variant" also adds to that entry of --methods',
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="converted SmolLM2")
    parser.add_argument(
        "--json", type=Path, help="results file (default bench/results/llm-SCALE.json)"
    )
    parser.add_argument("--markdown", type=Path, default=BENCHMARKS_MD)
    parser.add_argument("--no-write", action="store_true", help="no JSON, no markdown")
    parser.add_argument(
        "--report", type=Path, metavar="JSON", help="only render a saved results file"
    )
    return parser.parse_args(argv)


def _command(args: argparse.Namespace, argv: Sequence[str] | None) -> str:
    given = list(sys.argv[1:] if argv is None else argv)
    drop = {"--markdown", "--json", "--cache"}
    shown: list[str] = []
    skip = False
    for token in given:
        if skip:
            skip = False
            continue
        if token in drop:
            skip = True
            continue
        shown.append(token)
    return " ".join(["python -m bench.llm", *shown])


def scale_from(args: argparse.Namespace) -> Scale:
    scale = SCALES[args.scale]
    changes: dict[str, Any] = {}
    for key in ("people", "facts", "epochs", "threads", "device"):
        if getattr(args, key) is not None:
            changes[key] = getattr(args, key)
    if args.relearn_steps is not None:
        changes["relearn_steps"] = args.relearn_steps
    if args.percents:
        changes["percents"] = tuple(float(p) for p in args.percents.split(",") if p.strip())
    return replace(scale, **changes)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.report is not None:  # e.g. a GPU machine's results, rendered here
        out = from_json(json.loads(args.report.read_text()))
        out["markdown"] = render(out, out["command"])
        write_section(SECTION, INTRO, args.markdown)
        write_section(f"{SECTION}-{out['scale_name']}", out["markdown"], args.markdown)
        return out
    scale = scale_from(args)
    torch.set_num_threads(scale.threads)
    overrides = json.loads(args.method_params)
    approximate = sorted(n for n, cls in LM_METHODS.items() if not cls.exact)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] or approximate
    unknown = [m for m in methods if method_of(m) not in approximate]
    if unknown:
        raise SystemExit(f"unknown or exact methods: {unknown}; approximate: {approximate}")
    if len(set(methods)) < len(methods):
        raise SystemExit(f"--methods names an entry twice: {methods}")
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:7.1f}s] {message}", flush=True)

    sl = build_slice(scale, args.seed)
    bases = Bases(scale, args.cache)
    recipe = LMTrainParams(
        epochs=scale.epochs,
        lr=scale.lr,
        batch_size=scale.batch_size,
        max_length=scale.max_length,
        seed=args.seed,
        checkpoint_every_steps=0,
        device=scale.device,
    )
    settings = EvalSettings(
        max_length=scale.max_length,
        batch_size=scale.batch_size,
        max_new_tokens=scale.max_new_tokens,
        relearn_steps=scale.relearn_steps,
        relearn_lr=scale.lr,
        relearn_batch_size=scale.batch_size,
        seed=args.seed,
    )
    log(f"{scale.base}: fine-tuning on {len(sl.train)} records, {scale.epochs} epochs")
    trained = measure(
        lambda: finetune(bases.fresh(), bases.tokenizer, sl.train, recipe), scale.device
    )
    original = trained.value.model
    log(f"fine-tune: {trained.seconds:.0f}s, {trained.value.metrics}")
    finetune_row = Row("fine-tune", trained.seconds, trained.peak_mib, {})
    tables: list[dict[str, Any]] = []
    command = _command(args, argv)

    def report(current: dict[str, Any] | None = None) -> dict[str, Any]:
        out = {
            "scale_name": args.scale,
            "scale": scale,
            "recipe": recipe,
            "seed": args.seed,
            "machine": machine_line(scale.device),
            "wall_seconds": time.monotonic() - started,
            "counts": {"train": len(sl.train)},
            "finetune": finetune_row,
            "command": command,
            "tables": tables + ([current] if current is not None else []),
        }
        out["markdown"] = render(out, command)
        if not args.no_write:
            path = args.json or ROOT / "bench" / "results" / f"llm-{args.scale}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(to_json(out), indent=1) + "\n")
            write_section(SECTION, INTRO, args.markdown)
            write_section(f"{SECTION}-{args.scale}", out["markdown"], args.markdown)
        return out

    for pct in scale.percents:
        tables.append(
            run_percent(
                pct, sl, bases, original, finetune_row, recipe, scale, methods, overrides,
                settings, args.seed, log, progress=report,
            )
        )  # fmt: skip
    out = report()
    if not args.no_write:
        log(f"wrote {args.json or 'bench/results'} and {args.markdown}")
    log("done")
    return out


if __name__ == "__main__":
    main()
