"""Human-readable forms of a signed certificate: an HTML page and a PDF.

The canonical JSON stays the thing that is signed and verified; both forms are drawn from
one summary (``summarise``), so they never say different things. The evidence shown is
the family's own: a classifier's UA / RA / TA / MIA, a diffusion model's judge numbers, a
language model's answers to the forget people against held-out people and its lineage.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

# Evidence worth showing, per metric name, with how to print it.
_METRICS = (
    ("UA", "UA", "pct"),
    ("RA", "RA", "pct"),
    ("TA", "TA", "pct"),
    ("MIA", "MIA", "pct"),
    ("forget_rate", "forget rate", "pct"),
    ("retain_accuracy", "retained accuracy", "pct"),
    ("frechet_retain", "Fréchet (retained)", "num"),
    # causal_lm: the forget people against people never trained on, and what was kept.
    ("forget_prob", "forget answer probability", "num"),
    ("holdout_prob", "held-out answer probability", "num"),
    ("forget_rouge", "forget ROUGE-L", "num"),
    ("holdout_rouge", "held-out ROUGE-L", "num"),
    ("mia_loss", "LOSS AUC", "num"),
    ("mia_min_k_pp", "Min-K %++ AUC", "num"),
    ("model_utility", "model utility", "num"),
    ("forget_quality", "forget quality", "num"),
)


OUTCOMES = {
    "erased": "erased",
    "erased_where_known": "erased where the lineage is known (see the versions of unknown "
    "lineage below: nobody can tell whether they were trained on the data)",
    "nothing_to_delete": "nothing to delete",
}


def _fmt(value: Any, kind: str) -> str:
    if not isinstance(value, int | float):
        return "—"
    return f"{100 * value:.2f} %" if kind == "pct" else f"{value:.2f}"


def _value(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "—"


def _check_line(c: dict[str, Any]) -> str:
    """A check, and (when recorded) what the original scored on it: a forgetting check
    the original already passed is not informative."""
    line = (
        f"{'passed' if c['passed'] else 'FAILED'}: {c['check']} = {_value(c.get('value'))} "
        f"(threshold {_value(c.get('threshold'))})"
    )
    if c.get("judge"):  # a diffusion verdict: one check per (judge, sampler setting) cell
        ci = c.get("ci") or []
        bounds = f", 95 % CI {_value(ci[0])}–{_value(ci[1])}" if len(ci) == 2 else ""
        line += f" [judge {c['judge']}, {c.get('sampler') or '—'}{bounds}]"
    if "original_passed" in c:
        before = {True: "passed", False: "failed", None: "not measured"}[c["original_passed"]]
        weight = (
            "informative"
            if c.get("informative")
            else "utility check"
            if c.get("kind") == "utility"
            else "not informative"
        )
        line += f"; original {_value(c.get('original_value'))}, {before} ({weight})"
    return line


def _attempt_line(a: dict[str, Any]) -> str:
    seconds = a.get("wall_seconds")
    took = f", {seconds:.1f} s" if isinstance(seconds, int | float) else ""
    kind = "exact" if a.get("exact") else "approximate"
    result = (
        f"passed ({a.get('level')})"
        if a.get("passed")
        else f"FAILED: {a.get('reason') or 'not certified'}"
    )
    run = f"{a.get('method')} ({kind}), job {a.get('job_id')}{took}"
    return f"attempt {a.get('attempt')}: {run} — {result}"


@dataclass
class ModelRow:
    old_version: str
    old_sha256: str
    new_version: str
    new_sha256: str
    method: str
    evidence: str
    checks: list[str] = field(default_factory=list)
    level: str = ""
    level_sentence: str = ""
    original_evidence: str = ""
    attempts: list[str] = field(default_factory=list)


@dataclass
class Summary:
    request_id: str
    intro: str
    outcome: str
    scope: str
    models: list[ModelRow]
    datasets: list[str]
    unknown_lineage: list[str]
    steps: list[str]
    signature: str


def summarise(cert: dict[str, Any]) -> Summary:
    req = cert.get("request", {})
    rows = []
    for m in cert.get("models", []):
        ev = m.get("evaluation") or {}
        evidence = ", ".join(
            f"{label} {_fmt(ev[key], kind)}" for key, label, kind in _METRICS if key in ev
        )
        if isinstance(ev.get("forget_count_trained"), int):
            evidence += (
                f"{', ' if evidence else ''}measured on the {ev['forget_count_trained']} "
                "sample(s) of the scope this version was trained on"
            )
        if isinstance(m.get("lineage"), dict):  # a language model: its base, the fine-tune
            lineage, tuned = m["lineage"], m["lineage"].get("fine_tune") or {}
            evidence += (
                f"{'; ' if evidence else ''}lineage: {lineage.get('base_statement')}; "
                f"fine-tuned on {tuned.get('samples')} sample(s) of dataset "
                f"{tuned.get('dataset_id')} version {tuned.get('dataset_version')}"
            )
        before = m.get("original_evaluation") or {}
        original = ", ".join(
            f"{label} {_fmt(before[key], kind)}" for key, label, kind in _METRICS if key in before
        )
        checks = [_check_line(c) for c in m.get("checks", [])] or [
            "exact method: no statistical check needed"
        ]
        method = f"{m.get('method', '')} ({'exact' if m.get('exact') else 'approximate'})"
        if m.get("fallback_used"):
            method += " after fallback"
        if m.get("action") and m["action"] != "unlearned":
            method += f"; {m['action'].replace('_', ' ')}"
        rows.append(
            ModelRow(
                old_version=str(m.get("old_version_id")),
                old_sha256=str(m.get("old_sha256") or "—"),
                new_version=str(m.get("new_version_id") or "—"),
                new_sha256=str(m.get("new_sha256") or "—"),
                method=method,
                evidence=evidence or "—",
                checks=checks,
                level=str(m.get("evidence_level") or ("exact" if m.get("exact") else "")),
                level_sentence=str(m.get("evidence") or ""),
                original_evidence=original,
                attempts=[_attempt_line(a) for a in m.get("attempts") or []],
            )
        )
    scope = req.get("scope", {})
    count = len(scope.get("commitments", scope.get("labels", [])))
    sig = cert.get("signature", {})
    return Summary(
        request_id=str(req.get("id", "")),
        intro=(
            f"Request {req.get('id', '')} ({req.get('legal_basis', '')}), reference "
            f"{req.get('requester_reference') or '—'}. Received {req.get('received_at')}, due "
            f"{req.get('due_at')}, completed {req.get('completed_at')}."
        ),
        outcome=OUTCOMES.get(str(cert.get("outcome", "")), str(cert.get("outcome", ""))),
        scope=(
            f"{scope.get('kind', '')} ({count} item(s); people's identifiers appear only as "
            "salted commitments)"
        ),
        models=rows,
        datasets=[
            f"{d.get('dataset_id')} version {d.get('version')} ({d.get('reason') or ''}), "
            f"content hash {d.get('content_hash')}"
            for d in cert.get("datasets", [])
        ],
        unknown_lineage=[
            f"{u.get('version_id')}: {u.get('note')} (model {u.get('model_id')}, sha256 "
            f"{u.get('sha256')})"
            for u in cert.get("unknown_lineage") or []
        ],
        steps=[f"#{s['seq']} {s['action']} at {s['at']}" for s in cert.get("audit_steps", [])],
        signature=(
            f"Signed with Ed25519, key {sig.get('key_id')}. Verify offline with "
            "`expunge certificate verify FILE --public-key KEY.pem` (public key at "
            "/api/v1/audit/public-key)."
        ),
    )


def render_html(cert: dict[str, Any]) -> str:
    s, e = summarise(cert), html.escape
    rows = "".join(
        f"<tr><td><code>{e(m.old_version)}</code><br><small>sha256 {e(m.old_sha256)}</small></td>"
        f"<td><code>{e(m.new_version)}</code><br><small>sha256 {e(m.new_sha256)}</small></td>"
        f"<td>{e(m.method)}</td><td><p><strong>Level of evidence: {e(m.level or '—')}</strong>"
        f"{': ' + e(m.level_sentence) if m.level_sentence else ''}.</p>{e(m.evidence)}"
        + (f"<br><small>original: {e(m.original_evidence)}</small>" if m.original_evidence else "")
        + "<ul>"
        + "".join(f"<li>{e(c)}</li>" for c in m.checks)
        + "</ul>"
        + (
            "<p>Attempts:</p><ol>" + "".join(f"<li>{e(a)}</li>" for a in m.attempts) + "</ol>"
            if m.attempts
            else ""
        )
        + "</td></tr>"
        for m in s.models
    )
    unknown = (
        "<h2>Versions of unknown lineage</h2><ul>"
        + "".join(f"<li>{e(u)}</li>" for u in s.unknown_lineage)
        + "</ul>"
        if s.unknown_lineage
        else ""
    )
    datasets = "".join(f"<li>{e(d)}</li>" for d in s.datasets) or "<li>none changed</li>"
    steps = "".join(f"<li>{e(step)}</li>" for step in s.steps)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Deletion certificate {e(s.request_id)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}
table{{border-collapse:collapse;width:100%}}
td,th{{border:1px solid #ccc;padding:.4rem;vertical-align:top}}
code,small{{font-size:.85em;word-break:break-all}}</style></head><body>
<h1>Deletion certificate</h1>
<p>{e(s.intro)}</p>
<p>Outcome: <strong>{e(s.outcome)}</strong>. Scope: {e(s.scope)}.</p>
<table><tr><th>old version</th><th>new version</th><th>method</th><th>evidence</th></tr>
{rows or "<tr><td colspan=4>no model version was trained on this data</td></tr>"}</table>
{unknown}
<h2>Datasets</h2><ul>{datasets}</ul>
<h2>Audit log steps</h2><ul>{steps}</ul>
<p>{e(s.signature)}</p>
</body></html>"""


# The PDF's built-in Helvetica knows Latin-1 only.
_ASCII = str.maketrans(
    {"—": "-", "–": "-", "…": "...", "’": "'", "→": "->", "≤": "<=", "≥": ">="}
)


def _latin1(text: str) -> str:
    return text.translate(_ASCII).encode("latin-1", "replace").decode("latin-1")


def render_pdf(cert: dict[str, Any]) -> bytes:
    """The same content as the HTML page, as a PDF (uncompressed: it is small, and a
    reader or a test can search its text)."""
    from fpdf import FPDF

    s = summarise(cert)
    pdf = FPDF(format="A4")
    pdf.set_compression(False)
    pdf.set_title(f"Deletion certificate {s.request_id}")
    pdf.set_creator("Expunge")
    pdf.add_page()
    pdf.set_auto_page_break(auto=True, margin=15)

    def para(text: str, size: float = 10, style: str = "", gap: float = 2) -> None:
        pdf.set_font("Helvetica", style=style, size=size)
        pdf.multi_cell(0, size * 0.5, _latin1(text), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(gap)

    para("Deletion certificate", size=18, style="B", gap=4)
    para(s.intro)
    para(f"Outcome: {s.outcome}. Scope: {s.scope}.")
    para("Model versions", size=13, style="B")
    if not s.models:
        para("No model version was trained on this data.")
    for m in s.models:
        para(f"{m.old_version}  ->  {m.new_version}", style="B", gap=0)
        para(f"old sha256 {m.old_sha256}", size=8, gap=0)
        para(f"new sha256 {m.new_sha256}", size=8, gap=0)
        para(f"Method: {m.method}.", gap=0)
        para(
            f"Level of evidence: {m.level or '-'}"
            + (f": {m.level_sentence}." if m.level_sentence else "."),
            style="B",
            gap=0,
        )
        para(f"Evidence: {m.evidence}.", gap=0)
        if m.original_evidence:
            para(f"Original: {m.original_evidence}.", size=9, gap=0)
        for check in m.checks:
            para(f"  - {check}", size=9, gap=0)
        for attempt in m.attempts:
            para(f"  {attempt}", size=9, gap=0)
        pdf.ln(3)
    if s.unknown_lineage:
        para("Versions of unknown lineage", size=13, style="B")
        for line in s.unknown_lineage:
            para(line, size=9, gap=0)
        pdf.ln(3)
    para("Datasets", size=13, style="B")
    for d in s.datasets or ["none changed"]:
        para(d, size=9, gap=0)
    pdf.ln(3)
    para("Audit log steps", size=13, style="B")
    for step in s.steps:
        para(step, size=9, gap=0)
    pdf.ln(3)
    para(s.signature, size=9)
    return bytes(pdf.output())
