"""Where a platform's URLs point.

In AWS every URL is the catalog's. Offline mode alone may send a platform's API, OAuth and
file hosts to a local server: it sets ``LISTBACKUP_PLATFORM_URLS`` (a JSON map of platform
id to ``scheme://host:port``) in the functions' environment, which no API request can set.
The scheme, host and port of every URL of that platform are replaced; paths stay.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from urllib.parse import urlsplit, urlunsplit


@lru_cache(maxsize=1)
def _overrides(raw: str) -> dict[str, str]:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return {k: v for k, v in value.items() if isinstance(v, str)} if isinstance(value, dict) else {}


def rewrite(platform_id: str, url: str) -> str:
    target = _overrides(os.environ.get("LISTBACKUP_PLATFORM_URLS", "")).get(platform_id)
    if not target:
        return url
    new, old = urlsplit(target), urlsplit(url)
    return urlunsplit((new.scheme, new.netloc, old.path, old.query, old.fragment))
