"""Where the backend may send a user's browser back to: pages on the stage's web app
origins (``ALLOWED_RETURN_ORIGINS``, comma-separated; the program sets it from
``corsOrigins``). Used by OAuth initiate/callback and by Stripe Checkout and portal, so
neither can be turned into an open redirect."""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

_CONTROL = re.compile(r"[\u0000-\u001f\u007f]")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL (default port dropped, host lower-cased),
    or None for anything else (other schemes, user info, a bad port, no host)."""
    try:
        parts = urlsplit(str(url).strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.username is not None or parts.password is not None or "\\" in parts.netloc:
        return None
    suffix = f":{port}" if port is not None and port != _DEFAULT_PORTS[scheme] else ""
    return f"{scheme}://{parts.hostname.lower()}{suffix}"


def allowed_origins() -> set[str]:
    raw = os.environ.get("ALLOWED_RETURN_ORIGINS", "")
    return {o for o in (origin_of(item) for item in raw.split(",") if item.strip()) if o}


def return_url_allowed(url: str) -> bool:
    """Whether ``url`` is a page on one of the stage's web app origins (no control
    characters, no surrounding spaces)."""
    if not isinstance(url, str) or _CONTROL.search(url) or url != url.strip():
        return False
    origin = origin_of(url)
    return origin is not None and origin in allowed_origins()
