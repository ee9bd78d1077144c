"""SQLAlchemy ORM models: the database layer shared by the API, workers and migrations."""

from models.audit import AuditCheckpoint, AuditEvent
from models.base import Base
from models.datasets import Dataset, DatasetVersion, Sample
from models.deletion import DeletionItem, DeletionRequest
from models.idempotency import IdempotencyRecord
from models.jobs import Job, JobEvent
from models.keys import ApiKey
from models.registry import Model, ModelVersion

__all__ = [
    "ApiKey",
    "AuditCheckpoint",
    "AuditEvent",
    "Base",
    "Dataset",
    "DatasetVersion",
    "DeletionItem",
    "DeletionRequest",
    "IdempotencyRecord",
    "Job",
    "JobEvent",
    "Model",
    "ModelVersion",
    "Sample",
]
