"""The GPU-scale benchmark's pipeline at its tiny scale on CPU: tasks, raw lines, report.

No timing asserts: the CI machine is shared. What is checked is that every task ends in a
status, that the raw lines alone rebuild the report, that the tuning search picks one of
its candidates, and that the hard deadline still writes a report.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bench import gpu
from workers.engine.unlearning import METHODS, get_method

STATUSES = {"ok", "error", "skipped", "killed"}


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "raw.jsonl").read_text().splitlines()]


def test_tiny_run_writes_raw_lines_and_a_report_they_rebuild(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = gpu.main(
        [
            "--scale", "tiny",
            "--datasets", "mnist",
            "--scopes", "random,classwise",
            "--methods", "finetune",
            "--deadline", "400",
            "--out", str(out),
            "--work", str(tmp_path / "work"),
        ]
    )  # fmt: skip
    lines = _lines(out)
    assert lines[0]["type"] == "meta" and lines[-1]["type"] == "end"
    assert lines[0]["cuda_available"] == torch.cuda.is_available()
    tasks = {r["id"]: r for r in lines if r["type"] == "task"}
    assert len(tasks) == lines[0]["tasks"]
    assert {r["status"] for r in tasks.values()} <= STATUSES
    failed = {i: r.get("error") for i, r in tasks.items() if r["status"] != "ok"}
    assert not failed, failed
    assert all(0 <= r["started_at"] <= r["finished_at"] for r in tasks.values())
    for scope in ("random", "classwise"):
        retrain = tasks[f"retrain:mnist/s0/{scope}"]
        default = tasks[f"default:mnist/s0/{scope}/finetune"]
        assert retrain["seconds"] > 0 and default["seconds"] > 0
        for key in ("UA", "RA", "TA", "MIA"):
            assert 0.0 <= default["metrics"][key] <= 1.0
        # The tuned run used the winner of its candidates, chosen on the pseudo-forget set.
        tuned = tasks[f"tuned:mnist/s0/{scope}/finetune"]
        candidates = [c["params"] for c in tuned["tuning"]["candidates"]]
        assert tuned["params"] in candidates and tuned["params"] in gpu.grid("finetune")
        pseudo = tasks[f"tune:mnist/s0/{scope}/finetune/0"]
        if scope == "classwise":
            assert pseudo["forget_labels"] != default["forget_labels"]
    assert tasks["retrain:mnist/s0/classwise"]["metrics"]["UA"] >= 0.9
    scores = [r for r in tasks.values() if r["kind"] == "fs_method"]
    assert scores and all(len(r["confidences"]) == len(r["seeds"]) for r in scores)
    if lines[0]["strong_unavailable"] is None:
        strong = {r["id"] for r in lines if r["type"] == "strong"}
        assert "retrain:mnist/s0/random" in strong and "default:mnist/s0/random/finetune" in strong
    markdown = result["markdown"]
    assert "### Goals (issue #13)" in markdown
    assert "### mnist · small_cnn w8 · 10 % random samples" in markdown
    assert "| finetune | defaults |" in markdown and "| finetune (tuned) |" in markdown
    assert "| `finetune` (default) |" in markdown and "| `retrain (another N)` |" in markdown
    assert (out / "section.md").read_text() == markdown
    costs = result["goals"]["default_cost"]
    assert [g["ran"] for g in costs] == [1, 1]
    # The report is a function of raw.jsonl alone: re-rendering gives the same section.
    page = tmp_path / "BENCHMARKS.md"
    again = gpu.main(["--report", str(out), "--write", "--markdown", str(page)])
    assert again["markdown"] == markdown
    assert f"<!-- {gpu.SECTION}:start -->" in page.read_text()


def test_deadline_still_writes_a_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = gpu.main(
        [
            "--scale", "tiny",
            "--datasets", "mnist",
            "--scopes", "random",
            "--methods", "ssd",
            "--fs-models", "0",
            "--deadline", "0.01",
            "--out", str(out),
            "--work", str(tmp_path / "work"),
        ]
    )  # fmt: skip
    tasks = [r for r in _lines(out) if r["type"] == "task"]
    assert tasks and {r["status"] for r in tasks} <= {"skipped", "killed"}
    assert "No retrain reference" in result["markdown"]
    assert "**no table**" in result["markdown"]


def test_every_grid_candidate_is_valid_for_its_method() -> None:
    for name in METHODS:
        if name == "retrain":
            continue
        candidates = gpu.grid(name)
        assert 1 <= len(candidates) <= 3, name
        method = get_method(name)
        for params in candidates:
            method.parse_params(params)  # raises InvalidMethodParams on a stale field


def test_tuning_prefers_cheap_candidates_then_the_lower_score() -> None:
    original = {"seconds": 100.0, "TA": 0.9, "per_class_TA": {"0": 0.9, "1": 0.8}}

    def cand(seconds: float, ua: float, ta: float, auc: float = 0.5) -> dict:
        metrics = {"UA": ua, "TA": ta, "loss_auc": auc}
        return {"status": "ok", "seconds": seconds, "params": {"s": seconds}, "metrics": metrics}

    # Random scope: forget accuracy should look like test accuracy (UA 0.1 here).
    close, far, slow_but_perfect = cand(5, 0.1, 0.9), cand(6, 0.0, 0.9), cand(50, 0.1, 0.9)
    chosen = gpu.choose_tuned([far, close, slow_but_perfect], original, "random", None)
    assert chosen["params"] == {"s": 5}
    # Only slow candidates: the best of them is still chosen.
    chosen = gpu.choose_tuned([cand(50, 0.0, 0.9), cand(60, 0.1, 0.9)], original, "random", None)
    assert chosen["params"] == {"s": 60}
    # Class scope: the class must be forgotten, and a test-accuracy drop costs twice.
    forgot, kept = cand(5, 1.0, 0.8), cand(6, 0.5, 0.8)
    assert gpu.choose_tuned([kept, forgot], original, "classwise", 0)["params"] == {"s": 5}
    broke = cand(4, 1.0, 0.5)
    assert gpu.choose_tuned([broke, forgot], original, "classwise", 0)["params"] == {"s": 5}
    with pytest.raises(RuntimeError):
        gpu.choose_tuned([{"status": "error"}], original, "random", None)


def test_utilisation_summarises_nvidia_smi_samples(tmp_path: Path) -> None:
    csv = tmp_path / "gpu-util.csv"
    assert gpu.utilisation(csv) is None
    csv.write_text(
        "timestamp, utilization.gpu [%], memory.used [MiB]\n"
        "2026/12/04 20:41:00.123, 90 %, 1000 MiB\n"
        "2026/12/04 20:41:05.123, 30 %, 3000 MiB\n"
        "garbled\n"
    )
    line = gpu.utilisation(csv)
    assert line is not None
    assert "2 samples" in line and "mean 60 %" in line and "50 % of samples" in line
    assert "3000 MiB" in line
