"""deletion requests, their per-version items, and per-model deletion policies

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 20:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "deletion_requests",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("scope", JSON, nullable=False),
        sa.Column("scope_kind", sa.String(length=20), nullable=False),
        sa.Column("scope_commitments", JSON, nullable=False),
        sa.Column("legal_basis", sa.String(length=20), nullable=False),
        sa.Column("requester_reference", sa.String(length=200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("extended", sa.Boolean(), nullable=False),
        sa.Column("extension_reason", sa.Text(), nullable=True),
        sa.Column("blast_radius", JSON, nullable=False),
        sa.Column("plan", JSON, nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("approved_by", sa.String(length=40), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("certificate", JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deletion_requests")),
    )
    op.create_index(op.f("ix_deletion_requests_status"), "deletion_requests", ["status"])
    op.create_index(op.f("ix_deletion_requests_due_at"), "deletion_requests", ["due_at"])
    op.create_table(
        "deletion_items",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("model_version_id", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("method", sa.String(length=60), nullable=False),
        sa.Column("exact", sa.Boolean(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=True),
        sa.Column("result_version_id", sa.String(length=40), nullable=True),
        sa.Column("verdict", JSON, nullable=True),
        sa.Column("history", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["deletion_requests.id"],
            name=op.f("fk_deletion_items_request_id_deletion_requests"),
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_deletion_items_model_version_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deletion_items")),
    )
    op.create_index(op.f("ix_deletion_items_request_id"), "deletion_items", ["request_id"])
    op.create_index(
        op.f("ix_deletion_items_model_version_id"), "deletion_items", ["model_version_id"]
    )
    op.create_index(op.f("ix_deletion_items_job_id"), "deletion_items", ["job_id"])
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("deletion_policy", JSON, nullable=False, server_default="{}"))
    op.create_index("ix_samples_subject", "samples", ["subject_id"])
    op.create_index("ix_samples_sample_id", "samples", ["sample_id"])


def downgrade() -> None:
    op.drop_index("ix_samples_sample_id", table_name="samples")
    op.drop_index("ix_samples_subject", table_name="samples")
    with op.batch_alter_table("models") as batch:
        batch.drop_column("deletion_policy")
    op.drop_table("deletion_items")
    op.drop_table("deletion_requests")
