"""webhooks and their delivery outbox, request comments and attachments, batch windows,
and the training-mask block index used by deletion scoping (backfilled here)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 21:00:00
"""

import zlib
from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BLOCK_BYTES = 512  # models.lineage.BLOCK_BITS // 8, frozen here as this revision wrote it


def _blocks(blob: bytes) -> list[tuple[int, bytes]]:
    raw = zlib.decompress(blob)
    size = int.from_bytes(raw[-8:], "big")
    packed = np.frombuffer(raw, dtype=np.uint8, count=(size + 7) // 8)
    return [
        (block, packed[start : start + BLOCK_BYTES].tobytes())
        for block, start in enumerate(range(0, len(packed), BLOCK_BYTES))
        if packed[start : start + BLOCK_BYTES].any()
    ]


def _backfill_mask_blocks(table: sa.Table) -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT mv.id, mv.training_mask, dv.dataset_id FROM model_versions mv "
            "JOIN dataset_versions dv ON dv.id = mv.dataset_version_id "
            "WHERE mv.training_mask IS NOT NULL"
        )
    ).all()
    for version_id, blob, dataset_id in rows:
        blocks = [
            {"version_id": version_id, "block": b, "dataset_id": dataset_id, "bits": bits}
            for b, bits in _blocks(bytes(blob))
        ]
        if blocks:
            bind.execute(table.insert(), blocks)


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        sa.Column("events", JSON, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhooks")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("webhook_id", sa.String(length=40), nullable=False),
        sa.Column("event", sa.String(length=80), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["webhooks.id"],
            name=op.f("fk_webhook_deliveries_webhook_id_webhooks"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index(op.f("ix_webhook_deliveries_webhook_id"), "webhook_deliveries", ["webhook_id"])
    op.create_index(op.f("ix_webhook_deliveries_state"), "webhook_deliveries", ["state"])
    op.create_index(
        op.f("ix_webhook_deliveries_next_attempt_at"), "webhook_deliveries", ["next_attempt_at"]
    )
    op.create_table(
        "deletion_comments",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("author", sa.String(length=40), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["deletion_requests.id"],
            name=op.f("fk_deletion_comments_request_id_deletion_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deletion_comments")),
    )
    op.create_index(op.f("ix_deletion_comments_request_id"), "deletion_comments", ["request_id"])
    op.create_table(
        "deletion_attachments",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("object_key", sa.String(length=500), nullable=False),
        sa.Column("uploaded_by", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["deletion_requests.id"],
            name=op.f("fk_deletion_attachments_request_id_deletion_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deletion_attachments")),
    )
    op.create_index(
        op.f("ix_deletion_attachments_request_id"), "deletion_attachments", ["request_id"]
    )
    with op.batch_alter_table("deletion_items") as batch:
        batch.add_column(sa.Column("batch_until", sa.DateTime(timezone=True), nullable=True))
    blocks = op.create_table(
        "version_mask_blocks",
        sa.Column("version_id", sa.String(length=40), nullable=False),
        sa.Column("block", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.String(length=40), nullable=False),
        sa.Column("bits", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_version_mask_blocks_version_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("version_id", "block", name=op.f("pk_version_mask_blocks")),
    )
    op.create_index(
        "ix_version_mask_blocks_dataset_block", "version_mask_blocks", ["dataset_id", "block"]
    )
    _backfill_mask_blocks(blocks)


def downgrade() -> None:
    op.drop_table("version_mask_blocks")
    with op.batch_alter_table("deletion_items") as batch:
        batch.drop_column("batch_until")
    op.drop_table("deletion_attachments")
    op.drop_table("deletion_comments")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
