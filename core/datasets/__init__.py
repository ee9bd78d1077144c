"""Dataset ingestion: built-in offline sources, user uploads and the shard format.

Shared by the API and the workers, so it depends on numpy and PIL only (no torch,
no database): it turns a source into a validated ``DatasetImport`` and turns image
arrays into immutable shards for object storage.
"""

from core.datasets.errors import DatasetImportError, ShardError
from core.datasets.records import DatasetImport, SampleRecord, Split

__all__ = ["DatasetImport", "DatasetImportError", "SampleRecord", "ShardError", "Split"]
