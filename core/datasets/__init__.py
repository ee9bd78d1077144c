"""Dataset ingestion: built-in offline sources, user uploads and the shard formats.

Shared by the API and the workers, so it depends on numpy and PIL only (no torch, and
no database except ``text_versions``, the workers' reader of a text dataset version):
it turns a source into a validated ``DatasetImport`` (images) or ``TextDatasetImport``
(text records) and turns them into immutable shards for object storage.
"""

from core.datasets.errors import DatasetImportError, ShardError
from core.datasets.records import DatasetImport, SampleRecord, Split

__all__ = ["DatasetImport", "DatasetImportError", "SampleRecord", "ShardError", "Split"]
