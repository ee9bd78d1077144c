"""A person's deletion request on a fine-tuned SmolLM2, end to end on the embedded default.

    python -m bench.llm_deletion                 # SmolLM2-135M-Instruct, LoRA, 2 people
    python -m bench.llm_deletion --tiny          # a tiny llama: the test's run, about a minute
    python -m bench.llm_deletion --people 3 --epochs 4 --no-write

Issue 15's goal: "the deletion workflow on a SmolLM2 fine-tune completes on the embedded
default in minutes on this CPU, and its certificate verifies offline". Everything goes
through the service as a user would drive it, over HTTP with ``core.client``:

1. ``expunge up --no-demo`` in a fresh temporary home (SQLite, local files, the local
   broker and its one worker, ``--threads`` torch threads);
2. import the built-in ``fictitious-people`` world, a slice of ``--people`` people (the
   source's ``limit``; its held-out people and world facts come with it);
3. register a ``causal_lm`` model on ``smollm2-135m`` (``--tiny``: ``tiny-llama``) and
   fine-tune it (LoRA for SmolLM2) on the train split;
4. generate the first person's answers to their own questions;
5. file a subject deletion request for that person, approve it with a second (compliance)
   key, and wait until it completes: the family policy's approximate method, verified on
   the causal_lm checks, then the exact re-fine-tune from the base where it fails;
6. generate the same answers from the version that replaced the fine-tune;
7. download the certificate, its audit anchor, the public key and an audit export, stop
   the service, and verify the certificate offline with ``expunge certificate verify``.

Reported: each phase's wall time, every attempt's job time and checks (value, threshold,
pass, and whether the untouched original already passed: such a check is not
informative), the certificate's outcome and evidence level, whether the person's answers
changed, and the deletion's time as a share of the fine-tune's (same run, same machine).
Results go to a JSON file and to the ``llm-deletion`` section of ``docs/BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import BENCHMARKS_MD, ROOT, markdown_table, write_section
from bench.services import free_port, wait_for
from cli import _die_with_parent as die_with_parent
from core.client import ExpungeClient

SECTION = "llm-deletion"
# A bootstrap admin key of the documented shape, for this bench's throw-away homes only.
ADMIN_KEY = "exp_benchllmdel01_" + "b" * 42
# Records per person in the fictitious-people world (20 QA pairs and a biography): the
# source's ``limit`` keeps whole people, so ``people x 21`` keeps exactly ``people``.
RECORDS_PER_PERSON = 21
CLOSED = ("completed", "failed", "rejected", "cancelled")


class Stopped(Exception):
    """The run was stopped from outside (SIGTERM, e.g. ``timeout``) before it finished."""


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise Stopped(f"stopped by signal {signum} before the end")


@dataclass(frozen=True)
class Setup:
    """What is fine-tuned and how: the model's architecture and the train params."""

    label: str
    architecture: dict[str, Any]
    train: dict[str, Any]
    max_new_tokens: int


def setup_of(args: argparse.Namespace) -> Setup:
    """SmolLM2 with a LoRA adapter (the CPU-sized recipe), or the tests' tiny llama."""
    if args.tiny:
        return Setup(
            label="tiny-llama (hidden 64, 2 layers), full fine-tune",
            architecture={"base": "tiny-llama", "hidden_size": 64, "num_hidden_layers": 2,
                          "seed": 3},
            train={"epochs": args.epochs or 8, "lr": args.lr or 3e-3, "batch_size": 8,
                   "max_length": 96, "checkpoint_every_steps": 0, "seed": args.seed},
            max_new_tokens=16,
        )  # fmt: skip
    return Setup(
        label=f"SmolLM2-135M-Instruct, LoRA r {args.lora_r} (alpha {2 * args.lora_r})",
        architecture={"base": "smollm2-135m"},
        train={"epochs": args.epochs or 8, "lr": args.lr or 3e-3,
               "batch_size": args.batch_size, "max_length": args.max_length,
               "lora": {"r": args.lora_r, "alpha": 2 * args.lora_r},
               "checkpoint_every_steps": 0, "seed": args.seed},
        max_new_tokens=32,
    )  # fmt: skip


# --------------------------------------------------------------------------- the service


@dataclass
class Service:
    """A running ``expunge up`` and a client holding its bootstrap admin key."""

    proc: subprocess.Popen[bytes]
    client: ExpungeClient
    home: Path
    log: Path

    def tail(self, chars: int = 3000) -> str:
        """The last lines of the server's and the worker's logs (for a failure)."""
        parts = []
        for path in (self.log, self.home / "worker.log"):
            if path.exists():
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop ``expunge up``, then whatever of its process group is left: a worker told
        to stop in the middle of a job finishes that job first (Celery's warm shutdown),
        which for a SmolLM2 fine-tune is minutes of CPU nobody will read."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.client.close()


@contextmanager
def embedded(workdir: Path, threads: int) -> Iterator[Service]:
    """``expunge up --no-demo`` with its own home under ``workdir`` (nothing shared with
    another instance), started the way the embedded-default tests start it."""
    home, port, log = workdir / "home", free_port(), workdir / "up.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EXPUNGE_")},
        "EXPUNGE_HOME": str(home),
        "EXPUNGE_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY,
        "EXPUNGE_TORCH_THREADS": str(threads),
        "OMP_NUM_THREADS": str(threads),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "up", "--no-demo", "--port", str(port)],
            preexec_fn=die_with_parent,
            start_new_session=True,  # its own process group, with the worker it starts
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    service = Service(proc, ExpungeClient(f"http://127.0.0.1:{port}", ADMIN_KEY), home, log)

    def healthy() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"expunge up exited early:\n{service.tail()}")
        try:
            return service.client.health()["status"] == "ok"
        except Exception:
            return False

    try:
        wait_for(healthy, 180, lambda: f"expunge up:\n{service.tail()}", interval=0.5)
        yield service
    finally:
        service.stop()


# --------------------------------------------------------------------------- the run


@dataclass
class Run:
    """What one run measured; written as JSON after every phase (a stopped run keeps
    what it had, marked ``partial``)."""

    setup: dict[str, Any]
    phases: dict[str, float] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    partial: bool = True
    error: str | None = None

    def timed(self, name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        value = fn()
        self.phases[name] = time.perf_counter() - start
        print(f"  {name:28s} {self.phases[name]:8.1f} s", flush=True)
        return value


def _wait_job(service: Service, job_id: str, timeout: float) -> dict[str, Any]:
    job = service.client.wait_for_job(job_id, timeout=timeout, poll=0.5)
    if job["state"] != "succeeded":
        raise RuntimeError(f"job {job_id} {job['state']}: {job.get('error')}\n{service.tail()}")
    return job


def _generate(
    service: Service, version_id: str, prompts: list[str], setup: Setup, timeout: float
) -> tuple[list[str], dict[str, Any]]:
    """Greedy answers of a version to ``prompts`` (in the fine-tune's question template)."""
    job = service.client.submit_job(
        {
            "kind": "generate",
            "model_version_id": version_id,
            "params": {"prompts": prompts, "max_new_tokens": setup.max_new_tokens},
        }
    )
    done = _wait_job(service, job["id"], timeout)
    completions = done["metrics"]["completions"]
    return [c["completion"] for c in completions], done


# What an attempt's record keeps of its job's own numbers: what the method cost and where
# a stop rule stopped it (``method_metrics``), and the method's share of the job's time
# (``unlearn_seconds``; the rest is loading, both evaluations and publishing).
METHOD_FACTS = (
    "steps",
    "stop_checks",
    "estimated_passes",
    "estimated_cost_fraction",
    "stopped_after_epochs",
    "stop_last_epoch_kept",
    "stop_forget_prob",
    "stop_calibration_prob",
)


def _attempt(
    attempt: dict[str, Any],
    answers: dict[str, list[Any]],
    method: dict[str, dict[str, float]] | None = None,
) -> dict[str, Any]:
    """What the report keeps of one attempt of the item's verdict."""
    return {
        "method": attempt.get("method"),
        "exact": attempt.get("exact"),
        "passed": attempt.get("passed"),
        "level": attempt.get("level"),
        "reason": attempt.get("reason"),
        "wall_seconds": attempt.get("wall_seconds"),
        "checks": _checks(attempt),
        "answers_seen_open": len(answers.get(attempt.get("job_id") or "", [])),
        "method_metrics": (method or {}).get(attempt.get("job_id") or "", {}),
    }


def _method_line(attempt: dict[str, Any]) -> str:
    """One attempt's own numbers: its steps and where its stop rule stopped it."""
    m = attempt["method_metrics"]
    text = f"`{attempt['method']}`: {_fmt(m.get('steps'))} optimizer steps"
    if "estimated_cost_fraction" in m:
        text += f" (budget {_fmt(m['estimated_cost_fraction'])} × a re-fine-tune's passes)"
    if "stop_checks" in m:
        text += f" and {_fmt(m['stop_checks'])} stop checks"
    if "unlearn_seconds" in m:
        text += (
            f", {_fmt(m['unlearn_seconds'])} s of the job's {_fmt(attempt['wall_seconds'])} s "
            "(the rest: loading, evaluating the original and the result, publishing)"
        )
    if "stopped_after_epochs" in m:
        after = m["stopped_after_epochs"]
        where = (
            "never reached the calibration people's level"
            if after < 0
            else f"stopped after {_fmt(after)} epoch(s), {_fmt(m.get('stop_last_epoch_kept'))} "
            "of the last one's update kept"
        )
        text += (
            f"; stop rule: {where} (forget answers' probability "
            f"{_fmt(m.get('stop_forget_prob'))} against the calibration people's "
            f"{_fmt(m.get('stop_calibration_prob'))})"
        )
    return text + "."


def _follow_request(
    service: Service,
    request_id: str,
    timeout: float,
    record: dict[str, Any],
    save: Callable[[], None],
) -> dict[str, Any]:
    """Poll the request until it closes and return its final state. Meanwhile ``record``
    gets, as they change, what it was doing (``timeline``: status, method, attempt,
    seconds since approval) and the attempts recorded so far, each with how many of the
    person's before/after answers its job showed while the request was open (they are
    redacted once it closes); saved each time, so a run stopped half-way says where the
    request stood."""
    start = time.perf_counter()
    answers: dict[str, list[dict[str, Any]]] = {}
    method: dict[str, dict[str, float]] = {}
    timeline: list[dict[str, Any]] = record.setdefault("timeline", [])
    deadline = start + timeout
    while True:
        request = service.client.deletion_request(request_id)
        items = request.get("items") or [{}]
        state = {
            "status": request["status"],
            "method": items[0].get("method"),
            "attempt": items[0].get("attempt"),
            "item_state": items[0].get("state"),
        }
        changed = not timeline or {k: timeline[-1][k] for k in state} != state
        if changed:
            timeline.append({**state, "seconds": round(time.perf_counter() - start, 1)})
        attempts = ((items[0].get("verdict") or {}).get("attempts")) or []
        # Once closed, the answers are redacted (kept as they were seen while open); the
        # method's own numbers are not.
        for attempt in attempts:
            job_id = attempt.get("job_id")
            if job_id and job_id not in method:
                metrics = service.client.job(job_id)["metrics"]
                if isinstance(metrics.get("forget_answers"), list):
                    answers[job_id] = metrics["forget_answers"]
                own = metrics.get("method_metrics") or {}
                method[job_id] = {k: own[k] for k in METHOD_FACTS if k in own}
                if "unlearn_seconds" in metrics:
                    method[job_id]["unlearn_seconds"] = metrics["unlearn_seconds"]
        if changed or len(attempts) != len(record.get("attempts") or []):
            record["attempts"] = [_attempt(a, answers, method) for a in attempts]
            save()
        if request["status"] in CLOSED:
            return request
        if time.perf_counter() > deadline:
            raise TimeoutError(
                f"request {request_id} still {request['status']} after {timeout}s\n{service.tail()}"
            )
        time.sleep(1.0)


def _compare_answers(
    questions: list[str], truths: list[str], before: list[str], after: list[str]
) -> dict[str, Any]:
    """How the person's answers moved: how many changed, and how much of each trained
    answer they still recall (ROUGE-L recall, the evaluation's own measure)."""
    from workers.engine.lm.evaluation import rouge_l_recall  # torch: only when needed

    recall_before = [rouge_l_recall(b, t) for b, t in zip(before, truths, strict=True)]
    recall_after = [rouge_l_recall(a, t) for a, t in zip(after, truths, strict=True)]
    n = len(questions)
    return {
        "questions": n,
        "changed": sum(b.strip() != a.strip() for b, a in zip(before, after, strict=True)),
        "rouge_recall_before": sum(recall_before) / n,
        "rouge_recall_after": sum(recall_after) / n,
        "exact_before": sum(b.strip() == t.strip() for b, t in zip(before, truths, strict=True)),
        "exact_after": sum(a.strip() == t.strip() for a, t in zip(after, truths, strict=True)),
        "examples": [
            {"question": q, "trained": t, "before": b, "after": a}
            for q, t, b, a in list(zip(questions, truths, before, after, strict=True))[:3]
        ],
    }


def _checks(attempt: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "check": c["check"],
            "kind": c["kind"],
            "value": c.get("value"),
            "threshold": c.get("threshold"),
            "passed": c.get("passed"),
            "original_value": c.get("original_value"),
            "original_passed": c.get("original_passed"),
            "informative": c.get("informative"),
        }
        for c in attempt.get("checks") or []
    ]


def _cli() -> list[str]:
    """The ``expunge`` command of this interpreter's environment."""
    script = Path(sys.executable).parent / "expunge"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli"]


def verify_offline(folder: Path) -> dict[str, Any]:
    """``expunge certificate verify`` on the saved files only (the service is stopped):
    the signature, the anchor's inclusion proof and the audit steps against the export."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPUNGE_")}
    command = [
        *_cli(), "certificate", "verify", str(folder / "certificate.json"),
        "--public-key", str(folder / "expunge.pem"),
        "--anchor", str(folder / "anchor.json"),
        "--audit-export", str(folder / "audit.jsonl"),
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    return {
        "exit_code": done.returncode,
        "verified": done.returncode == 0,
        "seconds": time.perf_counter() - start,
        "output": (done.stdout + done.stderr).strip().splitlines(),
    }


def run(args: argparse.Namespace, out: Run, save: Callable[[], None]) -> None:
    """One deletion, start to finish, filling ``out`` phase by phase."""
    setup = setup_of(args)
    workdir = Path(tempfile.mkdtemp(prefix="expunge-llm-deletion-", dir=args.workdir))
    evidence = workdir / "offline"
    evidence.mkdir()
    tag = uuid.uuid4().hex[:6]
    try:
        with ExitStack() as stack:
            svc = out.timed(
                "start the service",
                lambda: stack.enter_context(embedded(workdir, args.threads)),
            )
            client = svc.client
            dataset = out.timed(
                "import the dataset",
                lambda: client.create_dataset(
                    f"people-{tag}", "fictitious-people", limit=args.people * RECORDS_PER_PERSON
                ),
            )
            out.facts["dataset"] = {
                "samples": dataset.get("num_samples"),
                "split_counts": dataset.get("split_counts"),
            }
            model = out.timed(
                "register the model",
                lambda: client.post(
                    "/models",
                    {"name": f"lm-{tag}", "family": "causal_lm",
                     "architecture": setup.architecture},
                ),
            )  # fmt: skip
            job = client.train(model["id"], dataset["id"], setup.train)
            trained = out.timed("fine-tune", lambda: _wait_job(svc, job["id"], args.timeout))
            logs = json.dumps(client.job_logs(job["id"]))
            out.facts["finetune"] = {
                "job_wall_seconds": trained.get("wall_seconds"),
                "peak_memory_mb": trained.get("peak_memory_mb"),
                "converted_smollm2": "converting the SmolLM2 GGUF" in logs,
                "train_loss": trained["metrics"].get("train_loss"),
            }
            version_id = trained["result_version_id"]
            save()

            train_samples = client.samples(dataset["id"], split="train", limit=1000)["data"]
            trained = sorted({s["subject_id"] for s in train_samples if s["subject_id"]})
            person = out.facts["person"] = trained[args.person]
            own = client.samples(dataset["id"], subject_id=person, limit=100)["data"]
            qa = [s for s in own if s.get("question") and s.get("answer")]
            questions = [s["question"] for s in qa]
            truths = [s["answer"] for s in qa]
            before, _ = out.timed(
                "generate (before)",
                lambda: _generate(svc, version_id, questions, setup, args.timeout),
            )
            save()

            filed = out.timed(
                "file the request",
                lambda: client.file_deletion_request({"subject_ids": [person]}, "gdpr_art17"),
            )
            out.facts["request"] = {
                "blast_radius_versions": len(filed["blast_radius"]["versions"]),
                "blast_radius_samples": filed["blast_radius"]["samples"],
                "plan": [
                    {k: p.get(k) for k in ("method", "fallback", "exact")}
                    for p in filed.get("plan") or []
                ],
            }
            approver_key = client.create_key(f"approver-{tag}", "compliance")["key"]
            with ExpungeClient(client.base_url, approver_key) as approver:
                out.timed("approve", lambda: approver.approve_deletion_request(filed["id"]))
            done = out.timed(
                "deletion (approve to completed)",
                lambda: _follow_request(svc, filed["id"], args.timeout, out.facts["request"], save),
            )
            (item,) = done["items"]
            out.facts["request"].update(
                status=done["status"], method=item.get("method"), exact=item.get("exact")
            )
            save()
            if done["status"] != "completed":
                raise RuntimeError(f"the request ended {done['status']}:\n{svc.tail()}")

            new_version = item["result_version_id"]
            after, _ = out.timed(
                "generate (after)",
                lambda: _generate(svc, new_version, questions, setup, args.timeout),
            )
            out.facts["answers"] = _compare_answers(questions, truths, before, after)

            def download() -> dict[str, Any]:
                cert = client.certificate(filed["id"])
                (evidence / "certificate.json").write_text(json.dumps(cert))
                anchor = client.get(f"/audit/certificates/{filed['id']}/anchor")
                (evidence / "anchor.json").write_text(json.dumps(anchor))
                (evidence / "expunge.pem").write_text(client.public_key())
                client.post("/audit/checkpoints")
                with client.http.stream("GET", "/audit/export") as response:
                    response.raise_for_status()
                    with (evidence / "audit.jsonl").open("wb") as fh:
                        for chunk in response.iter_bytes():
                            fh.write(chunk)
                return cert

            cert = out.timed("download the certificate", download)
            (entry,) = cert["models"]
            out.facts["certificate"] = {
                "outcome": cert["outcome"],
                "evidence_level": entry.get("evidence_level"),
                "evidence": entry.get("evidence"),
                "method": entry.get("method"),
                "exact": entry.get("exact"),
                "fallback_used": entry.get("fallback_used"),
                "attempts": len(entry.get("attempts") or []),
                "base_never_saw_the_data": (entry.get("lineage") or {}).get(
                    "base_never_saw_the_data"
                ),
                "audit_steps": len(cert.get("audit_steps") or []),
            }
            save()
        # The service is stopped: what follows uses the downloaded files only.
        out.facts["offline_verify"] = verify_offline(evidence)
        out.phases["verify offline"] = out.facts["offline_verify"]["seconds"]
        out.partial = False
    finally:
        if args.keep:
            print(f"kept {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------- report


def _machine() -> str:
    return f"{os.cpu_count()} CPU cores ({platform.machine()}), Python {platform.python_version()}"


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return str(value)


def _original(check: dict[str, Any]) -> str:
    """The untouched fine-tune's figure on a check, and whether it already passed it (a
    forgetting check the original passes certifies nothing: not informative)."""
    if check["original_passed"] is None:
        return f"{_fmt(check['original_value'])} (not measured): not informative"
    said = "passed" if check["original_passed"] else "failed"
    note = ": not informative" if check["kind"] == "forgetting" and not check["informative"] else ""
    return f"{_fmt(check['original_value'])} ({said}){note}"


def command_of(setup: dict[str, Any]) -> str:
    """The command line that reproduces a run, from its saved setup."""
    train = setup["train"]
    words = ["python -m bench.llm_deletion"]
    if setup["architecture"].get("base") == "tiny-llama":
        words.append("--tiny")
    words += [f"--people {setup['people']}", f"--threads {setup['threads']}"]
    if setup.get("person"):
        words.append(f"--person {setup['person']}")
    words += [f"--epochs {train['epochs']}", f"--lr {train['lr']:g}"]
    if train.get("seed"):
        words.append(f"--seed {train['seed']}")
    if train.get("lora"):
        words += [f"--lora-r {train['lora']['r']}", f"--batch-size {train['batch_size']}",
                  f"--max-length {train['max_length']}"]  # fmt: skip
    return " ".join(words)


def _who(setup: dict[str, Any], facts: dict[str, Any]) -> str:
    """Which trained person the request named: the slice's first by id unless --person."""
    index = int(setup.get("person") or 0)
    who = f"`{facts['person']}`, " if facts.get("person") else ""
    return f"{who}trained person {index + 1} of {setup['people']} by id"


def render(out: Run) -> str:
    """The markdown section, from what a run saved: the setup, the phases, the attempts'
    checks, the answers and the certificate, or what stopped the run."""
    setup, phases, facts = out.setup, out.phases, out.facts
    seed = setup["train"].get("seed")
    title = (
        setup["label"]
        + (f", deleting `{facts['person']}`" if facts.get("person") else "")
        + (f", fine-tune seed {seed}" if seed else "")
    )
    lines = [
        f"### {title}",
        "",
        f"`{command_of(setup)}` — {setup.get('machine') or _machine()}, "
        f"{setup['threads']} torch thread(s) in the embedded worker; seconds on a small "
        "machine move with whatever else runs on it, so read the ratios more than the "
        "seconds.",
        "",
        f"`expunge up --no-demo` in a fresh home (SQLite, local files, one local worker); "
        f"the built-in `fictitious-people` world cut to {setup['people']} people (the source's "
        f"`limit`; their held-out people and the world facts come with it); a `causal_lm` "
        f"model on {setup['label']}, fine-tuned with `{json.dumps(setup['train'])}`; one "
        f"person's answers generated (greedy) — {_who(setup, facts)} — a subject request "
        "for that person filed, "
        "approved by a second (compliance) key and run by the family policy (`simnpo` with "
        "`stop_at_holdout`, verified on the causal_lm checks; the exact re-fine-tune where it "
        "fails); the same "
        "answers generated from the version that replaced the fine-tune; the certificate, "
        "its anchor, the public key and an audit export downloaded, the service stopped, "
        "and `expunge certificate verify --anchor --audit-export` run on the files alone.",
        "",
    ]
    if out.error or out.partial:
        why = out.error or "stopped without an error recorded"
        lines += [f"**The run did not finish** ({why}); what it measured up to then:", ""]
    finetune = phases.get("fine-tune")
    rows = [
        [name, f"{seconds:.1f}",
         f"{seconds / finetune:.2f}" if finetune and name != "fine-tune" else "–"]
        for name, seconds in phases.items()
    ]  # fmt: skip
    lines += [markdown_table(["phase", "wall s", "× fine-tune"], rows), ""]
    ft = facts.get("finetune") or {}
    if ft:
        lines += [
            f"Fine-tune job: {_fmt(ft.get('job_wall_seconds'))} s in the worker, peak "
            f"{_fmt(ft.get('peak_memory_mb'))} MB, final loss {_fmt(ft.get('train_loss'))}; "
            + (
                "the SmolLM2 GGUF was converted in this job (first use on this machine)."
                if ft.get("converted_smollm2")
                else "the converted base came from the worker's disk cache or storage."
            ),
            "",
        ]
    request = facts.get("request") or {}
    if request.get("attempts"):
        ended = (
            f"ended **{request['status']}** with `{request.get('method')}`"
            if request.get("status")
            else "still open when the run stopped"
        )
        lines += [
            f"Request: {request.get('blast_radius_samples')} samples in "
            f"{request.get('blast_radius_versions')} version; {ended}.",
            "",
        ]
        table = []
        for a in request["attempts"]:
            label = f"{a['method']} ({'exact' if a['exact'] else 'approximate'})"
            if not a["checks"]:
                # Exact runs are not judged; an approximate run without checks did not run
                # its method (the original was indistinguishable: its reason says so).
                what = "(exact: no checks decide)" if a["exact"] else f"(not run: {a['reason']})"
                table.append([label, what, "–", "–", "–", "–",
                              _fmt(a["wall_seconds"])])  # fmt: skip
            for c in a["checks"]:
                table.append(
                    [label, f"`{c['check']}`", _fmt(c["value"]), _fmt(c["threshold"]),
                     _fmt(c["passed"]), _original(c), _fmt(a["wall_seconds"])]
                )  # fmt: skip
        lines += [
            markdown_table(
                ["attempt", "check", "value", "threshold", "passed", "original", "job s"],
                table,
            ),
            "",
        ]
        own = [_method_line(a) for a in request["attempts"] if a.get("method_metrics")]
        lines += [*own, ""] if own else []
    timeline = request.get("timeline") or []
    if timeline:
        steps = [
            f"{t['seconds']:.0f} s {t['status']} ({t['method']}, attempt {t['attempt']})"
            for t in timeline
        ]
        lines += ["The request after approval: " + " → ".join(steps) + ".", ""]
    answers = facts.get("answers")
    if answers:
        lines += [
            f"The person's {answers['questions']} questions: {answers['changed']} answers "
            f"changed; ROUGE-L recall of the trained answers {answers['rouge_recall_before']:.2f} "
            f"before, {answers['rouge_recall_after']:.2f} after (exact answers "
            f"{answers['exact_before']} → {answers['exact_after']}).",
            "",
        ]
    cert = facts.get("certificate")
    verify = facts.get("offline_verify")
    if cert:
        lines += [
            f"Certificate: outcome **{cert['outcome']}**, evidence level "
            f"**{cert['evidence_level']}** ({cert['evidence']}); {cert['attempts']} attempt(s) "
            f"on record, fallback used: {_fmt(cert['fallback_used'])}, base never saw the "
            f"person: {_fmt(cert['base_never_saw_the_data'])}.",
            "",
        ]
    if verify:
        lines += [
            f"Offline verification (service stopped): exit {verify['exit_code']} — "
            + "; ".join(verify["output"]),
        ]
    return "\n".join(lines).rstrip() + "\n"


def section(runs: Sequence[Run]) -> str:
    """This benchmark's part of docs/BENCHMARKS.md: one subsection per run."""
    head = [
        "## A language-model deletion request on the embedded default (issue 15)",
        "",
        "Goal: the deletion workflow on a SmolLM2 fine-tune completes on the embedded "
        "default in minutes on this CPU, and its certificate verifies offline.",
        "",
    ]
    return "\n".join(head) + "\n" + "\n".join(render(run) for run in runs)


def add_setup_args(parser: argparse.ArgumentParser) -> None:
    """The slice and fine-tune options (``setup_of``), shared with ``bench.lm_sweep``."""
    parser.add_argument("--tiny", action="store_true", help="a tiny llama (tests)")
    parser.add_argument("--people", type=int, default=2, help="people in the slice (>= 2)")
    parser.add_argument("--epochs", type=int, default=None, help="fine-tune epochs")
    parser.add_argument("--lr", type=float, default=None, help="fine-tune learning rate")
    parser.add_argument("--lora-r", type=int, default=8, help="SmolLM2: LoRA rank")
    parser.add_argument("--batch-size", type=int, default=8, help="SmolLM2: batch size")
    parser.add_argument("--max-length", type=int, default=48, help="SmolLM2: tokens/record")
    parser.add_argument("--seed", type=int, default=0, help="the fine-tune's seed")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_setup_args(parser)
    parser.add_argument(
        "--person",
        type=int,
        default=0,
        help="which trained person the request names (0: the first by id)",
    )
    parser.add_argument("--threads", type=int, default=1, help="the worker's torch threads")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per wait")
    parser.add_argument("--workdir", type=Path, default=None, help="where the home goes")
    parser.add_argument("--keep", action="store_true", help="keep the home afterwards")
    parser.add_argument("--json", type=Path, default=None, help="results file")
    parser.add_argument("--markdown", type=Path, default=BENCHMARKS_MD, help="page to update")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--render",
        type=Path,
        nargs="+",
        default=None,
        help="only rewrite the section from these saved runs (JSON), in this order",
    )
    args = parser.parse_args(argv)
    if args.people < 2:
        parser.error("--people must be at least 2 (the verdict compares with retain people)")
    if not 0 <= args.person < args.people:
        parser.error(f"--person must be in [0, {args.people}): the slice has {args.people}")
    return args


def load(path: Path) -> Run:
    """A run as ``main`` saved it (to rebuild its section without running it again)."""
    body = json.loads(path.read_text())
    return Run(
        setup=body["setup"],
        phases=body["phases"],
        facts=body["facts"],
        partial=body["partial"],
        error=body["error"],
    )


def main(argv: Sequence[str] | None = None) -> Run:
    args = parse_args(argv)
    if args.render:
        runs = [load(path) for path in args.render]
        body = section(runs)
        print(body)
        if not args.no_write:
            write_section(SECTION, body, args.markdown)
        return runs[0]
    setup = setup_of(args)
    out = Run(
        setup={
            "label": setup.label,
            "architecture": setup.architecture,
            "train": setup.train,
            "people": args.people,
            "person": args.person,
            "threads": args.threads,
            "machine": _machine(),
        }
    )
    results = args.json or ROOT / "bench" / "results" / (
        "llm_deletion_tiny.json" if args.tiny else "llm_deletion.json"
    )

    def save() -> None:
        results.parent.mkdir(parents=True, exist_ok=True)
        body = {"setup": out.setup, "phases": out.phases, "facts": out.facts,
                "partial": out.partial, "error": out.error}  # fmt: skip
        results.write_text(json.dumps(body, indent=1, default=str) + "\n")
        if not args.no_write:
            write_section(SECTION, section([out]), args.markdown)

    print(f"llm deletion: {setup.label}, {args.people} people", flush=True)
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    started = time.perf_counter()
    try:
        run(args, out, save)
    except BaseException as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        out.error = f"{type(exc).__name__}: {first} (after {time.perf_counter() - started:.0f} s)"
        traceback.print_exc()
        save()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    save()
    print(section([out]))
    return out


if __name__ == "__main__":
    main()
