"""a CHECK constraint holds deletion_requests.status to the declared states

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 20:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# core/deletion/states.py's RequestStatus as this revision wrote it (frozen: a later
# state needs its own migration).
STATUSES = (
    "received",
    "scoped",
    "awaiting_approval",
    "unlearning",
    "verifying",
    "completed",
    "rejected",
    "failed",
    "cancelled",
)
NAME = "ck_deletion_requests_status"


def upgrade() -> None:
    # Batch mode: SQLite cannot add a constraint in place, so the table is copied.
    with op.batch_alter_table("deletion_requests", schema=None) as batch_op:
        batch_op.create_check_constraint(
            NAME, "status IN (" + ", ".join(f"'{s}'" for s in STATUSES) + ")"
        )


def downgrade() -> None:
    with op.batch_alter_table("deletion_requests", schema=None) as batch_op:
        batch_op.drop_constraint(NAME, type_="check")
