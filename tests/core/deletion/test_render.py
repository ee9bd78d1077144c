"""The HTML page and the PDF say the same things, with each family's own evidence."""

from __future__ import annotations

from core.deletion.render import render_html, render_pdf, summarise

CERT = {
    "outcome": "erased",
    "request": {
        "id": "dr_123",
        "legal_basis": "gdpr_art17",
        "requester_reference": "ticket-9",
        "received_at": "2026-11-28T10:00:00+00:00",
        "due_at": "2026-12-28T10:00:00+00:00",
        "completed_at": "2026-11-28T11:00:00+00:00",
        "scope": {"kind": "labels", "labels": [3]},
    },
    "models": [
        {
            "old_version_id": "mv_old",
            "old_sha256": "a" * 64,
            "new_version_id": "mv_new",
            "new_sha256": "b" * 64,
            "method": "esd",
            "exact": False,
            "action": "unlearned",
            "fallback_used": False,
            "evaluation": {"forget_rate": 0.0125, "retain_accuracy": 0.9, "frechet_retain": 12.5},
            "checks": [
                {
                    "check": "forget_rate <= max_forget_rate",
                    "value": 0.0125,
                    "threshold": 0.02,
                    "passed": True,
                }
            ],
        },
        {
            "old_version_id": "mv_child",
            "old_sha256": "c" * 64,
            "new_version_id": None,
            "new_sha256": None,
            "method": "retire",
            "exact": True,
            "action": "retired",
            "evaluation": None,
            "checks": [],
        },
    ],
    "datasets": [],
    "audit_steps": [{"seq": 7, "action": "deletion_request.received", "at": "2026-11-28"}],
    "signature": {"key_id": "k1"},
}


def test_diffusion_evidence_and_retired_versions_are_shown() -> None:
    summary = summarise(CERT)
    erased, retired = summary.models
    assert erased.evidence == (
        "forget rate 1.25 %, retained accuracy 90.00 %, Fréchet (retained) 12.50"
    )
    assert erased.checks == ["passed: forget_rate <= max_forget_rate = 0.0125 (threshold 0.0200)"]
    assert retired.new_version == "—" and "retired" in retired.method
    assert retired.checks == ["exact method: no statistical check needed"]

    page = render_html(CERT)
    assert "forget rate 1.25 %" in page and "b" * 64 in page and "#7 deletion_request" in page


def test_pdf_holds_the_same_text() -> None:
    pdf = render_pdf(CERT)
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    for text in (b"dr_123", b"forget rate 1.25 %", b"a" * 64, b"Fr\xe9chet", b"key k1"):
        assert text in pdf, text
