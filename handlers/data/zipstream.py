"""A zip written straight into an S3 multipart upload, with bounded memory.

``MultipartSink`` is a write-only, non-seekable file object: bytes go into one buffer and
every ``part_size`` bytes (S3 wants at least 5 MiB for every part but the last) the buffer
is uploaded as the next part. Python's ``zipfile`` writes to such a stream: it cannot seek
back to patch an entry's header, so each entry's sizes and CRC follow its data in a data
descriptor, and with ``allowZip64`` entries and archives over 4 GiB work. Memory: one part
plus one read chunk, whatever the size of the export.
"""

from __future__ import annotations

import zipfile
from datetime import datetime
from typing import BinaryIO, Iterable

MIN_PART = 5 * 1024 * 1024
DEFAULT_PART = 8 * 1024 * 1024
CHUNK = 1024 * 1024
ZIP64_ABOVE = 1024 ** 3          # entries larger than this (or of unknown size) use zip64


class MultipartSink:
    def __init__(self, s3, bucket: str, key: str, *, part_size: int = DEFAULT_PART,
                 content_type: str = "application/zip") -> None:
        if part_size < MIN_PART:
            raise ValueError(f"part_size must be at least {MIN_PART} bytes (S3's minimum)")
        self.s3, self.bucket, self.key, self.part_size = s3, bucket, key, part_size
        self.upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key,
                                                    ContentType=content_type)["UploadId"]
        self.parts: list[dict] = []
        self.size = 0
        self._buffer = bytearray()
        self.finished = self.aborted = False

    # the file-object protocol zipfile uses (no tell/seek: it then streams)
    def write(self, data) -> int:
        if self.aborted:
            return len(data)      # a zip object being collected after a failure: let it go
        if self.finished:
            raise ValueError("the upload is finished")
        self._buffer += data
        self.size += len(data)
        if len(self._buffer) >= self.part_size:
            self._upload_part()
        return len(data)

    def flush(self) -> None:
        pass

    def _upload_part(self) -> None:
        number = len(self.parts) + 1
        reply = self.s3.upload_part(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                                    PartNumber=number, Body=self._buffer)   # no copy
        self.parts.append({"PartNumber": number, "ETag": reply["ETag"]})
        self._buffer = bytearray()

    def complete(self) -> int:
        """Upload the rest and complete the object; answers its size in bytes."""
        if self._buffer or not self.parts:
            self._upload_part()
        self.s3.complete_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                                          MultipartUpload={"Parts": self.parts})
        self.finished = True
        return self.size

    def abort(self) -> None:
        if self.finished:
            return
        self.finished = self.aborted = True
        self._buffer = bytearray()
        try:
            self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
        except Exception:   # noqa: BLE001 - an upload S3 no longer knows needs no aborting
            pass


def open_zip(sink: MultipartSink) -> zipfile.ZipFile:
    return zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True)


def add_entry(archive: zipfile.ZipFile, name: str, chunks: Iterable[bytes], *,
              size: int | None = None, modified: datetime | None = None,
              compress: bool = False) -> int:
    """Stream ``chunks`` into a new entry; answers the bytes written. Backed-up objects are
    already gzip, so entries are stored, not compressed again, unless ``compress``."""
    stamp = modified.timetuple()[:6] if modified and modified.year >= 1980 else (1980, 1, 1, 0, 0, 0)
    info = zipfile.ZipInfo(name, date_time=stamp)
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    if size is not None:
        info.file_size = size
    written = 0
    with archive.open(info, mode="w", force_zip64=size is None or size > ZIP64_ABOVE) as entry:
        for chunk in chunks:
            entry.write(chunk)
            written += len(chunk)
    return written


def read_chunks(body: BinaryIO, chunk: int = CHUNK) -> Iterable[bytes]:
    try:
        while True:
            data = body.read(chunk)
            if not data:
                return
            yield data
    finally:
        body.close()
