"""The system service's part of the route table."""

from handlers.shared.routing import PUBLIC, Route

ROUTES = (
    Route("GET", "/system/health", "health", PUBLIC,
          summary="Liveness: status, stage, API version and server time"),
)
