"""SQLAlchemy ORM models: the database layer shared by the API, workers and migrations."""

from models.audit import AuditCheckpoint, AuditEvent
from models.base import Base
from models.datasets import Dataset, DatasetVersion, Sample
from models.deletion import DeletionAttachment, DeletionComment, DeletionItem, DeletionRequest
from models.idempotency import IdempotencyRecord
from models.jobs import Job, JobEvent
from models.keys import ApiKey
from models.lineage import VersionMaskBlock
from models.registry import Model, ModelVersion
from models.webhooks import Webhook, WebhookDelivery

__all__ = [
    "ApiKey",
    "AuditCheckpoint",
    "AuditEvent",
    "Base",
    "Dataset",
    "DatasetVersion",
    "DeletionAttachment",
    "DeletionComment",
    "DeletionItem",
    "DeletionRequest",
    "IdempotencyRecord",
    "Job",
    "JobEvent",
    "Model",
    "ModelVersion",
    "Sample",
    "VersionMaskBlock",
    "Webhook",
    "WebhookDelivery",
]
