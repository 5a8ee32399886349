"""Entry point of ``listbackup-system-{stage}-api``."""

from __future__ import annotations

import os
from datetime import datetime, timezone

from handlers.shared.http import Request, api_handler
from handlers.shared.log import get_logger
from handlers.system.routes import ROUTES

logger = get_logger("system")


def health(request: Request) -> dict:
    return {
        "status": "ok",
        "stage": os.environ.get("STAGE", ""),
        "version": os.environ.get("API_VERSION", "v2"),
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


handler = logger.inject_lambda_context(api_handler(ROUTES, {"health": health}, logger))
