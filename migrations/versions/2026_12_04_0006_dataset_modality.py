"""datasets.modality: a dataset holds images or text (language-model datasets, #15)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The modalities as this revision wrote them (frozen: a new one needs its own migration).
MODALITIES = ("images", "text")
NAME = "ck_datasets_modality"


def upgrade() -> None:
    # Every dataset before this revision holds images; the server default says so.
    # Batch mode: SQLite cannot add a constraint in place, so the table is copied.
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("modality", sa.String(length=10), nullable=False, server_default="images")
        )
        batch_op.create_check_constraint(
            NAME, "modality IN (" + ", ".join(f"'{m}'" for m in MODALITIES) + ")"
        )


def downgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_constraint(NAME, type_="check")
        batch_op.drop_column("modality")
