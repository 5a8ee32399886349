"""Where backed-up objects live and how a file's id follows from its key.

Objects are written at ``data/{accountId}/{sourceId}/{runId}/{name...}``. The file id is
derived from the key alone, so the backup worker (records, checksum) and the file indexer
(the object's own facts) upsert the same files row independently, in any order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

DATA_PREFIX = "data/"


@dataclass(frozen=True)
class DataKey:
    key: str
    account_id: str
    source_id: str
    run_id: str
    path: str   # the part below the run: "{endpoint}.jsonl.gz" or "folder/file.pdf"
    name: str   # the last segment of the path

    @property
    def file_id(self) -> str:
        return file_id_for(self.key)


def file_id_for(key: str) -> str:
    return "fil_" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def data_key(account_id: str, source_id: str, run_id: str, path: str) -> str:
    return f"{DATA_PREFIX}{account_id}/{source_id}/{run_id}/{path}"


def parse_data_key(key: str) -> DataKey | None:
    """The parts of a key under ``data/``, or None when it is not a well-formed data key."""
    if not key.startswith(DATA_PREFIX):
        return None
    parts = key[len(DATA_PREFIX):].split("/", 3)
    if len(parts) != 4 or not all(parts[:3]):
        return None
    account_id, source_id, run_id, path = parts
    segments = path.split("/")
    if not path or any(s in ("", ".", "..") for s in segments):
        return None
    return DataKey(key, account_id, source_id, run_id, path, segments[-1])
