"""bench.llm_deletion with ``--tiny``: a real ``expunge up --no-demo`` in a temp home, the
fictitious-people slice imported, a tiny llama fine-tuned over REST, a subject request
filed, approved and run to completion, and its certificate verified offline by the CLI
with the service stopped. No timing asserts: the shared machine's load varies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import llm_deletion

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

LM_CHECKS = {"forget_prob", "forget_rouge", "mia_auc", "model_utility"}


def test_a_tiny_llm_deletion_completes_and_verifies_offline(tmp_path: Path) -> None:
    page, results = tmp_path / "BENCHMARKS.md", tmp_path / "llm_deletion.json"
    out = llm_deletion.main(
        ["--tiny", "--person", "1", "--workdir", str(tmp_path), "--json", str(results),
         "--markdown", str(page)]
    )  # fmt: skip
    assert out.error is None and not out.partial
    # --person 1: the request names the slice's second trained person (by id), and the
    # section says who and how to run it again
    person = out.facts["person"]
    assert person.startswith("person-") and out.setup["person"] == 1

    request = out.facts["request"]
    assert request["status"] == "completed", request
    assert request["blast_radius_samples"] == 21  # the person's 20 QA pairs and biography
    first, last = request["attempts"][0], request["attempts"][-1]
    # The policy's approximate method runs first and is judged on the causal_lm checks,
    # each beside the untouched fine-tune's figure; where it fails, the exact re-fine-tune.
    assert first["method"] == "simnpo" and not first["exact"]
    assert {c["check"].split(" ")[0] for c in first["checks"]} == LM_CHECKS
    assert all(c["original_passed"] is not None for c in first["checks"])
    # The attempt's own numbers: the stop rule's checks, and the method's share of its job
    # (the rest is loading, the two evaluations and publishing)
    own = first["method_metrics"]
    assert own["stop_checks"] >= 1 and 0 < own["unlearn_seconds"] < first["wall_seconds"]
    if not first["passed"]:
        assert last["method"] == "retrain" and last["exact"] and len(request["attempts"]) == 2

    certificate = out.facts["certificate"]
    assert certificate["outcome"] == "erased"
    assert certificate["evidence_level"] == ("exact" if last["exact"] else last["level"])
    assert certificate["attempts"] == len(request["attempts"])
    assert certificate["base_never_saw_the_data"] is True

    verify = out.facts["offline_verify"]
    assert verify["verified"] and verify["exit_code"] == 0, verify["output"]
    assert "OK signature valid" in verify["output"]
    assert any("proven in the signed log" in line for line in verify["output"])
    assert not any(line.startswith("FAILED") for line in verify["output"])

    answers = out.facts["answers"]
    assert answers["questions"] == 20 and 0 <= answers["changed"] <= 20
    assert out.phases["fine-tune"] > 0 and out.phases["deletion (approve to completed)"] > 0

    saved = json.loads(results.read_text())
    assert saved["partial"] is False and saved["facts"]["request"]["status"] == "completed"
    text = page.read_text()
    assert "<!-- llm-deletion:start -->" in text and "<!-- llm-deletion:end -->" in text
    assert "| deletion (approve to completed) |" in text and "exit 0" in text
    assert "stop checks, " in text and "of the job's" in text
    assert f"deleting `{person}`" in text and "--people 2 --threads 1 --person 1 " in text
    # The temporary home is removed once the run is over.
    assert not list(tmp_path.glob("expunge-llm-deletion-*"))


def test_seed_and_person_reach_the_fine_tune_and_the_command_line() -> None:
    """--seed seeds the fine-tune (lm_sweep shares the option) and --person picks the
    request's person; the saved setup's command line says both, so a run can be redone."""
    args = llm_deletion.parse_args(["--seed", "2", "--person", "1"])
    setup = llm_deletion.setup_of(args)
    assert setup.train["seed"] == 2
    saved = {"architecture": setup.architecture, "train": setup.train, "people": 2,
             "person": 1, "threads": 1}  # fmt: skip
    command = llm_deletion.command_of(saved)
    assert "--person 1" in command and "--seed 2" in command
    assert llm_deletion.parse_args(command.split()[3:]).seed == 2
    with pytest.raises(SystemExit):
        llm_deletion.parse_args(["--person", "2"])  # the slice has two people: 0 and 1
