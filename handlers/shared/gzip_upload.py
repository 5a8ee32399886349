"""A gzip JSON-Lines multipart upload to S3 with bounded memory, resumable across invocations.

Records are written a page at a time (``write_page``). Lines are compressed as they arrive
into an in-memory buffer; when, at a page boundary, the buffer holds at least ``part_size``
compressed bytes (S3's minimum part is 5 MiB, except the last), the gzip member is
finished and uploaded as one part, and a new member starts. Each part is therefore a
complete gzip member, and the concatenated parts are one valid (multi-member) gzip file
that ``gzip``/``zcat`` read as one stream of lines.

Memory: one part (about ``part_size`` plus one page of compressed output) and zlib's
state, whatever the object's size.

Resuming: parts are cut only at page boundaries, so ``committed`` (upload id, parts, and
the pages, records and uncompressed bytes inside those parts) says exactly which pages are
safely in S3. A later invocation calls :meth:`GzipJsonLinesUpload.resume` with that state
and continues after the last committed page; pages that were only buffered are written
again. The object is tagged ``retention=<tag>`` when the upload is created.
"""

from __future__ import annotations

import json
import zlib
from typing import Any, Iterable, Mapping
from urllib.parse import quote

MIN_PART = 5 * 1024 * 1024          # S3's minimum size of every part but the last
CONTENT_TYPE = "application/gzip"


def _line(record: Any) -> bytes:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str,
                      sort_keys=False).encode("utf-8") + b"\n"


class GzipJsonLinesUpload:
    def __init__(self, s3, bucket: str, key: str, *, tags: Mapping[str, str] | None = None,
                 part_size: int = MIN_PART, level: int = 6, upload_id: str | None = None,
                 parts: Iterable[Mapping[str, Any]] = (), pages: int = 0, records: int = 0,
                 raw_bytes: int = 0, stored_bytes: int = 0) -> None:
        if part_size < MIN_PART:
            raise ValueError(f"part_size must be at least {MIN_PART} bytes (S3's minimum)")
        self.s3, self.bucket, self.key = s3, bucket, key
        self.part_size, self.level = part_size, level
        self.parts: list[dict] = [{"PartNumber": int(p["PartNumber"]), "ETag": str(p["ETag"])}
                                  for p in parts]
        if upload_id is None:
            tagging = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}"
                               for k, v in (tags or {}).items())
            kwargs = {"Bucket": bucket, "Key": key, "ContentType": CONTENT_TYPE}
            if tagging:
                kwargs["Tagging"] = tagging
            upload_id = s3.create_multipart_upload(**kwargs)["UploadId"]
        self.upload_id = upload_id
        # what is inside uploaded parts (committed) ...
        self.committed_pages, self.committed_records = int(pages), int(records)
        self.committed_raw, self.committed_stored = int(raw_bytes), int(stored_bytes)
        # ... and everything written so far (committed + buffered)
        self.pages, self.records, self.raw_bytes = self.committed_pages, self.committed_records, \
            self.committed_raw
        self._buffer = bytearray()
        self._compressor = self._new_compressor()
        self.finished = False

    @classmethod
    def resume(cls, s3, bucket: str, key: str, state: Mapping[str, Any], **kwargs) -> "GzipJsonLinesUpload":
        """Continue an upload from :attr:`committed` state saved by an earlier invocation."""
        return cls(s3, bucket, key, upload_id=state["uploadId"], parts=state.get("parts") or (),
                   pages=state.get("pages", 0), records=state.get("records", 0),
                   raw_bytes=state.get("bytes", 0), stored_bytes=state.get("storedBytes", 0),
                   **kwargs)

    def _new_compressor(self):
        return zlib.compressobj(self.level, zlib.DEFLATED, 31)   # wbits 31: a gzip member

    # ------------------------------------------------------------------ writing

    def write_page(self, records: Iterable[Any]) -> None:
        """Write one page of records; uploads a part when enough is buffered."""
        count = 0
        for record in records:
            line = _line(record)
            self.raw_bytes += len(line)
            count += 1
            out = self._compressor.compress(line)
            if out:
                self._buffer += out
        # A sync flush per page keeps the stored size exact at every page boundary (for the
        # storage limit) at the cost of a few bytes; the dictionary window is kept.
        self._buffer += self._compressor.flush(zlib.Z_SYNC_FLUSH)
        self.records += count
        self.pages += 1
        if len(self._buffer) >= self.part_size:
            self._upload_part()

    @property
    def stored_bytes(self) -> int:
        """Compressed bytes uploaded or buffered so far (the object's size, less the
        gzip trailer of the open member)."""
        return self.committed_stored + len(self._buffer)

    @property
    def committed(self) -> dict:
        """What an invocation that stops now can resume from."""
        return {"uploadId": self.upload_id, "parts": [dict(p) for p in self.parts],
                "pages": self.committed_pages, "records": self.committed_records,
                "bytes": self.committed_raw, "storedBytes": self.committed_stored}

    def _upload_part(self) -> None:
        self._buffer += self._compressor.flush()
        number = len(self.parts) + 1
        reply = self.s3.upload_part(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                                    PartNumber=number, Body=self._buffer)   # no copy
        self.parts.append({"PartNumber": number, "ETag": reply["ETag"]})
        self.committed_stored += len(self._buffer)
        self.committed_pages, self.committed_records, self.committed_raw = \
            self.pages, self.records, self.raw_bytes
        self._buffer = bytearray()
        self._compressor = self._new_compressor()

    def complete(self) -> dict:
        """Upload what is buffered as the last part and complete the object; answers
        {key, records, bytes (uncompressed), size (compressed), etag, versionId}."""
        if self.records > self.committed_records or not self.parts:
            self._upload_part()
        reply = self.s3.complete_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts})
        self.finished = True
        return {"key": self.key, "records": self.records, "bytes": self.raw_bytes,
                "size": self.committed_stored, "etag": reply.get("ETag"),
                "versionId": reply.get("VersionId")}

    def abort(self) -> None:
        """Abandon the upload (S3 frees the parts); harmless when it is already gone."""
        if self.finished:
            return
        self.finished = True
        try:
            self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
        except Exception:   # noqa: BLE001 - an upload S3 no longer knows needs no aborting
            pass
