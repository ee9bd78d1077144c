"""A language model's certificate, for people: the HTML page and the PDF state its base
and why the base never saw the person, its answers to the forget people against held-out
people, and every attempt (the refused one too)."""

from __future__ import annotations

from core.deletion.policy import Thresholds, verify
from core.deletion.render import render_html, render_pdf, summarise
from tests.support.lm_figures import ORIGINAL

STATEMENT = (
    "the base (a tiny llama initialised from seed 3) was never trained on any data before "
    "the fine-tune: the data entered only through it"
)
REFUSED = verify(ORIGINAL, ORIGINAL, "subject_ids", Thresholds(), family="causal_lm")
CERT = {
    "outcome": "erased",
    "request": {"id": "dr_lm", "legal_basis": "gdpr_art17", "scope": {"kind": "subject_ids"}},
    "models": [
        {
            "old_version_id": "mv_ft",
            "old_sha256": "a" * 64,
            "new_version_id": "mv_rt",
            "new_sha256": "b" * 64,
            "method": "retrain",
            "exact": True,
            "action": "unlearned",
            "fallback_used": True,
            "evidence_level": "exact",
            "evidence": "retrained without the data; the new version never saw it",
            "evaluation": {**ORIGINAL, "forget_prob": 0.2, "forget_quality": 1.0},
            "original_evaluation": ORIGINAL,
            "checks": [],
            "lineage": {
                "base": {"name": "tiny-llama", "version_id": None},
                "base_never_saw_the_data": True,
                "base_statement": STATEMENT,
                "fine_tune": {"dataset_id": "ds_1", "dataset_version": 1, "samples": 83},
            },
            "attempts": [
                {"attempt": 1, "method": "npo", "passed": False, **REFUSED},
                {"attempt": 2, "method": "retrain", "passed": True, "level": "exact"},
            ],
        }
    ],
    "datasets": [],
    "audit_steps": [],
    "signature": {"key_id": "k1"},
}


def test_the_page_states_the_base_the_figures_and_the_refused_attempt() -> None:
    (row,) = summarise(CERT).models
    assert f"lineage: {STATEMENT}; fine-tuned on 83 sample(s) of dataset ds_1 version 1" in (
        row.evidence
    )
    assert "forget answer probability 0.20" in row.evidence
    assert "held-out answer probability 0.21" in row.evidence
    assert "model utility 0.40" in row.evidence and "forget quality 1.00" in row.evidence
    assert "forget answer probability 0.62" in row.original_evidence
    assert len(row.attempts) == 2 and "npo" in row.attempts[0]
    page = render_html(CERT)
    assert "never trained on any data before the fine-tune" in page
    assert "held-out ROUGE-L" in page


def test_the_pdf_says_the_same() -> None:
    pdf = render_pdf(CERT)
    assert pdf.startswith(b"%PDF-")
    for text in (b"tiny llama", b"lineage:", b"forget answer probability", b"held-out ROUGE-L"):
        assert text in pdf, text
