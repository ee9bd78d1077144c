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


FELL_BACK = {
    **CERT,
    "outcome": "erased_where_known",
    "unknown_lineage": [
        {
            "version_id": "mv_uploaded",
            "model_id": "mdl_pre",
            "sha256": "d" * 64,
            "status": "active",
            "note": "lineage unknown: we cannot tell whether it was trained on the data; "
            "it was not changed",
        }
    ],
    "models": [
        {
            "old_version_id": "mv_old",
            "old_sha256": "a" * 64,
            "new_version_id": "mv_new",
            "new_sha256": "b" * 64,
            "method": "retrain",
            "exact": True,
            "action": "unlearned",
            "fallback_used": True,
            "evidence_level": "exact",
            "evidence": "retrained without the data; the new version never saw it",
            "evaluation": {"UA": 1.0, "TA": 0.95, "forget_count_trained": 7},
            "original_evaluation": {"UA": 0.0, "TA": 0.96},
            "checks": [],
            "attempts": [
                {
                    "attempt": 1,
                    "method": "finetune",
                    "exact": False,
                    "job_id": "job_ft",
                    "wall_seconds": 3.25,
                    "passed": False,
                    "level": "not_certified",
                    "reason": "failed: forget_accuracy <= max_class_accuracy",
                    "checks": [],
                },
                {
                    "attempt": 2,
                    "method": "retrain",
                    "exact": True,
                    "job_id": "job_rt",
                    "wall_seconds": 9.5,
                    "passed": True,
                    "level": "exact",
                },
            ],
        }
    ],
}


def test_levels_attempts_and_unknown_lineage_are_shown() -> None:
    [row] = summarise(FELL_BACK).models
    assert row.level == "exact" and "never saw it" in row.level_sentence
    assert row.attempts == [
        "attempt 1: finetune (approximate), job job_ft, 3.2 s — FAILED: failed: "
        "forget_accuracy <= max_class_accuracy",
        "attempt 2: retrain (exact), job job_rt, 9.5 s — passed (exact)",
    ]
    assert "measured on the 7 sample(s)" in row.evidence and "UA 0.00 %" in row.original_evidence
    page = render_html(FELL_BACK)
    pdf = render_pdf(FELL_BACK)
    for text in (
        "Level of evidence: exact",
        "attempt 1: finetune",
        "mv_uploaded",
        "lineage unknown",
        "erased where the lineage is known",
    ):
        assert text in page, text
        assert text.encode() in pdf, text


def test_a_check_says_whether_the_original_passed_it() -> None:
    informative = {
        "check": "loss_auc <= max_loss_auc",
        "kind": "forgetting",
        "value": 0.52,
        "threshold": 0.65,
        "passed": True,
        "original_value": 0.91,
        "original_passed": False,
        "informative": True,
    }
    idle = {**informative, "original_value": 0.55, "original_passed": True, "informative": False}
    model = {**CERT["models"][0], "checks": [informative, idle]}
    rows = summarise({**CERT, "models": [model]}).models[0].checks
    assert rows == [
        "passed: loss_auc <= max_loss_auc = 0.5200 (threshold 0.6500); original 0.9100, "
        "failed (informative)",
        "passed: loss_auc <= max_loss_auc = 0.5200 (threshold 0.6500); original 0.5500, "
        "passed (not informative)",
    ]
