"""The system service's part of the route table."""

from handlers.shared.routing import PUBLIC, STRING, TIME, Route, obj

CHECK = obj({"kind": {"type": "string", "enum": ["table", "bucket", "queue", "deadLetterQueue"]},
             "name": STRING, "state": {"type": "string", "enum": ["ok", "down"]},
             "latencyMs": {"type": "number", "minimum": 0},
             "depth": {"type": "integer", "minimum": 0, "description": "queues: messages waiting"},
             "error": {"type": "string", "description": "down: the kind of failure"}},
            optional=("depth", "error"), title="DependencyCheck")
STATUS = obj({"stage": STRING, "time": TIME,
              "status": {"type": "string", "enum": ["ok", "degraded", "down"]},
              "checks": {"type": "array", "items": CHECK}}, title="SystemStatus")

ROUTES = (
    Route("GET", "/system/health", "health", PUBLIC,
          summary="Liveness: status, stage, API version and server time",
          response=obj({"status": {"type": "string", "enum": ["ok"]}, "stage": STRING,
                        "version": STRING, "time": TIME})),
    Route("GET", "/system/status", "status", "viewer",
          summary="Each table, the bucket and each queue (with dead-letter depth): state and "
                  "latency; 503 when one is down (the report is the error's details)",
          response=STATUS),
)
