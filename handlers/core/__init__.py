"""The core service's Lambda code: the file indexer that keeps the files table in step with the data bucket."""
