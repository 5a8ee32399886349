"""Opaque ids: a short type prefix and random characters (``usr_...``, ``acc_...``)."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"
