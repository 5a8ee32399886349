"""Password hashing and policy (handlers.shared.passwords)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from handlers.shared import passwords
from handlers.shared.passwords import (MAX_LENGTH, MIN_LENGTH, hash_password, needs_rehash,
                                       policy_problem, verify_password)

GOOD = "correct horse battery staple"


@pytest.fixture(scope="module")
def stored() -> str:
    return hash_password(GOOD)


def weaker_hash(password: str, n: int = 2 ** 10) -> str:
    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=8, p=1, dklen=32)
    return f"scrypt${n}$8$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def test_round_trip(stored):
    assert verify_password(GOOD, stored)


def test_a_wrong_password_is_false(stored):
    assert not verify_password(GOOD + "!", stored)
    assert not verify_password(GOOD.upper(), stored)
    assert not verify_password("", stored)


def test_unicode_passwords_round_trip():
    stored = hash_password("pässwörd-ünïcode-😀")
    assert verify_password("pässwörd-ünïcode-😀", stored)
    assert not verify_password("passwort-unicode-😀", stored)


@pytest.mark.parametrize("bad", [None, "", "plain-text-password", "scrypt$x", "bcrypt$16384$8$1$AAAA$AAAA",
                                 "scrypt$sixteen$8$1$AAAA$AAAA", "scrypt$16384$8$1$!!!$???",
                                 "$2b$12$abcdefghijklmnopqrstuv",
                                 "scrypt$16384$8$1$$AAAA",                     # empty salt
                                 "scrypt$1000$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 44,  # n not 2^k
                                 "scrypt$1073741824$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 44,
                                 "scrypt$16384$-8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 44,
                                 "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA"])  # short digest
def test_a_malformed_stored_hash_is_false_without_exception(bad):
    assert verify_password(GOOD, bad) is False


def test_the_hash_records_its_parameters_and_a_per_user_salt(stored):
    scheme, n, r, p, salt, digest = stored.split("$")
    assert (scheme, int(n), int(r), int(p)) == ("scrypt", passwords.N, passwords.R, passwords.P)
    assert int(n) >= 2 ** 14                            # memory-hard: 16 MiB or more
    assert len(base64.b64decode(salt)) == 16 and len(base64.b64decode(digest)) == 32
    again = hash_password(GOOD)
    assert again != stored and again.split("$")[4] != salt
    assert GOOD not in stored


def test_needs_rehash_when_parameters_were_weaker(stored):
    assert needs_rehash(stored) is False
    old = weaker_hash(GOOD)
    assert needs_rehash(old) is True
    assert verify_password(GOOD, old)                   # still verifies with its own parameters
    assert needs_rehash("garbage") is True


@pytest.mark.parametrize("password, email, problem", [
    ("short1!", None, f"at least {MIN_LENGTH}"),
    ("x" * 9, None, f"at least {MIN_LENGTH}"),
    ("Aa1!" * 40, None, f"at most {MAX_LENGTH}"),
    ("password1234", None, "too common"),
    ("QWERTYUIOP", None, "too common"),                  # case-insensitive
    ("abababababab", None, "too common"),                # too few distinct characters
    ("alice@example.com", "Alice@Example.com", "e-mail"),
])
def test_policy_refuses(password, email, problem):
    assert problem in (policy_problem(password, email) or "")


@pytest.mark.parametrize("password", [GOOD, "x7Kp2mQ9vLw", "a" * 3 + "bcd" + "e" * 4,
                                      (GOOD * 5)[:MAX_LENGTH]])
def test_policy_accepts_a_fine_one(password):
    assert policy_problem(password, "alice@example.com") is None
    assert policy_problem(password) is None
