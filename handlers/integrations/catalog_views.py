"""``GET /integrations`` and ``GET /integrations/{type}``: the platform catalog as the API
shows it. Everything is derived from ``platforms.CATALOG``; nothing here lists platforms.

The views carry what a user needs to connect a platform (its fields, or that it connects
through OAuth and with which scopes) and what a backup of it holds (its endpoints). They
never carry client ids, client secrets or the catalog's internal paging details.
"""

from __future__ import annotations

from handlers.shared.connectors.model import Field, Platform
from handlers.shared.connectors.platforms import CATALOG, get_platform as catalog_platform
from handlers.shared.http import ApiError, Request


def field_view(field: Field) -> dict:
    return {"name": field.name, "label": field.label, "secret": field.secret,
            "required": field.required, "pattern": field.pattern, "help": field.help}


def platform_summary(platform: Platform) -> dict:
    return {
        "id": platform.id,
        "name": platform.name,
        "categories": list(platform.categories),
        "auth": platform.auth,
        "fileStore": any(endpoint.files for endpoint in platform.endpoints),
        "docsUrl": platform.docs_url,
    }


def platform_view(platform: Platform) -> dict:
    rate = platform.rate_limit
    return {
        **platform_summary(platform),
        "fields": [field_view(field) for field in platform.fields],
        "endpoints": [{"name": endpoint.name, "description": endpoint.description}
                      for endpoint in platform.endpoints],
        "testEndpoint": platform.test_endpoint,
        "rateLimit": {"requestsPerSecond": rate.requests_per_second, "burst": rate.burst,
                      "notes": rate.notes},
        "oauth": {"scopes": list(platform.oauth.scopes)} if platform.oauth else None,
    }


def list_platforms(request: Request) -> dict:
    """Every platform of the catalog, in catalog order; the catalog fits one page."""
    return {"items": [platform_summary(platform) for platform in CATALOG.values()],
            "nextCursor": None}


def get_platform(request: Request) -> dict:
    platform = catalog_platform((request.path or {}).get("type", ""))
    if platform is None:
        raise ApiError("not_found", "No such platform")
    return platform_view(platform)
