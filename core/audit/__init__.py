"""The tamper-evident audit log: hash-chained events, RFC 6962 checkpoints, proofs.

Services record state changes with ``record`` (written by their own transaction's commit)
or ``append`` (at once, when the position is needed) and store subject ids only as
``commit_subject`` commitments; see ``docs/audit.md``.
"""

from core.audit.anchor import anchor, verify_anchor
from core.audit.events import commit_subject, subject_salt
from core.audit.log import (
    append,
    checkpoint,
    consistency,
    export,
    inclusion,
    log_size,
    record,
    verify_chain,
)
from core.audit.verify import VerifyReport, verify_export

__all__ = [
    "VerifyReport",
    "anchor",
    "append",
    "checkpoint",
    "commit_subject",
    "consistency",
    "export",
    "inclusion",
    "log_size",
    "record",
    "subject_salt",
    "verify_anchor",
    "verify_chain",
    "verify_export",
]
