"""Access and refresh tokens: JWTs signed with HS256 and the stage's secret (DESIGN.md s. 4).

Claims, all required: ``iss`` = ``listbackup-{stage}``, ``aud`` = ``listbackup-api``,
``typ`` (``access`` or ``refresh``), ``sub`` (user id), ``acc`` (account id), ``role``,
``ver`` (the user's token version: logout and a password change bump it, which revokes
every token issued before), ``jti``, ``iat`` and ``exp`` (epoch seconds).

``verify`` accepts only HS256: the header's ``alg`` is checked before anything else, so
``none`` and every other algorithm fail even if PyJWT would know them, and PyJWT itself is
told to allow HS256 alone. Every failure is a ``TokenError`` whose text is a short reason
code (``expired``, ``bad_signature``...) fit for a log line; it never holds the token.
"""

from __future__ import annotations

import secrets
import time
from decimal import Decimal
from typing import Any

from handlers.shared.roles import ROLES

AUDIENCE = "listbackup-api"
ACCESS_TTL = 15 * 60
REFRESH_TTL = 30 * 24 * 3600
ALGORITHM = "HS256"
LEEWAY = 30                 # seconds of clock skew tolerated on iat, nbf and exp
MIN_SECRET_BYTES = 32       # RFC 7518 s. 3.2: an HS256 key has at least 256 bits
MAX_TOKEN_CHARS = 4096      # ours are about 400; anything far longer is not ours
TYPES = ("access", "refresh")
CLAIMS = ("iss", "aud", "typ", "sub", "acc", "role", "ver", "jti", "iat", "exp")
_DEFAULT_TTL = {"access": ACCESS_TTL, "refresh": REFRESH_TTL}


class TokenError(Exception):
    """A token that must not be accepted. ``str(error)`` is a short reason code."""


def issuer(stage: str) -> str:
    return f"listbackup-{stage}"


def as_int(value: Any) -> int | None:
    """``value`` as an int when it is a whole number (DynamoDB returns numbers as
    ``Decimal``), else None. Booleans are not numbers here."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    return None


def _strong(secret: Any) -> bool:
    return isinstance(secret, str) and len(secret.encode("utf-8")) >= MIN_SECRET_BYTES


def issue(secret: str, *, stage: str, typ: str, user_id: str, account_id: str, role: str,
          version: int, ttl: int | None = None, now: float | None = None) -> tuple[str, dict]:
    """A signed token and its claims. ``ttl`` defaults to the type's lifetime."""
    if typ not in TYPES:
        raise ValueError(f"typ must be one of {TYPES}")
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    if not (isinstance(user_id, str) and user_id and isinstance(account_id, str) and account_id):
        raise ValueError("user_id and account_id must be non-empty strings")
    ver = as_int(version)
    if ver is None or ver < 0:
        raise ValueError("version must be a non-negative integer")
    if not _strong(secret):
        raise ValueError(f"the secret must have at least {MIN_SECRET_BYTES} bytes")
    lifetime = _DEFAULT_TTL[typ] if ttl is None else int(ttl)
    if lifetime <= 0:
        raise ValueError("ttl must be positive")
    iat = int(time.time() if now is None else now)
    claims = {
        "iss": issuer(stage), "aud": AUDIENCE, "typ": typ, "sub": user_id, "acc": account_id,
        "role": role, "ver": ver, "jti": secrets.token_urlsafe(16), "iat": iat,
        "exp": iat + lifetime,
    }
    import jwt  # deferred: a function that never signs or checks a token does not load PyJWT

    return jwt.encode(claims, secret, algorithm=ALGORITHM), claims


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _non_empty_str(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def verify(token: str, secret: str, *, stage: str, typ: str, now: float | None = None) -> dict:
    """The claims of a valid token of type ``typ`` for ``stage``; ``TokenError`` otherwise.

    ``now`` (epoch seconds) replaces the clock, for tests; without it PyJWT checks the
    times as well, against the real clock.
    """
    if typ not in TYPES:
        raise ValueError(f"typ must be one of {TYPES}")
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise TokenError("malformed")
    if not _strong(secret):
        raise TokenError("weak_secret")
    import jwt

    try:
        header = jwt.get_unverified_header(token)
    except Exception:
        raise TokenError("malformed") from None
    if header.get("alg") != ALGORITHM:
        raise TokenError("algorithm")

    clock_given = now is not None
    options = {
        "verify_signature": True, "verify_aud": True, "verify_iss": True,
        "verify_exp": not clock_given, "verify_iat": not clock_given, "verify_nbf": not clock_given,
        "require": list(CLAIMS), "strict_aud": True,
    }
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], audience=AUDIENCE,
                            issuer=issuer(stage), leeway=LEEWAY, options=options)
    except jwt.ExpiredSignatureError:
        raise TokenError("expired") from None
    except jwt.ImmatureSignatureError:
        raise TokenError("not_yet_valid") from None
    except jwt.InvalidSignatureError:
        raise TokenError("bad_signature") from None
    except jwt.InvalidAudienceError:
        raise TokenError("audience") from None
    except jwt.InvalidIssuerError:
        raise TokenError("issuer") from None
    except jwt.MissingRequiredClaimError:
        raise TokenError("missing_claim") from None
    except jwt.InvalidAlgorithmError:
        raise TokenError("algorithm") from None
    except Exception:  # DecodeError and anything else a hostile token could provoke
        raise TokenError("malformed") from None

    # Our own checks, whatever PyJWT did: the clock (or the one given), then the shape.
    moment = time.time() if now is None else now
    iat, exp, nbf = claims["iat"], claims["exp"], claims.get("nbf")
    if not (_is_int(iat) and _is_int(exp)) or exp <= iat:
        raise TokenError("bad_claims")
    if iat > moment + LEEWAY:
        raise TokenError("not_yet_valid")
    if nbf is not None:
        if not isinstance(nbf, (int, float)) or isinstance(nbf, bool):
            raise TokenError("bad_claims")
        if nbf > moment + LEEWAY:
            raise TokenError("not_yet_valid")
    if exp <= moment - LEEWAY:
        raise TokenError("expired")
    if claims["typ"] != typ:
        raise TokenError("wrong_type")
    if not _is_int(claims["ver"]) or claims["ver"] < 0:
        raise TokenError("bad_claims")
    if not (_non_empty_str(claims["sub"]) and _non_empty_str(claims["acc"])
            and _non_empty_str(claims["jti"])):
        raise TokenError("bad_claims")
    if claims["role"] not in ROLES:
        raise TokenError("bad_claims")
    return claims
