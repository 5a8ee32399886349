"""Source credentials at rest: encrypted with the stage's KMS key, never stored in clear.

Each ciphertext is bound to one source by KMS's encryption context
``{"accountId": ..., "sourceId": ...}``: KMS refuses to decrypt it under any other
context, so a ciphertext copied onto another tenant's source (or another source of the same
tenant) is useless there, and the key policy can grant ``kms:Decrypt`` only with that
context present. The plaintext (a JSON object of field -> value) exists only in the memory
of the functions that need it; this module never logs values, and callers must not either.

The KMS Encrypt call takes at most 4096 bytes of plaintext; a larger JSON document (long
OAuth tokens) is deflated first. The first plaintext byte says which: ``j`` JSON, ``z``
zlib-compressed JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import zlib
from typing import Iterable, Mapping

from botocore.exceptions import ClientError

from handlers.shared.clients import client

KMS_PLAINTEXT_LIMIT = 4096
SET = "set"

# KMS's answers for a ciphertext that cannot be decrypted under this key and context.
_UNREADABLE = {"InvalidCiphertextException", "IncorrectKeyException"}


class CredentialsError(Exception):
    """Credentials that cannot be stored or read. The message never holds a value."""


class CredentialsTooLarge(CredentialsError):
    """The credentials exceed what KMS encrypts in one call, even compressed."""


class UnreadableCredentials(CredentialsError):
    """A stored ciphertext that does not decrypt for this source (tampered, copied from
    another source or account, or written under another key)."""


def _context(account_id: str, source_id: str) -> dict[str, str]:
    if not account_id or not source_id:
        raise ValueError("an account id and a source id are required")
    return {"accountId": str(account_id), "sourceId": str(source_id)}


def _key_id() -> str:
    return os.environ["CREDENTIALS_KEY_ARN"]


def encrypt(account_id: str, source_id: str, values: Mapping[str, str]) -> str:
    """The base64 ciphertext of ``values`` for this source."""
    document = json.dumps(dict(values), separators=(",", ":"), sort_keys=True).encode("utf-8")
    plaintext = b"j" + document
    if len(plaintext) > KMS_PLAINTEXT_LIMIT:
        plaintext = b"z" + zlib.compress(document, 9)
        if len(plaintext) > KMS_PLAINTEXT_LIMIT:
            raise CredentialsTooLarge("The credentials are too long to store")
    blob = client("kms").encrypt(KeyId=_key_id(), Plaintext=plaintext,
                                 EncryptionContext=_context(account_id, source_id))["CiphertextBlob"]
    return base64.b64encode(blob).decode("ascii")


def decrypt(account_id: str, source_id: str, ciphertext: str) -> dict[str, str]:
    """The values a ciphertext holds, if it was made for this source; otherwise
    ``UnreadableCredentials``. Other KMS faults (throttling, access denied) propagate."""
    if not ciphertext or not isinstance(ciphertext, str):
        raise UnreadableCredentials("No stored credentials")
    try:
        blob = base64.b64decode(ciphertext, validate=True)
    except (binascii.Error, ValueError):
        raise UnreadableCredentials("The stored credentials are damaged") from None
    try:
        plaintext = client("kms").decrypt(CiphertextBlob=blob, KeyId=_key_id(),
                                          EncryptionContext=_context(account_id, source_id))["Plaintext"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in _UNREADABLE:
            raise UnreadableCredentials("The stored credentials do not belong to this source") from None
        raise
    try:
        kind, body = plaintext[:1], plaintext[1:]
        if kind == b"z":
            body = zlib.decompress(body)
        elif kind != b"j":
            raise ValueError
        values = json.loads(body.decode("utf-8"))
        if not isinstance(values, dict):
            raise ValueError
    except (ValueError, zlib.error, UnicodeDecodeError):
        raise UnreadableCredentials("The stored credentials are damaged") from None
    return values


def redacted(values_or_names: Mapping[str, object] | Iterable[str] | None) -> dict[str, str]:
    """``{field: "set"}`` for each field that has a value: what an API response may show."""
    if not values_or_names:
        return {}
    if isinstance(values_or_names, Mapping):
        names = [k for k, v in values_or_names.items() if v not in (None, "")]
    else:
        names = list(values_or_names)
    return {str(name): SET for name in sorted(names)}
