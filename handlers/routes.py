"""The assembled route table: every service's ``ROUTES``, found by package.

Read by the Pulumi program, offline mode, the OpenAPI document and the tests. No Lambda
bundle imports this module, so a bundle carries only its own service's routes.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from handlers.shared.routing import Route

_HERE = Path(__file__).resolve().parent


def services_with_routes() -> list[str]:
    return sorted(
        info.name for info in pkgutil.iter_modules([str(_HERE)])
        if info.ispkg and (_HERE / info.name / "routes.py").is_file())


def routes_of(service: str) -> tuple[Route, ...]:
    return tuple(importlib.import_module(f"handlers.{service}.routes").ROUTES)


def all_routes() -> dict[str, tuple[Route, ...]]:
    """service -> its routes; a route key appears once in the whole table."""
    table = {service: routes_of(service) for service in services_with_routes()}
    seen: dict[str, str] = {}
    for service, routes in table.items():
        for route in routes:
            if route.route_key in seen:
                raise ValueError(f"{route.route_key} is declared by {seen[route.route_key]} and {service}")
            seen[route.route_key] = service
    return table
