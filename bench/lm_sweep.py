"""One LM unlearning method at several settings on one fine-tune, judged by the deletion
verdict's own checks.

    python -m bench.lm_sweep --method npo '{"lr": 2.5e-5}' '{"lr": 5e-5}'
    python -m bench.lm_sweep --tiny --method npo '{"lr": 1e-3}'          # seconds (tests)
    python -m bench.lm_sweep '{"lr": 4e-5}' '{"method": "simnpo", "lr": 5e-5}'  # mixed

A deletion run tries the policy's method once, at the policy's params, and falls back to
the exact re-fine-tune when the verdict refuses it. Choosing those params needs the
verdict's question asked of several candidates side by side. This makes the fine-tune
``bench.llm_deletion`` makes (the same ``fictitious-people`` slice, base and recipe, in
process instead of through the service), forgets the same person (the first trained
subject id) with each params object, scores every result on the suite a deletion run
scores (the policy's ``lm_eval_items``), and prints ``verify_lm``'s checks against the
untouched fine-tune — first the fine-tune judged against itself, which must fail a
forgetting check for any pass to mean something — one JSON line per setting, the
method's seconds beside the evaluation's. Every other held-out person is set aside as a
calibration person, as a deletion run whose policy asks for ``stop_at_holdout`` does: a
setting with the stop rule stops by them, and every setting is judged on the others.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from bench.llm import DEFAULT_CACHE
from bench.llm_deletion import METHOD_FACTS, RECORDS_PER_PERSON, add_setup_args, setup_of
from contracts.causal_lm import LMArchitecture, LMTrainParams
from core.datasets.builtin import FICTITIOUS_PEOPLE, load_builtin
from core.deletion.policy import Thresholds, verify_lm
from workers.engine.lm.evaluation import EvalSettings, evaluate_lm
from workers.engine.lm.models import (
    build_base,
    convert_smollm2,
    from_hf_files,
    hf_files,
    load_folder,
    weights_of,
)
from workers.engine.lm.training import finetune
from workers.engine.lm.unlearning import LMUnlearnData, get_lm_method
from workers.engine.resumable import Callbacks
from workers.jobs.lm import calibration_people, calibration_records, eval_suite, text_record


def fine_tune(args: argparse.Namespace, records: list[Any]) -> tuple[Any, Any, LMTrainParams]:
    """The deletion bench's fine-tune (``llm_deletion.setup_of``), rebuilt as a stored
    version is (LoRA merged)."""
    setup = setup_of(args)
    arch = LMArchitecture.model_validate(setup.architecture)
    if arch.base == "tiny-llama":
        model, tokenizer = build_base(arch)
    else:
        model, tokenizer = load_folder(convert_smollm2(args.cache / "smollm2-135m"))
    recipe = LMTrainParams.model_validate(setup.train)
    trained = finetune(model, tokenizer, records, recipe, Callbacks()).model
    return *from_hf_files(hf_files(trained, tokenizer), weights_of(trained)), recipe


def rows_of(people: int) -> list[dict[str, Any]]:
    """The slice ``bench.llm_deletion`` imported (``limit`` = people x records per person)."""
    data = load_builtin(FICTITIOUS_PEOPLE, limit=people * RECORDS_PER_PERSON)
    return [
        {
            "sample_id": r.sample_id,
            "subject_id": r.subject_id,
            "split": r.split,
            "question": r.question,
            "answer": r.answer,
            "text": r.text,
            "paraphrased_answer": r.paraphrased_answer,
            "perturbed_answers": list(r.perturbed_answers or ()),
        }
        for r in data.records
    ]


def _line(
    method: str, params: dict[str, Any] | None, verdict: dict[str, Any], run: float, ev: float
) -> dict[str, Any]:
    """One setting's verdict, figure by figure."""
    return {
        "method": method,
        "params": params,
        "passed": verdict["passed"],
        "method_seconds": round(run, 1),
        "evaluation_seconds": round(ev, 1),
        "checks": {
            c["check"].split(" ")[0]: {
                "value": None if c["value"] is None else round(c["value"], 3),
                "threshold": None if c["threshold"] is None else round(c["threshold"], 3),
                "passed": c["passed"],
                **({"attack": c["strongest_attack"]} if c.get("strongest_attack") else {}),
            }
            for c in verdict["checks"]
        },
    }


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("params", nargs="+", help="one JSON params object per setting")
    parser.add_argument("--method", default="npo")
    add_setup_args(parser)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="converted SmolLM2")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    rows = rows_of(args.people)
    train = [r for r in rows if r["split"] == "train"]
    # The person the deletion bench forgets: the first trained subject id.
    person = sorted({r["subject_id"] for r in train if r["subject_id"]})[0]
    forget_ids = {r["sample_id"] for r in train if r["subject_id"] == person}
    t = Thresholds()
    # As a deletion run with a stop_at_holdout policy: every other held-out person is a
    # calibration person (what the stop rule stops by), the rest are the verdict's.
    reserved = calibration_people(rows)
    trained = {r["sample_id"] for r in train}
    suite = eval_suite(rows, forget_ids, trained, t.lm_eval_items, reserved)
    assert not isinstance(suite, str), suite
    data = LMUnlearnData(
        forget=[text_record(r) for r in train if r["sample_id"] in forget_ids],
        retain=[text_record(r) for r in train if r["sample_id"] not in forget_ids],
        calibration=calibration_records(rows, reserved, t.lm_eval_items) or None,
    )
    # In the dataset's order, as the fine-tune job reads it (the shuffle starts from it).
    state_model, tokenizer, recipe = fine_tune(args, [text_record(r) for r in train])
    state = {k: v.clone() for k, v in state_model.state_dict().items()}
    files = hf_files(state_model, tokenizer)
    settings = EvalSettings(max_length=recipe.max_length)
    original = evaluate_lm(state_model, tokenizer, suite, settings).metrics
    # The untouched fine-tune through the same checks: what the settings must beat (a
    # verdict that passes it would certify nothing).
    out = [_line("original", None, verify_lm(original, original, t), 0.0, 0.0)]
    print(json.dumps(out[0]), flush=True)
    for text in args.params:
        params = json.loads(text)
        method = params.pop("method", args.method)  # a setting may name another method
        model, tokenizer = from_hf_files(files, state)
        started = time.perf_counter()
        result = get_lm_method(method).run(
            model, tokenizer, data, params, Callbacks(), train_params=recipe
        )
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        metrics = evaluate_lm(result.model, tokenizer, suite, settings).metrics
        verdict = verify_lm(metrics, original, t)
        line = _line(method, params, verdict, seconds, time.perf_counter() - started)
        line["method_metrics"] = {
            k: round(v, 4) for k, v in result.metrics.items() if k in METHOD_FACTS
        }
        print(json.dumps(line), flush=True)
        out.append(line)
    return out


if __name__ == "__main__":
    main()
