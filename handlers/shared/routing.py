"""The route table's row type. Each service declares its rows in ``handlers/<service>/routes.py``
beside its code; ``handlers.routes`` assembles them for everything else that reads the
table (the Pulumi program, offline mode, the OpenAPI document, the tests)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

PUBLIC = "public"
ROLES = ("viewer", "manager", "owner")   # each includes what the ones before it may do
ACCESS = (PUBLIC, *ROLES)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class Route:
    method: str
    path: str              # API Gateway syntax: /sources/{sourceId}
    operation: str         # name of the function in the service's api module
    access: str            # "public" or the minimum role
    summary: str = ""
    body: Mapping[str, Any] | None = None   # JSON Schema (draft 7, OpenAPI 3.0.3 subset)
    status: int = 200      # status of a success

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"{self.route_key}: unknown method")
        if self.access not in ACCESS:
            raise ValueError(f"{self.route_key}: access must be one of {ACCESS}")
        if not self.path.startswith("/") or self.path.endswith("/") and self.path != "/":
            raise ValueError(f"{self.route_key}: path must start, and not end, with '/'")

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def public(self) -> bool:
        return self.access == PUBLIC


def allows(route: Route, role: str | None) -> bool:
    """Whether a caller with ``role`` may use ``route``."""
    if route.public:
        return True
    return role in ROLES and ROLES.index(role) >= ROLES.index(route.access)
