"""The system service's part of the route table."""

from handlers.shared.routing import PUBLIC, Route

ROUTES = (
    Route("GET", "/system/health", "health", PUBLIC,
          summary="Liveness: status, stage, API version and server time"),
    Route("GET", "/system/status", "status", "viewer",
          summary="Each table, the bucket and each queue (with dead-letter depth): state and "
                  "latency; 503 when one is down"),
)
