"""Entry point of ``listbackup-system-{stage}-api``."""

from __future__ import annotations

import os
from datetime import datetime, timezone

from handlers.shared.http import ApiError, Request, api_handler
from handlers.shared.log import get_logger
from handlers.system.routes import ROUTES

logger = get_logger("system")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def health(request: Request) -> dict:
    return {
        "status": "ok",
        "stage": os.environ.get("STAGE", ""),
        "version": os.environ.get("API_VERSION", "v2"),
        "time": _now(),
    }


def status(request: Request) -> dict:
    from handlers.system.status import check_all  # only the deep check pays for its imports

    report = {"stage": os.environ.get("STAGE", ""), "time": _now(), **check_all()}
    if report["status"] == "down":
        down = [c["name"] for c in report["checks"] if c["state"] == "down"]
        raise ApiError("unavailable", f"Unavailable: {', '.join(down)}", details=report)
    return report


handler = logger.inject_lambda_context(
    api_handler(ROUTES, {"health": health, "status": status}, logger))
