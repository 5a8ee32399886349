"""Pagination cursors (handlers.shared.cursors): opaque, signed, bound to their list."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import boto3
import pytest

from handlers.shared import cursors, params
from handlers.shared.http import ApiError
from tests.handlers.conftest import SECRETS
from tests.support import STAGE

SCOPE = "acc_1:activity:abc"
KEY = {"accountId": "acc_1", "eventId": "evt_20260101T000000000000Z_0a1b2c3d",
       "count": Decimal("42"), "ratio": Decimal("1.25"), "nested": {"n": Decimal("-7")}}


def refused(cursor: str, scope: str = SCOPE) -> ApiError:
    with pytest.raises(ApiError) as caught:
        cursors.decode(cursor, scope)
    return caught.value


def test_round_trip_keeps_strings_and_decimals(backend):
    cursor = cursors.encode(KEY, SCOPE)
    assert isinstance(cursor, str) and "=" not in cursor
    back = cursors.decode(cursor, SCOPE)
    assert back == KEY
    assert isinstance(back["count"], Decimal) and isinstance(back["nested"]["n"], Decimal)


def test_no_key_no_cursor(backend):
    assert cursors.encode(None, SCOPE) is None and cursors.encode({}, SCOPE) is None
    assert cursors.decode(None, SCOPE) is None and cursors.decode("", SCOPE) is None


def test_page_shape(backend):
    assert cursors.page([1, 2], None, SCOPE) == {"items": [1, 2], "nextCursor": None}
    page = cursors.page([1], {"accountId": "acc_1", "eventId": "e"}, SCOPE)
    assert cursors.decode(page["nextCursor"], SCOPE) == {"accountId": "acc_1", "eventId": "e"}


def test_a_tampered_cursor_is_invalid_request(backend):
    cursor = cursors.encode(KEY, SCOPE)
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw[-3] ^= 0x01                                  # one bit of the payload
    flipped = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    # A forged payload with a made-up signature.
    payload = json.dumps({"k": {"accountId": "acc_2", "eventId": "x"}, "s": SCOPE}).encode()
    forged = base64.urlsafe_b64encode(b"\0" * 16 + payload).decode().rstrip("=")
    for bad in (flipped, forged, cursor[:-4], cursor + "AAAA", "!!!", "a", "é"):
        error = refused(bad)
        assert (error.status, error.code, error.fields) == (400, "invalid_request", ["cursor"])


def test_a_cursor_from_another_scope_is_refused(backend):
    cursor = cursors.encode(KEY, SCOPE)
    for other in ("acc_2:activity:abc", "acc_1:members", "acc_1:activity:abd", ""):
        assert refused(cursor, other).code == "invalid_request"


def test_a_cursor_signed_under_another_secret_is_refused(backend):
    cursor = cursors.encode(KEY, SCOPE)
    name = f"/listbackup/{STAGE}/cursor-secret"
    boto3.client("ssm").put_parameter(Name=name, Value=SECRETS[name] + "-rotated",
                                      Type="SecureString", Overwrite=True)
    params.clear_cache()
    assert refused(cursor).code == "invalid_request"


@pytest.mark.parametrize("raw, expected", [(None, 25), ("", 25), ("1", 1), ("25", 25), ("100", 100)])
def test_limit_of_defaults_to_25_within_1_to_100(raw, expected):
    query = {} if raw is None else {"limit": raw}
    assert cursors.limit_of(query) == expected


@pytest.mark.parametrize("raw", ["0", "101", "-1", "ten", "1.5", "1e2", "99999999999999999999"])
def test_limit_of_refuses_values_out_of_bounds_or_not_integers(raw):
    with pytest.raises(ApiError) as caught:
        cursors.limit_of({"limit": raw})
    assert (caught.value.status, caught.value.code, caught.value.fields) == (400, "validation_failed", ["limit"])
